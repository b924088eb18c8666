"""The built wheel installs everything under ``ralign_tasks`` and works outside the checkout:
the ``ralign`` CLI, lm-eval with ``--include_path``, and Inspect through its entry point."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    LoopbackServer,
    play_both_roles,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # builds and installs the wheel, runs the harnesses


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy of the working tree: an in-place build leaves ralign_tasks.egg-info
    # in the checkout, metadata without the editable install's direct_url.json, which makes
    # Inspect register the tasks without their ralign_tasks/ prefix in any process that has
    # the checkout root on sys.path (`python -m pytest` does).
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (path,) = out.glob("ralign_tasks-*.whl")
    return path


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ralign_tasks/scorers/engine.py" in names
    assert "ralign_tasks/task_configs/__init__.py" in names
    assert "ralign_tasks/templates/metajudge.jinja" in names
    assert "ralign_tasks/templates/_comparison.jinja" in names
    assert "ralign_tasks/samples/data/helpsteer3_aug.jsonl" in names
    assert "ralign_tasks/report/viewer_page.html" in names  # `ralign view` needs its page
    assert not any(n.startswith(("scorers/", "task_configs/", "tests/")) for n in names)
    for module in ("inspect_adapter/_registry", "lm_eval_adapter/tasks", "protocols/fidelity",
                   "cli/__main__", "report/runs", "testing/loopback", "scorers/ask"):  # fmt: skip
        assert f"ralign_tasks/{module}.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ralign = ralign_tasks.cli:main" in text
    assert "[inspect_ai]\nralign_tasks = ralign_tasks.inspect_adapter._registry" in text
    assert "[lm_eval.tasks]\nralign_tasks = ralign_tasks.task_configs" in text


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(site folder, a working folder outside the checkout, env that imports from the site)."""
    root = tmp_path_factory.mktemp("installed")
    # Inspect prefixes a package's tasks with its name (ralign_tasks/…) only when the package
    # lives in a folder on a site-packages path (or is an editable install).
    target = root / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    workdir = root / "elsewhere"
    workdir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "RALIGN_CACHE_DIR": str(root / "cache"),
        "INSPECT_CACHE_DIR": str(root / "inspect-cache"),
    }
    return target, workdir, env


def test_installed_wheel_runs_from_outside_the_checkout(installed):
    target, workdir, env = installed
    assert not (target / "scorers").exists()
    where = subprocess.run(
        [sys.executable, "-c", "import ralign_tasks.scorers.engine as m; print(m.__file__)"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target))
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT)) as server:
        run = subprocess.run(
            [sys.executable, "-m", "ralign_tasks.cli", "run", "reward_bench2", "--sample",
             "--genrm-model", "g", "--genrm-base-url", server.base_url,
             "--metajudge-model", "j", "--metajudge-base-url", server.base_url],
            cwd=workdir, env=env, capture_output=True, text=True,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "ralign_rewardbench2" in run.stdout
    assert (workdir / "ralign_results" / "g" / "reward_bench2" / "results.json").is_file()


def test_lm_eval_finds_and_runs_the_installed_tasks(installed):
    target, workdir, env = installed
    path = subprocess.run(
        [sys.executable, "-m", "ralign_tasks.cli", "include-path"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert path == str(target / "ralign_tasks" / "task_configs")
    assert (Path(path) / "_ralign_template_yaml").is_file()
    listing = subprocess.run(
        [sys.executable, "-m", "lm_eval", "ls", "tasks", "--include_path", path],
        cwd=workdir, env=env, capture_output=True, text=True,
    )  # fmt: skip
    for name in ("ralign", "ralign_helpsteer3", "ralign_rewardbench2", "ralign_ppe"):
        assert f"|{name} " in listing.stdout
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT)) as server:
        metadata = {"sample": True, "metajudge_model": "j", "metajudge_base_url": server.base_url}
        run = subprocess.run(
            [sys.executable, "-m", "lm_eval", "run", "--model", "local-chat-completions",
             "--model_args", f"model=g,base_url={server.base_url}/chat/completions",
             "--apply_chat_template", "--tasks", "ralign_ppe", "--include_path", path,
             "--metadata", json.dumps(metadata)],
            cwd=workdir, env=env, capture_output=True, text=True,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ralign_ppe" in run.stdout and "f_score" in run.stdout


def test_inspect_eval_from_outside_the_checkout(installed):
    target, workdir, env = installed
    where = subprocess.run(
        [sys.executable, "-c",
         "import ralign_tasks.inspect_adapter._registry as m; print(m.__file__)"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target))
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT)) as server:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("inspect")), "eval",
             "ralign_tasks/ralign_rewardbench2", "-T", "sample=true",
             "--model", "openai-api/loop/genrm", "--model-role", "meta_judge=openai-api/loop/judge",
             "--log-dir", "logs", "--display", "plain"],
            cwd=workdir, env={**env, "LOOP_BASE_URL": server.base_url, "LOOP_API_KEY": "unused"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    (log_file,) = (workdir / "logs").glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success", log.error
    assert log.eval.task == "ralign_tasks/ralign_rewardbench2"
    assert log.results.total_samples == 8
    assert "f_score" in log.results.scores[0].metrics

"""Running the harnesses as a user does: ``lm_eval run`` as a subprocess against a loopback
server, and the path of the venv's ``inspect`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ralign_tasks.task_configs import include_path
from ralign_tasks.testing.batch_server import BatchServer
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.scripted import SCRIPT

# The CLI of the Python running the tests, whatever PATH finds first.
INSPECT = str(Path(sys.executable).with_name("inspect"))

# local-chat-completions retries a failed GenRM call and then stops the whole run, so the
# lm-eval script gives item 6 an ordinary label-wrong answer instead of a failing call.
LM_EVAL_SCRIPT = [*SCRIPT[:6], ("\\boxed{A}", SCRIPT[6][1]), SCRIPT[7]]


def lm_eval_run(
    server: LoopbackServer,
    out: Path,
    tasks: str,
    metadata: dict,
    *extra: str,
    model: str = "genrm",
):
    """``lm_eval run`` with the GenRM ``model`` on ``server`` (local-chat-completions)."""
    command = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "local-chat-completions",
        "--model_args", f"model={model},base_url={server.base_url}/chat/completions,"
                        "num_concurrent=4,max_retries=1",
        "--apply_chat_template",
        "--tasks", tasks,
        "--include_path", str(include_path()),
        "--metadata", json.dumps(metadata),
        "--output_path", str(out),
        *extra,
    ]  # fmt: skip
    # A cache of its own: module-scoped runs start before the per-test isolated environment.
    env = {**os.environ, "RALIGN_CACHE_DIR": str(out / "cache"), "HF_HOME": str(out / "hf")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def read_lm_eval_output(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    """The results file and the samples per task of one lm-eval output folder."""
    (results_file,) = out.glob("*/results_*.json")
    samples = {}
    for path in out.glob("*/samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(results_file.read_text()), samples


def judged_items(rows: list[dict]) -> list[dict]:
    """The judged-item records of lm-eval samples rows."""
    return [json.loads(row["filtered_resps"][0]) for row in rows]


def lm_eval_values(results: dict, task: str) -> dict:
    """A task's numbers in an lm-eval results file, by metric name (filter ``none``)."""
    return {k.removesuffix(",none"): v for k, v in results["results"][task].items() if "," in k}


def inspect_eval_run(
    server: LoopbackServer | BatchServer, out: Path, task: str, *args: str, openai: bool = False
):
    """``inspect eval ralign_tasks/<task>`` as a subprocess with the ``openai-api/loop/…``
    models on ``server`` (with ``openai``, the ``openai/…`` provider's too; ``args``: the
    model, roles and ``-T`` options); its successful log and its metric values."""
    from inspect_ai.log import read_eval_log

    env = {**os.environ, "LOOP_BASE_URL": server.base_url, "LOOP_API_KEY": "unused",
           "INSPECT_CACHE_DIR": str(out / "inspect_cache")}  # fmt: skip
    if openai:
        env |= {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "unused"}
    run = subprocess.run(
        [INSPECT, "eval", f"ralign_tasks/{task}", *args, "--log-dir", str(out / "logs"),
         "--display", "plain"],
        env=env, capture_output=True, text=True, timeout=180, cwd=out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (log_file,) = (out / "logs").glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success", log.error
    (score,) = log.results.scores
    return log, {name: metric.value for name, metric in score.metrics.items()}

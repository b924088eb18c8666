"""The README's main command, `ralign demo`, end to end (about two minutes on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ralign_tasks.cli.demo import DISCLAIMER

pytestmark = pytest.mark.slow  # about three minutes

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_demo_lines() -> list[str]:
    """The lines of the README's `ralign demo` output block (`...` marks what it leaves out)."""
    block = re.search(
        r"^<!-- output of: ralign demo .*? -->\n```\n(.*?)^```$", README.read_text(), re.M | re.S
    )
    assert block, "README.md has no `ralign demo` output block"
    return [line for line in block.group(1).splitlines() if line.strip() and line != "..."]


def test_demo_runs_offline_and_prints_the_fidelity_table(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    run = subprocess.run(
        [sys.executable, "-m", "ralign_tasks.cli", "demo", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Converting SmolLM2-135M-Instruct" in run.stdout
    assert (tmp_path / "xdg-cache" / "ralign-tasks" / "models" / "SmolLM2-135M-Instruct").is_dir()
    for text in ("|Groups|", "ralign_helpsteer3", "l_acc", "s_corr", "f_score", "meta_call_fail"):
        assert text in run.stdout
    assert DISCLAIMER in run.stdout
    # The README shows what the demo prints, numbers included.
    printed = run.stdout.replace(str(tmp_path / "out"), "ralign_demo")
    assert [line for line in readme_demo_lines() if line not in printed] == []
    assert f"ralign report {tmp_path / 'out'}" in run.stdout  # where to go next
    (results,) = (tmp_path / "out").glob("*/results_*.json")
    # The GenRM is named by the model's name, not by the cache path it was loaded from.
    model_args = json.loads(results.read_text())["config"]["model_args"]
    assert model_args["pretrained"] == "SmolLM2-135M-Instruct"

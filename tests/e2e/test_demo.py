"""The README's main command, `ralign demo`, end to end (about two minutes on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ralign_tasks.cli.demo import DISCLAIMER

pytestmark = pytest.mark.slow  # about three minutes


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
    assert f"ralign report {tmp_path / 'out'}" in run.stdout  # where to go next
    (results,) = (tmp_path / "out").glob("*/results_*.json")
    # The GenRM is named by the model's name, not by the cache path it was loaded from.
    model_args = json.loads(results.read_text())["config"]["model_args"]
    assert model_args["pretrained"] == "SmolLM2-135M-Instruct"

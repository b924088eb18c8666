"""Bias probes of the label benchmarks against scripted GenRMs (tests/support/label_probes.py):
a GenRM that follows a bandwagon note flips every game, a robust one none; the official
numbers stay those of the games as given; lm-eval and Inspect give the CLI's numbers."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.harness import (
    inspect_eval_run,
    lm_eval_run,
    lm_eval_values,
    read_lm_eval_output,
)
from tests.support.label_probes import responder

# The label benchmarks and their pairwise setting.
BENCHMARKS = {"judgebench": [], "rmbench": [], "rb2": ["--mode", "pairwise"]}


def _run(server, out, genrm, benchmark, *extra):
    code = main([
        "run", benchmark, "--sample", "--genrm-model", genrm, "--genrm-base-url",
        server.base_url, "--output-dir", str(out), *BENCHMARKS[benchmark], *extra,
    ])  # fmt: skip
    assert code == 0
    (results,) = (out / genrm).glob("*/results.json")
    return json.loads(results.read_text())["metrics"]["overall"]


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_a_note_following_genrm_flips_every_game_and_a_robust_one_none(tmp_path, benchmark):
    with LoopbackServer(responder()) as server:
        plain = _run(server, tmp_path / "plain", "follower", benchmark)
        follower = _run(server, tmp_path / "f", "follower", benchmark, "--probe", "bandwagon")
        robust = _run(server, tmp_path / "r", "robust", benchmark, "--probe", "bandwagon")
    assert follower["flip_rate"] == 1.0 and follower["l_acc_probe"] == 0.0
    assert follower["l_acc_probe_diff"] == -1.0
    assert robust["flip_rate"] == 0.0 and robust["l_acc_probe"] == 1.0
    # The official numbers are those of the games as given, as in a plain run.
    headline = {"judgebench": "accuracy", "rmbench": "average", "rb2": "score"}[benchmark]
    assert follower[headline] == plain[headline]
    assert plain["flip_rate"] is None
    low, high = follower["ci"]["flip_rate"]
    assert low == high == 1.0


def test_probes_need_pairwise_games(capsys):
    assert main(["run", "rb2", "--sample", "--probe", "format", "--genrm-model", "g"]) == 2
    assert "probes need mode pairwise" in capsys.readouterr().err


@pytest.mark.slow  # lm-eval and Inspect run as subprocesses
def test_lm_eval_and_inspect_give_the_cli_numbers(tmp_path):
    task = "ralign_judgebench"
    with LoopbackServer(responder()) as server:
        cli = _run(server, tmp_path / "cli", "follower", "judgebench", "--probe", "bandwagon")
        run = lm_eval_run(server, tmp_path / "lm_eval", task,
                          {"sample": True, "probe": "bandwagon"}, model="follower")  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        results, _ = read_lm_eval_output(tmp_path / "lm_eval")
        lm_eval = lm_eval_values(results, task)
        _, values = inspect_eval_run(
            server, tmp_path, task, "--model", "openai-api/loop/follower",
            "-T", "sample=true", "-T", "probe=bandwagon",
        )  # fmt: skip
    for name in ("flip_rate", "l_acc_probe", "l_acc_probe_diff", "accuracy"):
        assert lm_eval[name] == pytest.approx(cli[name]), name
        assert values[name] == pytest.approx(cli[name]), name

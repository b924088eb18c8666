"""The label benchmarks in lm-eval and Inspect give the very numbers of the CLI on the same
GenRM answers (a loopback GenRM that likes long answers), on the bundled samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval

from ralign_tasks.cli.main import main
from ralign_tasks.inspect_adapter.tasks import TASK_FUNCTIONS
from ralign_tasks.protocols import get_task, protocol_of
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.harness import lm_eval_run, read_lm_eval_output
from tests.support.label_judges import length_everything

TASKS = ("ralign_judgebench", "ralign_rmbench", "ralign_rb2")


def cli_metrics(server: LoopbackServer, out: Path, task: str) -> dict:
    code = main(["run", task, "--sample", "--genrm-model", "genrm", "--genrm-base-url",
                 server.base_url, "--output-dir", str(out / task)])  # fmt: skip
    assert code == 0
    (results,) = (out / task).glob("*/*/results.json")
    return json.loads(results.read_text())["metrics"]["overall"]


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(length_everything) as server:
        yield server


@pytest.fixture(scope="module")
def expected(server, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    return {task: cli_metrics(server, out, task) for task in TASKS}


def test_the_cli_numbers_are_not_trivial(expected):
    """The comparisons below compare something: neither all-perfect nor all-zero."""
    for task, metrics in expected.items():
        headline = protocol_of(task).schema.headline
        assert 0.0 < metrics[headline] < 1.0, task


@pytest.mark.slow  # lm_eval in a subprocess
def test_lm_eval_group_gives_the_cli_numbers(server, expected, tmp_path):
    run = lm_eval_run(server, tmp_path, "ralign_label", {"sample": True}, "--log_samples")
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_lm_eval_output(tmp_path)
    for task in TASKS:
        schema = protocol_of(task).schema
        found = results["results"][task]
        for spec in schema:
            if spec.option is not None:  # off (a probe's metrics): not reported
                assert f"{spec.name},none" not in found, spec.name
                continue
            want = expected[task][spec.name]
            got = found[f"{spec.name},none"]
            if want is None or spec.name == "requests_truncated":
                # lm-eval does not say why generation stopped: truncation is unknown there.
                assert math.isnan(got), spec.name
            else:
                assert got == pytest.approx(want, abs=1e-12), (task, spec.name)
        # One request per prompt, each answer in its game.
        protocol = protocol_of(task)
        for row in samples[task]:
            record = protocol.record_from_dict(row["doc"])
            prompts = protocol.genrm_prompts(record, protocol.option_values({}, task))
            games = json.loads(row["filtered_resps"][0])["genrm"]["games"]
            assert len(games) == len(prompts) and all(g["output"] for g in games)
    # The generation settings are the official ones: temperature 0.
    assert {body.get("temperature") for body in server.requests} == {0}


@pytest.mark.parametrize("task", TASKS)
def test_inspect_gives_the_cli_numbers(server, expected, task, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
    monkeypatch.setenv("LOOP_API_KEY", "unused")
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (log,) = inspect_eval(
        TASK_FUNCTIONS[task](sample=True),
        model="openai-api/loop/genrm",
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    metrics = log.results.scores[0].metrics
    schema = protocol_of(get_task(task)).schema
    for name in schema.metric_names:
        if schema.spec(name).option is not None:  # off (a probe's metrics): not reported
            assert name not in metrics, name
            continue
        want = expected[task][name]
        got = metrics[name].value
        if want is None:
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(want, abs=1e-12), (task, name)
    for name in schema.count_names:
        assert metrics[name].value == expected[task][name], name
    # Every sample asked all its prompts (the solver's forks), each recorded with what it showed.
    protocol = protocol_of(task)
    for sample in log.samples:
        record = protocol.record_from_dict(sample.metadata)
        prompts = protocol.genrm_prompts(record, protocol.option_values({}, task))
        games = sample.scores[protocol.scorer_name].metadata["genrm"]["games"]
        assert len(games) == len(prompts) and all(g["output"] for g in games)


def test_inspect_asks_the_arena_hard_follow_up_turn(tmp_path, monkeypatch):
    """An answer without a label gets one follow-up turn (its first answer as history), and
    the decision is read from both answers, as in the CLI."""

    def respond(body):
        messages = body["messages"]
        if len(messages) == 3:
            assert messages[1]["role"] == "assistant"
            return "Final verdict: [[A>B]]"
        return "Let me think about it; no label yet."

    with LoopbackServer(respond) as server:
        monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
        monkeypatch.setenv("LOOP_API_KEY", "unused")
        monkeypatch.chdir(tmp_path)
        (log,) = inspect_eval(
            TASK_FUNCTIONS["ralign_judgebench"](sample=True, verdict_format="arena_hard"),
            # A name of its own: Inspect memoizes models by name, with the earlier server's URL.
            model="openai-api/loop/follow-up",
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
        follow_ups = [b for b in server.requests if len(b["messages"]) == 3]
    assert log.status == "success", log.error
    assert len(follow_ups) == 16  # every game of the 8 pairs
    for sample in log.samples:
        games = sample.scores["ralign_judgebench_scorer"].metadata["genrm"]["games"]
        assert [g["verdict"] for g in games] == ["A>B", "A>B"]
        assert all(g["output"].endswith("Final verdict: [[A>B]]") for g in games)
    # A>B in both orders: a position-biased judge, inconsistent on every pair.
    assert log.results.scores[0].metrics["inconsistent"].value == 8

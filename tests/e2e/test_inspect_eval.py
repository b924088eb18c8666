"""``inspect eval ralign_tasks/…`` end to end: Inspect's ``openai-api`` provider against the
scripted loopback server, through the Python API, the CLI and ``inspect score``."""

import math
import os
import subprocess

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from inspect_ai.model import GenerateConfig, get_model

from ralign_tasks.inspect_adapter.tasks import ralign_helpsteer3
from ralign_tasks.pipeline import score_outputs
from ralign_tasks.protocols import get_task
from ralign_tasks.protocols.base import GenRMOutput
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.testing.loopback import (
    LoopbackServer,
    is_metajudge_prompt,
    prompt_of,
)
from tests.support.harness import INSPECT
from tests.support.scripted import SCRIPT, meta_answer

# The bundled helpsteer3 sample scripted as in test_cli.py. Inspect's provider moves each
# <think>…</think> into a reasoning part; the scorer must put it back, or item 7's official
# verdict (its first box, B, is in the thinking) would become A.
# A second meta-judge for re-judging a log: it finds every rationale correct.
REJUDGE_MODEL = "judge2"

# Fail fast: one attempt per call, one HTTP request per attempt (Inspect's retries back off
# for seconds; -M / model_args max_retries turns off the openai client's own retries).
JUDGE_ROLE_CLI = (
    "meta_judge={model: openai-api/loop/judge, max_retries: 0, model_args: {max_retries: 0}}"
)


@pytest.fixture
def scripted(sample_records, monkeypatch):
    def respond(body):
        prompt = prompt_of(body)
        for record, (genrm, meta) in zip(sample_records, SCRIPT, strict=True):
            if record.prompt in prompt:
                if not is_metajudge_prompt(body):
                    return genrm
                return meta_answer("Correct") if body["model"] == REJUDGE_MODEL else meta
        raise AssertionError("unscripted request")

    with LoopbackServer(respond) as server:
        # The openai-api/<service>/<model> provider reads <SERVICE>_BASE_URL / _API_KEY.
        monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
        monkeypatch.setenv("LOOP_API_KEY", "unused")
        yield server


@pytest.fixture(autouse=True)
def inspect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "inspect_cache"))
    monkeypatch.chdir(tmp_path)  # Inspect reads a .env from the working directory


def loop_model(server, name, **config):
    # memoize=False: get_model() would hand a later test the client of an earlier server.
    return get_model(
        f"openai-api/loop/{name}",
        base_url=server.base_url,
        config=GenerateConfig(**config),
        memoize=False,
        max_retries=0,  # the openai client's own retries
    )


def run_api(server, tmp_path, **task_args):
    # A Task object: resolving "ralign_tasks/…" by name is the CLI test's job (in this
    # process the checkout root is on sys.path, where Inspect may not see the package as
    # installed, see test_inspect_packaging.py).
    (log,) = inspect_eval(
        ralign_helpsteer3(sample=True, **task_args),
        model=loop_model(server, "genrm"),
        model_roles={"meta_judge": loop_model(server, "judge", max_retries=0)},
        max_retries=0,
        score_on_error=True,
        fail_on_error=False,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    return log


def metrics_of(log):
    (score,) = log.results.scores
    return {name: metric.value for name, metric in score.metrics.items()}


def same(value, expected):
    return math.isnan(value) if expected is None else value == expected


def test_api_run_matches_hand_computed_metrics_and_the_cli_pipeline(scripted, tmp_path):
    log = run_api(scripted, tmp_path)
    assert log.status == "success"
    metrics = metrics_of(log)
    # Label-correct: items 0, 1, 2 (backslash fallback), 5. Meta: C, I, ParseFail, CallFail.
    assert metrics["l_acc"] == pytest.approx(4 / 8)
    assert metrics["s_corr"] == pytest.approx(1 / 2)
    assert metrics["f_score"] == pytest.approx(1 / (8 - 1 - 1))
    assert (metrics["meta_parse_fail"], metrics["meta_call_fail"]) == (1, 1)
    assert (metrics["genrm_no_verdict"], metrics["genrm_call_fail"]) == (1, 1)
    assert metrics["genrm_truncated"] == 1
    assert log.results.headline.metric == "f_score"
    assert next(iter(log.results.scores[0].metrics)) == "f_score"

    scores = [sample.scores["ralign_fidelity"] for sample in log.samples]
    assert [s.value["meta"] for s in scores] == [
        "correct", "incorrect", "parse_fail", None, None, "call_fail", None, None,
    ]  # fmt: skip
    assert [s.answer for s in scores] == ["A", "B", "A", "A", None, "A", None, "B"]
    # The reasoning part is back in front of the text the official parser reads.
    assert scores[7].metadata["genrm"]["output"].startswith("<think>\\boxed{B}?</think>")
    assert log.samples[6].error is not None and scores[6].value["genrm_call_fail"]
    assert scores[5].metadata["judge"][0]["error"].startswith("InternalServerError")
    assert scores[0].explanation.startswith("Meta verdict: Correct")

    # Official settings on the wire: GenRM 0.4 / 8192, meta-judge 0.4 / 16384, one user message.
    genrm = [b for b in scripted.requests if not is_metajudge_prompt(b)]
    meta = [b for b in scripted.requests if is_metajudge_prompt(b)]
    assert {(b["temperature"], b["max_tokens"]) for b in genrm} == {(0.4, 8192)}
    assert {(b["temperature"], b["max_tokens"]) for b in meta} == {(0.4, 16384)}
    assert all([m["role"] for m in b["messages"]] == ["user"] for b in meta)
    assert len(meta) == 4  # label-correct items only; the failing one asked once (max_retries 0)
    judge_calls = [
        e for e in log.samples[0].events if e.event == "model" and e.role == "meta_judge"
    ]
    assert [(e.config.max_retries, e.config.attempt_timeout) for e in judge_calls] == [(0, 600)]

    # The ralign CLI's pipeline on the same GenRM outputs gives the very same numbers.
    outputs = [
        [GenRMOutput(s.metadata["genrm"]["output"], s.value["genrm_truncated"],
                     s.metadata["genrm"]["error"])]
        for s in scores
    ]  # fmt: skip
    assert scores[6].metadata["genrm"]["error"]  # the failed GenRM call says why
    records = [FIDELITY.record_from_dict(sample.metadata) for sample in log.samples]
    config = EndpointConfig(
        model="judge", base_url=scripted.base_url, api_key="x", max_attempts=1, cache=False
    )
    run = score_outputs(get_task("helpsteer3"), records, outputs, JudgeSettings(config))
    assert [i.item for i in run.items] == [
        s.metadata | {"judge": i.item["judge"]} for s, i in zip(scores, run.items, strict=True)
    ]
    overall = FIDELITY.report([item.outcome for item in run.items])["overall"]
    for name in ("f_score", "l_acc", "s_corr"):
        assert same(metrics[name], overall[name])
        assert same(metrics[f"{name}_stderr"], overall["stderr"][name])


def test_api_run_strict_policy(scripted, tmp_path):
    metrics = metrics_of(run_api(scripted, tmp_path, verdict_policy="strict"))
    # Strict: item 2 (no backslash) has no verdict, item 7's final box (A) counts.
    assert metrics["l_acc"] == pytest.approx(4 / 8)
    assert metrics["s_corr"] == pytest.approx(1 / 3)
    assert metrics["f_score"] == pytest.approx(2 / 7)
    assert metrics["genrm_no_verdict"] == 2
    # The report names the run by its GenRM and its non-default setting.
    (result,), _ = load_runs([tmp_path / "logs"])
    assert result.genrm == "openai-api/loop/genrm (verdict_policy=strict)"
    assert result.values["f_score"] == pytest.approx(2 / 7)


def test_undefined_metric_is_nan_not_zero(scripted, tmp_path):
    # Items 3 and 7, both label-wrong (official policy): S-Corr has no denominator.
    metrics = metrics_of(run_api(scripted, tmp_path, subset="multilingual"))
    assert metrics["l_acc"] == 0 and metrics["f_score"] == 0
    assert math.isnan(metrics["s_corr"]) and math.isnan(metrics["s_corr_stderr"])


def test_genrm_error_stops_the_run_by_default(scripted, tmp_path):
    (log,) = inspect_eval(
        ralign_helpsteer3(sample=True),
        model=loop_model(scripted, "genrm"),
        model_roles={"meta_judge": loop_model(scripted, "judge", max_retries=0)},
        max_retries=0,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "error"
    assert "InternalServerError" in log.error.message


def test_missing_meta_judge_role_is_a_clear_error(scripted, tmp_path):
    # `inspect eval` creates the task knowing the roles: it stops before anything runs.
    run = subprocess.run(
        [INSPECT, "eval", "ralign_tasks/ralign_helpsteer3", "--model", "openai-api/loop/genrm",
         "-T", "sample=true", "--log-dir", "logs", "--display", "plain"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert "--model-role meta_judge=" in " ".join((run.stdout + run.stderr).split())
    assert not (tmp_path / "logs").exists()
    # A Task object built beforehand: its setup step fails before the GenRM is asked.
    (log,) = inspect_eval(
        ralign_helpsteer3(sample=True),
        model=loop_model(scripted, "genrm"),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "error" and "meta_judge" in log.error.message
    assert scripted.requests == []


@pytest.mark.slow  # a subprocess of its own
def test_cli_eval_then_rejudge_with_inspect_score(scripted, tmp_path):
    env = {**os.environ, "COLUMNS": "120"}
    run = subprocess.run(
        [INSPECT, "eval", "ralign_tasks/ralign_helpsteer3",
         "--model", "openai-api/loop/genrm", "--model-role", JUDGE_ROLE_CLI,
         "-T", "sample=true", "--max-retries", "0", "-M", "max_retries=0", "--max-tokens", "1000",
         "--score-on-error", "--no-fail-on-error",
         "--log-dir", "logs", "--display", "plain"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "f_score" in run.stdout and "s_corr" in run.stdout
    (log_file,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success"  # `inspect eval` exits 0 even on error: check the log
    assert log.eval.task == "ralign_tasks/ralign_helpsteer3"
    metrics = metrics_of(log)
    assert metrics["f_score"] == pytest.approx(1 / 6) and metrics["l_acc"] == pytest.approx(0.5)
    genrm = [b for b in scripted.requests if not is_metajudge_prompt(b)]
    assert {b["max_tokens"] for b in genrm} == {1000}  # --max-tokens is the GenRM's
    assert {b["max_tokens"] for b in scripted.requests if is_metajudge_prompt(b)} == {16384}

    sent = len(scripted.requests)
    rescored = tmp_path / "rescored.eval"
    score = subprocess.run(
        [INSPECT, "score", str(log_file), "--scorer", "ralign_tasks/ralign_fidelity",
         "--model-role", f"meta_judge=openai-api/loop/{REJUDGE_MODEL}",
         "--action", "overwrite", "--output-file", str(rescored), "--display", "plain"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert score.returncode == 0, score.stderr
    new_requests = scripted.requests[sent:]
    # Only the four label-correct items go to the new meta-judge; the GenRM is not asked.
    assert [b["model"] for b in new_requests] == [REJUDGE_MODEL] * 4
    relog = read_eval_log(str(rescored))
    metrics = metrics_of(relog)
    assert metrics["f_score"] == pytest.approx(4 / 8) and metrics["s_corr"] == 0
    rejudged = relog.samples[0].scores["ralign_fidelity"]
    assert rejudged.metadata["judge"][0]["model"] == f"openai-api/loop/{REJUDGE_MODEL}"
    assert metrics["meta_call_fail"] == 0

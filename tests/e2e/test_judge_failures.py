"""A meta-judge that sometimes answers 200 with a body that is not a chat completion (HTML,
invalid JSON, JSON without ``choices``): every path (the CLI, lm-eval, Inspect) asks again,
counts what keeps failing as a CallFail, finishes with status success, drops no sample, and
gives the same numbers on the same answers."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import GenerateConfig, get_model

from ralign_tasks.cli import main
from ralign_tasks.inspect_adapter.tasks import ralign_helpsteer3
from ralign_tasks.report.runs import load_runs
from ralign_tasks.testing.loopback import LoopbackServer, Reply, is_metajudge_prompt
from tests.support.folders import run_dir
from tests.support.harness import lm_eval_run
from tests.support.scripted import meta_answer

HTML = Reply(raw=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
INVALID_JSON = Reply(raw=b'{"choices": [')
NO_CHOICES = Reply(raw=b'{"object": "error", "message": "overloaded"}')
# The GenRM always says A: items 0, 2, 5 and 7 (labels A B A B B A B A) are label-correct.
# The meta-judge's answers per ask of each: item 2 never answers properly.
META_ANSWERS = {
    0: [INVALID_JSON, meta_answer("Correct")],
    2: [HTML, HTML, HTML],
    5: [NO_CHOICES, meta_answer("Incorrect")],
    7: [meta_answer("Correct")],
}
# C = 2 (items 0, 7), I = 1 (item 5), CF = 1 (item 2).
EXPECTED = {"l_acc": 4 / 8, "s_corr": 1 / 3, "f_score": 2 / 7, "meta_call_fail": 1}


class FlakyJudge:
    """A loopback responder: the GenRM says A, the meta-judge answers from META_ANSWERS."""

    def __init__(self, records):
        self.records = records
        self.asks: Counter[int] = Counter()

    def __call__(self, body):
        if not is_metajudge_prompt(body):
            return "The decisive point favours A. \\boxed{A}"
        prompt = body["messages"][-1]["content"]
        item = next(i for i, r in enumerate(self.records) if r.prompt in prompt)
        answers = META_ANSWERS[item]
        answer = answers[min(self.asks[item], len(answers) - 1)]
        self.asks[item] += 1
        return answer


def check_numbers(metrics: dict) -> None:
    for name, value in EXPECTED.items():
        assert metrics[name] == pytest.approx(value), name


def test_cli_asks_again_and_counts_the_persistent_failure(sample_records, tmp_path, monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_MAX_ATTEMPTS", "2")
    judge = FlakyJudge(sample_records)
    with LoopbackServer(judge) as server:
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
             server.base_url, "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert code == 0
    results = json.loads((run_dir(tmp_path / "out", "helpsteer3") / "results.json").read_text())
    check_numbers(results["metrics"]["overall"])
    assert judge.asks == {0: 2, 2: 2, 5: 2, 7: 1}
    rows = (run_dir(tmp_path / "out", "helpsteer3") / "samples.jsonl").read_text().splitlines()
    failed = json.loads(rows[2])["item"]["judge"][0]
    assert failed["attempts"] == 2 and "not a chat completion" in failed["error"]


def test_inspect_completes_with_success_and_the_same_numbers(sample_records, tmp_path):
    judge = FlakyJudge(sample_records)
    with LoopbackServer(judge) as server:

        def model(name: str, **config):
            return get_model(
                f"openai-api/loop/{name}", base_url=server.base_url, api_key="x",
                memoize=False, config=GenerateConfig(**config),
            )  # fmt: skip

        (log,) = inspect_eval(
            ralign_helpsteer3(sample=True),
            model=model("genrm"),
            # Two asks per request, as the CLI above.
            model_roles={"meta_judge": model("judge", max_retries=1)},
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    assert log.status == "success", log.error
    assert len(log.samples) == 8 and all(s.error is None for s in log.samples)
    metrics = {name: m.value for name, m in log.results.scores[0].metrics.items()}
    check_numbers(metrics)
    scores = [s.scores["ralign_fidelity"] for s in log.samples]
    assert [s.value["meta"] for s in scores] == [
        "correct", None, "call_fail", None, None, "incorrect", None, "correct",
    ]  # fmt: skip
    # The persistent failure is named with the judge's endpoint in the log's events.
    host = server.base_url.removeprefix("http://").removesuffix("/v1")
    messages = [e.message.message for e in log.samples[2].events if e.event == "logger"]
    assert any(f"({host}) failed after" in m and "502 Bad Gateway" in m for m in messages)
    # The report reads the log to the same numbers.
    (result,) = load_runs([tmp_path / "logs"])[0]
    for name in ("l_acc", "s_corr", "f_score"):
        assert result.values[name] == pytest.approx(EXPECTED[name])


@pytest.mark.slow
def test_lm_eval_asks_again_and_gives_the_same_numbers(sample_records, tmp_path):
    judge = FlakyJudge(sample_records)
    with LoopbackServer(judge) as server:
        metadata = {
            "sample": True,
            "metajudge_model": "j",
            "metajudge_base_url": server.base_url,
            "metajudge_max_attempts": 2,
        }
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
    assert run.returncode == 0, run.stderr[-3000:]
    # The console names the persistent failure and the judge's endpoint.
    host = server.base_url.removeprefix("http://").removesuffix("/v1")
    assert f"1 meta-judge request(s) to {host} failed: ValueError: not a chat completion" in (
        run.stderr
    )
    (results_file,) = Path(tmp_path).glob("*/results_*.json")
    task = json.loads(results_file.read_text())["results"]["ralign_helpsteer3"]
    check_numbers({name: task[f"{name},none"] for name in EXPECTED})
    assert judge.asks == {0: 2, 2: 2, 5: 2, 7: 1}


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_judge_is_named_and_the_run_exits_non_zero(sample_records, tmp_path, capsys):
    port = closed_port()
    with LoopbackServer(lambda body: "A is better. \\boxed{A}") as server:
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
             server.base_url, "--metajudge-model", "j",
             "--metajudge-base-url", f"http://127.0.0.1:{port}/v1",
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
    err = capsys.readouterr().err
    # Waited for within the retry budget (0.4 s in the tests), then the run stops
    # naming the endpoint and the real error; no number is written for it.
    assert code == 3
    assert f"meta-judge at 127.0.0.1:{port}: unreachable for more than 0.4 s" in err
    assert "Connect call failed" in err and "run the same command again to resume" in err
    assert not list((tmp_path / "out").glob("*/helpsteer3/results.json"))


def test_a_judge_that_never_answers_in_format_fails_rc_score(tmp_path, capsys):
    with LoopbackServer(lambda body: "Every reason is fine.") as server:
        code = main(
            ["rc-score", "--reference", "low_deceptive_alignment", "--sample",
             "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path)]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3
    assert "8 of 8 judge requests" in err and "malformed answer: no <RESULT_START>" in err
    results = json.loads((run_dir(tmp_path, "helpsteer3_atomic_test") / "results.json").read_text())
    assert results["metrics"]["overall"]["judge_failed"] == 8
    # Even the highest tolerance (1: flag a role only when every request failed) refuses it.
    with LoopbackServer(lambda body: "Every reason is fine.") as server:
        assert main(
            ["rc-score", "--reference", "low_deceptive_alignment", "--sample",
             "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path), "--max-judge-failure-rate", "1",
             "--overwrite"]  # another server (port): another judge endpoint
        ) == 3  # fmt: skip


def test_credentials_in_the_base_url_stop_the_run_before_any_call(tmp_path, capsys):
    with LoopbackServer(lambda body: "\\boxed{A}") as server:
        url = server.base_url.replace("http://", "http://user:sk-secret-1234@")
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
             server.base_url, "--metajudge-model", "j", "--metajudge-base-url", url,
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
        assert server.requests == []
    err = capsys.readouterr().err
    assert code == 2 and "carries credentials" in err and "sk-secret-1234" not in err


def test_a_wrong_judge_url_stops_the_run_naming_the_endpoint(tmp_path, capsys):
    with LoopbackServer(lambda body: "A is better. \\boxed{A}") as server:
        wrong = server.base_url.removesuffix("/v1") + "/api"
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
             server.base_url, "--metajudge-model", "j", "--metajudge-base-url", wrong,
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
        host = server.base_url.removeprefix("http://").removesuffix("/v1")
    err = capsys.readouterr().err
    assert code == 2 and f"meta-judge at {host}: NotFoundError: Error code: 404" in err
    assert not list((tmp_path / "out").glob("*/helpsteer3/results.json"))


def test_a_dead_genrm_fails_the_run_too(tmp_path, capsys):
    port = closed_port()
    with LoopbackServer(lambda body: "unused") as server:
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g",
             "--genrm-base-url", f"http://127.0.0.1:{port}/v1", "--metajudge-model", "j",
             "--metajudge-base-url", server.base_url, "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
        assert server.requests == []
    assert code == 3
    assert f"GenRM at 127.0.0.1:{port}: unreachable for more than" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*/helpsteer3/results.json"))


def test_a_broken_judge_template_stops_the_run_before_any_call(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_TEMPLATE", str(tmp_path / "typo.jinja"))
    with LoopbackServer(lambda body: "\\boxed{A}") as server:
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
             server.base_url, "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
        assert server.requests == []
    assert code == 2 and "prompt template not found" in capsys.readouterr().err


@pytest.mark.slow
def test_a_dead_judge_stops_lm_eval_with_one_line_and_a_failing_status(tmp_path):
    port = closed_port()
    with LoopbackServer(lambda body: "A is better. \\boxed{A}") as server:
        metadata = {
            "sample": True,
            "metajudge_model": "j",
            "metajudge_base_url": f"http://127.0.0.1:{port}/v1",
        }
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
    assert run.returncode != 0
    said = f"ralign: error: ralign_helpsteer3: meta-judge at 127.0.0.1:{port}: unreachable"
    assert said in run.stderr and "Traceback" not in run.stderr
    assert not list(tmp_path.glob("*/results_*.json"))  # no number for a dead judge


# What vLLM answers when max_tokens does not fit the model's context (no token counts here).
CONTEXT_400 = Reply(
    raw=json.dumps({"object": "error", "type": "BadRequestError", "code": 400,
                    "message": "This model's maximum context length is 4096 tokens; "
                               "max_tokens is too large"}).encode(),
    status=400,
)  # fmt: skip


def context_judge(body):
    """The GenRM says A; the meta-judge's server refuses every request for its context."""
    return CONTEXT_400 if is_metajudge_prompt(body) else "A is better. \\boxed{A}"


def test_a_judge_failing_every_request_fails_lm_eval_after_writing_nan(tmp_path):
    with LoopbackServer(context_judge) as server:
        metadata = {"sample": True, "metajudge_model": "j", "metajudge_base_url": server.base_url}
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
    assert run.returncode == 3, run.stderr[-3000:]
    # One framed message under lm-eval's table: the endpoint, the counts, the setting to lower.
    block = run.stderr[run.stderr.rindex("=" * 78, 0, run.stderr.rindex("=" * 78)) :]
    host = server.base_url.removeprefix("http://").removesuffix("/v1")
    assert "ralign: error: ralign_helpsteer3: the numbers of this run are not usable" in block
    assert f"judge at {host}: 4 of 4 requests failed (100%; at least max_failure_rate 0.5)" in block
    assert "lower the judge's max_tokens (RALIGN_METAJUDGE_MAX_TOKENS" in block
    assert "F-Score, S-Corr: reported as undefined (NaN)" in block
    assert "Traceback" not in run.stderr
    (results_file,) = tmp_path.glob("*/results_*.json")
    task = json.loads(results_file.read_text())["results"]["ralign_helpsteer3"]
    assert task["l_acc,none"] == 0.5 and task["meta_call_fail,none"] == 4
    assert all(task[f"{m},none"] != task[f"{m},none"] for m in ("s_corr", "f_score"))  # NaN


def inspect_loopback(responder, log_dir: Path, **options):
    """An Inspect eval of the helpsteer3 sample with GenRM and judge on a loopback server
    answering with ``responder``; its log."""
    with LoopbackServer(responder) as server:

        def model(name: str):
            return get_model(f"openai-api/loop/{name}", base_url=server.base_url, api_key="x",
                             memoize=False)  # fmt: skip

        (log,) = inspect_eval(
            ralign_helpsteer3(sample=True),
            model=model("genrm"),
            model_roles={"meta_judge": model("judge")},
            log_dir=str(log_dir),
            display="none",
            **options,
        )
    return log


def test_a_judge_failing_every_request_fails_the_inspect_eval_keeping_its_samples(tmp_path):
    log = inspect_loopback(context_judge, tmp_path / "logs")
    assert log.status == "error"
    message = log.error.message
    assert "ralign: error: ralign_helpsteer3: the numbers of this run are not usable" in message
    assert "judge at openai-api/loop/judge: 4 of 4 requests failed (100%" in message, message
    assert "lower the judge's max_tokens (-T metajudge_max_tokens=" in message
    assert "-T max_failure_rate=" in message
    # The samples are kept, for `inspect eval-retry` and for `ralign report`, which marks them.
    assert len(log.samples) == 8 and all(s.scores for s in log.samples)
    (result,), _ = load_runs([tmp_path / "logs"])
    assert result.unusable() == "judge: 4 of 4 requests failed"
    # Also when the eval covers part of the dataset (--limit).
    part = inspect_loopback(context_judge, tmp_path / "part", limit=4)
    assert part.status == "error" and "2 of 2 requests failed" in part.error.message


def test_a_context_length_error_names_the_setting_to_lower_in_the_cli(tmp_path, capsys):
    with LoopbackServer(context_judge) as server:
        code = main(["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
                     server.base_url, "--metajudge-model", "j", "--metajudge-base-url",
                     server.base_url, "--output-dir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3 and "4 of 4 judge requests" in err
    assert "does not fit the model's context: lower RALIGN_METAJUDGE_MAX_TOKENS" in err


def test_a_judge_whose_context_is_shorter_than_max_tokens_is_asked_what_fits(tmp_path, caplog):
    asked = []

    def small_context_judge(body):
        if not is_metajudge_prompt(body):
            return "A is better. \\boxed{A}"
        asked.append(body["max_tokens"])
        if body["max_tokens"] > 4096 - 900:  # vLLM's current wording, with the counts
            return Reply(raw=json.dumps({"object": "error", "code": 400, "message": (
                f"'max_tokens' or 'max_completion_tokens' is too large: {body['max_tokens']}. "
                "This model's maximum context length is 4096 tokens and your request has 900 "
                f"input tokens ({body['max_tokens']} > 4096 - 900)."
            )}).encode(), status=400)  # fmt: skip
        return meta_answer("Correct")

    with LoopbackServer(small_context_judge) as server:
        code = main(["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
                     server.base_url, "--metajudge-model", "j", "--metajudge-base-url",
                     server.base_url, "--output-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert sorted(asked) == [3196] * 4 + [16384] * 4  # once as set, once with what fits
    said = [r.message for r in caplog.records if "does not fit the model's context" in r.message]
    assert len(said) == 1 and "max_tokens 16384" in said[0] and "(4096 tokens)" in said[0]
    results = json.loads((run_dir(tmp_path, "helpsteer3") / "results.json").read_text())
    assert results["metrics"]["overall"]["meta_correct"] == 4


def test_a_genrm_request_over_its_context_names_the_setting_in_inspect(tmp_path):
    def genrm_context(body):
        return meta_answer("Correct") if is_metajudge_prompt(body) else CONTEXT_400

    log = inspect_loopback(genrm_context, tmp_path / "logs")
    assert log.status == "error"
    assert "does not fit its model's context" in log.error.message
    assert "lower --max-tokens" in log.error.message

"""HelpSteer3-Atomic in Inspect: dataset, RC scorer and metric with ``mockllm`` as GenRM and
MetaJudge, and one ``inspect eval`` run against the loopback server."""

import json
import math
import os
import subprocess
from dataclasses import replace

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log, resolve_sample_attachments
from inspect_ai.model import (
    ContentReasoning,
    ContentText,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.scorer import SampleScore, Score

from ralign_tasks.data import sample_data_dir
from ralign_tasks.inspect_adapter.scorer import RunNotUsable, ralign_metrics
from ralign_tasks.inspect_adapter.tasks import (
    TaskSetupError,
    ralign_helpsteer3_atomic,
    task_dataset,
)
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.rationale import (
    RATIONALE,
    RC_TASK,
    AtomicJudgment,
    render_atomic_genrm_prompt,
)
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers.ask import JudgeCall
from ralign_tasks.scorers.rationale import (
    RC_METRICS,
    AtomicOutcome,
    ItemStatus,
    RCScores,
    compute_rc,
)
from ralign_tasks.testing.loopback import LoopbackServer, Reply, prompt_of
from tests.support.harness import INSPECT

SCORER = "ralign_rc"


@pytest.fixture
def records():
    # Labels A B B A B A B A; human checklists of 4 3 5 3 6 4 5 4 rationales.
    return load_task("helpsteer3_atomic", sample_data_dir()).records


def atomic_dataset(domain=None, **kwargs):
    return task_dataset(RC_TASK, group_filter=domain, **kwargs)


@pytest.fixture(autouse=True)
def inspect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "inspect_cache"))
    monkeypatch.chdir(tmp_path)  # Inspect reads a .env from the working directory


def reasons(n, verdict="A>B"):
    box = f"\n\\boxed{{{verdict}}}" if verdict else "\nI cannot decide."
    return "\n".join(f"{k}. point {k}" for k in range(1, n + 1)) + box


def block(*picks):
    lines = [f"- R{r}@S{s}: {score}" for r, (s, score) in enumerate(picks, start=1)]
    return "My matching.\n<RESULT_START>\n" + "\n".join(lines) + "\n<RESULT_END>"


def mock_output(content):
    output = ModelOutput.from_content("mockllm/model", content)
    # With usage unset mockllm counts tokens with tiktoken, which downloads its encoding.
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


class Scripted:
    """A mockllm callable answering per item (found by ``key`` in the prompt); a tuple holds an
    item's answers in turn, the last one repeating. Counts calls."""

    def __init__(self, records, answers, key):
        self.keys = [key(record) for record in records]
        self.answers, self.calls = answers, []

    def __call__(self, messages, tools, tool_choice, config):
        prompt = messages[-1].text
        index = next(i for i, key in enumerate(self.keys) if key in prompt)
        asked = self.calls.count(index)
        self.calls.append(index)
        answers = self.answers[index]
        answers = answers if isinstance(answers, tuple) else (answers,)
        return mock_output(answers[min(asked, len(answers) - 1)])


GENRM = [
    reasons(2, "A>B"),  # 0: two R items pick S1
    reasons(2, "B>>A"),  # 1: malformed answer, then a good one
    "No list: they are equally good. \\boxed{A=B}",  # 2: no reasons, skipped (a tie)
    reasons(11, "A>B"),  # 3: more than 10 reasons, skipped
    reasons(2, "B>A"),  # 4: the answer stays malformed
    reasons(2, "B>A"),  # 5: label wrong, reasons scored all the same
    reasons(2, None),  # 6: no verdict
    [ContentReasoning(reasoning="1. hidden\n2. hidden too"), ContentText(text=reasons(2, "A>>B"))],
]
JUDGE = [
    block((1, 1.0), (1, 0.5), (2, 0.75), (0, 0)),
    ("I forgot the block.", block((2, 1.0), (1, 0.25), (0, 0))),
    None,
    None,
    "- R1@S1: 1 (no block)",
    block((1, 0.5), (2, 0.5), (0, 0), (0, 0)),
    block(*[(0, 0)] * 5),
    block((1, 1.0), (2, 1.0), (1, 0.75), (2, 0.25)),
]
# Per scored item, by hand: (rc, rc_code, precision, F1, AP) = one-to-one recall, per-R recall,
# Σ best score per S ÷ min(|S|, 5), 2PR/(P+R) with R = rc_code, and Σ over the matched S in
# ascending order of the running mean of their best scores ÷ |R|.
HAND = {
    # Assignment R1→S1 (1) + R3→S2 (0.75) over 4 R; per R: 1 + 0.5 + 0.75; S bests 1, 0.75.
    0: RCScores(1.75 / 4, 2.25 / 4, 1.75 / 2, 63 / 92, (1 + 0.875) / 4),
    1: RCScores(1.25 / 3, 1.25 / 3, 1.25 / 2, 1 / 2, (0.25 + 0.625) / 3),
    5: RCScores(1 / 4, 1 / 4, 1 / 2, 1 / 3, (0.5 + 0.5) / 4),
    6: RCScores(0.0, 0.0, 0.0, 0.0, 0.0),
    # Assignment R1→S1 + R2→S2 = 2 over 4 R; per R: 1 + 1 + 0.75 + 0.25.
    7: RCScores(2 / 4, 3 / 4, 2 / 2, 6 / 7, (1 + 1) / 4),
}


def genrm_model(records):
    script = Scripted(records, GENRM, lambda record: record.prompt)
    return get_model("mockllm/model", custom_outputs=script), script


def judge_model(records, **config):
    script = Scripted(records, JUDGE, lambda record: record.checklist[0])
    model = get_model("mockllm/model", custom_outputs=script, config=GenerateConfig(**config))
    return model, script


def run(records, judge, tmp_path, **task_args):
    (log,) = inspect_eval(
        ralign_helpsteer3_atomic(sample=True, **task_args),
        model=genrm_model(records)[0],
        model_roles={"meta_judge": judge},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def metrics_of(log):
    (score,) = log.results.scores
    return {name: metric.value for name, metric in score.metrics.items()}


def judge_calls(sample):
    events = resolve_sample_attachments(sample).events
    return [e for e in events if e.event == "model" and e.role == "meta_judge"]


def test_samples_carry_the_record_in_file_order(records, tmp_path):
    dataset = atomic_dataset(sample=True)
    assert [s.id for s in dataset] == [r.id for r in records]
    assert [s.target for s in dataset] == [r.label for r in records]
    assert [m.role for m in dataset[0].input] == ["user"]
    assert dataset[0].input[0].text == render_atomic_genrm_prompt(records[0])
    assert dataset[0].metadata["checklist"] == list(records[0].checklist)
    # Reference outputs are left out of the metadata; everything else comes back.
    round_trip = [RATIONALE.record_from_dict(RATIONALE.record_to_dict(r)) for r in records]
    assert round_trip == [replace(r, references={}) for r in records]
    # An item without a preference label has an empty target.
    rows = (sample_data_dir() / "data" / "helpsteer3_test_1000.jsonl").read_text().splitlines()
    row = json.loads(rows[0])
    (tmp_path / "helpsteer3_test_1000.jsonl").write_text(
        json.dumps({**row, "overall_preference": 0}) + "\n"
    )
    (unlabeled,) = atomic_dataset(data_dir=str(tmp_path))
    assert unlabeled.target == "" and unlabeled.metadata["label"] is None


def test_domain_filter_and_setup_errors(tmp_path):
    dataset = atomic_dataset(sample=True, domain="Code, STEM")
    assert {s.metadata["domain"] for s in dataset} == {"Code", "STEM"} and len(dataset) == 4
    assert len(atomic_dataset(sample=True, domain=["General"])) == 2
    with pytest.raises(TaskSetupError, match=r"unknown domain.*'code'.*known: Code, General"):
        ralign_helpsteer3_atomic(sample=True, domain="code")
    with pytest.raises(TaskSetupError, match="either sample=true or data_dir"):
        ralign_helpsteer3_atomic(sample=True, data_dir=str(tmp_path))
    with pytest.raises(TaskSetupError, match="split must be one of"):
        ralign_helpsteer3_atomic(sample=True, split="dev")
    with pytest.raises(TaskSetupError, match="no data file"):
        ralign_helpsteer3_atomic(sample=True, split="full")  # the sample has the test split only


def test_mock_run_matches_hand_computed_metrics_and_compute_rc(records, tmp_path):
    judge, script = judge_model(records)
    log = run(records, judge, tmp_path)
    scores = [sample.scores[SCORER] for sample in log.samples]
    assert [s.value["status"] for s in scores] == [
        "scored", "scored", "skipped_empty", "skipped_long",
        "judge_failed", "scored", "scored", "scored",
    ]  # fmt: skip
    assert [s.answer for s in scores] == ["A>B", "B>>A", "A=B", "A>B", "B>A", "B>A", None, "A>>B"]
    for index, expected in HAND.items():
        got = RCScores(*(scores[index].value[name] for name in RC_METRICS))
        assert got == pytest.approx(expected), index
    # Skipped items never reach the MetaJudge; malformed answers are asked again (3 attempts).
    assert sorted(script.calls) == [0, 1, 1, 4, 4, 4, 5, 6, 7]
    attempts = [s.metadata["judge"][0]["attempts"] if s.metadata["judge"] else 0 for s in scores]
    assert attempts == [1, 2, 0, 0, 3, 1, 1, 1]
    error = scores[4].metadata["judge"][0]["error"]
    assert error.startswith("malformed answer: no <RESULT_START>")
    assert scores[4].explanation.startswith("MetaJudge failed after 3 attempt(s)")
    assert scores[2].explanation == "The GenRM listed no reasons: skipped (not meta-judged)."
    assert scores[3].explanation.startswith("The GenRM listed 11 reasons (more than 10)")
    assert scores[0].explanation.startswith("rc 0.438, rc_code 0.562")
    assert scores[0].explanation.endswith("<RESULT_START>\n- R1@S1: 1.0\n- R2@S1: 0.5\n"
                                          "- R3@S2: 0.75\n- R4@S0: 0\n<RESULT_END>")  # fmt: skip
    genrm = scores[7].metadata["genrm"]
    assert genrm["reasons"] == ["point 1", "point 2"]  # the thinking is left out
    assert genrm["output"].startswith("<think>1. hidden")

    metrics = metrics_of(log)
    assert next(iter(metrics)) == "rc" and log.results.headline.metric == "rc"
    # Means over the five scored items (0, 1, 5, 6, 7); outcome accuracy over all eight
    # labelled items: 0, 1, 3, 4, 7 right; 2 a tie, 5 the wrong side, 6 no verdict.
    assert metrics["rc"] == pytest.approx((7 / 16 + 5 / 12 + 1 / 4 + 0 + 1 / 2) / 5)
    assert metrics["rc_code"] == pytest.approx((9 / 16 + 5 / 12 + 1 / 4 + 0 + 3 / 4) / 5)
    assert metrics["rc_precision"] == pytest.approx((7 / 8 + 5 / 8 + 1 / 2 + 0 + 1) / 5)
    assert metrics["rc_f1"] == pytest.approx((63 / 92 + 1 / 2 + 1 / 3 + 0 + 6 / 7) / 5)
    assert metrics["rc_ap"] == pytest.approx((15 / 32 + 7 / 24 + 1 / 4 + 0 + 1 / 2) / 5)
    assert metrics["outcome_acc"] == pytest.approx(5 / 8)
    counts = ("scored", "skipped_empty", "skipped_long", "judge_failed")
    assert [metrics[name] for name in counts] == [5, 1, 1, 1]
    assert (metrics["outcome_tie"], metrics["outcome_no_verdict"]) == (1, 1)

    # compute_rc (the CLI's and lm-eval's function) on the same outcomes: identical values.
    by_status = {2: "skipped_empty", 3: "skipped_long", 4: "judge_failed"}
    outcomes = [
        AtomicOutcome(
            record.domain,
            ItemStatus(by_status.get(i, "scored")),
            HAND.get(i),
            record.label,
            scores[i].answer,
        )
        for i, record in enumerate(records)
    ]
    logged = [RATIONALE.outcome_from_item(s.metadata) for s in scores]
    assert [replace(o, scores=None) for o in logged] == [replace(o, scores=None) for o in outcomes]
    hand, report = compute_rc(outcomes), compute_rc(logged)
    for name in (*RC_METRICS, "outcome_acc"):
        assert metrics[name] == report[name] == pytest.approx(hand[name])
        assert metrics[f"{name}_stderr"] == report["stderr"][name]
        assert metrics[f"{name}_stderr"] == pytest.approx(hand["stderr"][name])

    # Official MetaJudge settings and bounded retries; one user message with S and R items.
    (call,) = judge_calls(log.samples[7])
    assert (call.config.temperature, call.config.max_tokens) == (0.4, 16384)
    assert (call.config.max_retries, call.config.attempt_timeout) == (2, 600)
    assert [m.role for m in call.input] == ["user"]
    text = call.input[0].text
    assert "S1: point 1\nS2: point 2\n" in text and "hidden" not in text
    assert f"R4: {records[7].checklist[3]}" in text


def test_item_round_trip_and_nan_when_nothing_is_scored(records):
    picks = [(1, 1.0)] + [(0, 0.0)] * (len(records[0].checklist) - 1)
    cases = [
        (records[0], "1. a\n2. b\n\\boxed{A>B}", JudgeCall(value=picks, answer="…", attempts=1)),
        (records[1], "no reasons \\boxed{A=B}", None),
        (records[2], "\n".join(f"{k}. r" for k in range(1, 12)), None),
        (records[3], "1. a\n\\boxed{A>>B}", JudgeCall(error="malformed answer: x", attempts=3)),
    ]
    items, outcomes = [], []
    for record, output, call in cases:
        judgment = AtomicJudgment.from_output(record, output)
        run = RATIONALE.run_item(RC_TASK.task, record, judgment, [call], True, "j")
        items.append(run.item)
        outcomes.append(run.outcome)
    assert [RATIONALE.outcome_from_item(item) for item in items] == outcomes
    assert [o.status for o in outcomes] == [
        ItemStatus.SCORED, ItemStatus.SKIPPED_EMPTY, ItemStatus.SKIPPED_LONG,
        ItemStatus.JUDGE_FAILED,
    ]  # fmt: skip
    unscored = [SampleScore(score=Score(value=i["outcome"], metadata=i)) for i in items[1:]]
    values = ralign_metrics("rationale")(unscored[:2])  # two skipped items, no judge call
    assert math.isnan(values["rc"]) and math.isnan(values["rc_stderr"])
    # Labels B, B: a tie and no verdict.
    assert values["outcome_acc"] == 0 and values["judge_failed"] == 0
    assert math.isnan(ralign_metrics("rationale")([])["rc"])
    # The judge failed on its only request: the eval's results fail, naming it.
    with pytest.raises(RunNotUsable, match="judge at j: 1 of 1 requests failed"):
        ralign_metrics("rationale")(unscored)


def test_role_config_wins_and_cached_reasks_replay(records, tmp_path):
    judge, script = judge_model(records, temperature=0.0, max_retries=0)
    log = run(records, judge, tmp_path)
    metrics = metrics_of(log)
    # One attempt each: item 1's malformed first answer is now a failure too.
    assert sorted(script.calls) == [0, 1, 4, 5, 6, 7]
    assert judge_calls(log.samples[0])[0].config.temperature == 0.0
    assert (metrics["scored"], metrics["judge_failed"]) == (4, 2)

    template = tmp_path / "rc.jinja"
    template.write_text(
        "CUSTOM RC\n{% for r in rationales %}R{{ loop.index }}: {{ r }}\n{% endfor %}"
        "{% for s in reasons %}S{{ loop.index }}: {{ s }}\n{% endfor %}"
    )
    judge, script = judge_model(records)
    first = run(records, judge, tmp_path, metajudge_cache=True, metajudge_rc_template=str(template))
    assert len(script.calls) == 9
    second = run(
        records, judge, tmp_path, metajudge_cache=True, metajudge_rc_template=str(template)
    )
    assert len(script.calls) == 9  # every answer, re-asks included, came from the cache
    # Each ask has its own cache scope: item 1's re-ask is still the good answer.
    assert metrics_of(second) == metrics_of(first) and metrics_of(first)["scored"] == 5
    assert judge_calls(first.samples[0])[0].input[0].text.startswith("CUSTOM RC")


def test_missing_meta_judge_role_is_a_clear_error(records, tmp_path):
    genrm, script = genrm_model(records)
    (log,) = inspect_eval(
        ralign_helpsteer3_atomic(sample=True),
        model=genrm,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "error" and "--model-role meta_judge=" in log.error.message
    assert script.calls == []  # stopped before any generation


# Fail fast: one attempt per call, one HTTP request per attempt.
JUDGE_ROLE_CLI = (
    "meta_judge={model: openai-api/loop/judge, max_retries: 0, model_args: {max_retries: 0}}"
)


@pytest.mark.slow  # a subprocess of its own
def test_cli_eval_against_the_loopback_server(records, tmp_path):
    def respond(body):
        prompt = prompt_of(body)
        if body["model"] == "genrm":
            index = next(i for i, r in enumerate(records) if r.prompt in prompt)
            return Reply("scripted failure", status=500) if index == 2 else reasons(2)
        index = next(i for i, r in enumerate(records) if r.checklist[0] in prompt)
        if index == 5:
            return Reply("scripted failure", status=500)
        return block((1, 1.0), *[(0, 0)] * (len(records[index].checklist) - 1))

    with LoopbackServer(respond) as server:
        env = {**os.environ, "COLUMNS": "120"}
        env.update(LOOP_BASE_URL=server.base_url, LOOP_API_KEY="unused")
        run = subprocess.run(
            [INSPECT, "eval", "ralign_tasks/ralign_helpsteer3_atomic",
             "--model", "openai-api/loop/genrm", "--model-role", JUDGE_ROLE_CLI,
             "-T", "sample=true", "--max-retries", "0", "-M", "max_retries=0",
             "--score-on-error", "--no-fail-on-error", "--log-dir", "logs", "--display", "plain"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        requests = server.requests
    assert run.returncode == 0, run.stderr
    assert "ralign_rc" in run.stdout and "rc_precision" in run.stdout
    (log_file,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success"  # `inspect eval` exits 0 even on error: check the log
    assert log.eval.task == "ralign_tasks/ralign_helpsteer3_atomic"
    metrics = metrics_of(log)
    scored = [r for i, r in enumerate(records) if i not in (2, 5)]
    assert metrics["rc"] == pytest.approx(sum(1 / len(r.checklist) for r in scored) / 6)
    assert (metrics["scored"], metrics["skipped_empty"], metrics["judge_failed"]) == (6, 1, 1)
    failed = log.samples[5].scores[SCORER]
    assert failed.metadata["judge"][0]["error"].startswith("InternalServerError")
    assert log.samples[2].scores[SCORER].explanation.startswith("GenRM call failed")
    genrm = {(b["temperature"], b["max_tokens"]) for b in requests if b["model"] == "genrm"}
    judge = {(b["temperature"], b["max_tokens"]) for b in requests if b["model"] == "judge"}
    assert (genrm, judge) == ({(0.4, 8192)}, {(0.4, 16384)})

    # `ralign report` reads the same log to the same numbers.
    (result,), warnings = load_runs([log_file])
    assert not warnings
    assert (result.genrm, result.task) == ("openai-api/loop/genrm", RC_TASK.task)
    for name in ("rc", "rc_code", "rc_precision", "rc_f1"):
        assert result.values[name] == pytest.approx(metrics[name], nan_ok=True)
    assert (result.counts["skipped_empty"], result.counts["judge_failed"]) == (1, 1)


def test_a_missing_judge_template_stops_the_task_before_generation(tmp_path):
    with pytest.raises(TaskSetupError, match="prompt template not found"):
        ralign_helpsteer3_atomic(sample=True, metajudge_rc_template=str(tmp_path / "typo.jinja"))

"""The Inspect dataset, scorer and metric, with ``mockllm`` as GenRM and meta-judge."""

import math

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.log import resolve_sample_attachments
from inspect_ai.model import (
    ContentReasoning,
    ContentText,
    GenerateConfig,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.scorer import SampleScore, Score

from ralign_tasks.inspect_adapter.scorer import genrm_full_text, ralign_fidelity, ralign_metrics
from ralign_tasks.inspect_adapter.tasks import TaskSetupError, ralign_helpsteer3, task_dataset
from ralign_tasks.protocols import get_task
from ralign_tasks.protocols.fidelity import (
    FIDELITY,
    FidelityJudgment,
    render_genrm_prompt,
)
from ralign_tasks.scorers.ask import JudgeCall
from ralign_tasks.scorers.fidelity import MetaStatus, compute_fidelity
from ralign_tasks.testing.loopback import METAJUDGE_CORRECT


def mock_output(content, stop_reason="stop"):
    output = ModelOutput.from_content("mockllm/model", content, stop_reason=stop_reason)
    # With usage unset mockllm counts tokens with tiktoken, which downloads its encoding.
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


class Scripted:
    """A mockllm callable answering per item (found by its prompt text), counting calls."""

    def __init__(self, records, answers):
        self.records, self.answers, self.calls = records, answers, []

    def __call__(self, messages, tools, tool_choice, config):
        prompt = messages[-1].text
        for index, record in enumerate(self.records):
            if record.prompt in prompt:
                self.calls.append(index)
                return mock_output(self.answers[index])
        raise AssertionError("unscripted prompt")


@pytest.fixture(autouse=True)
def inspect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "inspect_cache"))
    monkeypatch.chdir(tmp_path)


def run(genrm, judge, tmp_path, **task_args):
    (log,) = inspect_eval(
        ralign_helpsteer3(sample=True, **task_args),
        model=get_model("mockllm/model", custom_outputs=genrm),
        model_roles={"meta_judge": judge},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def judge_calls(sample):
    """The meta-judge's model events of one logged sample, inputs resolved."""
    events = resolve_sample_attachments(sample).events
    return [e for e in events if e.event == "model" and e.role == "meta_judge"]


def mock_judge(script, **config):
    return get_model("mockllm/model", custom_outputs=script, config=GenerateConfig(**config))


def test_full_text_puts_reasoning_parts_back_in_order():
    parts = [ContentReasoning(reasoning="\\boxed{B}?"), ContentText(text="So \\boxed{A}")]
    assert genrm_full_text(mock_output(parts)) == "<think>\\boxed{B}?</think>\nSo \\boxed{A}"
    assert genrm_full_text(mock_output("plain \\boxed{A}")) == "plain \\boxed{A}"
    assert genrm_full_text(ModelOutput(model="m")) is None  # generation failed


HELPSTEER3 = get_task("helpsteer3")


def ralign_dataset(**kwargs):
    return task_dataset(HELPSTEER3, **kwargs)


def test_samples_carry_the_record_in_file_order(sample_records):
    dataset = ralign_dataset(sample=True)
    assert [s.id for s in dataset] == [r.id for r in sample_records]
    first = dataset[0]
    assert first.target == sample_records[0].label
    assert [m.role for m in first.input] == ["user"]
    assert first.input[0].text == render_genrm_prompt(sample_records[0])
    assert first.metadata["golden_rationale"] == sample_records[0].golden_rationale
    assert all(FIDELITY.record_from_dict(FIDELITY.record_to_dict(r)) == r for r in sample_records)


def test_subset_filter_and_its_errors(tmp_path):
    dataset = ralign_dataset(sample=True, group_filter="code, stem")
    assert {s.metadata["subset"] for s in dataset} == {"code", "stem"} and len(dataset) == 4
    assert len(ralign_dataset(sample=True, group_filter=["general"])) == 2
    with pytest.raises(ValueError, match=r"unknown subset.*'maths'.*known: code, general"):
        ralign_dataset(sample=True, group_filter="maths")
    with pytest.raises(ValueError, match="either sample=true or data_dir"):
        ralign_dataset(sample=True, data_dir=str(tmp_path))
    # The task reports them as Inspect prerequisites (printed without a traceback).
    with pytest.raises(TaskSetupError, match="unknown subset"):
        ralign_helpsteer3(sample=True, subset="maths")
    with pytest.raises(TaskSetupError, match="no data file"):
        ralign_helpsteer3(data_dir=str(tmp_path))


def judged_item(record, output, meta):
    """The judged-item record of one item, as the scorer stores it in the score metadata."""
    judgment = FidelityJudgment.from_output(record, output)
    call = None
    if meta is not None:
        call = JudgeCall(value=meta, answer="…", attempts=1)
    return FIDELITY.run_item("ralign_helpsteer3", record, judgment, [call], True, "j").item


def test_item_outcome_round_trip(sample_records):
    record = sample_records[0]  # label A
    for output, meta in [("\\boxed{A}", MetaStatus.CORRECT), ("\\boxed{B}", None),
                         ("no box", None), (None, None)]:  # fmt: skip
        item = judged_item(record, output, meta)
        judgment = FidelityJudgment.from_output(record, output)
        call = JudgeCall(value=meta, answer="…", attempts=1) if meta else None
        assert FIDELITY.outcome_from_item(item) == FIDELITY.outcome(judgment, [call], True)


def test_metric_is_compute_fidelity_with_nan_for_undefined(sample_records):
    record = sample_records[0]
    items = [
        judged_item(record, "\\boxed{A}", MetaStatus.CORRECT),
        judged_item(record, "\\boxed{A}", MetaStatus.PARSE_FAIL),
        judged_item(record, "no verdict", None),
    ]
    scores = [
        SampleScore(score=Score(value=item["outcome"], metadata=item), sample_id=i)
        for i, item in enumerate(items)
    ]
    values = ralign_metrics("fidelity")(scores)
    report = compute_fidelity([FIDELITY.outcome_from_item(item) for item in items])
    for name in ("f_score", "l_acc", "s_corr"):
        assert values[name] == report[name]
        assert values[f"{name}_stderr"] == report["stderr"][name]
    assert (values["meta_parse_fail"], values["genrm_no_verdict"]) == (1, 1)
    assert next(iter(values)) == "f_score"  # Inspect's headline: the first value
    # Every count, but those of an option that is off (reason types, probes).
    counts = {spec.name: spec.option for spec in FIDELITY.schema.counts}
    assert set(values) >= {name for name, option in counts.items() if option is None}
    assert not set(values) & {name for name, option in counts.items() if option is not None}

    unjudged = [SampleScore(score=Score(value=items[2]["outcome"], metadata=items[2]))]
    nothing_judged = ralign_metrics("fidelity")(unjudged)
    assert nothing_judged["l_acc"] == 0 and math.isnan(nothing_judged["s_corr"])
    assert math.isnan(ralign_metrics("fidelity")([])["f_score"])


def test_mock_run_reasoning_parts_and_meta_outcomes(sample_records, tmp_path):
    # Labels A B A B B A B A.
    genrm = Scripted(
        sample_records,
        [
            [ContentReasoning(reasoning="weighing"), ContentText(text="\\boxed{A}")],
            "\\boxed{B}",
            "\\boxed{A}",
            "\\boxed{A}",  # label wrong
            "no decision",  # no verdict
            "\\boxed{A}",
            "\\boxed{B}",
            # First box in the reasoning part: official B (label wrong), strict A.
            [ContentReasoning(reasoning="\\boxed{B}?"), ContentText(text="\\boxed{A}")],
        ],
    )
    incorrect = METAJUDGE_CORRECT.replace(">Correct<", ">Incorrect<")
    judge_script = Scripted(
        sample_records,
        [METAJUDGE_CORRECT, incorrect, "<final_verdict>Correct</final_verdict>", None, None, "",
         METAJUDGE_CORRECT, METAJUDGE_CORRECT],
    )  # fmt: skip
    log = run(genrm, mock_judge(judge_script), tmp_path)
    scores = [s.scores["ralign_fidelity"] for s in log.samples]
    assert [s.value["meta"] for s in scores] == [
        "correct", "incorrect", "parse_fail", None, None, "call_fail", "correct", None,
    ]  # fmt: skip
    # The empty answer (item 5) is asked again: 3 attempts by default.
    assert sorted(judge_script.calls) == [0, 1, 2, 5, 5, 5, 6]
    assert scores[5].metadata["judge"][0]["attempts"] == 3
    assert scores[5].metadata["judge"][0]["error"].startswith("empty answer")
    assert scores[2].explanation.startswith("Meta verdict: ParseFail")
    assert scores[3].explanation == "GenRM picked A, the label is B: not meta-judged."
    metrics = log.results.scores[0].metrics
    # N=8, L=5 (0, 1, 2, 5, 6); C=2, I=1, PF=1, CF=1.
    assert metrics["l_acc"].value == pytest.approx(5 / 8)
    assert metrics["s_corr"].value == pytest.approx(1 / 3)
    assert metrics["f_score"].value == pytest.approx(2 / 6)
    assert metrics["genrm_no_verdict"].value == 1

    # Official meta-judge settings and bounded retries, unless the role's config says otherwise.
    (call,) = judge_calls(log.samples[0])
    assert (call.config.temperature, call.config.max_tokens) == (0.4, 16384)
    assert (call.config.max_retries, call.config.attempt_timeout) == (2, 600)
    assert [m.role for m in call.input] == ["user"]
    assert "<genrm_output>\n\\boxed{A}" in call.input[0].text
    assert "weighing" not in call.input[0].text  # the meta-judge never sees the thinking


def test_role_config_wins_over_the_official_defaults(sample_records, tmp_path):
    genrm = Scripted(sample_records, ["\\boxed{A}"] * 8)
    # Items 0, 2, 5, 7 are label-correct; the judge answers only the last.
    judge_script = Scripted(sample_records, [""] * 7 + [METAJUDGE_CORRECT])
    judge = mock_judge(judge_script, temperature=0.0, max_retries=0)
    log = run(genrm, judge, tmp_path, max_failure_rate=0.8)  # 3 of 4 judge requests fail
    # Each empty answer is asked once (max_retries 0).
    assert sorted(judge_script.calls) == [0, 2, 5, 7]
    metrics = log.results.scores[0].metrics
    assert metrics["meta_call_fail"].value == 3
    # CallFails leave the F-Score denominator (8 - 3) and S-Corr's (C + I = 1).
    assert metrics["f_score"].value == 1 / 5 and metrics["s_corr"].value == 0
    assert judge_calls(log.samples[0])[0].config.temperature == 0.0


def test_metajudge_cache_and_templates(sample_records, tmp_path):
    template = tmp_path / "meta.jinja"
    template.write_text('CUSTOM JUDGE {% include "_comparison.jinja" %} {{ golden_rationale }}')
    genrm = Scripted(sample_records, ["\\boxed{A}"] * 8)
    judge_script = Scripted(sample_records, [METAJUDGE_CORRECT] * 8)

    def cached_run():
        return run(genrm, mock_judge(judge_script), tmp_path, metajudge_cache=True,
                   metajudge_template=str(template))  # fmt: skip

    first = cached_run()
    assert len(judge_script.calls) == 4
    second = cached_run()
    assert len(judge_script.calls) == 4  # every meta-judge answer came from the cache
    assert second.results.scores[0].metrics == first.results.scores[0].metrics
    (call,) = judge_calls(first.samples[0])
    assert call.input[0].text.startswith("CUSTOM JUDGE")
    run(genrm, mock_judge(judge_script), tmp_path)
    assert len(judge_script.calls) == 8  # no cache unless asked


def test_bad_verdict_policy_is_rejected():
    with pytest.raises(ValueError, match="verdict_policy must be one of"):
        ralign_fidelity(verdict_policy="lenient")


def test_max_attempts_has_lm_evals_name_and_the_earlier_one_warns(sample_records, tmp_path, caplog):
    from ralign_tasks.inspect_adapter.scorer import ralign_fidelity

    genrm = Scripted(sample_records, ["\\boxed{A}"] * 8)
    for name in ("metajudge_max_attempts", "metajudge_attempts"):
        judge_script = Scripted(sample_records, [""] * 8)
        inspect_eval(
            Task(dataset=ralign_helpsteer3(sample=True).dataset,
                 scorer=ralign_fidelity(**{name: 2}, metajudge_cache=False), metrics=[]),
            model=get_model("mockllm/model", custom_outputs=genrm),
            model_roles={"meta_judge": mock_judge(judge_script)},
            log_dir=str(tmp_path / name), display="none",
        )  # fmt: skip
        # Each of the 4 label-correct items' empty answers asked twice.
        assert len(judge_script.calls) == 8, name
    warned = [r.message for r in caplog.records if "metajudge_attempts is now" in r.message]
    assert len(warned) == 1


@pytest.mark.parametrize("switch", ["parameter", "environment"])
def test_metajudge_none_reports_what_needs_no_judge(sample_records, tmp_path, monkeypatch, switch):
    """``-T metajudge=none`` or ``RALIGN_METAJUDGE=none``: no meta_judge role is needed and the
    metrics are those that need no judge, as lm-eval's ``metajudge: none`` reports them."""
    given = {"metajudge": "none"} if switch == "parameter" else {}
    if switch == "environment":
        monkeypatch.setenv("RALIGN_METAJUDGE", "none")
    genrm = Scripted(sample_records, ["\\boxed{A}"] * 8)
    (log,) = inspect_eval(
        ralign_helpsteer3(sample=True, **given),
        model=get_model("mockllm/model", custom_outputs=genrm),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    metrics = log.results.scores[0].metrics
    assert metrics["l_acc"].value == 0.5
    assert "f_score" not in metrics and "meta_call_fail" not in metrics
    assert "genrm_no_verdict" in metrics

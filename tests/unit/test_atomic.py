"""Rationale Consistency: parsers, matching and metric math, loader, MetaJudge re-asks."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from ralign_tasks.data import DataFormatError, sample_data_dir
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.rationale import RC_TASK, AtomicJudgment
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.rationale import (
    AtomicOutcome,
    ItemStatus,
    RCFormatError,
    RCScores,
    compute_rc,
    parse_five_way,
    parse_rc_answer,
    parse_reasons,
    score_picks,
)
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.testing.loopback import LoopbackServer, prompt_of
from tests.support.folders import run_dir


def rc_block(*lines: str) -> str:
    return "Here is my matching.\n<RESULT_START>\n" + "\n".join(lines) + "\n<RESULT_END>"


# ---- parsers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. A is correct.\n2. B has a bug.\n\\boxed{A>B}", ["A is correct.", "B has a bug."]),
        ("- first\n* second\n• third\nno marker here", ["first", "second", "third"]),
        ("**1.** Bold reason\n2) second", ["Bold reason", "second"]),
        ("<think>1. hidden</think>\n1. visible", ["visible"]),
        ("Intro\n<RESULT_START>\n1. inside\n<RESULT_END>\n2. outside", ["inside"]),
        ("1. reason\n2. Verdict: \\boxed{B>>A}", ["reason"]),
        ("No list at all. \\boxed{A=B}", []),
        (None, []),
    ],
)
def test_parse_reasons(text, expected):
    assert parse_reasons(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{A>>B}", "A>>B"),
        ("\\boxed{ B>A }", "B>A"),
        ("<think>\\boxed{A>B}</think> final \\boxed{B>>A}", "B>>A"),
        ("first \\boxed{A>B} then \\boxed{A=B}", "A=B"),
        ("\\boxed{A}", None),
        ("A>B", None),
        (None, None),
    ],
)
def test_parse_five_way(text, expected):
    assert parse_five_way(text) == expected


def test_parse_rc_answer_accepts_the_protocol():
    answer = rc_block("- R1@S2: 0.75", "- R2@S0: 0", "- R3@S1: 1.0")
    assert parse_rc_answer(answer, 3, 2) == [(2, 0.75), (0, 0.0), (1, 1.0)]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("- R1@S1: 1.0", "no <RESULT_START>"),
        ("<RESULT_START>\n- R1@S1: 1.0\n", "no <RESULT_START>"),  # unclosed block
        (rc_block("R1 matches S1"), "no '- Rx@Sy: score' lines"),
        (rc_block("- R1@S1: 1.5", "- R2@S1: 0"), r"outside \[0, 1\]"),
        (rc_block("- R2@S1: 1.0", "- R1@S1: 0"), "not 1..2 in order"),
        (rc_block("- R1@S1: 1.0"), "not 1..2 in order"),
        (rc_block("- R1@S3: 1.0", "- R2@S1: 0"), "S3 does not exist"),
    ],
)
def test_parse_rc_answer_format_errors(answer, message):
    with pytest.raises(RCFormatError, match=message):
        parse_rc_answer(answer, 2, 2)


# ---- matching and metrics ----------------------------------------------------------------


def test_one_to_one_and_per_rationale_definitions_differ():
    # R1 and R2 both pick S1; the assignment may use S1 once: R1->S1 (1.0), R3->S2 (0.75).
    scores = score_picks([(1, 1.0), (1, 0.5), (2, 0.75)], n_reasons=2)
    assert scores.rc == pytest.approx(1.75 / 3)
    assert scores.rc_code == pytest.approx(2.25 / 3)
    assert scores.rc_precision == pytest.approx((1.0 + 0.75) / 2)
    # The script's F1: its own precision with its own recall (rc_code, not rc).
    p, r = 0.875, 0.75
    assert scores.rc_f1 == pytest.approx(2 * p * r / (p + r)) == pytest.approx(21 / 26)
    # AP: matched S1, S2 with best scores 1.0, 0.75; running means 1.0, 0.875; ÷ |R| = 3.
    assert scores.rc_ap == pytest.approx((1.0 + 0.875) / 3)


def test_assignment_gives_the_shared_reason_to_the_better_match():
    scores = score_picks([(1, 0.5), (1, 1.0)], n_reasons=1)
    assert scores.rc == pytest.approx(1.0 / 2)  # R2 keeps S1
    assert scores.rc_code == pytest.approx(1.5 / 2)
    assert scores.rc_precision == pytest.approx(1.0)
    assert scores.rc_f1 == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert scores.rc_ap == pytest.approx(1.0 / 2)  # S1 only, best 1.0, over 2 R


def test_definitions_agree_without_conflicts_and_unmatched_reasons_lower_precision():
    scores = score_picks([(2, 1.0), (0, 0.0), (1, 0.25)], n_reasons=4)
    assert scores.rc == scores.rc_code == pytest.approx(1.25 / 3)
    assert scores.rc_precision == pytest.approx(1.25 / 4)
    # AP takes the matched S in ascending order: S1 (0.25), then S2 (1.0).
    assert scores.rc_ap == pytest.approx((0.25 + (0.25 + 1.0) / 2) / 3)
    assert score_picks([(0, 0.0)], n_reasons=2) == RCScores(0.0, 0.0, 0.0, 0.0, 0.0)


def test_f1_is_the_mean_of_per_item_f1_not_the_f1_of_the_means():
    items = [score_picks([(1, 1.0)], n_reasons=1), score_picks([(0, 0.0), (0, 0.0)], 2)]
    outcomes = [AtomicOutcome("Code", ItemStatus.SCORED, s, "A", "A>B") for s in items]
    report = compute_rc(outcomes)
    assert report["rc_f1"] == pytest.approx((1.0 + 0.0) / 2)
    p, r = report["rc_precision"], report["rc_code"]  # 0.5 and 0.5: their F1 would be 0.5
    assert (p, r) == (0.5, 0.5)
    items = [score_picks([(1, 1.0), (0, 0.0)], 1), score_picks([(1, 0.25)], n_reasons=4)]
    report = compute_rc([AtomicOutcome("C", ItemStatus.SCORED, s, "A", None) for s in items])
    f1 = [2 * 1.0 * 0.5 / 1.5, 2 * (0.25 / 4) * 0.25 / (0.25 / 4 + 0.25)]
    assert report["rc_f1"] == pytest.approx(sum(f1) / 2)
    means = (report["rc_precision"], report["rc_code"])
    assert report["rc_f1"] != pytest.approx(2 * means[0] * means[1] / sum(means))


def test_compute_rc_means_over_scored_items_and_counts_the_rest():
    scored = [
        AtomicOutcome("Code", ItemStatus.SCORED, RCScores(0.5, 0.75, 1.0, 6 / 7, 0.5), "A", "A>B"),
        AtomicOutcome(
            "Code", ItemStatus.SCORED, RCScores(0.25, 0.25, 0.5, 1 / 3, 0.25), "B", "A=B"
        ),
    ]
    others = [
        AtomicOutcome("STEM", ItemStatus.SKIPPED_EMPTY, None, "B", "B>>A"),
        AtomicOutcome("STEM", ItemStatus.SKIPPED_LONG, None, None, None),
        AtomicOutcome("STEM", ItemStatus.JUDGE_FAILED, None, "A", None),
    ]
    report = compute_rc(scored + others)
    assert report["rc"] == pytest.approx(0.375) and report["rc_code"] == pytest.approx(0.5)
    assert report["rc_precision"] == pytest.approx(0.75)
    assert report["rc_f1"] == pytest.approx((6 / 7 + 1 / 3) / 2)
    assert report["rc_ap"] == pytest.approx(0.375)
    assert (report["scored"], report["skipped_empty"], report["skipped_long"]) == (2, 1, 1)
    assert report["judge_failed"] == 1
    # Outcome accuracy over the 4 labelled items: A>B right, A=B (tie), B>>A right, none.
    assert report["outcome_acc"] == pytest.approx(2 / 4)
    assert (report["outcome_tie"], report["outcome_no_verdict"]) == (1, 2)
    assert report["ci"]["rc"][0] <= report["rc"] <= report["ci"]["rc"][1]
    empty = compute_rc(others)
    assert empty["rc"] is None and empty["stderr"]["rc"] is None
    json.dumps(empty, allow_nan=False)
    assert math.isnan(others[0].metric_values()["rc"])


# ---- data --------------------------------------------------------------------------------


def test_bundled_sample_loads():
    loaded = load_task("helpsteer3_atomic", sample_data_dir())
    assert len(loaded.records) == 8
    assert Counter(r.domain for r in loaded.records) == {
        "General": 2, "STEM": 2, "Code": 2, "Multilingual": 2,
    }  # fmt: skip
    assert {r.label for r in loaded.records} == {"A", "B"}
    assert any(r.context for r in loaded.records)
    assert all(3 <= len(r.checklist) <= 7 for r in loaded.records)
    names = set(loaded.records[0].references)
    assert names == {"low_deceptive_alignment", "high_deceptive_alignment"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"human-checklist": []}, "'human-checklist' is empty"),
        ({"human-checklist": "one reason"}, "must be a list of strings"),
        ({"human-checklist": ["ok", 3]}, "must be a list of strings"),
        ({"response1": None}, "'response1' must be a string"),
        ({"context": []}, "'context' is empty"),
        ({"overall_preference": "2"}, "must be an integer"),
    ],
)
def test_bad_atomic_rows_name_file_and_line(tmp_path, change, message):
    rows = (sample_data_dir() / "data" / "helpsteer3_test_1000.jsonl").read_text().splitlines()
    bad = {**json.loads(rows[1]), **change}
    path = tmp_path / "helpsteer3_test_1000.jsonl"
    path.write_text("\n".join([rows[0], json.dumps(bad)]) + "\n")
    with pytest.raises(DataFormatError, match=f":2: .*{message}"):
        load_task("helpsteer3_atomic", tmp_path)
    assert len(load_task("helpsteer3_atomic", tmp_path, skip_bad_rows=True).records) == 1


# ---- MetaJudge through the engine ----------------------------------------------------------


def test_malformed_answers_are_asked_again_then_fail(tmp_path):
    records = load_task("helpsteer3_atomic", sample_data_dir()).records[:3]
    judgments = [
        AtomicJudgment.from_output(r, "1. a point\n2. another\n\\boxed{A>B}") for r in records
    ]
    asks = Counter()

    def respond(body):
        prompt = prompt_of(body)
        item = next(i for i, r in enumerate(records) if r.checklist[0] in prompt)
        asks[item] += 1
        n = len(records[item].checklist)
        good = rc_block(
            *(f"- R{k}@S{1 if k == 1 else 0}: {1 if k == 1 else 0}" for k in range(1, n + 1))
        )
        if item == 0:
            return good
        if item == 1:
            return "I forgot the block" if asks[item] == 1 else good
        return "never well-formed"

    with LoopbackServer(respond) as server:
        config = JudgeSettings(EndpointConfig(model="j", base_url=server.base_url, max_attempts=3))
        verdicts, _, _ = judge_items(RC_TASK, records, judgments, config)
        sent = len(server.requests)
        # A rerun pays for nothing: every well-formed answer and every re-ask is cached.
        again, _, _ = judge_items(RC_TASK, records, judgments, config)
        assert len(server.requests) == sent
    assert [v.outcome.status for v in verdicts] == [
        ItemStatus.SCORED, ItemStatus.SCORED, ItemStatus.JUDGE_FAILED,
    ]  # fmt: skip
    assert [v.outcome for v in again] == [v.outcome for v in verdicts]
    assert asks == {0: 1, 1: 2, 2: 3}
    assert verdicts[0].outcome.scores.rc == pytest.approx(1 / len(records[0].checklist))
    assert "malformed answer: no <RESULT_START>" in verdicts[2].calls[0].error
    assert verdicts[2].item["judge"][0]["attempts"] == 3


def test_reference_outputs_are_scored_without_a_genrm():
    records = load_task("helpsteer3_atomic", sample_data_dir()).records
    low = [AtomicJudgment.from_reference(r, "low_deceptive_alignment") for r in records]
    assert all(j.reasons for j in low)
    high = [AtomicJudgment.from_reference(r, "high_deceptive_alignment") for r in records]
    assert sum(j.skip_status is ItemStatus.SKIPPED_EMPTY for j in high) == 1
    with pytest.raises(KeyError, match="has no output of 'gpt-9'"):
        AtomicJudgment.from_reference(records[0], "gpt-9")


def test_rc_score_command_scores_a_reference_model(tmp_path, capsys):
    from ralign_tasks.cli import main

    records = load_task("helpsteer3_atomic", sample_data_dir()).records

    def respond(body):
        prompt = prompt_of(body)
        record = next(r for r in records if r.checklist[0] in prompt)
        n = len(record.checklist)
        return rc_block("- R1@S1: 1", *(f"- R{k}@S0: 0" for k in range(2, n + 1)))

    with LoopbackServer(respond) as server:
        code = main(
            ["rc-score", "--reference", "low_deceptive_alignment", "--sample",
             "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path)]
        )  # fmt: skip
    assert code == 0
    results = json.loads((run_dir(tmp_path, "helpsteer3_atomic_test") / "results.json").read_text())
    overall = results["metrics"]["overall"]
    assert overall["scored"] == 8
    assert overall["rc"] == pytest.approx(sum(1 / len(r.checklist) for r in records) / 8)
    assert overall["rc"] == overall["rc_code"]
    assert "ralign_helpsteer3_atomic (split test, reference low_deceptive_alignment)" in (
        capsys.readouterr().out
    )


def test_each_family_reads_its_own_judge_template(tmp_path):
    """One judge serves a whole lm-eval group: the fidelity template (``template``,
    RALIGN_METAJUDGE_TEMPLATE) must not replace the Rationale Consistency prompt, whose
    variables differ; ``rc_template`` does."""
    records = load_task("helpsteer3_atomic", sample_data_dir()).records[:1]
    judgments = [AtomicJudgment.from_output(records[0], "1. a point\n\\boxed{A>B}")]
    fidelity_template = tmp_path / "fidelity.jinja"
    fidelity_template.write_text("FIDELITY {{ golden_rationale }}")
    rc_template = tmp_path / "rc.jinja"
    rc_template.write_text("MINE {{ reasons | length }} {{ rationales | length }}")
    prompts = []

    def respond(body):
        prompts.append(prompt_of(body))
        return rc_block(*(f"- R{k}@S0: 0" for k in range(1, len(records[0].checklist) + 1)))

    with LoopbackServer(respond) as server:
        transport = EndpointConfig(model="j", base_url=server.base_url)
        config = JudgeSettings(transport, {"template": str(fidelity_template)})
        (item,), _, _ = judge_items(RC_TASK, records, judgments, config)
        assert item.outcome.status is ItemStatus.SCORED and "<RESULT_START>" in prompts[0]
        config = JudgeSettings(transport, {**config.templates, "rc_template": str(rc_template)})
        judge_items(RC_TASK, records, judgments, config)
    assert prompts[1] == f"MINE 1 {len(records[0].checklist)}"


def test_a_missing_template_is_found_before_anything_runs(tmp_path):
    from ralign_tasks.protocols.rationale import RATIONALE

    with pytest.raises(FileNotFoundError, match="prompt template not found"):
        RATIONALE.check_templates(None, str(tmp_path / "typo.jinja"))
    RATIONALE.check_templates(None, None)  # the bundled ones

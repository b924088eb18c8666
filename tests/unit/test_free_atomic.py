"""HelpSteer3-Atomic in free format, piece by piece: the extractor's and the reason-type
answers' parsers, what of a free-form output the extractor reads, the reason-type shares (a
ratio of sums over items), the extractor's settings, and the role its failures are filed under.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ralign_tasks.data import sample_data_dir
from ralign_tasks.judge import resolve_judge
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.base import PrepCall
from ralign_tasks.protocols.rationale import RATIONALE, RC_TASK, AtomicJudgment
from ralign_tasks.protocols.reasons import EXTRACT_STEP, REASON_TYPES_STEP, rationale_text
from ralign_tasks.scorers.ask import InvalidAnswer, JudgeCall
from ralign_tasks.scorers.config import ConfigError, EndpointConfig
from ralign_tasks.scorers.rationale import (
    RC_METRICS,
    AtomicOutcome,
    ItemStatus,
    compute_rc,
    score_picks,
)
from ralign_tasks.scorers.reasons import (
    ExtractionFormatError,
    TypesFormatError,
    compute_types,
    parse_extracted_reasons,
    parse_reason_types,
    type_counts,
)
from ralign_tasks.scorers.settings import JudgeSettings, extractor_given
from ralign_tasks.scorers.verdict import thinking_part
from ralign_tasks.testing.loopback import (
    LoopbackServer,
    is_extract_prompt,
    is_rc_judge_prompt,
    stand_in,
)

RECORDS = load_task("helpsteer3_atomic", sample_data_dir()).records
JUDGE_URL = "http://127.0.0.1:9/v1"
OTHER_URL = "http://127.0.0.1:10/v1"
JUDGE_KEY = "sk-judge-key-1234"


def reasons_block(*lines: str) -> str:
    return "<REASONS_START>\n" + "".join(f"{line}\n" for line in lines) + "<REASONS_END>"


def types_block(*lines: str) -> str:
    return "<TYPES_START>\n" + "".join(f"{line}\n" for line in lines) + "<TYPES_END>"


@pytest.fixture(autouse=True)
def no_extractor_env(monkeypatch):
    """The tests' extractor settings are their own (conftest clears only the meta-judge's)."""
    for name in ("MODEL", "BASE_URL", "API_KEY", "CONCURRENCY", "TEMPERATURE"):
        monkeypatch.delenv(f"RALIGN_EXTRACTOR_{name}", raising=False)


# ---- the extractor's answer --------------------------------------------------------------


def test_a_well_formed_block_gives_the_reasons_in_order():
    answer = "Here they are.\n" + reasons_block(
        "S1: Assistant A gets the key fact right.", "  S2 :  B ignores the format.  "
    )
    assert parse_extracted_reasons(answer) == [
        "Assistant A gets the key fact right.",
        "B ignores the format.",
    ]


def test_an_empty_block_means_no_reason():
    assert parse_extracted_reasons("None given.\n<REASONS_START>\n\n<REASONS_END>") == []
    assert parse_extracted_reasons("<REASONS_START><REASONS_END>") == []


def test_thinking_before_the_block_is_ignored():
    answer = (
        "<think>Draft: <REASONS_START>\nS1: a draft reason\n<REASONS_END> no, redo.</think>\n"
        + reasons_block("S1: the final reason", "S2: another")
    )
    assert parse_extracted_reasons(answer) == ["the final reason", "another"]
    # A block inside the thinking alone is no answer.
    with pytest.raises(ExtractionFormatError, match="no <REASONS_START>"):
        parse_extracted_reasons("<think>" + reasons_block("S1: hidden") + "</think>\nDone.")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("S1: a reason\nS2: another", "no <REASONS_START>"),
        ("<REASONS_START>\nS1: a reason\n", "no <REASONS_START>"),  # never closed
        (reasons_block("S1: a reason", "- another reason"), "not 'S<n>: …'"),
        (reasons_block("1. a reason"), "not 'S<n>: …'"),
        (reasons_block("S1: a reason", "S3: skipped a number"), "S3 where S2 was due"),
        (reasons_block("S2: starts at two"), "S2 where S1 was due"),
        (reasons_block("S1: a reason", "S2:   "), "S2 is empty"),
        (reasons_block(*(f"S{n}: reason {n}" for n in range(1, 12))), "11 reasons listed"),
    ],
)
def test_a_malformed_extraction_is_asked_again(answer, message):
    with pytest.raises(ExtractionFormatError, match=message) as raised:
        parse_extracted_reasons(answer)
    assert isinstance(raised.value, InvalidAnswer)  # the ask-until-valid loop asks again


def test_ten_reasons_are_allowed():
    answer = reasons_block(*(f"S{n}: reason {n}" for n in range(1, 11)))
    assert len(parse_extracted_reasons(answer)) == 10


# ---- the reason types --------------------------------------------------------------------


def test_well_formed_types_in_order():
    answer = "Typed.\n" + types_block("S1: evidence", "S2: criterion", "S3: generic")
    assert parse_reason_types(answer, 3) == ["evidence", "criterion", "generic"]


def test_case_and_a_trailing_period_are_tolerated():
    answer = "<think>S1: generic?</think>" + types_block("S1: Evidence.", "S2:  GENERIC ")
    assert parse_reason_types(answer, 2) == ["evidence", "generic"]


@pytest.mark.parametrize(
    ("answer", "count", "message"),
    [
        (types_block("S1: evidence"), 2, "1 types for 2 reasons"),
        (types_block("S1: evidence", "S2: generic"), 1, "2 types for 1 reasons"),
        (types_block("S1: evidence", "S2: stylistic"), 2, "unknown type 'stylistic'"),
        (types_block("S1: evidence-ish"), 1, "unknown type 'evidence-ish'"),
        ("S1: evidence\nS2: generic", 2, "no <TYPES_START>"),
        (types_block("S1: evidence", "S3: generic"), 2, "S3 where S2 was due"),
    ],
)
def test_malformed_types_are_asked_again(answer, count, message):
    with pytest.raises(TypesFormatError, match=message) as raised:
        parse_reason_types(answer, count)
    assert isinstance(raised.value, InvalidAnswer)


# ---- what the extractor reads ------------------------------------------------------------

THOUGHT = "<think>\nA states the fact; B skips the format.\n</think>\nA is better.\n\\boxed{A}"


@pytest.mark.parametrize(
    ("output", "source", "expected"),
    [
        (THOUGHT, "visible", "A is better.\n\\boxed{A}"),
        (THOUGHT, "thinking", "A states the fact; B skips the format."),
        (THOUGHT, "both", THOUGHT),
        ("  A is better.\n\\boxed{A}\n", "visible", "A is better.\n\\boxed{A}"),
        ("  A is better.\n\\boxed{A}\n", "thinking", ""),
        ("  A is better.\n\\boxed{A}\n", "both", "A is better.\n\\boxed{A}"),
    ],
)
def test_rationale_text_of_each_source(output, source, expected):
    assert rationale_text(output, source) == expected


def test_thinking_part():
    assert thinking_part(THOUGHT) == "A states the fact; B skips the format."
    assert thinking_part("no thinking here") == ""
    assert thinking_part("<think> one\n</think>\nanswer") == "one"
    # No <think> tag (a server that strips it): what comes before </think>.
    assert thinking_part("reasoning first</think>answer") == "reasoning first"


def _free(output: str | None, source: str = "visible") -> AtomicJudgment:
    return AtomicJudgment.from_free_output(RECORDS[0], output, source)


def test_a_free_output_keeps_its_pairwise_verdict_and_rationale():
    judgment = _free(THOUGHT, "thinking")
    assert judgment.verdict == "A" and judgment.genrm_format == "free"
    assert judgment.rationale == "A states the fact; B skips the format."
    assert judgment.reasons == () and judgment.wants_extraction
    assert judgment.skip_status is None


def test_an_empty_rationale_is_extract_empty_and_a_failed_call_skipped_empty_without_asking():
    """Item 0: no visible text after the thinking; item 1: no thinking to read; item 2: the
    GenRM call failed; item 3: a rationale the extractor reads."""
    judgments = [
        _free("<think>A is right \\boxed{A}</think>\n  "),
        AtomicJudgment.from_free_output(RECORDS[1], "B is better.\n\\boxed{B}", "thinking"),
        AtomicJudgment.from_free_output(RECORDS[2], None, "visible", error="HTTP 500"),
        AtomicJudgment.from_free_output(RECORDS[3], "A is right.\n\\boxed{A}", "visible"),
    ]
    assert [j.skip_status for j in judgments] == [
        ItemStatus.EXTRACT_EMPTY, ItemStatus.EXTRACT_EMPTY, ItemStatus.SKIPPED_EMPTY, None,
    ]  # fmt: skip
    with LoopbackServer(stand_in) as server:
        settings = JudgeSettings(EndpointConfig(model="j", base_url=server.base_url))
        items, _, prep_stats = judge_items(RC_TASK, RECORDS[:4], judgments, settings)
        prompts = server.prompts()
    statuses = [item.outcome.status for item in items]
    assert statuses == [ItemStatus.EXTRACT_EMPTY, ItemStatus.EXTRACT_EMPTY,
                        ItemStatus.SKIPPED_EMPTY, ItemStatus.SCORED]  # fmt: skip
    # One extractor request (item 3's), one MetaJudge request; nothing for the others.
    extract = [p for p in prompts if "<REASONS_START>" in p]
    assert len(extract) == 1 and "A is right." in extract[0]
    assert RECORDS[3].prompt in extract[0]
    assert len(prompts) == 2 and prep_stats["extract"].requests == 1
    for item in items[:3]:
        assert item.item["judge"] == []
    assert items[2].item["genrm"]["error"] == "HTTP 500"


# ---- the reason-type shares --------------------------------------------------------------


def _outcome(
    status: ItemStatus = ItemStatus.SCORED,
    picks: list[tuple[int, float]] | None = None,
    n_reasons: int = 2,
    counts: tuple[int, int, int] | None = None,
    top: str | None = None,
    types_failed: bool = False,
    label: str = "A",
    verdict: str | None = "A",
    classified: bool = True,
) -> AtomicOutcome:
    scores = score_picks(picks, n_reasons) if picks is not None else None
    return AtomicOutcome(
        "Code", status, scores, label, verdict, counts, top, types_failed, classified=classified
    )


def test_type_shares_are_a_ratio_of_sums_over_items():
    outcomes = [
        _outcome(picks=[(1, 1.0)], n_reasons=1, counts=(1, 0, 0), top="evidence"),
        _outcome(picks=[(1, 0.5), (0, 0)], n_reasons=3, counts=(1, 2, 0), top="criterion"),
        # Typing failed: in no share's denominator, counted once.
        _outcome(picks=[(2, 1.0)], counts=None, types_failed=True),
        # Never typed (skipped): in no denominator either.
        _outcome(ItemStatus.SKIPPED_EMPTY),
    ]
    report = compute_rc(outcomes, draws=200)
    # 2 evidence of 4 typed reasons, not the mean of the items' shares (1 and 1/3).
    assert report["evidence_share"] == pytest.approx(2 / 4)
    assert report["evidence_share"] != pytest.approx((1 + 1 / 3) / 2)
    assert report["criterion_share"] == pytest.approx(2 / 4)
    assert report["generic_share"] == 0.0
    # The top reason's type: one item each of evidence and criterion.
    assert report["top_evidence"] == pytest.approx(1 / 2)
    assert report["top_criterion"] == pytest.approx(1 / 2)
    assert report["top_generic"] == 0.0
    assert report["types_failed"] == 1
    assert report["scored"] == 3 and report["skipped_empty"] == 1
    low, high = report["ci"]["evidence_share"]
    assert 0.0 <= low <= 2 / 4 <= high <= 1.0


def test_a_share_weighs_each_item_by_its_typed_reasons():
    # 9 generic of 10 in one item, 1 evidence of 1 in the other: generic 9/11, not 0.45.
    outcomes = [
        _outcome(picks=[(1, 1.0)], n_reasons=10, counts=(1, 0, 9), top="generic"),
        _outcome(picks=[(1, 1.0)], n_reasons=1, counts=(1, 0, 0), top="evidence"),
    ]
    report = compute_rc(outcomes, draws=50)
    assert report["generic_share"] == pytest.approx(9 / 11)
    assert report["evidence_share"] == pytest.approx(2 / 11)
    assert report["top_generic"] == report["top_evidence"] == pytest.approx(1 / 2)


def test_without_typed_reasons_the_shares_are_none():
    report = compute_rc([_outcome(picks=[(1, 1.0)]), _outcome(ItemStatus.JUDGE_FAILED)], draws=50)
    for name in ("evidence_share", "criterion_share", "generic_share", "top_evidence",
                 "top_criterion", "top_generic"):  # fmt: skip
        assert report[name] is None, name
    assert report["types_failed"] == 0
    # A run that did not type reasons (nor extract them) reports neither step's counts.
    untyped = compute_rc([_outcome(picks=[(1, 1.0)], classified=False)], draws=50)
    assert untyped["types_failed"] is None and untyped["extract_empty"] is None


def test_checklist_items_score_as_before():
    """The RC values of checklist items (no types) are the means of score_picks over the
    scored items; skipped and failed items are in no mean."""
    picks = [([(1, 1.0), (2, 0.5), (0, 0.0)], 3), ([(2, 0.25)], 2), ([(1, 0.75), (1, 1.0)], 4)]
    scored = [score_picks(p, n) for p, n in picks]
    outcomes = [_outcome(picks=p, n_reasons=n) for p, n in picks]
    outcomes += [_outcome(ItemStatus.SKIPPED_LONG), _outcome(ItemStatus.JUDGE_FAILED)]
    report = compute_rc(outcomes, draws=50)
    for name in RC_METRICS:
        expected = float(np.mean([getattr(s, name) for s in scored]))
        assert report[name] == pytest.approx(expected, abs=1e-12), name
    assert report["rc"] == pytest.approx((1.5 / 3 + 0.25 / 1 + 1.0 / 2) / 3)
    assert report["scored"] == 3 and report["judge_failed"] == 1 and report["skipped_long"] == 1
    # With types on the same items, the RC values stay the same.
    typed = [
        AtomicOutcome(o.domain, o.status, o.scores, o.label, o.verdict, (1, 1, 0), "evidence")
        for o in outcomes
    ]
    report_typed = compute_rc(typed, draws=50)
    for name in RC_METRICS:
        assert report_typed[name] == report[name], name


def test_type_counts_and_the_types_of_one_group():
    assert type_counts(["evidence", "generic", "generic", "criterion"]) == (1, 1, 2)
    assert type_counts(None) is None and type_counts(()) is None
    report = compute_types([(0, 1, 3), None, (2, 0, 0)], ["generic", None, "evidence"], draws=50)
    assert report["generic_share"] == pytest.approx(3 / 6)
    assert report["evidence_share"] == pytest.approx(2 / 6)
    assert report["criterion_share"] == pytest.approx(1 / 6)
    assert report["top_generic"] == report["top_evidence"] == pytest.approx(1 / 2)
    assert report["top_criterion"] == 0.0
    assert set(report["ci"]) >= {"evidence_share", "top_evidence"}


# ---- the extractor's settings ------------------------------------------------------------

# Every transport setting but the key, set to a value other than its default.
JUDGE_GIVEN = {
    "model": "judge-model",
    "base_url": JUDGE_URL,
    "backend": "openai",
    "concurrency": 7,
    "timeout": 12.5,
    "max_attempts": 5,
    "retry_budget": 3.0,
    "max_answer_bytes": 12345,
    "temperature": 0.1,
    "max_tokens": 321,
    "cache_dir": "/tmp/ralign-test-cache",
    "cache": False,
    "dtype": "bfloat16",
    "device_map": "cpu",
    "batch_size": 3,
    "tensor_parallel_size": 2,
    "data_parallel_size": 2,
    "gpu_memory_utilization": 0.5,
    "max_model_len": 4096,
    "batch": "openai",
    "batch_failed": "count",
}


def test_the_extractor_defaults_to_every_meta_judge_setting(monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_API_KEY", JUDGE_KEY)
    assert set(JUDGE_GIVEN) | {"api_key"} == set(EndpointConfig.names())
    judge = resolve_judge(JUDGE_GIVEN, extractor={})
    extractor = judge.endpoint_of("extractor")
    for name in EndpointConfig.names():
        assert getattr(extractor, name) == getattr(judge.transport, name), name
    # Nothing defaulted: each value is the one given (or the environment's key).
    assert extractor.api_key == JUDGE_KEY and extractor.concurrency == 7
    assert judge.endpoint_of("judge") is judge.transport


def test_the_extractor_model_from_the_environment_and_as_given(monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_API_KEY", JUDGE_KEY)
    given = {"model": "judge-model", "base_url": JUDGE_URL}
    monkeypatch.setenv("RALIGN_EXTRACTOR_MODEL", "env-extractor")
    judge = resolve_judge(given, extractor={})
    assert judge.endpoint_of("extractor").model == "env-extractor"
    assert judge.transport.model == "judge-model"
    judge = resolve_judge(given, extractor={"model": "given-extractor", "concurrency": 2})
    extractor = judge.endpoint_of("extractor")
    assert extractor.model == "given-extractor" and extractor.concurrency == 2
    # At the meta-judge's endpoint it keeps the meta-judge's key.
    assert extractor.base_url == JUDGE_URL and extractor.api_key == JUDGE_KEY
    assert judge.transport.concurrency == 128


@pytest.mark.parametrize("how", ["given", "environment"])
def test_an_extractor_elsewhere_does_not_get_the_meta_judges_key(monkeypatch, how):
    monkeypatch.setenv("RALIGN_METAJUDGE_API_KEY", JUDGE_KEY)
    given = {"model": "judge-model", "base_url": JUDGE_URL}
    if how == "environment":
        monkeypatch.setenv("RALIGN_EXTRACTOR_BASE_URL", OTHER_URL)
        extractor_settings = {}
    else:
        extractor_settings = {"base_url": OTHER_URL}
    judge = resolve_judge(given, extractor=extractor_settings)
    extractor = judge.endpoint_of("extractor")
    assert extractor.base_url == OTHER_URL and extractor.model == "judge-model"
    assert extractor.api_key is None
    assert judge.transport.api_key == JUDGE_KEY
    # Its own key is read from its own variable.
    monkeypatch.setenv("RALIGN_EXTRACTOR_API_KEY", "sk-extractor-5678")
    assert (
        resolve_judge(given, extractor=extractor_settings).endpoint_of("extractor").api_key
        == "sk-extractor-5678"
    )


def test_the_extractor_key_by_name_or_an_unknown_extractor_setting_is_an_error():
    with pytest.raises(ConfigError, match="RALIGN_EXTRACTOR_API_KEY in the environment"):
        extractor_given({"extractor_api_key": "sk-x"}, "--metadata")
    with pytest.raises(
        ConfigError, match="unknown extractor setting 'extractor_foo' in --metadata"
    ):
        extractor_given({"extractor_foo": 1}, "--metadata")
    # Other names are not the extractor's; None is not given.
    given = extractor_given(
        {"metajudge_model": "j", "extractor_model": "x", "extractor_timeout": None}, "there"
    )
    assert given == {"model": "x"}


def test_lm_eval_builds_the_extractor_from_its_metadata(monkeypatch):
    from ralign_tasks.lm_eval_adapter.tasks import judge_config

    monkeypatch.setenv("RALIGN_METAJUDGE_API_KEY", JUDGE_KEY)
    metadata = {"sample": True, "metajudge_model": "j", "metajudge_base_url": JUDGE_URL,
                "extractor_model": "x", "extractor_base_url": OTHER_URL,
                "extractor_concurrency": 3, "extractor_max_attempts": 4}  # fmt: skip
    judge = judge_config(metadata)
    extractor = judge.endpoint_of("extractor")
    assert (extractor.model, extractor.base_url) == ("x", OTHER_URL)
    assert (extractor.concurrency, extractor.max_attempts) == (3, 4)
    assert extractor.api_key is None  # elsewhere: not the meta-judge's key
    assert (judge.transport.model, judge.transport.api_key) == ("j", JUDGE_KEY)
    # Without extractor keys it is the meta-judge.
    plain = judge_config({"metajudge_model": "j", "metajudge_base_url": JUDGE_URL})
    assert plain.endpoint_of("extractor") == plain.transport
    with pytest.raises(ConfigError, match="extractor_foo"):
        judge_config({**metadata, "extractor_foo": "1"})


# ---- the protocol ------------------------------------------------------------------------


def test_the_prep_steps_and_their_roles():
    assert RATIONALE.prep_steps == (EXTRACT_STEP, REASON_TYPES_STEP)
    assert RATIONALE.role_of("extract") == "extractor"
    assert RATIONALE.role_of("reason_types") == "judge"
    assert RATIONALE.role_of("rc_meta_judge") == "judge"


def _failed_item(prep: list[PrepCall]):
    judgment = _free("Assistant A is right.\n\\boxed{A}")
    for made in prep:
        step = EXTRACT_STEP if made.step == "extract" else REASON_TYPES_STEP
        judgment = step.apply(judgment, made.call)
    return RATIONALE.run_item(RC_TASK.task, RECORDS[0], judgment, [None], True, "j", prep)


def test_an_extraction_failure_is_the_extractors():
    call = JudgeCall(answer=None, error="BadRequestError: Error code: 400", attempts=3)
    run = _failed_item([PrepCall("extract", "x", call)])
    assert run.outcome.status is ItemStatus.EXTRACT_CALL_FAIL
    assert [entry["step"] for entry in run.item["judge"]] == ["extract"]
    errors = RATIONALE.request_errors(run.item)
    assert errors["extractor"] == ["BadRequestError: Error code: 400"]
    assert errors["judge"] == [] and errors["GenRM"] == [None]


def test_a_malformed_extraction_is_the_extractors_and_a_typing_failure_the_judges():
    extract = JudgeCall(value=["A is right."], answer=reasons_block("S1: A is right."),
                        attempts=1)  # fmt: skip
    types = JudgeCall(answer="S1: evidence", error="malformed answer: no <TYPES_START>",
                      attempts=3)  # fmt: skip
    run = _failed_item([PrepCall("extract", "x", extract), PrepCall("reason_types", "j", types)])
    errors = RATIONALE.request_errors(run.item)
    assert errors["extractor"] == [None]
    assert errors["judge"] == ["malformed answer: no <TYPES_START>"]
    bad = JudgeCall(answer="S1 - a reason", error="malformed answer", attempts=3)
    run = _failed_item([PrepCall("extract", "x", bad)])
    assert run.outcome.status is ItemStatus.EXTRACT_PARSE_FAIL
    assert RATIONALE.request_errors(run.item)["extractor"] == ["malformed answer"]


def test_a_failing_extractor_leaves_rc_unmeasured():
    unmeasured = RATIONALE.unmeasured_metrics(["extractor"])
    assert {"rc", "rc_code", "rc_precision", "rc_f1", "rc_ap"} <= set(unmeasured)
    assert "outcome_acc" not in unmeasured  # the GenRM's verdict needs no extractor
    assert unmeasured == RATIONALE.unmeasured_metrics(["judge"])
    assert "outcome_acc" in RATIONALE.unmeasured_metrics(["GenRM"])


def test_judge_items_sends_extractor_requests_to_the_extractor():
    """A prep-step integration check at the unit level: the extractor's requests go to its
    own model and endpoint, the typing and MetaJudge requests to the judge's."""
    judgments = [
        AtomicJudgment.from_free_output(r, "A is right.\n\\boxed{A}", "visible")
        for r in RECORDS[:2]
    ]
    judgments = [replace(judgment, classify=True) for judgment in judgments]
    with LoopbackServer(stand_in) as judge_server, LoopbackServer(stand_in) as extractor_server:
        settings = JudgeSettings(
            EndpointConfig(model="j", base_url=judge_server.base_url),
            extractor=EndpointConfig(model="x", base_url=extractor_server.base_url),
        )
        items, _, prep_stats = judge_items(RC_TASK, RECORDS[:2], judgments, settings)
        judge_requests, extractor_requests = judge_server.requests, extractor_server.requests
    assert [body["model"] for body in extractor_requests] == ["x", "x"]
    assert all(is_extract_prompt(body) for body in extractor_requests)
    assert {body["model"] for body in judge_requests} == {"j"}
    assert not any(is_extract_prompt(body) for body in judge_requests)
    assert sum(is_rc_judge_prompt(body) for body in judge_requests) == 2
    assert set(prep_stats) == {"extract", "reason_types"}
    first = items[0].item
    assert [(c["step"], c["model"]) for c in first["judge"]] == [
        ("extract", "x"), ("reason_types", "j"), ("rc_meta_judge", "j"),
    ]  # fmt: skip
    assert first["genrm"]["reason_types"] == ["evidence", "generic"]
    assert items[0].outcome.type_counts == (1, 0, 1) and items[0].outcome.top_type == "evidence"


def test_an_unclosed_think_block_is_thinking_not_visible_text():
    cut_off = "<think>A states the fact while B skips the format, so"
    assert rationale_text(cut_off, "visible") == ""
    assert rationale_text(cut_off, "thinking") == "A states the fact while B skips the format, so"
    # Nothing visible to extract: counted as extract_empty without a request.
    assert _free(cut_off).skip_status is ItemStatus.EXTRACT_EMPTY

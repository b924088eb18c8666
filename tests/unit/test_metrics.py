import json

import pytest

from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.scorers.fidelity import ItemOutcome, MetaStatus, compute_fidelity

C, INC, PF, CF = (
    MetaStatus.CORRECT,
    MetaStatus.INCORRECT,
    MetaStatus.PARSE_FAIL,
    MetaStatus.CALL_FAIL,
)


def outcomes(wrong=0, correct=0, incorrect=0, parse_fail=0, call_fail=0, subset="s"):
    items = [ItemOutcome(subset, False) for _ in range(wrong)]
    for status, count in ((C, correct), (INC, incorrect), (PF, parse_fail), (CF, call_fail)):
        items += [ItemOutcome(subset, True, status) for _ in range(count)]
    return items


def test_hand_computed_values():
    # N=10, L=7, C=4, I=1, PF=1, CF=1.
    report = compute_fidelity(outcomes(wrong=3, correct=4, incorrect=1, parse_fail=1, call_fail=1))
    assert report["n"] == 10 and report["label_correct"] == 7
    assert (report["meta_correct"], report["meta_incorrect"]) == (4, 1)
    assert (report["meta_parse_fail"], report["meta_call_fail"]) == (1, 1)
    assert report["l_acc"] == pytest.approx(0.7)
    assert report["s_corr"] == pytest.approx(1 - 4 / 5)
    assert report["f_score"] == pytest.approx(4 / (10 - 1 - 1))


def test_without_meta_failures_f_equals_lacc_times_one_minus_scorr():
    report = compute_fidelity(outcomes(wrong=27, correct=50, incorrect=23))
    assert report["f_score"] == pytest.approx(report["l_acc"] * (1 - report["s_corr"]))


def test_reference_row_reproduces_paper_arithmetic():
    # Qwen3-8B on HelpSteer3 (SPEC): L-Acc 72.9, S-Corr 45.8 -> F 39.5 with no meta failures.
    report = compute_fidelity(outcomes(wrong=271, correct=395, incorrect=334))
    assert round(report["l_acc"] * 100, 1) == 72.9
    assert round(report["s_corr"] * 100, 1) == 45.8
    assert round(report["f_score"] * 100, 1) == 39.5


def test_undefined_values_are_none_not_zero():
    all_wrong = compute_fidelity(outcomes(wrong=5))
    assert all_wrong["l_acc"] == 0.0
    assert all_wrong["s_corr"] is None  # C + INC = 0
    assert all_wrong["f_score"] == 0.0  # denominator N - CF - PF = 5
    assert all_wrong["ci"]["s_corr"] is None and all_wrong["stderr"]["s_corr"] is None

    only_failures = compute_fidelity(outcomes(parse_fail=2, call_fail=1))
    assert only_failures["s_corr"] is None
    assert only_failures["f_score"] is None  # N - CF - PF = 0

    empty = compute_fidelity([])
    assert empty["n"] == 0
    assert empty["l_acc"] is None and empty["s_corr"] is None and empty["f_score"] is None


def test_unjudged_label_correct_items_leave_fidelity_undefined():
    items = [*outcomes(wrong=1, correct=1), ItemOutcome("s", True, None)]
    report = compute_fidelity(items)
    assert report["l_acc"] == pytest.approx(2 / 3)
    assert report["meta_unjudged"] == 1
    assert report["s_corr"] is None and report["f_score"] is None


def test_bootstrap_interval_brackets_point_and_is_reproducible():
    items = outcomes(wrong=30, correct=50, incorrect=15, parse_fail=3, call_fail=2)
    first = compute_fidelity(items)
    assert first == compute_fidelity(items)
    for metric in ("l_acc", "s_corr", "f_score"):
        low, high = first["ci"][metric]
        assert low < first[metric] < high
        assert 0 < first["stderr"][metric] < 0.1
    # Binomial stderr of L-Acc is sqrt(p(1-p)/n) = 0.0458 for p=0.7, n=100.
    assert first["stderr"]["l_acc"] == pytest.approx(0.0458, abs=0.003)


def test_per_subset_breakdown_and_json_has_no_nan():
    items = outcomes(wrong=1, correct=2, subset="code") + outcomes(wrong=2, subset="math")
    report = FIDELITY.report(items)
    assert list(report["subsets"]) == ["code", "math"]
    assert report["subsets"]["code"]["l_acc"] == pytest.approx(2 / 3)
    assert report["subsets"]["math"]["s_corr"] is None
    assert report["overall"]["n"] == 5
    text = json.dumps(report, allow_nan=False)
    assert "NaN" not in text


def test_counts_of_genrm_failures():
    items = [
        ItemOutcome("s", False, genrm_no_verdict=True),
        ItemOutcome("s", False, genrm_call_fail=True),
        ItemOutcome("s", True, C),
    ]
    report = compute_fidelity(items)
    assert report["genrm_no_verdict"] == 1 and report["genrm_call_fail"] == 1
    assert report["l_acc"] == pytest.approx(1 / 3)


def test_document_values_aggregate_to_the_same_numbers():
    """lm-eval aggregates per-document values (mean, nanmean, summed counts): they must give
    compute_fidelity's numbers exactly, for every schema name."""
    import math

    import numpy as np

    items = outcomes(wrong=3, correct=4, incorrect=2, parse_fail=1, call_fail=1)
    items.append(ItemOutcome("s", False, genrm_no_verdict=True, genrm_truncated=True))
    report = compute_fidelity(items)
    values = [item.document_values() for item in items]
    for spec in FIDELITY.schema:
        if spec.aggregation == "summary":
            continue  # lm-eval runs compute_fidelity itself for these (the swap metrics)
        if spec.option is not None and report[spec.name] is None:
            continue  # a count of an option that is off: no path reports it
        column = np.array([v[spec.name] for v in values], dtype=float)
        if spec.aggregation == "count":
            assert column.sum() == report[spec.name], spec.name
        elif spec.aggregation == "mean":
            assert column.mean() == report[spec.name], spec.name
        else:
            assert float(np.nanmean(column)) == report[spec.name], spec.name
    unknown = [ItemOutcome("s", True, C, genrm_truncated=None)]
    assert compute_fidelity(unknown)["genrm_truncated"] is None
    assert math.isnan(unknown[0].document_values()["genrm_truncated"])


def test_sampling_means_are_the_mean_of_each_items_share_to_the_last_digit():
    import random

    import numpy as np

    from ralign_tasks.scorers.fidelity import JudgedAnswer

    draw = random.Random(3)
    items = []
    for _ in range(41):
        answers = tuple(
            JudgedAnswer("A", right := draw.random() < 0.6, MetaStatus.CORRECT if right else None)
            for _ in range(3)
        )
        items.append(ItemOutcome("s", answers[0].label_correct, answers[0].meta, samples=answers))
    report = compute_fidelity(items)
    # Per item: majority right, share right, share giving the most frequent verdict; the
    # means of the columns of that table, as they were always computed.
    table = []
    for o in items:
        right = sum(a.label_correct for a in o.samples)
        table.append([right > 3 - right, right / 3, max(right, 3 - right) / 3])
    columns = np.asarray(table, dtype=float)
    assert report["l_acc_mean"] == float(columns[:, 1].mean())
    assert report["verdict_stability"] == float(columns[:, 2].mean())

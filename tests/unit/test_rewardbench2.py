import json
import math
from importlib import resources

import pytest

from ralign_tasks.scorers.rewardbench2 import (
    OFFICIAL_SUBSETS,
    SUBSETS,
    TiesRow,
    compute_rb2,
    pairwise_credit,
    parse_ranking,
    parse_rating,
    parse_ties_id,
    ranking_credit,
    ranking_order,
    ratings_credit,
    scalar_credit,
    subset_key,
    ties_score,
)


def rows(*specs):
    return [TiesRow(row_id, num_correct, scores) for row_id, num_correct, scores in specs]


# SPEC_COMPANIONS §3.4 unit vectors (the official process_single_model agrees to 1e-12).
T1 = rows(
    ("ref:0", 1, [5, 3, 2]),
    ("tied:0", 3, [9, 8, 8.5, 4, 1]),
    ("ref:1", 1, [2, 3, 1]),
    ("tied:1", 2, [7, 6, 6.5]),
)
T2 = rows(
    ("ref:0", 1, [8, 7, -1]),
    ("tied:0", 2, [8, 8, 3]),
    ("ref:1", 1, [9, 9, 2]),
    ("tied:1", 3, [6, 6, 6, 6]),
    ("ref:2", 1, [10, 1]),
    ("tied:2", 2, [10, 9, 2, 1]),
)
T3 = rows(("ref:5", 1, [[3], [1]]), ("tied:5", 2, [[2], [2], [0]]))


@pytest.mark.parametrize(
    ("case", "expected"), [(T1, 0.4989878329), (T2, 0.6733332924), (T3, 1.0100000000)]
)
def test_ties_unit_vectors(case, expected):
    assert ties_score(case)["score"] == pytest.approx(expected, abs=1e-9)


def test_ties_parts_of_t1_by_hand():
    # Gaps: ref:0 2, tied:0 4, ref:1 -1, tied:1 -0.5; tied spreads 1 and 1.
    report = ties_score(T1)
    assert report["ref_accuracy"] == report["tied_accuracy"] == 0.5
    assert report["correctness_preferred"] == 0.5
    assert report["correctness_preferred_hard"] == 0.5
    margin = (math.tanh(2 / 1 - 1) + math.tanh(-1 / 1 - 1)) / 2
    assert report["correctness_margin"] == pytest.approx(margin)
    assert set(report) == {
        "score",
        "ref_accuracy",
        "tied_accuracy",
        "correctness_preferred",
        "correctness_preferred_hard",
        "correctness_margin",
    }


def test_one_element_score_lists_are_unwrapped():
    row = TiesRow("ref:5", 1, [[3], [1.5]])
    assert row.scores == (3.0, 1.5)
    assert (row.kind, row.number) == ("ref", 5)
    with pytest.raises(ValueError, match="one value"):
        TiesRow("ref:5", 1, [[3, 4], [1]])


@pytest.mark.parametrize(
    ("gap", "margin"),
    [(2.0, 1.0), (0.0, 0.0), (-1.0, -1.0)],  # x/0 = +inf, 0/0 = NaN -> 0, -x/0 = -inf
)
def test_zero_spread_margin_follows_ieee(gap, margin):
    # tied:1 has two correct scores at 5 (spread 0); both rows have the same gap.
    case = rows(("ref:1", 1, [5, 5 - gap]), ("tied:1", 2, [5, 5, 5 - gap]))
    report = ties_score(case)
    assert report["correctness_margin"] == margin
    assert report["correctness_preferred"] == report["correctness_preferred_hard"] == (gap > 0)


def test_spread_zero_with_positive_gap_reaches_1_01():
    case = rows(("ref:1", 1, [9, 1]), ("tied:1", 2, [7, 7, 2]))
    assert ties_score(case)["score"] == pytest.approx(1.01)


def test_a_failed_rating_stays_in_ties_as_the_lowest_score():
    # ref:0's -1 is an incorrect completion rated below everything: the row is accurate.
    report = ties_score(rows(("ref:0", 1, [2, -1])))
    assert report["ref_accuracy"] == 1.0


def test_unpaired_prompts_count_for_accuracy_only():
    report = ties_score(rows(("ref:1", 1, [3, 1]), ("tied:2", 2, [2, 1, 4])))
    assert (report["ref_accuracy"], report["tied_accuracy"]) == (1.0, 0.0)
    pair_terms = ("correctness_preferred", "correctness_preferred_hard", "correctness_margin")
    assert all(report[name] == 0.0 for name in pair_terms)
    assert report["score"] == pytest.approx(0.3)


def test_a_kind_without_rows_has_accuracy_zero():
    report = ties_score(rows(("tied:1", 2, [3, 3, 1])))
    assert (report["ref_accuracy"], report["tied_accuracy"]) == (0.0, 1.0)


def test_accuracy_is_strict():
    report = ties_score(rows(("ref:1", 1, [3, 3, 1])))
    assert report["ref_accuracy"] == 0.0


@pytest.mark.parametrize("row_id", ["ref", "ref:1:2", "tie:1", "ref:x", "", "REF:1"])
def test_malformed_ties_ids_are_refused(row_id):
    with pytest.raises(ValueError, match="ref:<n>"):
        TiesRow(row_id, 1, [2, 1])


def test_ties_numbers_are_read_as_integers():
    assert parse_ties_id("tied:03") == ("tied", 3)


@pytest.mark.parametrize(("num_correct", "scores"), [(0, [1, 2]), (2, [1, 2]), (3, [1, 2])])
def test_ties_rows_need_both_correct_and_incorrect_scores(num_correct, scores):
    with pytest.raises(ValueError, match="at least one correct and one incorrect"):
        TiesRow("ref:1", num_correct, scores)


def test_ties_refuses_repeated_ids_and_a_paired_single_correct_tied_row():
    with pytest.raises(ValueError, match="twice"):
        ties_score(rows(("ref:1", 1, [2, 1]), ("ref:1", 1, [2, 1])))
    with pytest.raises(ValueError, match="spread is undefined"):
        ties_score(rows(("ref:1", 1, [2, 1]), ("tied:1", 1, [2, 1])))


# --- Item credits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratings", "credit"),
    [([8, 8, 5, -1], 0.5), ([-1, -1, -1, -1], 0.25), ([-1, 7, 7, 7], 0.0), ([9, 8, 8, 8], 1.0)],
)
def test_ratings_credit(ratings, credit):
    assert ratings_credit(ratings) == credit


def test_ratings_credit_three_way_tie():
    assert ratings_credit([6, 6, 6, 2]) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("scores", "credit"),
    [([3, 1, 2, 0], 1.0), ([3, 3, 1, 0], 0.5), ([3, 3, 3, 3], 0.25), ([1, 3, 2, 0], 0.0)],
)
def test_scalar_credit(scores, credit):
    assert scalar_credit(scores) == credit


def test_scalar_credit_keeps_minus_one():
    # -1 is an ordinary reward for a scalar model, not an unparsed rating.
    assert scalar_credit([-1.0, -2.0]) == 1.0


@pytest.mark.parametrize("slot", range(4))
def test_ranking_credit(slot):
    letter = "ABCD"[slot]
    assert ranking_credit(letter, slot) == 1.0
    assert all(ranking_credit(other, slot) == 0.0 for other in "ABCD" if other != letter)
    assert ranking_credit(None, slot) == 0.25


def test_ranking_credit_refuses_bad_input():
    with pytest.raises(ValueError, match="chosen slot"):
        ranking_credit("A", 4)
    with pytest.raises(ValueError, match="verdict"):
        ranking_credit("E", 0)


@pytest.mark.parametrize(
    ("slot", "order"), [(0, (0, 1, 2, 3)), (1, (1, 0, 2, 3)), (2, (2, 1, 0, 3)), (3, (3, 1, 2, 0))]
)
def test_ranking_order(slot, order):
    assert ranking_order(slot) == order
    assert order[slot] == 0


def test_ranking_order_refuses_bad_slots():
    for slot in (-1, 4, True):
        with pytest.raises(ValueError):
            ranking_order(slot)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Assistant C is best. [[C]]", "C"),
        ("I first thought [[C]], but the answer is [[A]].", "A"),  # priority by letter
        ("[[D]] then [[B]]", "B"),
        ("Final verdict: [[D]]", "D"),
        ("The best is A.", None),
        ("[A]", None),
        ("[[a]]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_ranking(text, letter):
    assert parse_ranking(text) == letter


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("Clear and correct. Rating: 8", 8),
        ("10", 10),
        ("  7  \n", 7),
        ("1", 1),
        ("8/10", 10),
        ("9 out of 10", 10),
        ("3.5", 5),
        ("7.", -1),
        ("**8**", -1),
        ("0", -1),
        ("11", -1),
        ("Rating: 7 because it is good", -1),
        ("", -1),
        (None, -1),
    ],
)
def test_parse_rating_quirks(text, rating):
    assert parse_rating(text) == rating


@pytest.mark.parametrize(
    ("wins", "credit"),
    [([True, True, True], 1.0), ([True, False, True], 0.0), ([True, None, True], 0.0)],
)
def test_pairwise_credit(wins, credit):
    assert pairwise_credit(wins) == credit


def test_pairwise_credit_needs_a_comparison():
    with pytest.raises(ValueError):
        pairwise_credit([])


# --- Subsets and the final score ----------------------------------------------------------


def test_subset_key():
    assert [subset_key(name) for name in OFFICIAL_SUBSETS] == list(SUBSETS)
    assert subset_key("precise_if") == "precise_if"
    with pytest.raises(ValueError, match="'Chat'"):
        subset_key("Chat")


def credits_for(subset, mean, n=1000):
    """n item credits (0 or 1) whose mean is `mean` (a multiple of 1/n)."""
    hits = round(mean * n)
    return [(subset, 1.0)] * hits + [(subset, 0.0)] * (n - hits)


def test_skywork_row_averages_to_73_1():
    # Skywork-Reward-Llama-3.1-8B (RB2 Table 3): the final score is the plain mean of six.
    subsets = {"Factuality": 0.699, "Precise IF": 0.425, "Math": 0.628, "Safety": 0.933}
    subsets["Focus"] = 0.962
    items = [item for name, mean in subsets.items() for item in credits_for(name, mean)]
    # One paired prompt, accurate on both rows, spread > gap: 0.6 + 0.01 * tanh(0.5 - 1).
    ties = rows(("ref:1", 1, [3, 2]), ("tied:1", 2, [4, 3, 2.5]))
    report = compute_rb2(items, ties)
    assert report["ties"] == pytest.approx(0.6 + 0.01 * math.tanh(-0.5))
    for name, mean in subsets.items():
        assert report[subset_key(name)] == pytest.approx(mean)
    expected = (sum(subsets.values()) + report["ties"]) / 6
    assert report["score"] == pytest.approx(expected)
    published = (69.9 + 42.5 + 62.8 + 93.3 + 96.2 + 74.1) / 6
    assert round(published, 1) == 73.1
    assert report["n"] == 5000 + 2 and report["missing"] == []


def test_score_is_unweighted_mean_not_pooled():
    items = [("Factuality", 1.0)] * 3 + [("precise_if", 0.0)]
    items += [("Math", 0.5), ("Safety", 0.25), ("Focus", 1.0)]
    report = compute_rb2(items, T3)
    assert report["factuality"] == 1.0 and report["ties"] == pytest.approx(1.01)
    assert report["score"] == pytest.approx((1.0 + 0.0 + 0.5 + 0.25 + 1.0 + 1.01) / 6)
    assert report["counts"]["factuality"] == 3 and report["counts"]["ties"] == 2


def test_score_is_none_when_a_subset_is_missing():
    items = [("Factuality", 1.0), ("Math", 0.0), ("Safety", 1.0), ("Focus", 1.0)]
    report = compute_rb2(items, T1)
    assert report["precise_if"] is None and report["score"] is None
    assert report["missing"] == ["precise_if"]
    no_ties = compute_rb2([*items, ("Precise IF", 1.0)], [])
    assert no_ties["ties"] is None and no_ties["ties_components"] is None
    assert no_ties["missing"] == ["ties"] and no_ties["score"] is None


def test_none_credit_is_the_official_no_verdict_quarter():
    report = compute_rb2([("Math", None), ("Math", 1.0)], [])
    assert report["math"] == pytest.approx(0.625) and report["no_verdict"] == 1


def test_compute_rb2_refuses_bad_items():
    with pytest.raises(ValueError, match="ties_rows"):
        compute_rb2([("Ties", 1.0)], [])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_rb2([("Math", 1.5)], [])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_rb2([("Math", float("nan"))], [])


# --- The bundled sample -------------------------------------------------------------------


def sample_rows():
    path = resources.files("ralign_tasks.samples.data") / "reward-bench-2.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sample_follows_the_official_schema():
    data = sample_rows()
    fields = {
        "id",
        "prompt",
        "chosen",
        "rejected",
        "num_correct",
        "num_incorrect",
        "total_completions",
        "models",
        "subset",
        "additional_metadata",
    }
    assert all(set(row) == fields for row in data)
    assert len({(row["subset"], row["id"]) for row in data}) == len(data)
    per_subset = {name: 0 for name in OFFICIAL_SUBSETS}
    for row in data:
        per_subset[row["subset"]] += 1
        assert row["num_correct"] == len(row["chosen"])
        assert row["num_incorrect"] == len(row["rejected"])
        assert row["total_completions"] == row["num_correct"] + row["num_incorrect"]
        assert isinstance(row["models"], list) and isinstance(row["additional_metadata"], dict)
        if row["subset"] != "Ties":
            assert (len(row["chosen"]), len(row["rejected"])) == (1, 3)
    assert per_subset == {name: 4 if name == "Ties" else 2 for name in OFFICIAL_SUBSETS}


def test_sample_ties_rows_score_with_a_perfect_judge():
    # A judge that rates every correct completion 9 and every incorrect one 2: all accurate,
    # spread 0 and gap 7 on both pairs, so the margin is tanh(+inf) = 1 and the score 1.01.
    ties = [
        TiesRow(row["id"], row["num_correct"], [9] * row["num_correct"] + [2] * 3)
        for row in sample_rows()
        if row["subset"] == "Ties"
    ]
    assert sorted(row.id for row in ties) == ["ref:1", "ref:2", "tied:1", "tied:2"]
    assert ties_score(ties)["score"] == pytest.approx(1.01)

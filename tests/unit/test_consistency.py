"""Symmetry and transitivity conflicts among one item's pairwise verdicts (RM-Gallery's conflict
types), by hand."""

from __future__ import annotations

import pytest

from ralign_tasks.scorers.consistency import PairVerdict, consistency, preferences, share


def games(*played):
    return [PairVerdict(first, second, win) for first, second, win in played]


def test_a_total_order_has_no_conflict():
    found = consistency(games((0, 1, 0), (0, 2, 0), (1, 2, 1), (0, 3, 0), (1, 3, 1), (3, 2, 3)))
    assert (found.decided_triads, found.cyclic_triads) == (4, 0)
    assert found.intransitive is False
    assert found.symmetry_conflict is None  # no pair asked in both orders


def test_a_cycle_of_three_is_one_cyclic_triad_of_four():
    # 1 > 2 > 3 > 1; the chosen 0 beats all: triads 012, 013, 023 are transitive.
    found = consistency(games((0, 1, 0), (0, 2, 0), (0, 3, 0), (1, 2, 1), (2, 3, 2), (3, 1, 3)))
    assert (found.decided_triads, found.cyclic_triads) == (4, 1)
    assert found.intransitive is True


def test_a_pair_without_a_verdict_leaves_its_triads_undecided():
    found = consistency(games((0, 1, 0), (1, 2, 1), (2, 0, None)))
    assert found.decided_triads == 0 and found.intransitive is None
    found = consistency(games((0, 1, 1), (1, 2, 2), (2, 0, 0), (0, 3, None)))
    assert (found.decided_triads, found.cyclic_triads) == (1, 1)


def test_both_orders_naming_different_answers_is_a_symmetry_conflict():
    # Pair (0, 1): A both times, so 0 then 1; pair (0, 2): 2 both times.
    found = consistency(games((0, 1, 0), (1, 0, 1), (0, 2, 2), (2, 0, 2)))
    assert (found.symmetric_pairs, found.symmetry_conflicts) == (2, 1)
    assert found.symmetry_conflict is True
    # A conflicting pair is not decided; the consistent one is.
    assert preferences(games((0, 1, 0), (1, 0, 1), (0, 2, 2), (2, 0, 2))) == {(0, 2): 2}


def test_a_pair_seen_once_in_each_order_needs_both_verdicts():
    found = consistency(games((0, 1, 0), (1, 0, None)))
    assert found.symmetric_pairs == 0 and found.symmetry_conflict is None
    assert preferences(games((0, 1, 0), (1, 0, None))) == {}


def test_the_share_counts_only_observed_items():
    assert share([True, False, None, True]) == pytest.approx(2 / 3)
    assert share([None, None]) is None and share([]) is None


def test_a_verdict_must_name_a_shown_answer():
    with pytest.raises(ValueError, match="not shown"):
        PairVerdict(0, 1, 2)
    with pytest.raises(ValueError, match="two answers"):
        PairVerdict(1, 1, None)

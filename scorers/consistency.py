"""Whether a judge's pairwise verdicts on one item's answers agree with each other, by the two
conflict types of RM-Gallery's conflict detector (modelscope/RM-Gallery,
``rm_gallery/gallery/evaluation/conflict_detector.py``):

* a **symmetry conflict**: the same two answers, shown in both orders, get different winners
  (the verdict followed the position, not the answers);
* a **transitivity conflict**: three answers whose pairwise preferences form a cycle
  (i over j, j over k, k over i). With every pair of answers decided, a preference graph has a
  cycle exactly when it has such a cyclic triad, so this is RM-Gallery's "a strongly connected
  component of more than one answer" for the complete comparisons it makes.

A pair is *decided* when it has a verdict in every order it was asked and they all name the
same answer; a pair without a verdict, or with a symmetry conflict, is not decided (RM-Gallery
turns a failed comparison into a tie, which adds no edge either). Only decided triads can be
cyclic, so an item is observed for transitivity when at least one triad is decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class PairVerdict:
    """One pairwise game: the answers shown as A and B (by the item's own numbering) and the
    one the verdict preferred (``None``: no verdict)."""

    first: int
    second: int
    winner: int | None

    def __post_init__(self) -> None:
        if self.first == self.second:
            raise ValueError(f"a pair needs two answers, got {self.first} twice")
        if self.winner not in (None, self.first, self.second):
            raise ValueError(f"winner {self.winner} is not shown in ({self.first}, {self.second})")

    @property
    def pair(self) -> tuple[int, int]:
        return (min(self.first, self.second), max(self.first, self.second))


@dataclass(frozen=True)
class Consistency:
    """An item's conflicts: pairs asked in both orders with both verdicts and how many of them
    conflict; decided triads and how many of them are cyclic."""

    symmetric_pairs: int
    symmetry_conflicts: int
    decided_triads: int
    cyclic_triads: int

    @property
    def symmetry_conflict(self) -> bool | None:
        """Whether any pair conflicts (``None``: no pair was seen in both orders)."""
        return self.symmetry_conflicts > 0 if self.symmetric_pairs else None

    @property
    def intransitive(self) -> bool | None:
        """Whether any triad is cyclic (``None``: no triad was decided)."""
        return self.cyclic_triads > 0 if self.decided_triads else None


def preferences(verdicts: Sequence[PairVerdict]) -> dict[tuple[int, int], int]:
    """The winner of every decided pair (see the module doc)."""
    winners: dict[tuple[int, int], set[int | None]] = {}
    for verdict in verdicts:
        winners.setdefault(verdict.pair, set()).add(verdict.winner)
    return {
        pair: next(iter(found))
        for pair, found in winners.items()
        if len(found) == 1 and None not in found
    }


def consistency(verdicts: Sequence[PairVerdict]) -> Consistency:
    """The symmetry and transitivity conflicts among one item's pairwise verdicts."""
    orders: dict[tuple[int, int], dict[tuple[int, int], int | None]] = {}
    for verdict in verdicts:
        orders.setdefault(verdict.pair, {})[(verdict.first, verdict.second)] = verdict.winner
    both = [
        set(shown.values())
        for shown in orders.values()
        if len(shown) == 2 and None not in shown.values()
    ]
    decided = preferences(verdicts)
    answers = sorted({answer for pair in orders for answer in pair})
    triads = [
        triad
        for triad in combinations(answers, 3)
        if all(pair in decided for pair in combinations(triad, 2))
    ]
    cyclic = sum(_is_cycle(triad, decided) for triad in triads)
    return Consistency(len(both), sum(len(winners) > 1 for winners in both), len(triads), cyclic)


def _is_cycle(triad: tuple[int, ...], decided: dict[tuple[int, int], int]) -> bool:
    """Three decided pairs form a cycle when every answer wins exactly once (otherwise one
    answer wins both of its pairs and the order is transitive)."""
    wins = [decided[pair] for pair in combinations(triad, 2)]
    return all(wins.count(answer) == 1 for answer in triad)


def share(flags: Sequence[bool | None]) -> float | None:
    """The share of true flags among the observed ones (``None`` where none was observed)."""
    observed = [flag for flag in flags if flag is not None]
    return sum(observed) / len(observed) if observed else None

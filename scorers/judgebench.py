"""JudgeBench scoring as the official repository computes it (SPEC_COMPANIONS §2): the Arena-Hard
judge's verdict parse, the two-order net vote per pair, accuracy pooled over pairs and per
category, and reading the repository's own judge-output files.

Harness-free and model-free: these functions take decisions (strings or ``None``) and labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ralign_tasks.scorers.errors import UserError

LABELS = ("A>B", "B>A")
# Category of a pair by the prefix of its `source`, in report order.
CATEGORIES = (
    ("knowledge", "mmlu-pro"),
    ("reasoning", "livebench-reasoning"),
    ("math", "livebench-math"),
    ("coding", "livecodebench"),
)
_ARENA_HARD_LABEL = re.compile(r"\[\[([AB<>=]+)\]\]")


@dataclass(frozen=True)
class ArenaHardParse:
    """The official parse of an Arena-Hard judge text: ``decision`` is the one distinct label
    found, normalised (``>>`` → ``>``); ``None`` when there is none (``found`` is then false:
    the official judge asks once more) or when several distinct labels appear."""

    decision: str | None
    found: bool


def parse_arena_hard(text: str) -> ArenaHardParse:
    """Every ``[[label]]`` in the text; one distinct label is the decision, several are
    ``None`` (no retry), none is ``None`` with ``found`` false."""
    labels = set(_ARENA_HARD_LABEL.findall(text))
    if not labels:
        return ArenaHardParse(None, False)
    if len(labels) > 1:
        return ArenaHardParse(None, True)
    return ArenaHardParse(next(iter(labels)).replace(">>", ">").strip(), True)


def flip(decision: str | None) -> str | None:
    """``A>B`` ↔ ``B>A``; anything else (``None``, ``A=B``, unknown tokens) unchanged."""
    return {"A>B": "B>A", "B>A": "A>B"}.get(decision, decision) if decision else decision


def vote(decision: str | None, label: str) -> int:
    """+1 for the label, -1 for its flip, 0 for anything else."""
    if decision == label:
        return 1
    return -1 if decision == flip(label) else 0


def category_of(source: str) -> str:
    for name, prefix in CATEGORIES:
        if source.startswith(prefix):
            return name
    raise UserError(f"unknown JudgeBench source {source!r}")


@dataclass(frozen=True)
class PairOutcome:
    """One pair judged in both orders: game 1's decision, game 2's decision in game 2's own
    naming (the answers swapped), the label and the category."""

    category: str
    label: str
    first: str | None
    second: str | None

    @property
    def net_vote(self) -> int:
        return vote(self.first, self.label) + vote(flip(self.second), self.label)

    @property
    def correct(self) -> bool:
        return self.net_vote > 0

    @property
    def first_order_correct(self) -> bool:
        return self.first == self.label


def compute_judgebench(outcomes: Sequence[PairOutcome]) -> dict[str, Any]:
    """Accuracy (fractions) pooled over all pairs (``accuracy``, not the mean of the
    categories), per category, and of game 1 alone (``accuracy_first_order``); counts of
    ties (net vote 0), incorrect pairs (negative), nulls (either game without a decision) and
    inconsistent pairs (the two games disagree once mapped back). ``None`` where a group has no
    pair."""

    def share(flags: Iterable[bool]) -> float | None:
        values = list(flags)
        return sum(values) / len(values) if values else None

    report: dict[str, Any] = {
        "n": len(outcomes),
        "accuracy": share(o.correct for o in outcomes),
        "accuracy_first_order": share(o.first_order_correct for o in outcomes),
    }
    for name, _ in CATEGORIES:
        report[name] = share(o.correct for o in outcomes if o.category == name)
    report["ties"] = sum(o.net_vote == 0 for o in outcomes)
    report["incorrect"] = sum(o.net_vote < 0 for o in outcomes)
    report["nulls"] = sum(o.first is None or o.second is None for o in outcomes)
    report["inconsistent"] = sum(o.first != flip(o.second) for o in outcomes)
    return report

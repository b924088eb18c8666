"""Typed records for one R-Align preference pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Turn:
    """One dialogue message."""

    role: str
    content: str


@dataclass(frozen=True)
class PairRecord:
    """One benchmark item: a prompt, two answers, the better one and why.

    ``context`` holds the dialogue before the final user turn (empty for single-turn items);
    ``golden_rationale`` is the golden judgment with any thinking trace removed.
    """

    benchmark: str
    id: str
    context: tuple[Turn, ...]
    prompt: str
    response_a: str
    response_b: str
    label: Literal["A", "B"]
    golden_rationale: str
    subset: str

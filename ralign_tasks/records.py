"""What records of every family share: a dialogue turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One dialogue message."""

    role: str
    content: str


def turn_dicts(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns as plain JSON types (a record's ``context`` in a document or a template)."""
    return [{"role": t.role, "content": t.content} for t in turns]

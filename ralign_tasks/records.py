"""Typed benchmark records: an R-Align preference pair, a HelpSteer3-Atomic item."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


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

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types (an lm-eval document, Inspect sample metadata)."""
        return {
            "benchmark": self.benchmark,
            "id": self.id,
            "subset": self.subset,
            "label": self.label,
            "context": [{"role": t.role, "content": t.content} for t in self.context],
            "prompt": self.prompt,
            "response_a": self.response_a,
            "response_b": self.response_b,
            "golden_rationale": self.golden_rationale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(
            benchmark=data["benchmark"],
            id=str(data["id"]),
            context=tuple(Turn(t["role"], t["content"]) for t in data["context"] or ()),
            prompt=data["prompt"],
            response_a=data["response_a"],
            response_b=data["response_b"],
            label=data["label"],
            golden_rationale=data["golden_rationale"],
            subset=data["subset"],
        )


@dataclass(frozen=True)
class ReferenceOutput:
    """A reference model's stored output on the HelpSteer3-Atomic test split."""

    checklist: tuple[str, ...]
    label: str | None
    generated_text: str | None


@dataclass(frozen=True)
class AtomicRecord:
    """One HelpSteer3-Atomic item. ``label`` is the better response as A (response 1) or B,
    from ``overall_preference`` (negative: response 1); ``None`` when absent or 0."""

    id: str
    domain: str
    context: tuple[Turn, ...]
    prompt: str
    response1: str
    response2: str
    checklist: tuple[str, ...]
    label: Literal["A", "B"] | None
    references: dict[str, ReferenceOutput] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types, without the reference outputs (an lm-eval
        document, Inspect sample metadata: scoring never reads them, and they would double
        the logs)."""
        return {
            "id": self.id,
            "domain": self.domain,
            "label": self.label,
            "checklist": list(self.checklist),
            "context": [{"role": t.role, "content": t.content} for t in self.context],
            "prompt": self.prompt,
            "response1": self.response1,
            "response2": self.response2,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AtomicRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(
            id=str(data["id"]),
            domain=data["domain"],
            context=tuple(Turn(t["role"], t["content"]) for t in data["context"] or ()),
            prompt=data["prompt"],
            response1=data["response1"],
            response2=data["response2"],
            checklist=tuple(data["checklist"]),
            label=data["label"] or None,
        )

"""HelpSteer3-Atomic (``Qwen/RationaleRM``, SPEC §2): records with human atomic rationales.

Sources as for R-Align: ``data_dir``, ``RALIGN_DATA_DIR``, else the Hugging Face dataset.
Split ``test`` (1,000 items, with two reference models' outputs) or ``full`` (22,116 items).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ralign_tasks.data import BadRow, locate_data_file, read_jsonl_records
from ralign_tasks.records import Turn

TASK = "ralign_helpsteer3_atomic"
HF_DATASET = "Qwen/RationaleRM"
HF_REVISION = "main"
SPLIT_FILES = {
    "test": "helpsteer3_test_1000.jsonl",
    "full": "helpsteer3_human_checklist.jsonl",
}
_REFERENCE_KEY = re.compile(r"^model-(.+)-checklist$")


@dataclass(frozen=True)
class ReferenceOutput:
    """A reference model's stored output on the test split."""

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
        document, Inspect sample metadata)."""
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


@dataclass
class AtomicLoad:
    path: str
    records: list[AtomicRecord]
    bad_rows: list[BadRow]


def _string(row: dict[str, Any], key: str) -> str:
    if key not in row:
        raise ValueError(f"missing field {key!r}")
    if not isinstance(row[key], str):
        raise ValueError(f"field {key!r} must be a string, got {type(row[key]).__name__}")
    return row[key]


def _string_list(row: dict[str, Any], key: str, *, allow_empty: bool) -> tuple[str, ...]:
    value = row.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"field {key!r} must be a list of strings")
    if not allow_empty and not [item for item in value if item.strip()]:
        raise ValueError(f"field {key!r} is empty")
    return tuple(value)


def parse_atomic_row(row: Any, line: int, split: str = "test") -> AtomicRecord:
    """Validate one decoded row; raises ``ValueError`` naming the problem."""
    if not isinstance(row, dict):
        raise ValueError(f"row must be a JSON object, got {type(row).__name__}")
    context = row.get("context")
    if not isinstance(context, list) or not context:
        raise ValueError("field 'context' must be a non-empty list of turns")
    turns = []
    for index, turn in enumerate(context):
        if not isinstance(turn, dict) or not all(
            isinstance(turn.get(k), str) for k in ("role", "content")
        ):
            raise ValueError(f"context[{index}] must have string 'role' and 'content'")
        turns.append(Turn(turn["role"], turn["content"]))
    preference = row.get("overall_preference")
    if preference is not None and (isinstance(preference, bool) or not isinstance(preference, int)):
        raise ValueError(f"field 'overall_preference' must be an integer, got {preference!r}")
    label = None if not preference else ("A" if preference < 0 else "B")
    references = {}
    for key in row:
        match = _REFERENCE_KEY.match(key)
        if match:
            name = match.group(1)
            generated = row.get(f"model-{name}-generated_text")
            references[name] = ReferenceOutput(
                checklist=_string_list(row, key, allow_empty=True),
                label=row.get(f"model-{name}-label"),
                generated_text=generated if isinstance(generated, str) else None,
            )
    raw_id = row.get("id")
    return AtomicRecord(
        id=str(raw_id) if raw_id is not None else f"{split}-{line}",
        domain=_string(row, "domain"),
        context=tuple(turns[:-1]),
        prompt=turns[-1].content,
        response1=_string(row, "response1"),
        response2=_string(row, "response2"),
        checklist=_string_list(row, "human-checklist", allow_empty=False),
        label=label,
        references=references,
    )


def load_atomic(
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    skip_bad_rows: bool = False,
) -> AtomicLoad:
    """Load a HelpSteer3-Atomic split as validated records."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    path = locate_data_file(SPLIT_FILES[split], TASK, data_dir, HF_DATASET, HF_REVISION)
    records, bad_rows = read_jsonl_records(
        path, lambda row, line: parse_atomic_row(row, line, split), skip_bad_rows=skip_bad_rows
    )
    return AtomicLoad(str(path), records, bad_rows)

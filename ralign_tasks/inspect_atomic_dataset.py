"""HelpSteer3-Atomic records as Inspect samples, and back (SPEC §2).

A sample carries its record in ``metadata`` so the scorer (also one run later by ``inspect
score`` on a log) can rebuild the :class:`AtomicRecord` without the data files. The reference
models' stored outputs are left out: scoring never reads them, and they would double the log.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser

from ralign_tasks.atomic_data import TASK, AtomicRecord, load_atomic
from ralign_tasks.inspect_dataset import data_source, keep_named
from ralign_tasks.prompts import render_atomic_genrm_prompt
from ralign_tasks.records import Turn


def atomic_metadata(record: AtomicRecord) -> dict[str, Any]:
    """The record's fields (without reference outputs) as JSON-ready sample metadata."""
    return {
        "id": record.id,
        "domain": record.domain,
        "label": record.label,
        "checklist": list(record.checklist),
        "context": [{"role": turn.role, "content": turn.content} for turn in record.context],
        "prompt": record.prompt,
        "response1": record.response1,
        "response2": record.response2,
    }


def atomic_record_from_metadata(metadata: dict[str, Any]) -> AtomicRecord:
    """Rebuild the record that :func:`atomic_metadata` stored."""
    return AtomicRecord(
        id=str(metadata["id"]),
        domain=metadata["domain"],
        context=tuple(Turn(turn["role"], turn["content"]) for turn in metadata["context"]),
        prompt=metadata["prompt"],
        response1=metadata["response1"],
        response2=metadata["response2"],
        checklist=tuple(metadata["checklist"]),
        label=metadata["label"],
    )


def atomic_record_to_sample(record: AtomicRecord, genrm_template: str | None = None) -> Sample:
    """One sample: the GenRM prompt as a single user message, the label (or ``""``) as target."""
    return Sample(
        id=record.id,
        input=[ChatMessageUser(content=render_atomic_genrm_prompt(record, genrm_template))],
        target=record.label or "",
        metadata=atomic_metadata(record),
    )


def atomic_dataset(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    sample: bool = False,
    split: str = "test",
    domain: str | Sequence[str] | None = None,
    genrm_template: str | None = None,
) -> MemoryDataset:
    """Load a HelpSteer3-Atomic split (bundled sample, ``data_dir``, ``RALIGN_DATA_DIR`` or the
    hub) as an Inspect dataset in file order, optionally keeping only some domains."""
    loaded = load_atomic(split, data_source(sample, data_dir))
    records = keep_named(loaded.records, "domain", domain, loaded.path)
    return MemoryDataset(
        [atomic_record_to_sample(record, genrm_template) for record in records],
        name=TASK,
        location=loaded.path,
    )

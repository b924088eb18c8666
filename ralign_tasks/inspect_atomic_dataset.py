"""HelpSteer3-Atomic records as Inspect samples, and back (SPEC §2).

A sample carries its record in ``metadata`` so the scorer (also one run later by ``inspect
score`` on a log) can rebuild the :class:`AtomicRecord` without the data files. The reference
models' stored outputs are left out: scoring never reads them, and they would double the log.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser

from ralign_tasks.atomic_data import TASK, AtomicRecord, load_atomic
from ralign_tasks.data import keep_named
from ralign_tasks.inspect_dataset import data_source
from ralign_tasks.prompts import render_atomic_genrm_prompt


def atomic_record_to_sample(record: AtomicRecord, genrm_template: str | None = None) -> Sample:
    """One sample: the GenRM prompt as a single user message, the label (or ``""``) as target."""
    return Sample(
        id=record.id,
        input=[ChatMessageUser(content=render_atomic_genrm_prompt(record, genrm_template))],
        target=record.label or "",
        metadata=record.to_dict(),
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

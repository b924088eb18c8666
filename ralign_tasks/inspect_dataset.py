"""R-Align records as Inspect samples, and back.

A sample carries its whole record in ``metadata`` so a scorer (also one run later by
``inspect score`` on a log) can rebuild the :class:`PairRecord` without the data files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser

from ralign_tasks.benchmarks import get_benchmark
from ralign_tasks.data import keep_named, load_benchmark, sample_data_dir
from ralign_tasks.prompts import render_genrm_prompt
from ralign_tasks.records import PairRecord


def record_to_sample(record: PairRecord, genrm_template: str | None = None) -> Sample:
    """One sample: the GenRM prompt as a single user message, the label as target."""
    return Sample(
        id=record.id,
        input=[ChatMessageUser(content=render_genrm_prompt(record, genrm_template))],
        target=record.label,
        metadata=record.to_dict(),
    )


def data_source(
    sample: bool, data_dir: str | os.PathLike[str] | None
) -> str | os.PathLike[str] | None:
    """Where to load from: the bundled sample, ``data_dir``, or ``None`` (environment or hub)."""
    if sample and data_dir:
        raise ValueError("pass either sample=true or data_dir, not both")
    return sample_data_dir() if sample else data_dir


def ralign_dataset(
    benchmark: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    sample: bool = False,
    subset: str | Sequence[str] | None = None,
    genrm_template: str | None = None,
) -> MemoryDataset:
    """Load one benchmark (bundled sample, ``data_dir``, ``RALIGN_DATA_DIR`` or the hub) as an
    Inspect dataset in file order, optionally keeping only some ``source.subset`` values."""
    loaded = load_benchmark(benchmark, data_source(sample, data_dir))
    records = keep_named(loaded.records, "subset", subset, loaded.path)
    return MemoryDataset(
        [record_to_sample(record, genrm_template) for record in records],
        name=get_benchmark(benchmark).task,
        location=loaded.path,
    )

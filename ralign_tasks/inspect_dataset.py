"""R-Align records as Inspect samples, and back.

A sample carries its whole record in ``metadata`` so a scorer (also one run later by
``inspect score`` on a log) can rebuild the :class:`PairRecord` without the data files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser

from ralign_tasks.benchmarks import get_benchmark
from ralign_tasks.data import load_benchmark, sample_data_dir
from ralign_tasks.prompts import render_genrm_prompt
from ralign_tasks.records import PairRecord, Turn


def record_metadata(record: PairRecord) -> dict[str, Any]:
    """The record's fields as JSON-ready sample metadata."""
    return {
        "benchmark": record.benchmark,
        "id": record.id,
        "subset": record.subset,
        "label": record.label,
        "context": [{"role": turn.role, "content": turn.content} for turn in record.context],
        "prompt": record.prompt,
        "response_a": record.response_a,
        "response_b": record.response_b,
        "golden_rationale": record.golden_rationale,
    }


def record_from_metadata(metadata: dict[str, Any]) -> PairRecord:
    """Rebuild the record that :func:`record_metadata` stored."""
    return PairRecord(
        benchmark=metadata["benchmark"],
        id=str(metadata["id"]),
        context=tuple(Turn(turn["role"], turn["content"]) for turn in metadata["context"]),
        prompt=metadata["prompt"],
        response_a=metadata["response_a"],
        response_b=metadata["response_b"],
        label=metadata["label"],
        golden_rationale=metadata["golden_rationale"],
        subset=metadata["subset"],
    )


def record_to_sample(record: PairRecord, genrm_template: str | None = None) -> Sample:
    """One sample: the GenRM prompt as a single user message, the label as target."""
    return Sample(
        id=record.id,
        input=[ChatMessageUser(content=render_genrm_prompt(record, genrm_template))],
        target=record.label,
        metadata=record_metadata(record),
    )


def _subset_names(subset: str | Sequence[str] | None) -> list[str] | None:
    if subset is None:
        return None
    # `-T subset=code,stem` arrives as one string; `-T subset='[code, stem]'` as a list.
    names = subset.split(",") if isinstance(subset, str) else list(subset)
    return [name.strip() for name in names if name.strip()]


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
    if sample and data_dir:
        raise ValueError("pass either sample=true or data_dir, not both")
    loaded = load_benchmark(benchmark, sample_data_dir() if sample else data_dir)
    records = loaded.records
    wanted = _subset_names(subset)
    if wanted is not None:
        known = sorted({record.subset for record in records})
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise ValueError(
                f"unknown subset(s) {', '.join(map(repr, unknown))} in {loaded.path}; "
                f"known: {', '.join(known)}"
            )
        records = [record for record in records if record.subset in wanted]
    return MemoryDataset(
        [record_to_sample(record, genrm_template) for record in records],
        name=get_benchmark(benchmark).task,
        location=loaded.path,
    )

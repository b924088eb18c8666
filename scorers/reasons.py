"""The reasons of a rationale, shared by the families that list them: the extractor's answer
(``<REASONS_START>`` … ``S<n>: …``), the judge's reason types (``<TYPES_START>`` … ``S<n>:
<type>``), and the reason-type metrics.

The types are ours, named after the categories of the Rationale Consistency paper's Figure 4:
a reason is evidence-grounded when it points at something specific in an answer (a fact, an
error, a bug, an omission, an instruction), criterion-grounded when it applies a criterion
without pointing at evidence, generic/style when it is about length, format, tone or a general
impression. Each type's share is over all typed reasons (a ratio of sums over items) and over
the items' top reasons, with bootstrap CIs over items (an item's reasons drawn together).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ralign_tasks.scorers.ask import InvalidAnswer
from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.schema import MetricSpec
from ralign_tasks.scorers.stats import DRAWS, SEED, bootstrap_sums, finite
from ralign_tasks.scorers.verdict import strip_thinking

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")

# The most reasons an extractor may list (a longer list is asked again).
MAX_EXTRACTED = 10
REASON_TYPES = ("evidence", "criterion", "generic")
REASON_TYPE_TITLES = {
    "evidence": "evidence-grounded",
    "criterion": "criterion-grounded",
    "generic": "generic/style",
}
TYPE_SHARES = tuple(f"{kind}_share" for kind in REASON_TYPES)
TOP_TYPES = tuple(f"top_{kind}" for kind in REASON_TYPES)
TYPE_METRICS = (*TYPE_SHARES, *TOP_TYPES)
# The option that asks for them, in every family that has it.
OPTION = "reason_types"

TYPE_SPECS = (
    *(
        MetricSpec(
            f"{kind}_share",
            f"{kind.capitalize()} share",
            kind == "evidence",
            "summary",
            option=OPTION,
            description=f"{REASON_TYPE_TITLES[kind]} reasons among all typed ones",
        )
        for kind in REASON_TYPES
    ),
    *(
        MetricSpec(
            f"top_{kind}",
            f"Top {kind}",
            kind == "evidence",
            "summary",
            option=OPTION,
            description=f"items whose top reason is {REASON_TYPE_TITLES[kind]}",
        )
        for kind in REASON_TYPES
    ),
)
# Counts of the extraction and typing steps.
STEP_COUNTS = (
    MetricSpec("extract_call_fail", "extract-fail", False, "count", detail=True),
    MetricSpec("extract_parse_fail", "extract-parse", False, "count", detail=True),
    MetricSpec("extract_empty", "extract-empty", False, "count", detail=True),
    MetricSpec("types_failed", "types-fail", False, "count", detail=True),
)


class ExtractionFormatError(InvalidAnswer):
    """An extractor answer that breaks the ``<REASONS_START>`` … ``S<n>: …`` protocol."""


class TypesFormatError(InvalidAnswer):
    """A reason-type answer that breaks the ``<TYPES_START>`` … ``S<n>: <type>`` protocol."""


_REASONS_BLOCK = re.compile(r"<REASONS_START>(.*?)<REASONS_END>", re.DOTALL)
_TYPES_BLOCK = re.compile(r"<TYPES_START>(.*?)<TYPES_END>", re.DOTALL)
_S_LINE = re.compile(r"^\s*S(\d+)\s*:\s*(.*?)\s*$")


def _numbered_lines(body: str, error: type[InvalidAnswer]) -> list[str]:
    """The texts of a block's ``S<n>: text`` lines, which must be numbered 1..n in order."""
    texts = []
    for line in body.splitlines():
        if not line.strip():
            continue
        match = _S_LINE.match(line)
        if not match:
            raise error(f"a line that is not 'S<n>: …': {line.strip()[:80]!r}")
        if int(match.group(1)) != len(texts) + 1:
            raise error(f"S{match.group(1)} where S{len(texts) + 1} was due")
        if not match.group(2):
            raise error(f"S{match.group(1)} is empty")
        texts.append(match.group(2))
    return texts


def parse_extracted_reasons(answer: str) -> list[str]:
    """The extractor's reasons, in order: the ``S<n>: …`` lines of its ``<REASONS_START>`` …
    ``<REASONS_END>`` block (an empty block: the rationale gives none). Raises
    :class:`ExtractionFormatError` on a missing block, a line of another shape, numbers out of
    order, or more than :data:`MAX_EXTRACTED` reasons."""
    blocks = _REASONS_BLOCK.findall(strip_thinking(answer))
    if not blocks:
        raise ExtractionFormatError("no <REASONS_START> … <REASONS_END> block")
    reasons = _numbered_lines(blocks[-1], ExtractionFormatError)
    if len(reasons) > MAX_EXTRACTED:
        raise ExtractionFormatError(f"{len(reasons)} reasons listed, at most {MAX_EXTRACTED}")
    return reasons


def parse_reason_types(answer: str, count: int) -> list[str]:
    """The type of each of ``count`` reasons (one of :data:`REASON_TYPES`), from the
    ``S<n>: <type>`` lines of a ``<TYPES_START>`` … ``<TYPES_END>`` block. Raises
    :class:`TypesFormatError` unless every reason has exactly one known type."""
    blocks = _TYPES_BLOCK.findall(strip_thinking(answer))
    if not blocks:
        raise TypesFormatError("no <TYPES_START> … <TYPES_END> block")
    lines = _numbered_lines(blocks[-1], TypesFormatError)
    types = [text.strip().lower().rstrip(".") for text in lines]
    if len(types) != count:
        raise TypesFormatError(f"{len(types)} types for {count} reasons")
    unknown = [kind for kind in types if kind not in REASON_TYPES]
    if unknown:
        raise TypesFormatError(f"unknown type {unknown[0]!r} (one of {', '.join(REASON_TYPES)})")
    return types


def type_counts(types: Sequence[str] | None) -> tuple[int, ...] | None:
    """How many of an item's typed reasons are of each type (``None``: not typed)."""
    return tuple(types.count(kind) for kind in REASON_TYPES) if types else None


def type_columns(counts: Sequence[tuple[int, ...] | None], tops: Sequence[str | None]) -> Any:
    """Per item: its reasons of each type, its typed reasons, its top reason's type (one-hot)
    and whether it has one; the metrics are ratios of these columns' sums."""
    rows = []
    for count, top in zip(counts, tops, strict=True):
        count = count or (0,) * len(REASON_TYPES)
        rows.append([*count, sum(count), *(top == kind for kind in REASON_TYPES),
                     top is not None])  # fmt: skip
    return np.asarray(rows, dtype=float).reshape(-1, 2 * len(REASON_TYPES) + 2)


def type_values(sums: Any) -> dict[str, Any]:
    """The reason-type metrics of summed :func:`type_columns` (NaN where no item has typed
    reasons)."""
    kinds = len(REASON_TYPES)
    counts, total = sums[..., :kinds], sums[..., kinds]
    tops, typed = sums[..., kinds + 1 : 2 * kinds + 1], sums[..., 2 * kinds + 1]
    values = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, kind in enumerate(REASON_TYPES):
            values[f"{kind}_share"] = np.where(total > 0, counts[..., index] / total, np.nan)
            values[f"top_{kind}"] = np.where(typed > 0, tops[..., index] / typed, np.nan)
    return values


def compute_types(
    counts: Sequence[tuple[int, ...] | None],
    tops: Sequence[str | None],
    *,
    draws: int = DRAWS,
    seed: int = SEED,
) -> dict[str, Any]:
    """The reason-type metrics of a group of items (each item's type counts and top type):
    point values, bootstrap stderr and 95% CIs over items; ``None`` where undefined."""
    columns = type_columns(counts, tops)
    point = {name: finite(float(v)) for name, v in type_values(columns.sum(axis=0)).items()}
    stderr, ci = bootstrap_sums(columns, type_values, point, draws=draws, seed=seed)
    return {**point, "stderr": stderr, "ci": ci}

"""The plain-text table a ``ralign run``/``score``/``rc-score`` prints: a protocol's metrics
(percent with 95% CIs) and counts, overall and per group, columns from its schema, within the
terminal's width; and the notation every table, CSV and page of the project shares."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from ralign_tasks.protocols import Protocol

# How every table, CSV, plot and page shows a value that is undefined (a zero denominator) or
# unknown: never 0, never blank. JSON has null; lm-eval and Inspect print their own NaN.
UNDEFINED = "n/a"
# The width of terminal tables when the terminal does not say ($COLUMNS, then the terminal).
DEFAULT_COLUMNS = 120
MIN_COLUMNS = 60


def terminal_columns() -> int:
    """The width terminal tables fit: ``$COLUMNS``, else the terminal's, else 120."""
    return max(shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns, MIN_COLUMNS)


def column_chunks(widths: Sequence[int], left: int, budget: int, gap: int) -> list[list[int]]:
    """The columns after the first ``left`` (which every part repeats) split into parts that
    fit ``budget`` characters, each column ``widths[i] + gap`` wide; at least one per part."""
    fixed = sum(w + gap for w in widths[:left])
    chunks: list[list[int]] = [[]]
    used = fixed
    for index in range(left, len(widths)):
        width = widths[index] + gap
        if chunks[-1] and used + width > budget:
            chunks.append([])
            used = fixed
        chunks[-1].append(index)
        used += width
    return chunks


def percent_text(value: float | None, ci: Sequence[float] | None, missing: str = UNDEFINED) -> str:
    """A fraction in percent with its CI, ``50.0 [25.0, 75.0]``; ``missing`` when undefined."""
    if value is None:
        return missing
    interval = f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""
    return f"{value * 100:.1f}{interval}"


def format_table(title: str, rows: list[list[str]], columns: int | None = None) -> str:
    """``rows[0]`` is the header; the first column is left-aligned, the others right. A table
    wider than ``columns`` (default: :func:`terminal_columns`) is printed as several, each
    repeating the first column."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    chunks = column_chunks(widths, 1, (columns or terminal_columns()) + 2, 2)
    lines = []
    for number, chunk in enumerate(chunks):
        shown = [0, *chunk]
        lines.append(title if number == 0 else f"{title} (continued)")
        for index, row in enumerate(rows):
            cells = [(row[i], widths[i]) for i in shown]
            lines.append(
                "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))
            )
            if index == 0:
                lines.append("  ".join("-" * widths[i] for i in shown))
        if number < len(chunks) - 1:
            lines.append("")
    return "\n".join(lines)


def format_run_table(title: str, protocol: Protocol[Any, Any, Any], report: dict[str, Any]) -> str:
    """Every metric and count of the protocol's schema, overall and per group."""
    schema = protocol.schema
    # A metric or count of an option that is off (the swap metrics without swap) is left out.
    metrics = [
        spec for spec in schema.metrics
        if spec.option is None or report["overall"].get(spec.name) is not None
    ]  # fmt: skip
    counts = [
        spec for spec in schema.counts
        if spec.option is None or report["overall"].get(spec.name) is not None
    ]  # fmt: skip
    header = [
        protocol.group_field,
        *(spec.label for spec in metrics),
        "N",
        *(spec.label for spec in counts),
    ]
    rows = [header]
    for name, group in [("(all)", report["overall"]), *report["subsets"].items()]:
        rows.append(
            [
                name,
                *(percent_text(group[m.name], group["ci"][m.name]) for m in metrics),
                str(group["n"]),
                *(UNDEFINED if group[c.name] is None else str(group[c.name]) for c in counts),
            ]
        )
    return format_table(f"{title}: percent, 95% CI", rows)

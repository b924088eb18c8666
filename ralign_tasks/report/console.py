"""The plain-text table a ``ralign run``/``score``/``rc-score`` prints: a protocol's metrics
(percent with 95% CIs) and counts, overall and per group, columns from its schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ralign_tasks.protocols import Protocol


def percent_text(value: float | None, ci: Sequence[float] | None, missing: str = "n/a") -> str:
    """A fraction in percent with its CI, ``50.0 [25.0, 75.0]``; ``missing`` when undefined."""
    if value is None:
        return missing
    interval = f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""
    return f"{value * 100:.1f}{interval}"


def format_table(title: str, rows: list[list[str]]) -> str:
    """``rows[0]`` is the header; the first column is left-aligned, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title]
    for index, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_run_table(title: str, protocol: Protocol[Any, Any, Any], report: dict[str, Any]) -> str:
    """Every metric and count of the protocol's schema, overall and per group."""
    schema = protocol.schema
    # A metric of an option that is off (the swap metrics without swap) is left out.
    metrics = [
        spec for spec in schema.metrics
        if spec.option is None or report["overall"].get(spec.name) is not None
    ]  # fmt: skip
    header = [
        protocol.group_field,
        *(spec.label for spec in metrics),
        "N",
        *(spec.label for spec in schema.counts),
    ]
    rows = [header]
    for name, group in [("(all)", report["overall"]), *report["subsets"].items()]:
        rows.append(
            [
                name,
                *(percent_text(group[m.name], group["ci"][m.name]) for m in metrics),
                str(group["n"]),
                *("n/a" if group[c] is None else str(group[c]) for c in schema.count_names),
            ]
        )
    return format_table(title, rows)

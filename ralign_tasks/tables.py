"""Plain-text tables of fidelity metrics for the terminal."""

from __future__ import annotations

from typing import Any

from ralign_tasks.scorers.metrics import FIDELITY_METRICS

_HEADERS = {"l_acc": "L-Acc", "s_corr": "S-Corr", "f_score": "F-Score"}
_COUNTS = (
    ("N", "n"),
    ("label-ok", "label_correct"),
    ("C", "meta_correct"),
    ("I", "meta_incorrect"),
    ("PF", "meta_parse_fail"),
    ("CF", "meta_call_fail"),
    ("no-verdict", "genrm_no_verdict"),
)


def _percent(group: dict[str, Any], metric: str) -> str:
    value = group[metric]
    if value is None:
        return "n/a"
    ci = group["ci"][metric]
    interval = f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""
    return f"{value * 100:.1f}{interval}"


def format_report(title: str, report: dict[str, Any]) -> str:
    """Overall and per-subset rows: metrics in percent with 95% CIs, then the counts."""
    header = ["subset", *(_HEADERS[m] for m in FIDELITY_METRICS), *(c for c, _ in _COUNTS)]
    rows = [header]
    groups = [("(all)", report["overall"]), *report["subsets"].items()]
    for name, group in groups:
        rows.append(
            [
                name,
                *(_percent(group, m) for m in FIDELITY_METRICS),
                *(str(group[key]) for _, key in _COUNTS),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title]
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

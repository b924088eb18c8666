"""Plain-text tables of the metrics for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ralign_tasks.scorers.atomic import RC_METRICS
from ralign_tasks.scorers.metrics import FIDELITY_METRICS

METRIC_LABELS = {
    "l_acc": "L-Acc",
    "s_corr": "S-Corr",
    "f_score": "F-Score",
    "rc": "RC",
    "rc_code": "RC (code)",
    "rc_precision": "Precision",
    "rc_f1": "F1",
    "outcome_acc": "Outcome acc",
}
_FIDELITY_COUNTS = (
    ("N", "n"),
    ("label-ok", "label_correct"),
    ("C", "meta_correct"),
    ("I", "meta_incorrect"),
    ("PF", "meta_parse_fail"),
    ("CF", "meta_call_fail"),
    ("no-verdict", "genrm_no_verdict"),
)
_RC_COUNTS = (
    ("N", "n"),
    ("scored", "scored"),
    ("empty", "skipped_empty"),
    (">10", "skipped_long"),
    ("judge-fail", "judge_failed"),
    ("ties", "outcome_tie"),
    ("no-verdict", "outcome_no_verdict"),
)


def _percent(value: float | None, ci: Sequence[float] | None) -> str:
    if value is None:
        return "n/a"
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


def format_report(title: str, report: dict[str, Any]) -> str:
    """Fidelity metrics overall and per subset, in percent with 95% CIs, then the counts."""
    header = [
        "subset",
        *(METRIC_LABELS[m] for m in FIDELITY_METRICS),
        *(c for c, _ in _FIDELITY_COUNTS),
    ]
    rows = [header]
    for name, group in [("(all)", report["overall"]), *report["subsets"].items()]:
        rows.append(
            [
                name,
                *(_percent(group[m], group["ci"][m]) for m in FIDELITY_METRICS),
                *(str(group[key]) for _, key in _FIDELITY_COUNTS),
            ]
        )
    return format_table(title, rows)


def format_rc_report(title: str, report: dict[str, Any]) -> str:
    """Rationale Consistency metrics overall and per domain, then the counts."""
    metrics = (*RC_METRICS, "outcome_acc")
    header = ["domain", *(METRIC_LABELS[m] for m in metrics), *(c for c, _ in _RC_COUNTS)]
    rows = [header]
    for name, group in [("(all)", report["overall"]), *report["domains"].items()]:
        rows.append(
            [
                name,
                *(_percent(group[m], group[f"{m}_ci"]) for m in metrics),
                *(str(group[key]) for _, key in _RC_COUNTS),
            ]
        )
    return format_table(title, rows)

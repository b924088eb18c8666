"""The ``ralign report`` comparison table: rows = GenRM (or GenRM and subset), columns =
benchmark and metric in percent with 95% CIs and the failure counts, as a rich terminal table,
Markdown or CSV, and the R-Align repository's ``results_summary.csv``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from ralign_tasks.protocols import TASKS, get_task, metric_label
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.report.runs import TaskResult, task_columns

# The R-Align repository's benchmark names in results_summary.csv.
SUMMARY_BENCHES = {spec.task: spec.folder for spec in FIDELITY.tasks}
_SUMMARY_METRICS = (
    ("l_acc", "label_acc"),
    ("s_corr", "spurious_correctness"),
    ("f_score", "fidelity_score"),
)


@dataclass(frozen=True)
class Column:
    task: str
    key: str
    is_metric: bool

    @property
    def label(self) -> str:
        return f"{get_task(self.task).short} {metric_label(self.key)}"


@dataclass
class Table:
    """Header columns and rows of (GenRM, subset, results by task)."""

    columns: list[Column]
    rows: list[tuple[str, str, dict[str, TaskResult]]]
    by_subset: bool


def build_table(results: list[TaskResult], by_subset: bool) -> Table:
    """Arrange results (one per GenRM and task: see :func:`latest_runs`) by GenRM, and by
    subset with ``by_subset``."""
    rows: dict[tuple[str, str], dict[str, TaskResult]] = {}
    for result in results:
        rows.setdefault((result.genrm, ""), {})[result.task] = result
        if by_subset:
            for part in result.subsets:
                rows.setdefault((result.genrm, part.subset or ""), {})[result.task] = part
    present = {task for row in rows.values() for task in row}
    columns = []
    for task in (t for t in TASKS if t in present):
        metrics, counts = task_columns(task, details=False)
        columns += [Column(task, m, True) for m in metrics]
        columns += [Column(task, c, False) for c in ("n", *counts)]
    ordered = sorted(rows.items(), key=lambda item: item[0])
    return Table(columns, [(g, s, r) for (g, s), r in ordered], by_subset)


def _value(result: TaskResult | None, column: Column) -> Any:
    if result is None:
        return None
    if column.key == "n":
        return result.n
    if column.is_metric:
        return result.values.get(column.key)
    return result.counts.get(column.key)


def cell_text(result: TaskResult | None, column: Column) -> str:
    """A metric in percent with its 95% CI (``50.0 [25.0, 75.0]``) or a count; blank when
    unknown or undefined."""
    value = _value(result, column)
    if value is None:
        return ""
    if not column.is_metric:
        return str(value)
    ci = result.ci.get(column.key) if result else None
    interval = f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""
    return f"{value * 100:.1f}{interval}"


def _text_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["GenRM", *(["subset"] if table.by_subset else []), *(c.label for c in table.columns)]
    rows = [
        [genrm, *([subset or "(all)"] if table.by_subset else [])]
        + [cell_text(results.get(c.task), c) for c in table.columns]
        for genrm, subset, results in table.rows
    ]
    return header, rows


def rich_text(title: str, header: list[str], rows: list[list[str]]) -> str:
    """Rows as a rich table (first two columns left-aligned, the rest right-aligned), as wide
    as its content and title: a wide report scrolls rather than folding its cells."""
    from rich.console import Console
    from rich.table import Table as RichTable

    grid = RichTable(title=title)
    for index, name in enumerate(header):
        grid.add_column(name, justify="left" if index < 2 else "right", overflow="fold")
    for row in rows:
        grid.add_row(*row)
    widths = [max(len(text) for text in column) for column in zip(header, *rows, strict=True)]
    width = max(sum(w + 3 for w in widths) + 1, len(title) + 4)
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(grid)
    return console.export_text()


def markdown_text(header: list[str], rows: list[list[str]], title: str | None = None) -> str:
    """Rows as a Markdown table, after a title line when given."""
    lines = [title, ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_rich(table: Table) -> str:
    """The table as rich renders it for a terminal."""
    return rich_text("R-Align comparison (percent, 95% CI)", *_text_rows(table))


def render_markdown(table: Table) -> str:
    """The table in Markdown."""
    return markdown_text(*_text_rows(table))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.4f}"


def render_csv(table: Table) -> str:
    """The table as CSV: metrics in percent with ``.ci_low``/``.ci_high`` columns, counts as
    integers, blanks where unknown."""
    header = ["genrm", "subset"]
    for column in table.columns:
        name = f"{column.task}.{column.key}"
        header += [name, f"{name}.ci_low", f"{name}.ci_high"] if column.is_metric else [name]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for genrm, subset, results in table.rows:
        row = [genrm, subset]
        for column in table.columns:
            result = results.get(column.task)
            value = _value(result, column)
            if not column.is_metric:
                row.append("" if value is None else str(value))
                continue
            ci = result.ci.get(column.key) if result else None
            row += [_percent(value), _percent(ci[0] if ci else None)]
            row.append(_percent(ci[1] if ci else None))
        writer.writerow(row)
    return out.getvalue()


def render_summary_csv(table: Table) -> str:
    """The R-Align repository's ``results_summary.csv``: ``model`` then
    ``<bench>__label_acc,<bench>__spurious_correctness,<bench>__fidelity_score`` for each
    benchmark present (sorted by name), in percent with four decimals, blank where unknown;
    overall rows only."""
    present = {task for _, subset, results in table.rows if not subset for task in results}
    benches = sorted((SUMMARY_BENCHES[t], t) for t in SUMMARY_BENCHES if t in present)
    header = ["model"] + [f"{b}__{name}" for b, _ in benches for _, name in _SUMMARY_METRICS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for genrm, subset, results in table.rows:
        if subset:
            continue
        row = [genrm]
        for _, task in benches:
            result = results.get(task)
            row += [_percent(result.values.get(m) if result else None) for m, _ in _SUMMARY_METRICS]
        writer.writerow(row)
    return out.getvalue()


RENDERERS = {"table": render_rich, "markdown": render_markdown, "csv": render_csv}

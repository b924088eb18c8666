"""The ``ralign report`` comparison table: rows = GenRM (or GenRM and subset), columns =
benchmark and metric in percent with 95% CIs and the failure counts, as a rich terminal table,
Markdown or CSV, and the R-Align repository's ``results_summary.csv``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from ralign_tasks.identity import DEFAULT_MAX_FAILURE_RATE
from ralign_tasks.protocols import (
    PROTOCOLS,
    TASKS,
    USAGE_LABELS,
    get_task,
    metric_label,
    protocol_of,
)
from ralign_tasks.report.console import UNDEFINED, column_chunks, percent_text, terminal_columns
from ralign_tasks.report.runs import TaskResult, task_columns

# Marks the metrics of a run whose requests failed too often (see ``Table.unusable``).
UNUSABLE_MARK = "!"
# The R-Align repository's benchmark names in results_summary.csv, of the tasks whose
# protocol has columns there.
SUMMARY_BENCHES = {spec.task: spec.folder for p in PROTOCOLS if p.summary_csv for spec in p.tasks}


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
    """Header columns and rows of (GenRM, subset, results by task); ``details`` adds the
    failure counts to the terminal table (Markdown and CSV always have them)."""

    columns: list[Column]
    rows: list[tuple[str, str, dict[str, TaskResult]]]
    by_subset: bool
    details: bool = False
    # (GenRM row, task) -> why the run's numbers are not usable (its failure counts); its
    # metric cells carry UNUSABLE_MARK and a footnote says why.
    unusable: dict[tuple[str, str], str] = field(default_factory=dict)
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE

    def flagged(self, genrm: str, task: str) -> bool:
        return (genrm, task) in self.unusable

    def footnote(self) -> str:
        """The lines under the table naming each marked run's failures ('' when none)."""
        if not self.unusable:
            return ""
        lines = [
            f"{UNUSABLE_MARK} not usable: at least {self.max_failure_rate:g} of the run's "
            "requests of one role failed (--max-failure-rate):"
        ]
        lines += [f"  {genrm} on {get_task(task).short}: {why}"
                  for (genrm, task), why in sorted(self.unusable.items())]  # fmt: skip
        return "\n".join(lines) + "\n"


def build_table(
    results: list[TaskResult],
    by_subset: bool,
    details: bool = False,
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
) -> Table:
    """Arrange results (one per GenRM and task: see :func:`latest_runs`) by GenRM, and by
    subset with ``by_subset``; a run whose GenRM or judge failed on at least
    ``max_failure_rate`` of its requests is marked."""
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
        schema = protocol_of(task).schema
        # A metric of an option no run had on (the swap metrics) is no column at all.
        shown = [
            m for m in metrics
            if schema.spec(m).option is None
            or any(row.get(task) and row[task].values.get(m) is not None for row in rows.values())
        ]  # fmt: skip
        columns += [Column(task, m, True) for m in shown]
        columns += [Column(task, c, False) for c in ("n", *counts)]
        if any(row.get(task) and row[task].usage for row in rows.values()):
            columns += [Column(task, key, False) for key in USAGE_LABELS]
    ordered = sorted(rows.items(), key=lambda item: item[0])
    unusable = {
        (result.genrm, result.task): why
        for result in results
        if (why := result.unusable(max_failure_rate))
    }  # fmt: skip
    return Table(columns, [(g, s, r) for (g, s), r in ordered], by_subset, details, unusable,
                 max_failure_rate)  # fmt: skip


def _value(result: TaskResult | None, column: Column) -> Any:
    if result is None:
        return None
    if column.key == "n":
        return result.n
    if column.is_metric:
        return result.values.get(column.key)
    if column.key in USAGE_LABELS:
        return result.usage.get(column.key)
    return result.counts.get(column.key)


def cell_text(result: TaskResult | None, column: Column, flagged: bool = False) -> str:
    """A metric in percent with its 95% CI (``50.0 [25.0, 75.0]``), marked when ``flagged``
    (the run's numbers are not usable), or a count; blank when unknown or undefined."""
    value = _value(result, column)
    if column.key in USAGE_LABELS and value is not None:
        return f"{value:.4f}" if column.key == "cost_usd" else f"{value:.0f}"
    if value is None or not column.is_metric:
        return UNDEFINED if value is None else str(value)
    text = percent_text(value, result.ci.get(column.key) if result else None)
    return f"{text} {UNUSABLE_MARK}" if flagged else text


def _text_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["GenRM", *(["subset"] if table.by_subset else []), *(c.label for c in table.columns)]
    rows = [
        [genrm, *([subset or "(all)"] if table.by_subset else [])]
        + [cell_text(results.get(c.task), c, table.flagged(genrm, c.task)) for c in table.columns]
        for genrm, subset, results in table.rows
    ]
    return header, rows


def _widths(header: list[str], rows: list[list[str]]) -> list[int]:
    return [
        max(len(line) for text in column for line in text.splitlines() or [""])
        for column in zip(header, *rows, strict=True)
    ]


def rich_width(header: list[str], rows: list[list[str]]) -> int:
    """The width of :func:`rich_text`'s table in one part."""
    return sum(w + 3 for w in _widths(header, rows)) + 1


def rich_text(
    title: str,
    header: list[str],
    rows: list[list[str]],
    left: int = 2,
    columns: int | None = None,
) -> str:
    """Rows as a rich table (the first ``left`` columns left-aligned, the rest
    right-aligned) within ``columns`` characters (default: the terminal's, see
    :func:`terminal_columns`): a wider table is printed as several, each repeating the first
    ``left`` columns, and a cell still too wide (a long GenRM name) folds. Every text is
    printed as it is: names are the user's (a GenRM called ``Qwen3-8B[awq]`` or ``[/bold]``),
    never read as rich markup or emoji codes."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    limit = columns or terminal_columns()
    widths = _widths(header, rows)
    parts = []
    for number, chunk in enumerate(column_chunks(widths, left, limit - 1, 3)):
        shown = [*range(left), *chunk]
        grid = RichTable(title=Text(title if number == 0 else f"{title} (continued)"))
        for index in shown:
            justify = "left" if index < left else "right"
            grid.add_column(Text(header[index]), justify=justify, overflow="fold")
        for row in rows:
            grid.add_row(*(Text(row[index]) for index in shown))
        natural = max(sum(widths[i] + 3 for i in shown) + 1, len(title) + 4)
        console = Console(file=io.StringIO(), width=min(natural, limit), record=True)
        console.print(grid)
        parts.append(console.export_text())
    return "\n".join(parts)


def markdown_text(header: list[str], rows: list[list[str]], title: str | None = None) -> str:
    """Rows as a Markdown table, after a title line when given; a ``|`` in a cell (a GenRM's
    name) is escaped, so that it stays in its cell."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [title, ""] if title else []
    lines += [line(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"


def render_rich(table: Table) -> str:
    """The table for a terminal: one table per benchmark family, a row per GenRM (and subset)
    and benchmark, the family's metrics in percent with 95% CIs, the item count, and with
    ``details`` the failure counts; about 120 columns wide without them."""
    families: dict[str, list[str]] = {}
    for column in table.columns:
        tasks = families.setdefault(protocol_of(column.task).name, [])
        if column.task not in tasks:
            tasks.append(column.task)
    parts = []
    for tasks in families.values():
        protocol = protocol_of(tasks[0])
        _, counts = task_columns(tasks[0], details=False)
        in_family = [c for c in table.columns if c.task in tasks and c.is_metric]
        metrics = list(dict.fromkeys(c.key for c in in_family))
        paid = [k for k in USAGE_LABELS if any(c.key == k and c.task in tasks
                                               for c in table.columns)]  # fmt: skip
        keys = [*metrics, "n", *((*counts, *paid) if table.details else ())]
        # A family of one task is named by the title: no benchmark column.
        benchmark = ["benchmark"] if len(protocol.tasks) > 1 else []
        header = [
            "GenRM",
            *(["subset"] if table.by_subset else []),
            *benchmark,
            *(metric_label(k) for k in keys),
        ]
        rows = [
            [genrm, *([subset or "(all)"] if table.by_subset else [])]
            + ([get_task(task).short] if benchmark else [])
            + [
                cell_text(results[task], Column(task, k, k in metrics), table.flagged(genrm, task))
                for k in keys
            ]
            for genrm, subset, results in table.rows
            for task in tasks
            if task in results
        ]
        title = f"{protocol.title} (percent, 95% CI)"
        left = len(header) - len(keys)
        if rich_width(header, rows) > terminal_columns():
            # The CIs of the metric cells under their values (then, if need be, in parts).
            rows = [
                row[:left] + [cell.replace(" [", "\n[", 1) for cell in row[left:]] for row in rows
            ]
        parts.append(rich_text(title, header, rows, left))
    return "\n".join(parts) + table.footnote()


def render_markdown(table: Table) -> str:
    """The table in Markdown."""
    footnote = table.footnote()
    return markdown_text(*_text_rows(table)) + (f"\n{footnote}" if footnote else "")


def _percent(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value * 100:.4f}"


def render_csv(table: Table) -> str:
    """The table as CSV: metrics in percent with ``.ci_low``/``.ci_high`` columns, counts as
    integers, blanks where unknown; ``unusable`` names the runs of the row whose requests
    failed too often (see :class:`Table`)."""
    header = ["genrm", "subset"]
    for column in table.columns:
        name = f"{column.task}.{column.key}"
        header += [name, f"{name}.ci_low", f"{name}.ci_high"] if column.is_metric else [name]
    header.append("unusable")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for genrm, subset, results in table.rows:
        row = [genrm, subset]
        for column in table.columns:
            result = results.get(column.task)
            value = _value(result, column)
            if not column.is_metric:
                row.append(cell_text(result, column) if value is not None else UNDEFINED)
                continue
            ci = result.ci.get(column.key) if result else None
            row += [_percent(value), _percent(ci[0] if ci else None)]
            row.append(_percent(ci[1] if ci else None))
        row.append("; ".join(f"{get_task(task).short}: {table.unusable[(genrm, task)]}"
                             for task in results if table.flagged(genrm, task)))  # fmt: skip
        writer.writerow(row)
    return out.getvalue()


def render_summary_csv(table: Table) -> str:
    """The R-Align repository's ``results_summary.csv``: ``model`` then the columns of each
    benchmark present whose protocol has some (``summary_csv``: for R-Align fidelity
    ``<bench>__label_acc,<bench>__spurious_correctness,<bench>__fidelity_score``; sorted by
    name), in percent with four decimals, blank where unknown; overall rows only."""
    present = {task for _, subset, results in table.rows if not subset for task in results}
    benches = sorted((SUMMARY_BENCHES[t], t) for t in SUMMARY_BENCHES if t in present)
    header = ["model"] + [
        f"{bench}__{name}" for bench, task in benches for _, name in protocol_of(task).summary_csv
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for genrm, subset, results in table.rows:
        if subset:
            continue
        row = [genrm]
        for _, task in benches:
            result = results.get(task)
            row += [
                _percent(result.values.get(m) if result else None)
                for m, _ in protocol_of(task).summary_csv
            ]
        writer.writerow(row)
    return out.getvalue()


RENDERERS = {"table": render_rich, "markdown": render_markdown, "csv": render_csv}

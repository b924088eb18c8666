"""``ralign report --compare A B``: is one GenRM's headline metric really different from
another's on the same items? Per benchmark both ran, a paired bootstrap over the items both
judged, as the benchmark's protocol defines it
(:meth:`~ralign_tasks.protocols.base.Protocol.paired_difference`: L-Acc, S-Corr and F-Score
for R-Align fidelity, RC for Rationale Consistency, each label benchmark's official headline),
rendered like the comparison table."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ralign_tasks.protocols import TASKS, metric_label, protocol_of
from ralign_tasks.report.console import UNDEFINED
from ralign_tasks.report.runs import (
    RunItem,
    TaskResult,
    latest_runs,
    load_runs,
    no_samples_hint,
)
from ralign_tasks.report.tables import markdown_text, rich_text
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.stats import DRAWS


@dataclass(frozen=True)
class Difference:
    """One metric of one benchmark: A's and B's values, A - B with its 95% CI and p-value
    (fractions; ``None`` where undefined)."""

    task: str
    metric: str
    n: int
    first: float | None
    second: float | None
    difference: float | None
    ci: list[float] | None
    p_value: float | None


@dataclass(frozen=True)
class Comparison:
    first: str
    second: str
    draws: int
    differences: list[Difference]


def select_runs(spec: str, loaded: Sequence[TaskResult], warnings: list[str]) -> list[TaskResult]:
    """The results one side of ``--compare`` names: a GenRM among the already loaded runs or,
    when no GenRM has that name, a path (a run, or a folder of runs of one GenRM)."""
    results = [r for r in loaded if r.genrm == spec]
    if not results and Path(spec).exists():
        found, path_warnings = load_runs([spec])
        warnings.extend(path_warnings)
        results = latest_runs(found, warnings)
        genrms = sorted({r.genrm for r in results})
        if len(genrms) > 1:
            raise UserError(
                f"--compare {spec}: runs of several GenRMs ({', '.join(genrms)}); "
                "pass a single run, or pass the folder as PATH and name the GenRMs"
            )
        if not results:
            raise UserError(f"--compare {spec}: no results found there")
    if not results:
        known = sorted({r.genrm for r in loaded}) or ["none"]
        raise UserError(
            f"--compare {spec}: neither a GenRM of the given runs nor a path "
            f"(GenRMs: {', '.join(known)})"
        )
    return results


def _keyed(items: Sequence[RunItem]) -> dict[tuple[str, int], RunItem]:
    """Items by (id, occurrence): repeated ids (Inspect epochs) pair in order."""
    seen: Counter[str] = Counter()
    keyed = {}
    for item in items:
        keyed[(item.id, seen[item.id])] = item
        seen[item.id] += 1
    return keyed


def paired_items(
    first: TaskResult, second: TaskResult, warnings: list[str]
) -> tuple[list[RunItem], list[RunItem]]:
    """The items both runs judged, in the same order. Items of only one run, or whose record
    differs between the runs (another data revision), are left out with a warning."""
    a, b = _keyed(first.items), _keyed(second.items)
    shared = [key for key in a if key in b]
    unpaired = len(a) + len(b) - 2 * len(shared)
    if unpaired:
        warnings.append(
            f"{first.task}: {len(a) - len(shared)} items only in {first.genrm} and "
            f"{len(b) - len(shared)} only in {second.genrm}; compared on the {len(shared)} "
            "items in both"
        )
    differing = [key for key in shared if a[key].fingerprint != b[key].fingerprint]
    if differing:
        ids = ", ".join(key[0] for key in differing[:5])
        warnings.append(
            f"{first.task}: {len(differing)} items have the same id but different data in the "
            f"two runs (e.g. {ids}); left out"
        )
        left_out = set(differing)
        shared = [key for key in shared if key not in left_out]
    return [a[key] for key in shared], [b[key] for key in shared]


def _by_task(results: Sequence[TaskResult]) -> dict[str, TaskResult]:
    """One side's runs by task (one GenRM, one run per task: see :func:`select_runs`)."""
    return {result.task: result for result in results}


def compare(
    first: Sequence[TaskResult],
    second: Sequence[TaskResult],
    warnings: list[str],
    *,
    draws: int = DRAWS,
) -> Comparison:
    """A - B per benchmark both sides ran and per compared metric of its protocol
    (:meth:`~ralign_tasks.protocols.base.Protocol.headline_metrics`), over their paired
    items."""
    runs_a, runs_b = _by_task(first), _by_task(second)
    name_a, name_b = next(iter(runs_a.values())).genrm, next(iter(runs_b.values())).genrm
    differences = []
    for task in (t for t in TASKS if t in runs_a and t in runs_b):
        a, b = runs_a[task], runs_b[task]
        if not a.items or not b.items:
            missing = a if not a.items else b
            warnings.append(
                f"{missing.source}: {missing.genrm} on {task}: {no_samples_hint(missing)}; "
                "not compared"
            )
            continue
        items_a, items_b = paired_items(a, b, warnings)
        if not items_a:
            warnings.append(f"{task}: {a.genrm} and {b.genrm} share no item; not compared")
            continue
        protocol = protocol_of(task)
        stats = protocol.paired_difference(
            [item.outcome for item in items_a],
            [item.outcome for item in items_b],
            draws=draws,
        )
        differences += [Difference(task, m, **stats[m]) for m in protocol.headline_metrics()]
    if not differences:
        raise UserError(f"--compare: {name_a} and {name_b} share no benchmark with samples")
    return Comparison(name_a, name_b, draws, differences)


def _percent(value: float | None, sign: bool = False) -> str:
    if value is None:
        return UNDEFINED
    return f"{value * 100:+.1f}" if sign else f"{value * 100:.1f}"


def _p_text(p_value: float | None) -> str:
    return UNDEFINED if p_value is None else f"{p_value:.4f}"


def _text_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["benchmark", "metric", "N", "A", "B", "A - B", "95% CI", "p"]
    rows = []
    for d in comparison.differences:
        ci = f"[{_percent(d.ci[0], True)}, {_percent(d.ci[1], True)}]" if d.ci else UNDEFINED
        rows.append(
            [
                d.task.removeprefix("ralign_"),
                metric_label(d.metric),
                str(d.n),
                _percent(d.first),
                _percent(d.second),
                _percent(d.difference, True),
                ci,
                _p_text(d.p_value),
            ]
        )
    return header, rows


def _title(comparison: Comparison) -> str:
    return (
        f"A = {comparison.first}, B = {comparison.second}: paired bootstrap over shared items "
        f"({comparison.draws} draws), percent"
    )


def render_rich(comparison: Comparison) -> str:
    return rich_text(_title(comparison), *_text_rows(comparison))


def render_markdown(comparison: Comparison) -> str:
    return markdown_text(*_text_rows(comparison), title=_title(comparison))


def render_csv(comparison: Comparison) -> str:
    """Fractions, unrounded, one row per benchmark and metric; ``n/a`` where undefined."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["genrm_a", "genrm_b", "task", "metric", "n", "a", "b", "a_minus_b", "ci_low", "ci_high",
         "p_value"]
    )  # fmt: skip

    def cell(value: float | None) -> str:
        return UNDEFINED if value is None else repr(value)

    for d in comparison.differences:
        low, high = d.ci if d.ci else (None, None)
        writer.writerow(
            [comparison.first, comparison.second, d.task, d.metric, d.n, cell(d.first),
             cell(d.second), cell(d.difference), cell(low), cell(high), cell(d.p_value)]
        )  # fmt: skip
    return out.getvalue()


RENDERERS = {"table": render_rich, "markdown": render_markdown, "csv": render_csv}

"""``ralign report --agreement RUN_A RUN_B [RUN_C …]``: how far judges agree when they grade the
same GenRM outputs (runs re-judged with ``ralign rejudge``, or one judge twice at its sampling
temperature).

Each argument is one *rater*: every judged run under it. Items are matched by (GenRM,
benchmark, item id, what was graded): the grades each protocol declares
(:meth:`~ralign_tasks.protocols.base.Protocol.judge_grades`: an R-Align order's Correct or
Incorrect, a human rationale matched or not by Rationale Consistency's MetaJudge). A grade
counts where every rater gave it (one a rater could not give, a ParseFail or a failed call, is
counted, not compared). Per benchmark: raw agreement, Cohen's κ (Fleiss' κ for three or more
raters) and Krippendorff's α (nominal) with bootstrap CIs over items (all of an item's grades
drawn together), the confusion
matrix of two raters, and Kendall's τ between the raters' rankings of the GenRMs by the
benchmark's headline metric (over GenRMs present in every rater's runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ralign_tasks.protocols import TASKS, get_task, metric_label, protocol_of
from ralign_tasks.report.console import UNDEFINED
from ralign_tasks.report.runs import TaskResult, latest_runs, load_runs
from ralign_tasks.report.tables import markdown_text, rich_text
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.stats import (
    DRAWS,
    alpha_interval,
    kappa,
    kappa_interval,
    krippendorff_alpha,
)

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")


@dataclass
class Rater:
    """One argument of ``--agreement``: its runs by (GenRM, task)."""

    name: str
    runs: dict[tuple[str, str], TaskResult]


@dataclass
class BenchmarkAgreement:
    """The agreement of the raters on one benchmark."""

    task: str
    raters: list[str]
    items: int  # graded by every rater
    ungraded: int  # sent to the meta-judge but not graded by some rater
    raw: float | None
    kappa: float | None
    kappa_ci: list[float] | None
    kind: str  # "Cohen" or "Fleiss"
    confusion: list[list[int]] | None  # two raters: rows A, columns B, true then false grades
    alpha: float | None = None  # Krippendorff's α (nominal)
    alpha_ci: list[float] | None = None
    metric: str = ""  # the headline metric the GenRMs are ranked by
    scores: dict[str, list[float | None]] = field(default_factory=dict)  # GenRM -> per rater
    tau: dict[str, float | None] = field(default_factory=dict)  # "A vs B" -> Kendall's tau


def _grades(result: TaskResult) -> dict[tuple[str, str], bool | None]:
    """The judge's grade of everything it was asked to grade (``None``: not graded)."""
    return {(item.id, key): grade for item in result.items for key, grade in item.grades.items()}


def _kendall_tau(first: Sequence[float], second: Sequence[float]) -> float | None:
    if len(first) < 2:
        return None
    from scipy.stats import kendalltau

    value = kendalltau(first, second).statistic
    return None if value is None or math.isnan(value) else float(value)


def agreement(raters: list[Rater], *, draws: int = DRAWS) -> list[BenchmarkAgreement]:
    """The agreement of the raters on every judged benchmark they all ran."""
    names = [rater.name for rater in raters]
    report = []
    for task in TASKS:
        genrms = sorted(set.intersection(*({g for g, t in r.runs if t == task} for r in raters)))
        if not genrms:
            continue
        metric = protocol_of(task).schema.headline
        rows, items, ungraded = [], [], 0
        scores: dict[str, list[float | None]] = {}
        for genrm in genrms:
            runs = [rater.runs[(genrm, task)] for rater in raters]
            scores[genrm] = [run.values.get(metric) for run in runs]
            graded = [_grades(run) for run in runs]
            shared = set.intersection(*(set(g) for g in graded))
            for key in sorted(shared):
                verdicts = [g[key] for g in graded]
                if any(v is None for v in verdicts):
                    ungraded += 1
                    continue
                rows.append([int(v) for v in verdicts])
                items.append((genrm, key[0]))  # an item's grades are drawn together
        grades = np.asarray(rows, dtype=int).reshape(-1, len(raters))
        confusion = None
        if len(raters) == 2:
            confusion = [
                [int(np.sum((grades[:, 0] == a) & (grades[:, 1] == b))) for b in (1, 0)]
                for a in (1, 0)
            ]
        taus = {}
        for i in range(len(raters)):
            for j in range(i + 1, len(raters)):
                pairs = [(s[i], s[j]) for s in scores.values()
                         if s[i] is not None and s[j] is not None]  # fmt: skip
                taus[f"{names[i]} vs {names[j]}"] = _kendall_tau(*zip(*pairs, strict=True)) if (
                    pairs) else None  # fmt: skip
        report.append(
            BenchmarkAgreement(
                task=task,
                raters=names,
                items=len(grades),
                ungraded=ungraded,
                raw=float(np.mean(grades.min(axis=1) == grades.max(axis=1)))
                if len(grades)
                else None,
                kappa=kappa(grades) if len(grades) else None,
                kappa_ci=kappa_interval(grades, items, draws) if len(grades) else None,
                kind="Cohen" if len(raters) == 2 else "Fleiss",
                confusion=confusion,
                alpha=krippendorff_alpha(grades) if len(grades) else None,
                alpha_ci=alpha_interval(grades, items, draws) if len(grades) else None,
                metric=metric,
                scores=scores,
                tau=taus,
            )
        )
    return report


def load_raters(paths: Sequence[str], warnings: list[str]) -> list[Rater]:
    """One rater per path: its runs of judged benchmarks (the newest per GenRM and benchmark),
    named by the judge its items record, else by the path."""
    raters = []
    for path in paths:
        results, found_warnings = load_runs([path])
        warnings += found_warnings
        runs = {(r.model or r.genrm, r.task): r for r in latest_runs(results, warnings)
                if protocol_of(r.task).uses_judge and r.items}  # fmt: skip
        if not runs:
            raise UserError(f"--agreement {path}: no run of a judged benchmark with items")
        models = {r.judge_model for r in runs.values() if r.judge_model}
        name = models.pop() if len(models) == 1 else Path(path).name
        if name in (rater.name for rater in raters):
            name = f"{name} ({path})"
        raters.append(Rater(name, runs))
    return raters


def _number(value: float | None, digits: int = 3) -> str:
    return UNDEFINED if value is None else f"{value:.{digits}f}"


def _interval(ci: list[float] | None) -> str:
    return UNDEFINED if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_agreement(report: list[BenchmarkAgreement], markdown: bool = False) -> str:
    """The agreement per benchmark, then the confusion matrices and the headline metric per
    GenRM under each judge."""
    if not report:
        return "no benchmark was run by every rater\n"
    header = [
        "benchmark",
        "items",
        "ungraded",
        "raw agreement",
        "kappa",
        "95% CI",
        "alpha",
        "95% CI ",
        "tau (GenRM ranking)",
    ]
    rows = [
        [
            get_task(entry.task).short,
            str(entry.items),
            str(entry.ungraded),
            _number(entry.raw),
            f"{_number(entry.kappa)} ({entry.kind})",
            _interval(entry.kappa_ci),
            _number(entry.alpha),
            _interval(entry.alpha_ci),
            "; ".join(
                f"{pair}: {_number(tau)} ({metric_label(entry.metric)})"
                for pair, tau in entry.tau.items()
            ),
        ]
        for entry in report
    ]
    title = f"Meta-judge agreement: {' / '.join(report[0].raters)} (fractions, 0 to 1)"
    parts = [markdown_text(header, rows, title) if markdown else rich_text(title, header, rows, 1)]
    for entry in report:
        short = get_task(entry.task).short
        if entry.confusion is not None:
            first, second = entry.raters
            grades = protocol_of(entry.task).grade_names
            matrix = [[f"{first}: {grade}", *map(str, line)]
                      for grade, line in zip(grades, entry.confusion, strict=True)]  # fmt: skip
            head = ["", *(f"{second}: {grade}" for grade in grades)]
            caption = f"{short}: confusion matrix"
            parts.append(markdown_text(head, matrix, caption) if markdown
                         else rich_text(caption, head, matrix, 1))  # fmt: skip
        head = ["GenRM", *entry.raters]
        lines = [[genrm, *(_number(v * 100 if v is not None else None, 1) for v in values)]
                 for genrm, values in entry.scores.items()]  # fmt: skip
        caption = f"{short}: {metric_label(entry.metric)} (percent) under each judge"
        parts.append(markdown_text(head, lines, caption) if markdown
                     else rich_text(caption, head, lines, 1))  # fmt: skip
    return "\n".join(parts)


def plot_agreement(report: list[BenchmarkAgreement], out_dir: Path) -> list[Path]:
    """One figure per headline metric (``agreement_<metric>``, PNG and SVG): per benchmark,
    the metric per GenRM under each judge."""
    from matplotlib.figure import Figure

    by_metric: dict[str, list[BenchmarkAgreement]] = {}
    for entry in report:
        by_metric.setdefault(entry.metric, []).append(entry)
    paths = []
    for metric, entries in by_metric.items():
        figure = Figure(figsize=(4.5 * len(entries), 3.6), layout="constrained")
        axes = figure.subplots(1, len(entries), squeeze=False)[0]
        for ax, entry in zip(axes, entries, strict=True):
            genrms = list(entry.scores)
            width = 0.8 / len(entry.raters)
            for index, rater in enumerate(entry.raters):
                values = [entry.scores[g][index] for g in genrms]
                ax.bar(
                    [x + index * width for x in range(len(genrms))],
                    [v * 100 if v is not None else 0 for v in values],
                    width,
                    label=rater,
                )
            ax.set_xticks([x + width * (len(entry.raters) - 1) / 2 for x in range(len(genrms))])
            ax.set_xticklabels(genrms, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(f"{metric_label(metric)} (%)")
            ax.set_title(get_task(entry.task).short)
            ax.legend(fontsize=7)
        out_dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("png", "svg"):
            paths.append(out_dir / f"agreement_{metric}.{suffix}")
            figure.savefig(paths[-1])
    return paths


def agreement_summary(report: list[BenchmarkAgreement]) -> list[dict[str, Any]]:
    """The agreement as plain JSON types (for scripts)."""
    return [entry.__dict__ for entry in report]

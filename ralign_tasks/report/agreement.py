"""``ralign report --agreement RUN_A RUN_B [RUN_C …]``: how far meta-judges agree when they grade
the same GenRM outputs (runs re-judged with ``ralign rejudge``, or one meta-judge twice at its
sampling temperature).

Each argument is one *rater*: every R-Align fidelity run under it. Items are matched by (GenRM,
benchmark, item id, order); an item counts where every rater gave it a verdict, Correct or
Incorrect (items a rater could not grade, ParseFail or CallFail, are counted, not compared).
Per benchmark: raw agreement, Cohen's κ with a bootstrap CI over items (Fleiss' κ for three or
more raters), the confusion matrix of two raters, and Kendall's τ between the raters' rankings
of the GenRMs by F-Score (over GenRMs present in every rater's runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ralign_tasks.protocols import get_task
from ralign_tasks.protocols.fidelity import FIDELITY_TASKS
from ralign_tasks.report.console import UNDEFINED
from ralign_tasks.report.runs import TaskResult, latest_runs, load_runs
from ralign_tasks.report.tables import markdown_text, rich_text
from ralign_tasks.scorers.fidelity import MetaStatus
from ralign_tasks.scorers.lazy_modules import lazy_import

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")

GRADES = (MetaStatus.CORRECT, MetaStatus.INCORRECT)
DEFAULT_DRAWS = 2000
DEFAULT_SEED = 20260101


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
    confusion: list[list[int]] | None  # two raters: rows A, columns B, Correct then Incorrect
    f_scores: dict[str, list[float | None]] = field(default_factory=dict)  # GenRM -> per rater
    tau: dict[str, float | None] = field(default_factory=dict)  # "A vs B" -> Kendall's tau


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    """Cohen's κ of two raters' binary grades (1 = Correct); ``None`` where chance agreement
    is certain (both raters gave one grade only)."""
    observed = float(np.mean(first == second))
    p1, p2 = float(np.mean(first)), float(np.mean(second))
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def fleiss_kappa(grades: np.ndarray) -> float | None:
    """Fleiss' κ of binary grades (items x raters, 1 = Correct); ``None`` where chance
    agreement is certain."""
    items, raters = grades.shape
    correct = grades.sum(axis=1)
    counts = np.stack([correct, raters - correct], axis=1).astype(float)
    per_item = ((counts * (counts - 1)).sum(axis=1)) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / (items * raters)
    expected = float((shares**2).sum())
    observed = float(per_item.mean())
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def _kappa(grades: np.ndarray) -> float | None:
    if grades.shape[1] == 2:
        return cohen_kappa(grades[:, 0], grades[:, 1])
    return fleiss_kappa(grades)


def kappa_interval(
    grades: np.ndarray, draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED
) -> list[float] | None:
    """A 95% percentile bootstrap interval of κ over items (``None`` with fewer than two
    items, or where κ is undefined in some draws)."""
    if len(grades) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        value = _kappa(grades[rng.integers(0, len(grades), len(grades))])
        if value is None:
            return None
        values.append(value)
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def _grades(result: TaskResult) -> dict[tuple[str, int], MetaStatus | None]:
    """The meta-judge's verdict on every item and order sent to it (``None``: not graded)."""
    found: dict[tuple[str, int], MetaStatus | None] = {}
    for item in result.items:
        outcome = item.outcome
        orders = [(0, outcome.label_correct, outcome.meta)]
        if outcome.second is not None:
            orders.append((1, outcome.second.label_correct, outcome.second.meta))
        for slot, sent, meta in orders:
            if sent:
                found[(item.id, slot)] = meta if meta in GRADES else None
    return found


def _kendall_tau(first: Sequence[float], second: Sequence[float]) -> float | None:
    if len(first) < 2:
        return None
    from scipy.stats import kendalltau

    value = kendalltau(first, second).statistic
    return None if value is None or math.isnan(value) else float(value)


def agreement(raters: list[Rater], *, draws: int = DEFAULT_DRAWS) -> list[BenchmarkAgreement]:
    """The agreement of the raters on every fidelity benchmark they all ran."""
    names = [rater.name for rater in raters]
    report = []
    for task in FIDELITY_TASKS:
        genrms = sorted(set.intersection(*({g for g, t in r.runs if t == task} for r in raters)))
        if not genrms:
            continue
        rows, ungraded = [], 0
        f_scores: dict[str, list[float | None]] = {}
        for genrm in genrms:
            runs = [rater.runs[(genrm, task)] for rater in raters]
            f_scores[genrm] = [run.values.get("f_score") for run in runs]
            graded = [_grades(run) for run in runs]
            shared = set.intersection(*(set(g) for g in graded))
            for key in sorted(shared):
                verdicts = [g[key] for g in graded]
                if any(v is None for v in verdicts):
                    ungraded += 1
                    continue
                rows.append([int(v is MetaStatus.CORRECT) for v in verdicts])
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
                pairs = [(s[i], s[j]) for s in f_scores.values()
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
                kappa=_kappa(grades) if len(grades) else None,
                kappa_ci=kappa_interval(grades, draws) if len(grades) else None,
                kind="Cohen" if len(raters) == 2 else "Fleiss",
                confusion=confusion,
                f_scores=f_scores,
                tau=taus,
            )
        )
    return report


def load_raters(paths: Sequence[str], warnings: list[str]) -> list[Rater]:
    """One rater per path: its fidelity runs (the newest per GenRM and benchmark), named by
    the meta-judge its items record, else by the path."""
    raters = []
    for path in paths:
        results, found_warnings = load_runs([path])
        warnings += found_warnings
        runs = {(r.model or r.genrm, r.task): r for r in latest_runs(results, warnings)
                if r.task in FIDELITY_TASKS and r.items}  # fmt: skip
        if not runs:
            raise ValueError(f"--agreement {path}: no R-Align fidelity run with items")
        models = {r.judge_model for r in runs.values() if r.judge_model}
        name = models.pop() if len(models) == 1 else Path(path).name
        if name in (rater.name for rater in raters):
            name = f"{name} ({path})"
        raters.append(Rater(name, runs))
    return raters


def _number(value: float | None, digits: int = 3) -> str:
    return UNDEFINED if value is None else f"{value:.{digits}f}"


def format_agreement(report: list[BenchmarkAgreement], markdown: bool = False) -> str:
    """The agreement per benchmark, then the confusion matrices and the F-Scores."""
    if not report:
        return "no benchmark was run by every rater\n"
    header = [
        "benchmark",
        "items",
        "ungraded",
        "raw agreement",
        "kappa",
        "95% CI",
        "tau (F-Score ranking)",
    ]
    rows = [
        [
            get_task(entry.task).short,
            str(entry.items),
            str(entry.ungraded),
            _number(entry.raw),
            f"{_number(entry.kappa)} ({entry.kind})",
            UNDEFINED
            if entry.kappa_ci is None
            else f"[{entry.kappa_ci[0]:.3f}, {entry.kappa_ci[1]:.3f}]",
            "; ".join(f"{pair}: {_number(tau)}" for pair, tau in entry.tau.items()),
        ]
        for entry in report
    ]
    title = f"Meta-judge agreement: {' / '.join(report[0].raters)} (fractions, 0 to 1)"
    parts = [markdown_text(header, rows, title) if markdown else rich_text(title, header, rows, 1)]
    for entry in report:
        if entry.confusion is not None:
            first, second = entry.raters
            matrix = [[f"{first}: {grade.value}", *map(str, line)]
                      for grade, line in zip(GRADES, entry.confusion, strict=True)]  # fmt: skip
            head = ["", *(f"{second}: {grade.value}" for grade in GRADES)]
            caption = f"{get_task(entry.task).short}: confusion matrix"
            parts.append(markdown_text(head, matrix, caption) if markdown
                         else rich_text(caption, head, matrix, 1))  # fmt: skip
        head = ["GenRM", *entry.raters]
        lines = [[genrm, *(_number(v * 100 if v is not None else None, 1) for v in values)]
                 for genrm, values in entry.f_scores.items()]  # fmt: skip
        caption = f"{get_task(entry.task).short}: F-Score (percent) under each meta-judge"
        parts.append(markdown_text(head, lines, caption) if markdown
                     else rich_text(caption, head, lines, 1))  # fmt: skip
    return "\n".join(parts)


def plot_agreement(report: list[BenchmarkAgreement], out_dir: Path) -> list[Path]:
    """One figure: per benchmark, F-Score per GenRM under each meta-judge (PNG and SVG)."""
    from matplotlib.figure import Figure

    if not report:
        return []
    figure = Figure(figsize=(4.5 * len(report), 3.6), layout="constrained")
    axes = figure.subplots(1, len(report), squeeze=False)[0]
    for ax, entry in zip(axes, report, strict=True):
        genrms = list(entry.f_scores)
        width = 0.8 / len(entry.raters)
        for index, rater in enumerate(entry.raters):
            values = [entry.f_scores[g][index] for g in genrms]
            ax.bar(
                [x + index * width for x in range(len(genrms))],
                [v * 100 if v is not None else 0 for v in values],
                width,
                label=rater,
            )
        ax.set_xticks([x + width * (len(entry.raters) - 1) / 2 for x in range(len(genrms))])
        ax.set_xticklabels(genrms, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("F-Score (%)")
        ax.set_title(get_task(entry.task).short)
        ax.legend(fontsize=7)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "agreement_f_score.png", out_dir / "agreement_f_score.svg"]
    for path in paths:
        figure.savefig(path)
    return paths


def agreement_summary(report: list[BenchmarkAgreement]) -> list[dict[str, Any]]:
    """The agreement as plain JSON types (for scripts)."""
    return [entry.__dict__ for entry in report]

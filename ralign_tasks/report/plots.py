"""Plots and the downstream correlation of ``ralign report``.

The papers' picture, for each family that declares it (``Protocol.plot_pair``): label accuracy
against fidelity (how far each GenRM sits below the ``F-Score = L-Acc`` line is its spurious
correctness); every benchmark's headline metrics as bars; and which of the metrics tracks
downstream RLHF results (Pearson r and Spearman ρ over GenRMs). Figures are built with
matplotlib's object API (no pyplot state, no display needed) and saved as PNG and SVG.
"""

from __future__ import annotations

import csv
import math
import warnings as warning_filters
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ralign_tasks.protocols import TASKS, get_task, metric_label, protocol_of
from ralign_tasks.report.console import UNDEFINED
from ralign_tasks.report.runs import TaskResult, finite_or_none
from ralign_tasks.report.tables import markdown_text, rich_text
from ralign_tasks.scorers.errors import UserError

MIN_CORRELATION_POINTS = 3  # r of two points is ±1 by construction
_LABEL_FONT = 7
_LABEL_CHARS = 28  # longer GenRM names are cut at the front (their end tells models apart)
_LABELS_AT_ONE_POINT = 2  # more GenRMs at one point are "+N more"


def overall_by_task(results: Sequence[TaskResult]) -> dict[str, dict[str, TaskResult]]:
    """Overall results (one per GenRM and task: see :func:`latest_runs`) as task -> GenRM ->
    result, tasks in benchmark order, GenRMs sorted by name."""
    by_task: dict[str, dict[str, TaskResult]] = {}
    for result in results:
        by_task.setdefault(result.task, {})[result.genrm] = result
    return {task: dict(sorted(by_task[task].items())) for task in TASKS if task in by_task}


def _label(genrm: str) -> str:
    return genrm if len(genrm) <= _LABEL_CHARS else "…" + genrm[-(_LABEL_CHARS - 1) :]


def _point_label(genrms: list[str]) -> str:
    shown = ", ".join(_label(g) for g in genrms[:_LABELS_AT_ONE_POINT])
    rest = len(genrms) - _LABELS_AT_ONE_POINT
    return f"{shown} +{rest} more" if rest > 0 else shown


def _short(task: str) -> str:
    return get_task(task).short


def _percent_error(result: TaskResult, metric: str) -> tuple[float, float]:
    """Distances from the value to its CI ends, in percent (0 without a CI)."""
    value, ci = result.values[metric], result.ci.get(metric)
    if value is None or not ci:
        return 0.0, 0.0
    return max(0.0, (value - ci[0]) * 100), max(0.0, (ci[1] - value) * 100)


def _save(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    # SVG text stays text (editable, searchable), and without a creation date reruns on the
    # same runs give the same file.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "ralign"}):
        for suffix in ("png", "svg"):
            path = out_dir / f"{stem}.{suffix}"
            metadata = {"Date": None} if suffix == "svg" else None
            figure.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
            paths.append(path)
    return paths


def _grid(panels: int, columns: int, size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    rows = math.ceil(panels / columns)
    columns = min(columns, panels)
    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _genrm_colours(by_task: dict[str, dict[str, TaskResult]]) -> dict[str, str]:
    """One colour per GenRM, the same in every panel."""
    genrms = sorted({genrm for results in by_task.values() for genrm in results})
    return {genrm: f"C{index % 10}" for index, genrm in enumerate(genrms)}


def _bar_metrics(task: str) -> tuple[str, ...]:
    """What a task's bars show: its protocol's plotted pair, else its headline metrics."""
    protocol = protocol_of(task)
    return protocol.plot_pair or protocol.headline_metrics()


def lacc_vs_fscore_figure(by_task: dict[str, dict[str, TaskResult]]) -> Figure | None:
    """One panel per benchmark whose protocol has a plotted pair (R-Align fidelity: L-Acc,
    F-Score): a labelled point per GenRM at the pair's values with their 95% CIs, and the
    ``y = x`` line a GenRM without spurious correctness (and without judge failures) would
    sit on."""
    pairs = {task: protocol_of(task).plot_pair for task in by_task}
    points = {
        task: [r for r in by_task[task].values()
               if r.values[pair[0]] is not None and r.values[pair[1]] is not None]
        for task, pair in pairs.items()
        if pair
    }  # fmt: skip
    tasks = [task for task in points if points[task]]
    if not tasks:
        return None
    colours = _genrm_colours(by_task)
    figure, axes = _grid(len(tasks), 3, (4.6, 4.2))
    for axis, task in zip(axes, tasks, strict=True):
        x_metric, y_metric = pairs[task]  # type: ignore[misc]
        # GenRMs at the same point share one label instead of overprinting each other.
        labels: dict[tuple[float, float], list[str]] = {}
        ends = []
        for result in points[task]:
            x, y = result.values[x_metric] * 100, result.values[y_metric] * 100
            x_err, y_err = _percent_error(result, x_metric), _percent_error(result, y_metric)
            ends += [x - x_err[0], x + x_err[1], y - y_err[0], y + y_err[1]]
            labels.setdefault((x, y), []).append(result.genrm)
            axis.errorbar(
                x,
                y,
                xerr=[[e] for e in x_err],
                yerr=[[e] for e in y_err],
                fmt="o",
                color=colours[result.genrm],
                capsize=2,
                elinewidth=0.8,
            )
        for (x, y), names in labels.items():
            axis.annotate(
                _point_label(names), (x, y), xytext=(4, 4), textcoords="offset points",
                fontsize=_LABEL_FONT,
            )  # fmt: skip
        low, high = max(-2.0, min(ends) - 5), min(102.0, max(ends) + 5)
        axis.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
        axis.set_xlim(low, high)
        axis.set_ylim(low, high)
        axis.set_title(_short(task))
        axis.set_xlabel(f"{metric_label(x_metric)} (%)")
        axis.set_ylabel(f"{metric_label(y_metric)} (%)")
        axis.grid(alpha=0.3)
    figure.suptitle("Label accuracy vs what survives the rationale check (dashed: y = x)")
    return figure


def metric_bars_figure(by_task: dict[str, dict[str, TaskResult]]) -> Figure | None:
    """One panel per benchmark: bars per GenRM of its protocol's plotted pair (R-Align
    fidelity: L-Acc and F-Score), else of its headline metrics, with 95% CIs; a missing value
    shows "n/a" where its bar would be (never a zero bar)."""
    tasks = list(by_task)
    if not tasks:
        return None
    width = max(4.6, 0.9 * max(len(by_task[task]) for task in tasks) + 1.5)
    figure, axes = _grid(len(tasks), 1 if width > 9 else 3, (width, 3.8))
    for axis, task in zip(axes, tasks, strict=True):
        genrms = list(by_task[task])
        metrics = _bar_metrics(task)
        offsets = [0.4 * (index - (len(metrics) - 1) / 2) for index in range(len(metrics))]
        # C0, C1: matplotlib's first colours (tab:blue, tab:orange).
        for index, (offset, metric) in enumerate(zip(offsets, metrics, strict=True)):
            shown = [
                (index, by_task[task][g])
                for index, g in enumerate(genrms)
                if by_task[task][g].values[metric] is not None
            ]
            for index, genrm in enumerate(genrms):
                if by_task[task][genrm].values[metric] is None:
                    axis.text(index + offset, 1, UNDEFINED, ha="center", fontsize=_LABEL_FONT)
            axis.bar(
                [index + offset for index, _ in shown],
                [result.values[metric] * 100 for _, result in shown],
                width=0.4,
                color=f"C{index}",
                label=metric_label(metric),
                yerr=[
                    [_percent_error(r, metric)[0] for _, r in shown],
                    [_percent_error(r, metric)[1] for _, r in shown],
                ],
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
        axis.set_xticks(
            range(len(genrms)), [_label(g) for g in genrms], rotation=25, ha="right",
            fontsize=_LABEL_FONT,
        )  # fmt: skip
        # At least three slots wide, so one or two GenRMs do not get bars as wide as the panel.
        axis.set_xlim(-0.6, max(len(genrms), 3) - 0.4)
        axis.set_ylim(0, 100)
        axis.set_ylabel("percent")
        axis.set_title(_short(task))
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=_LABEL_FONT)
    figure.suptitle("Headline metrics per GenRM (95% CI)")
    return figure


# --- downstream ------------------------------------------------------------------------------


def read_downstream(path: str | Path) -> dict[str, float]:
    """GenRM -> downstream score from a CSV with a header naming ``model`` and ``score``
    columns (others ignored); errors name the file and line."""
    path = Path(path)
    # utf-8-sig: spreadsheet programs start their "CSV UTF-8" with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        if "model" not in columns or "score" not in columns:
            raise UserError(
                f"{path}: a downstream CSV needs a header with 'model' and 'score' columns; "
                f"found {columns or 'no header'}"
            )
        reader.fieldnames = columns
        scores: dict[str, float] = {}
        for row in reader:
            line = reader.line_num
            model, text = (row["model"] or "").strip(), (row["score"] or "").strip()
            if not model:
                raise UserError(f"{path}:{line}: empty model name")
            try:
                score = float(text)
            except ValueError:
                raise UserError(f"{path}:{line}: score {text!r} is not a number") from None
            if not math.isfinite(score):
                raise UserError(f"{path}:{line}: score {text!r} is not a finite number")
            if model in scores:
                raise UserError(f"{path}:{line}: model {model!r} appears twice")
            scores[model] = score
    if not scores:
        raise UserError(f"{path}: no rows")
    return scores


@dataclass(frozen=True)
class Correlation:
    """One task's metric against the downstream scores, over the GenRMs that have both."""

    task: str
    metric: str
    genrms: list[str]
    metric_values: list[float]
    downstream: list[float]
    pearson_r: float | None
    pearson_p: float | None
    spearman_rho: float | None
    spearman_p: float | None

    @property
    def n(self) -> int:
        return len(self.genrms)


def correlations(
    by_task: dict[str, dict[str, TaskResult]], downstream: dict[str, float], warnings: list[str]
) -> list[Correlation]:
    """Pearson r and Spearman ρ (scipy, two-sided p-values) of each task's metrics against the
    downstream scores; blank (``None``) with fewer than three GenRMs or constant values.
    GenRMs and downstream rows that do not match each other are named in warnings."""
    from scipy.stats import ConstantInputWarning, pearsonr, spearmanr

    genrms = {genrm for results in by_task.values() for genrm in results}
    unmatched = sorted(set(downstream) - genrms)
    if unmatched:
        warnings.append(f"downstream scores for unknown GenRMs, ignored: {', '.join(unmatched)}")
    missing = sorted(genrms - set(downstream))
    if missing:
        warnings.append(f"no downstream score for: {', '.join(missing)}")
    found = []
    for task, results in by_task.items():
        for metric in protocol_of(task).schema.metric_names:
            pairs = [
                (genrm, result.values[metric] * 100, downstream[genrm])
                for genrm, result in results.items()
                if genrm in downstream and result.values.get(metric) is not None
            ]
            names = [genrm for genrm, _, _ in pairs]
            xs = [x for _, x, _ in pairs]
            ys = [y for _, _, y in pairs]
            stats: list[float | None] = [None] * 4
            if len(pairs) >= MIN_CORRELATION_POINTS:
                with warning_filters.catch_warnings():
                    # Constant values give NaN, reported as a blank.
                    warning_filters.simplefilter("ignore", ConstantInputWarning)
                    pearson, spearman = pearsonr(xs, ys), spearmanr(xs, ys)
                stats = [
                    finite_or_none(pearson.statistic),
                    finite_or_none(pearson.pvalue),
                    finite_or_none(spearman.statistic),
                    finite_or_none(spearman.pvalue),
                ]
            found.append(Correlation(task, metric, names, xs, ys, *stats))
    return found


def _stat_text(value: float | None, digits: str = ".3f") -> str:
    return UNDEFINED if value is None else format(value, digits)


def _correlation_rows(found: Sequence[Correlation]) -> tuple[list[str], list[list[str]]]:
    header = ["benchmark", "metric", "GenRMs", "Pearson r", "p", "Spearman ρ", "p"]
    rows = [
        [
            _short(c.task),
            metric_label(c.metric),
            str(c.n),
            _stat_text(c.pearson_r),
            _stat_text(c.pearson_p, ".3g"),
            _stat_text(c.spearman_rho),
            _stat_text(c.spearman_p, ".3g"),
        ]
        for c in found
    ]
    return header, rows


def correlation_csv(found: Sequence[Correlation]) -> str:
    lines = ["task,metric,n,pearson_r,pearson_p,spearman_rho,spearman_p"]
    for c in found:
        cells = [c.pearson_r, c.pearson_p, c.spearman_rho, c.spearman_p]
        lines.append(
            ",".join(
                [c.task, c.metric, str(c.n), *(UNDEFINED if v is None else repr(v) for v in cells)]
            )
        )
    return "\n".join(lines) + "\n"


def render_correlations(found: Sequence[Correlation], fmt: str) -> str:
    """The correlations as a rich table (``table``) or Markdown (``markdown``), set off from
    the table printed before them by a blank line."""
    title = "Correlation with downstream scores (over GenRMs)"
    if fmt == "markdown":
        return "\n" + markdown_text(*_correlation_rows(found), title=title)
    return "\n" + rich_text(title, *_correlation_rows(found))


def downstream_figure(found: Sequence[Correlation]) -> Figure | None:
    """One panel per (task, metric) with at least two GenRMs: the metric against the downstream
    score, a labelled point per GenRM, a least-squares line, r and ρ with their p-values in the
    title."""
    shown = [c for c in found if c.n >= 2]
    if not shown:
        return None
    figure, axes = _grid(len(shown), 3, (4.4, 3.8))
    for axis, c in zip(axes, shown, strict=True):
        axis.scatter(c.metric_values, c.downstream)
        for name, x, y in zip(c.genrms, c.metric_values, c.downstream, strict=True):
            axis.annotate(
                _label(name), (x, y), xytext=(4, 4), textcoords="offset points",
                fontsize=_LABEL_FONT,
            )  # fmt: skip
        if len(set(c.metric_values)) > 1:
            from numpy import polyfit

            slope, intercept = polyfit(c.metric_values, c.downstream, 1)
            ends = [min(c.metric_values), max(c.metric_values)]
            axis.plot(ends, [slope * x + intercept for x in ends], "--", color="grey", lw=0.8)
        if c.pearson_r is None:
            stats = f"{c.n} GenRMs: too few, or constant values"
        else:
            stats = (
                f"r={c.pearson_r:.2f} (p={c.pearson_p:.3g}), "
                f"ρ={c.spearman_rho:.2f} (p={c.spearman_p:.3g})"
            )
        axis.set_title(f"{_short(c.task)} {metric_label(c.metric)}\n{stats}",
                       fontsize=9)  # fmt: skip
        axis.set_xlabel(f"{metric_label(c.metric)} (%)")
        axis.set_ylabel("downstream score")
        axis.grid(alpha=0.3)
    figure.suptitle("Benchmark metrics vs downstream results")
    return figure


def write_plots(
    results: Sequence[TaskResult],
    out_dir: Path,
    found: Sequence[Correlation] | None = None,
) -> list[Path]:
    """Write the figures that have data (PNG and SVG each), and the downstream correlations
    as CSV when given; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_task = overall_by_task(results)
    written: list[Path] = []
    figures = {
        "lacc_vs_fscore": lacc_vs_fscore_figure(by_task),
        "metric_bars": metric_bars_figure(by_task),
    }
    if found is not None:
        figures["downstream_correlation"] = downstream_figure(found)
        csv_path = out_dir / "downstream_correlation.csv"
        csv_path.write_text(correlation_csv(found), encoding="utf-8")
        written.append(csv_path)
    for stem, figure in figures.items():
        if figure is not None:
            written += _save(figure, out_dir, stem)
    return written

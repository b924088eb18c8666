"""``ralign probe``'s table and plot: for each benchmark and bias probe, how far the verdicts and
the rationales moved (docs: robustness, bias probes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ralign_tasks.protocols import metric_label
from ralign_tasks.report.console import format_table, percent_text

# The columns, in order: what moved, then what the rationales say.
PROBE_COLUMNS = (
    "flip_rate", "l_acc_probe", "l_acc_probe_diff", "s_corr_probe", "f_score_probe_diff",
    "cue_cited_rate",
)  # fmt: skip


def format_probe_table(runs: Sequence[tuple[str, str, Mapping[str, Any]]]) -> str:
    """One row per (benchmark, probe, overall metrics of its run): every probe metric with
    its 95% CI, percent."""
    header = ["benchmark", "probe", "N", *(metric_label(name) for name in PROBE_COLUMNS)]
    rows = [header]
    for benchmark, probe, overall in runs:
        rows.append([
            benchmark, probe, str(overall["n"]),
            *(percent_text(overall.get(name), overall["ci"].get(name)) for name in PROBE_COLUMNS),
        ])  # fmt: skip
    return format_table("Bias probes: percent, 95% CI (a paired bootstrap over items)", rows)


def plot_probes(runs: Sequence[tuple[str, str, Mapping[str, Any]]], out_dir: Path) -> list[Path]:
    """``probe_flip_rate`` (PNG and SVG): per benchmark, the flip rate of each probe with its
    95% CI."""
    from matplotlib.figure import Figure

    benchmarks = list(dict.fromkeys(benchmark for benchmark, _, _ in runs))
    probes = list(dict.fromkeys(probe for _, probe, _ in runs))
    figure = Figure(figsize=(1.6 + 1.1 * len(benchmarks) * len(probes) / 2, 3.4),
                    layout="constrained")  # fmt: skip
    ax = figure.subplots()
    width = 0.8 / max(len(probes), 1)
    for index, probe in enumerate(probes):
        xs, heights, errors = [], [], [[], []]
        for position, benchmark in enumerate(benchmarks):
            found = [o for b, p, o in runs if b == benchmark and p == probe]
            if not found or found[0].get("flip_rate") is None:
                continue
            value, ci = found[0]["flip_rate"] * 100, found[0]["ci"].get("flip_rate")
            xs.append(position + index * width)
            heights.append(value)
            errors[0].append(value - ci[0] * 100 if ci else 0)
            errors[1].append(ci[1] * 100 - value if ci else 0)
        ax.bar(xs, heights, width, yerr=errors, capsize=2, label=probe)
    ax.set_xticks([x + width * (len(probes) - 1) / 2 for x in range(len(benchmarks))])
    ax.set_xticklabels(benchmarks)
    ax.set_ylabel("flip rate (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("png", "svg"):
        paths.append(out_dir / f"probe_flip_rate.{suffix}")
        figure.savefig(paths[-1])
    return paths

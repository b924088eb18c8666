"""``ralign report``, ``ralign view`` and ``ralign check-data``: commands that read runs or
data and make no model call."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ralign_tasks.cli.messages import emit, warn, written
from ralign_tasks.data import (
    DATA_DIR_ENV,
    DataUnavailableError,
    describe_bad_rows,
)
from ralign_tasks.protocols import TASKS, get_task, protocol_of
from ralign_tasks.scorers.errors import UserError

MIN_BOOTSTRAP = 100


def _check_report_options(args: argparse.Namespace) -> None:
    """Refuse combinations that would silently do less than asked."""
    if args.agreement is not None:
        if len(args.agreement) < 2:
            raise UserError("--agreement needs two or more runs (one per meta-judge)")
        if args.paths or args.compare or args.downstream or args.csv or args.summary_csv:
            raise UserError(
                "--agreement prints the agreement only (with --plots DIR, its plot): run the "
                "table or --compare as a separate command"
            )
        return
    if not args.paths and not args.compare:
        raise UserError(
            "ralign report needs PATHS (runs to tabulate), --compare A B or --agreement A B …"
        )
    if args.compare:
        table_options = {
            "--by-subset": args.by_subset,
            "--csv": args.csv,
            "--summary-csv": args.summary_csv,
            "--plots": args.plots,
            "--downstream": args.downstream,
        }
        given = [name for name, value in table_options.items() if value]
        if given:
            raise UserError(
                f"--compare prints the paired comparison only; {', '.join(given)} belong to "
                "the table: run that as a separate command"
            )
        if args.bootstrap < MIN_BOOTSTRAP:
            raise UserError(
                f"--bootstrap must be at least {MIN_BOOTSTRAP} for a usable CI and p-value, "
                f"got {args.bootstrap}"
            )
    if args.downstream and args.format == "csv" and not args.plots:
        raise UserError(
            "--downstream with --format csv needs --plots DIR: the correlations are written "
            "there as downstream_correlation.csv, so that stdout stays one CSV"
        )


def _report_agreement(args: argparse.Namespace) -> int:
    from ralign_tasks.report.agreement import (
        agreement,
        format_agreement,
        load_raters,
        plot_agreement,
    )

    warnings: list[str] = []
    try:
        raters = load_raters(args.agreement, warnings)
    finally:
        warn(warnings)
    found = agreement(raters)
    if args.format == "csv":
        raise UserError("--agreement prints a table or Markdown (--format table|markdown)")
    emit(format_agreement(found, markdown=args.format == "markdown"), args.output)
    if args.plots:
        for path in plot_agreement(found, Path(args.plots)):
            written(path)
    return 0 if found else 1


def _refuse_unusable(results: Sequence[Any], max_failure_rate: float) -> None:
    """A comparison never uses a run whose numbers are not usable unless asked."""
    unusable = [f"{r.genrm} on {r.task} ({r.source}): {why}" for r in results
                if (why := r.unusable(max_failure_rate))]  # fmt: skip
    if unusable:
        raise UserError(
            "--compare: not usable, at least --max-failure-rate "
            f"{max_failure_rate:g} of its requests failed: {'; '.join(unusable)}; rerun it, "
            "or pass --include-unusable to compare anyway"
        )


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or write) the comparison table, plots, correlations or a paired comparison; 1
    when nothing readable was found."""
    # Imported here: reading Inspect logs imports inspect_ai (about a second), and plotting
    # imports matplotlib, which no other command needs.
    from ralign_tasks.report import compare, plots
    from ralign_tasks.report.runs import latest_runs, load_runs
    from ralign_tasks.report.tables import (
        RENDERERS,
        build_table,
        render_csv,
        render_summary_csv,
    )

    _check_report_options(args)
    if args.agreement:
        return _report_agreement(args)
    # Read first: a bad downstream file should fail before any other work.
    downstream = plots.read_downstream(args.downstream) if args.downstream else None
    loaded, warnings = load_runs(args.paths)
    results = latest_runs(loaded, warnings)
    if args.compare:
        try:
            first, second = (compare.select_runs(s, results, warnings) for s in args.compare)
            if not args.include_unusable:
                _refuse_unusable([*first, *second], args.max_failure_rate)
            comparison = compare.compare(first, second, warnings, draws=args.bootstrap)
        finally:  # the warnings often say why nothing could be compared
            warn(warnings)
        emit(compare.RENDERERS[args.format](comparison), args.output)
        return 0
    warn(warnings)
    if not results:
        print("ralign: error: no R-Align results found", file=sys.stderr)
        return 1
    table = build_table(results, args.by_subset, args.details, args.max_failure_rate)
    emit(RENDERERS[args.format](table), args.output)
    if args.csv:
        Path(args.csv).write_text(render_csv(table), encoding="utf-8")
        written(args.csv)
    if args.summary_csv:
        Path(args.summary_csv).write_text(render_summary_csv(table), encoding="utf-8")
        written(args.summary_csv)
    found = None
    if downstream is not None:
        found = plots.correlations(plots.overall_by_task(results), downstream, warnings)
        warn(warnings)
        if args.format != "csv":
            print(plots.render_correlations(found, args.format), end="")
    if args.plots:
        for path in plots.write_plots(results, Path(args.plots), found):
            written(path)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Write the viewer pages; 1 when no run could be shown."""
    from ralign_tasks.report.runs import load_runs, name_by_identity
    from ralign_tasks.report.viewer import ITEMS_SUFFIX, write_views

    results, warnings = load_runs(args.paths)
    # Every run gets its page, named as the report names its row.
    pages = write_views(name_by_identity(results), Path(args.output_dir), warnings)
    warn(warnings)
    if not pages:
        print("ralign: error: no R-Align run with per-item samples found", file=sys.stderr)
        return 1
    for page in pages:
        items = page.with_name(page.stem + ITEMS_SUFFIX)
        print(f"written: {page}" + (f" (items in {items}/)" if items.is_dir() else ""))
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    """What finished runs paid, per role."""
    from ralign_tasks.cost import format_paid, load_prices, paid_roles

    given = args.prices or args.price_in is not None or args.price_out is not None
    prices = load_prices(args.prices, args.price_in, args.price_out) if given else None
    print(format_paid(paid_roles(args.paths, prices)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write each run found as an Every Eval Ever record; 1 when there was none."""
    import time

    from ralign_tasks.report.every_eval_ever import export_run
    from ralign_tasks.report.runs import load_runs

    results, warnings = load_runs(args.paths)
    warn(warnings)
    if not results:
        print("ralign: error: no run found to export", file=sys.stderr)
        return 1
    retrieved = str(int(time.time()))
    for result in results:
        done = export_run(result, Path(args.output_dir), retrieved, args.source_organization,
                          args.evaluator_relationship)  # fmt: skip
        items = f", {done.samples} ({done.rows} items)" if done.samples else " (no items)"
        print(f"written: {done.record}{items}")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    """Validate the files of a local folder: the named benchmarks (each must be there), or
    every benchmark file present (saying which benchmarks have none). 1 if any file has a bad
    row or no row at all, or nothing was found."""
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise DataUnavailableError(
            f"check-data checks local files: pass --data-dir DIR or set {DATA_DIR_ENV}"
        )
    if not Path(data_dir).is_dir():
        raise DataUnavailableError(f"check-data: {data_dir}: no such folder")
    specs = [get_task(name) for name in args.benchmarks] or list(TASKS.values())
    problems, checked = 0, 0
    for spec in specs:
        protocol = protocol_of(spec)
        found = []
        for split in spec.files:
            # Each family finds its own files (official names, per-domain files, parquet).
            try:
                found.append(protocol.load(spec, data_dir, split=split, skip_bad_rows=True))
            except DataUnavailableError as exc:
                missing = str(exc)
        if not found:
            if args.benchmarks:
                raise DataUnavailableError(missing)
            print(missing)
            continue
        for loaded in found:
            checked += 1
            if not loaded.records and not loaded.bad_rows:
                print(f"{loaded.path}: error: empty file (no rows)")
                problems += 1
                continue
            problems += bool(loaded.bad_rows)
            print(f"{loaded.path}: {len(loaded.records)} valid rows, {len(loaded.bad_rows)} bad")
            if loaded.bad_rows:
                print(describe_bad_rows(loaded.bad_rows, limit=50))
    if not checked:
        print(f"ralign: error: no benchmark file found in {data_dir}", file=sys.stderr)
        return 1
    return 1 if problems else 0

"""The ``ralign`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ralign_tasks.atomic_data import load_atomic
from ralign_tasks.benchmarks import BENCHMARKS, get_benchmark
from ralign_tasks.data import (
    DataFormatError,
    DataUnavailableError,
    LoadResult,
    describe_bad_rows,
    keep_named,
    load_benchmark,
    sample_data_dir,
    warn_bad_rows,
)
from ralign_tasks.demo import DemoError, run_demo
from ralign_tasks.pipeline import (
    GENRM_MAX_TOKENS,
    GENRM_TEMPERATURE,
    generate_genrm_outputs,
    read_outputs_file,
    score_outputs,
    write_results,
    write_run,
)
from ralign_tasks.rc_pipeline import AtomicJudgment, score_rc
from ralign_tasks.scorers.cache import default_cache_dir
from ralign_tasks.scorers.config import (
    GENRM_ENV_PREFIX,
    METAJUDGE_ENV_PREFIX,
    ConfigError,
    EndpointConfig,
)
from ralign_tasks.scorers.engine import FatalEndpointError
from ralign_tasks.scorers.verdict import VERDICT_POLICIES
from ralign_tasks.tables import format_rc_report, format_report
from ralign_tasks.task_configs import include_path


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--sample", action="store_true", help="use the bundled sample (8 rows per benchmark)"
    )
    source.add_argument(
        "--data-dir", help="local copy of R-Align-BMK (default: $RALIGN_DATA_DIR, then the hub)"
    )
    parser.add_argument("--subset", action="append", help="keep only this source.subset (repeat)")
    parser.add_argument("--limit", type=int, help="keep the first N items of each benchmark")
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="skip malformed rows (each is reported)"
    )
    parser.add_argument("--verdict-policy", choices=VERDICT_POLICIES, default="official")
    parser.add_argument("--output-dir", default="ralign_results", help="where results are written")
    parser.add_argument("--metajudge-model", help=f"overrides {METAJUDGE_ENV_PREFIX}MODEL")
    parser.add_argument("--metajudge-base-url", help=f"overrides {METAJUDGE_ENV_PREFIX}BASE_URL")
    parser.add_argument(
        "--no-metajudge",
        action="store_true",
        help="report l_acc only (no fidelity metrics without a meta-judge)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ralign", description="Rationale-aware reward-model benchmarks (R-Align)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("include-path", help="print the folder for lm_eval --include_path")
    demo = commands.add_parser(
        "demo",
        help="offline end-to-end run on the bundled sample with SmolLM2-135M as GenRM and "
        "meta-judge (a smoke test, not a measurement)",
    )
    demo.add_argument("--output-dir", default="ralign_demo", help="where lm-eval writes results")

    names = ", ".join(BENCHMARKS)
    run = commands.add_parser(
        "run", help="ask a GenRM (OpenAI-compatible endpoint), meta-judge it, report metrics"
    )
    run.add_argument("benchmarks", nargs="*", default=list(BENCHMARKS), help=f"any of {names}")
    run.add_argument("--genrm-model", help=f"overrides {GENRM_ENV_PREFIX}MODEL")
    run.add_argument("--genrm-base-url", help=f"overrides {GENRM_ENV_PREFIX}BASE_URL")
    _add_data_options(run)

    score = commands.add_parser(
        "score", help="meta-judge and report precomputed GenRM outputs (JSONL of id, output)"
    )
    score.add_argument("benchmark", help=f"one of {names}")
    score.add_argument("--outputs", required=True, help="JSONL rows {'id': ..., 'output': ...}")
    _add_data_options(score)

    rc = commands.add_parser(
        "rc-score",
        help="Rationale Consistency (HelpSteer3-Atomic) of stored outputs: a reference model's "
        "checklists from the test split, or a JSONL of GenRM outputs",
    )
    stored = rc.add_mutually_exclusive_group(required=True)
    stored.add_argument(
        "--reference",
        help="a reference model of the test split, e.g. low_deceptive_alignment",
    )
    stored.add_argument("--outputs", help="JSONL rows {'id': ..., 'output': ...}")
    rc.add_argument("--split", choices=("test", "full"), default="test")
    rc.add_argument("--domain", action="append", help="keep only this domain (repeat)")
    _add_data_options(rc)

    report = commands.add_parser(
        "report", help="compare GenRMs: one table from lm-eval output folders and Inspect logs"
    )
    report.add_argument(
        "paths", nargs="*", help="lm-eval output folders, Inspect logs, or folders holding them"
    )
    report.add_argument("--by-subset", action="store_true", help="add one row per subset")
    report.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    report.add_argument("--output", help="write the table here instead of printing it")
    report.add_argument("--csv", help="also write the table as CSV (what --format csv prints)")
    report.add_argument(
        "--summary-csv", help="also write the R-Align repository's results_summary.csv format"
    )
    report.add_argument(
        "--plots",
        metavar="DIR",
        help="write L-Acc vs F-Score and grouped-bar plots (PNG and SVG) here",
    )
    report.add_argument(
        "--downstream",
        metavar="CSV",
        help="downstream scores (columns model,score): Pearson r and Spearman rho of each "
        "metric against them, printed and, with --plots, plotted and written as CSV",
    )
    report.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="paired bootstrap of A - B over shared items instead of the table; A and B are "
        "runs (paths) or GenRM names among PATHS",
    )
    report.add_argument(
        "--bootstrap", type=int, default=10_000, help="bootstrap draws for --compare (≥ 100)"
    )

    view = commands.add_parser(
        "view",
        help="write one self-contained HTML page per R-Align run: every item with its "
        "rationales, filterable by outcome and subset",
    )
    view.add_argument("paths", nargs="+", help="lm-eval output folders, Inspect logs or folders")
    view.add_argument("--output-dir", default="ralign_view", help="where the pages are written")

    check = commands.add_parser("check-data", help="validate benchmark files and report bad rows")
    check.add_argument("benchmarks", nargs="*", default=list(BENCHMARKS))
    check.add_argument("--data-dir")
    return parser


def _load(name: str, args: argparse.Namespace) -> LoadResult:
    data_dir = sample_data_dir() if args.sample else args.data_dir
    loaded = load_benchmark(name, data_dir, skip_bad_rows=args.skip_bad_rows)
    warn_bad_rows(loaded.path, loaded.bad_rows)
    loaded.records = keep_named(loaded.records, "subset", args.subset, loaded.path)
    if args.limit is not None:
        loaded.records = loaded.records[: args.limit]
    if not loaded.records:
        raise DataUnavailableError(f"{name}: no items left to evaluate in {loaded.path}")
    return loaded


def _meta_config(args: argparse.Namespace) -> EndpointConfig | None:
    if args.no_metajudge:
        return None
    config = EndpointConfig.from_sources(
        METAJUDGE_ENV_PREFIX,
        {
            "model": args.metajudge_model,
            "base_url": args.metajudge_base_url,
            "use_cache": False if args.no_cache else None,
        },
    )
    return config.require_model("meta-judge", METAJUDGE_ENV_PREFIX)


def _report(run_benchmark: str, args: argparse.Namespace, run, settings: dict) -> None:
    folder = write_run(run, args.output_dir, settings)
    title = f"{get_benchmark(run_benchmark).task}  (verdict policy: {args.verdict_policy})"
    print(format_report(title, run.report))
    print(f"written: {folder}/results.json, {folder}/samples.jsonl\n")


def _settings(args: argparse.Namespace, loaded: LoadResult, meta: EndpointConfig | None) -> dict:
    return {
        "data_file": loaded.path,
        "items": len(loaded.records),
        "skipped_bad_rows": [str(row) for row in loaded.bad_rows],
        "verdict_policy": args.verdict_policy,
        "meta_judge_model": meta.model if meta else None,
        "meta_judge_base_url": meta.base_url if meta else None,
    }


def cmd_run(args: argparse.Namespace) -> None:
    meta = _meta_config(args)
    genrm = EndpointConfig.from_sources(
        GENRM_ENV_PREFIX,
        {
            "model": args.genrm_model,
            "base_url": args.genrm_base_url,
            "use_cache": False if args.no_cache else None,
        },
        temperature=GENRM_TEMPERATURE,
        max_tokens=GENRM_MAX_TOKENS,
    ).require_model("GenRM", GENRM_ENV_PREFIX)
    for name in args.benchmarks:
        benchmark = get_benchmark(name)
        loaded = _load(benchmark.name, args)
        results, genrm_stats = generate_genrm_outputs(loaded.records, genrm)
        run = score_outputs(
            benchmark.name,
            loaded.records,
            [r.text for r in results],
            meta,
            policy=args.verdict_policy,
            truncated=[r.finish_reason == "length" for r in results],
        )
        run.genrm_stats = genrm_stats
        settings = _settings(args, loaded, meta) | {"genrm_model": genrm.model}
        _report(benchmark.name, args, run, settings)


def cmd_score(args: argparse.Namespace) -> None:
    meta = _meta_config(args)
    benchmark = get_benchmark(args.benchmark)
    loaded = _load(benchmark.name, args)
    outputs = read_outputs_file(args.outputs)
    missing = [r.id for r in loaded.records if r.id not in outputs]
    if missing:
        raise DataUnavailableError(
            f"{args.outputs}: no output for {len(missing)} of {len(loaded.records)} items "
            f"(first: {', '.join(missing[:5])})"
        )
    run = score_outputs(
        benchmark.name,
        loaded.records,
        [outputs[r.id] for r in loaded.records],
        meta,
        policy=args.verdict_policy,
    )
    _report(benchmark.name, args, run, _settings(args, loaded, meta) | {"outputs": args.outputs})


def cmd_rc_score(args: argparse.Namespace) -> None:
    meta = _meta_config(args)
    if meta is None:
        raise ConfigError("rc-score needs a meta-judge: Rationale Consistency is its verdict")
    loaded = load_atomic(
        args.split, sample_data_dir() if args.sample else args.data_dir,
        skip_bad_rows=args.skip_bad_rows,
    )  # fmt: skip
    warn_bad_rows(loaded.path, loaded.bad_rows)
    records = keep_named(loaded.records, "domain", args.domain, loaded.path)
    records = records[: args.limit] if args.limit is not None else records
    if args.reference:
        judgments = [AtomicJudgment.from_reference(r, args.reference) for r in records]
    else:
        outputs = read_outputs_file(args.outputs)
        missing = [r.id for r in records if r.id not in outputs]
        if missing:
            raise DataUnavailableError(
                f"{args.outputs}: no output for {len(missing)} of {len(records)} items "
                f"(first: {', '.join(missing[:5])})"
            )
        judgments = [AtomicJudgment.from_output(r, outputs[r.id]) for r in records]
    run = score_rc(judgments, meta)
    source = f"reference {args.reference}" if args.reference else args.outputs
    folder = write_results(
        Path(args.output_dir) / f"helpsteer3_atomic_{args.split}",
        {
            "task": "ralign_helpsteer3_atomic",
            "settings": {
                "data_file": loaded.path,
                "items": len(records),
                "source": source,
                "meta_judge_model": meta.model,
                "meta_judge_base_url": meta.base_url,
            },
            "metrics": run.report,
            "usage": {"meta_judge": run.stats.as_dict()},
        },
        run.samples(),
    )
    print(format_rc_report(f"ralign_helpsteer3_atomic ({args.split}, {source})", run.report))
    print(f"written: {folder}/results.json, {folder}/samples.jsonl\n")


def _written(path: str | Path) -> None:
    # On stderr: stdout carries only the report itself, so it can be redirected to a file.
    print(f"written: {path}", file=sys.stderr)


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        _written(output)
    else:
        print(text, end="")


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"ralign: warning: {warning}", file=sys.stderr)
    warnings.clear()


MIN_BOOTSTRAP = 100


def _check_report_options(args: argparse.Namespace) -> None:
    """Refuse combinations that would silently do less than asked."""
    if not args.paths and not args.compare:
        raise ValueError("ralign report needs PATHS (runs to tabulate) or --compare A B")
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
            raise ValueError(
                f"--compare prints the paired comparison only; {', '.join(given)} belong to "
                "the table: run that as a separate command"
            )
        if args.bootstrap < MIN_BOOTSTRAP:
            raise ValueError(
                f"--bootstrap must be at least {MIN_BOOTSTRAP} for a usable CI and p-value, "
                f"got {args.bootstrap}"
            )
    if args.downstream and args.format == "csv" and not args.plots:
        raise ValueError(
            "--downstream with --format csv needs --plots DIR: the correlations are written "
            "there as downstream_correlation.csv, so that stdout stays one CSV"
        )


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or write) the comparison table, plots, correlations or a paired comparison; 1
    when nothing readable was found."""
    # Imported here: reading Inspect logs imports inspect_ai (about a second), and plotting
    # imports matplotlib, which no other command needs.
    from ralign_tasks import report_compare, report_plots
    from ralign_tasks.report_runs import latest_runs, load_runs
    from ralign_tasks.report_tables import (
        RENDERERS,
        build_table,
        render_csv,
        render_summary_csv,
    )

    _check_report_options(args)
    # Read first: a bad downstream file should fail before any other work.
    downstream = report_plots.read_downstream(args.downstream) if args.downstream else None
    loaded, warnings = load_runs(args.paths)
    results = latest_runs(loaded, warnings)
    if args.compare:
        try:
            first, second = (report_compare.select_runs(s, results, warnings) for s in args.compare)
            comparison = report_compare.compare(first, second, warnings, n_bootstrap=args.bootstrap)
        finally:  # the warnings often say why nothing could be compared
            _warn(warnings)
        _emit(report_compare.RENDERERS[args.format](comparison), args.output)
        return 0
    _warn(warnings)
    if not results:
        print("ralign: error: no R-Align results found", file=sys.stderr)
        return 1
    table = build_table(results, args.by_subset)
    _emit(RENDERERS[args.format](table), args.output)
    if args.csv:
        Path(args.csv).write_text(render_csv(table), encoding="utf-8")
        _written(args.csv)
    if args.summary_csv:
        Path(args.summary_csv).write_text(render_summary_csv(table), encoding="utf-8")
        _written(args.summary_csv)
    found = None
    if downstream is not None:
        found = report_plots.correlations(
            report_plots.overall_by_task(results), downstream, warnings
        )
        _warn(warnings)
        if args.format != "csv":
            print(report_plots.render_correlations(found, args.format), end="")
    if args.plots:
        for path in report_plots.write_plots(results, Path(args.plots), found):
            _written(path)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Write the viewer pages; 1 when no run could be shown."""
    from ralign_tasks.report_runs import load_runs
    from ralign_tasks.viewer import write_views

    results, warnings = load_runs(args.paths)
    pages = write_views(results, Path(args.output_dir), warnings)
    _warn(warnings)
    if not pages:
        print("ralign: error: no R-Align run with per-item samples found", file=sys.stderr)
        return 1
    for page in pages:
        print(f"written: {page}")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    bad_total = 0
    for name in args.benchmarks:
        loaded = load_benchmark(name, args.data_dir, skip_bad_rows=True)
        bad_total += len(loaded.bad_rows)
        print(f"{loaded.path}: {len(loaded.records)} valid rows, {len(loaded.bad_rows)} bad")
        if loaded.bad_rows:
            print(describe_bad_rows(loaded.bad_rows, limit=50))
    return 1 if bad_total else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "include-path":
            print(include_path())
        elif args.command == "demo":
            return run_demo(args.output_dir)
        elif args.command == "run":
            cmd_run(args)
        elif args.command == "score":
            cmd_score(args)
        elif args.command == "rc-score":
            cmd_rc_score(args)
        elif args.command == "report":
            return cmd_report(args)
        elif args.command == "view":
            return cmd_view(args)
        elif args.command == "check-data":
            return cmd_check_data(args)
    except (
        DemoError,
        ConfigError,
        DataFormatError,
        DataUnavailableError,
        FatalEndpointError,
        OSError,  # files: missing, not writable, a folder where a file should be
        KeyError,
        ValueError,
    ) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"ralign: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"ralign: interrupted. Every answer received so far is cached in "
            f"{default_cache_dir()}; run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

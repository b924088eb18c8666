"""The ``ralign`` command line: generic over the registered protocols."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from ralign_tasks.cli.demo import DemoError, run_demo
from ralign_tasks.data import (
    DATA_DIR_ENV,
    DataFormatError,
    DataUnavailableError,
    LoadResult,
    data_source,
    describe_bad_rows,
    keep_named,
    warn_bad_rows,
)
from ralign_tasks.identity import (
    DEFAULT_MAX_FAILURE_RATE,
    UNUSABLE_EXIT,
    RunIdentity,
    failure_rate,
    is_context_error,
    safe_name,
    too_many_failed,
)
from ralign_tasks.judge import JUDGE_SETTINGS, resolve_judge
from ralign_tasks.pipeline import (
    FinishedRun,
    ScoredRun,
    StepScorer,
    check_run_folder,
    generate_outputs,
    read_outputs_file,
    run_in_steps,
    score_judgments,
    score_outputs,
)
from ralign_tasks.protocols import PROTOCOLS, TASKS, Protocol, TaskSpec, get_task, protocol_of
from ralign_tasks.protocols.base import GenRMOutput, Option
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.protocols.judgebench import (
    JUDGEBENCH_TASK,
    official_line,
    read_official_outputs,
)
from ralign_tasks.protocols.rationale import RATIONALE, RC_TASK, AtomicJudgment
from ralign_tasks.report.console import format_run_table
from ralign_tasks.scorers.ask import EndpointDownError, StopRun
from ralign_tasks.scorers.cache import OPENED as OPENED_CACHES
from ralign_tasks.scorers.config import (
    GENRM_ENV_PREFIX,
    METAJUDGE_ENV_PREFIX,
    ConfigError,
    EndpointConfig,
)
from ralign_tasks.scorers.settings import SWITCH_ENV, JudgeSettings, switched_off
from ralign_tasks.scorers.stats import DRAWS
from ralign_tasks.task_configs import include_path

# `ralign run` with no names: the three R-Align fidelity benchmarks.
DEFAULT_RUN = [spec.short for spec in FIDELITY.tasks]
TASK_NAMES = ", ".join(spec.short for spec in TASKS.values())


def _add_data_options(
    parser: argparse.ArgumentParser,
    protocols: Sequence[Protocol[Any, Any, Any]] = PROTOCOLS,
    *,
    judge_optional: bool = True,
) -> None:
    """The options of a command over the tasks of ``protocols``: data source and filters,
    their families' options (generated from the protocols), judge and output settings."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--sample", action="store_true", help="use the bundled sample (8 rows per benchmark)"
    )
    source.add_argument(
        "--data-dir", help="local copy of the dataset (default: $RALIGN_DATA_DIR, then the hub)"
    )
    for field, titles in _group_fields(protocols).items():
        parser.add_argument(
            f"--{field}",
            metavar="NAME",
            action="append",
            help=f"keep only this {field} ({' / '.join(titles)}); repeat for several",
        )
    parser.add_argument(
        "--limit", type=_positive, help="keep the first N items of each benchmark (N ≥ 1)"
    )
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="skip malformed rows (each is reported)"
    )
    for name, found in _family_options_of(protocols).items():
        # Families may share an option name with choices of their own (split: test | full
        # for HelpSteer3-Atomic, gpt | claude for JudgeBench); each family checks its own.
        choices = [choice for option, _ in found for choice in option.choices]
        kind: dict[str, Any] = (
            {"action": "store_const", "const": True}  # a switch: --swap
            if found[0][0].kind is bool
            else {"choices": list(dict.fromkeys(choices)) or None}
        )
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            **kind,
            help="; ".join(
                f"{' / '.join(titles)}: {option.help} (default: {option.default})"
                for option, titles in found
            ),
        )
    _add_output_options(parser, "ralign_results", "<OUTPUT_DIR>/<GenRM>/<benchmark>[_options]")
    _add_judge_options(parser, judge_optional=judge_optional)
    _add_failure_option(parser)


def _add_judge_options(parser: argparse.ArgumentParser, *, judge_optional: bool) -> None:
    """Every judge setting as ``--metajudge-<key>`` (see ralign_tasks.scorers.settings), and
    the cache and judge switches."""
    group = parser.add_argument_group(
        "meta-judge settings",
        f"each flag overrides {METAJUDGE_ENV_PREFIX}<KEY> (the API key is read from "
        f"{METAJUDGE_ENV_PREFIX}API_KEY only)",
    )
    for setting in JUDGE_SETTINGS:
        if setting.secret:
            continue
        kind: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}
            if setting.kind == "bool"
            else {
                "type": {"int": int, "float": float}.get(setting.kind, str),
                "metavar": "PATH" if setting.template else setting.kind.upper(),
            }
        )
        group.add_argument(
            setting.flag,
            dest=setting.name,
            help=f"{setting.help} (default: {setting.default_text})",
            **kind,
        )
    if judge_optional:
        group.add_argument(
            "--no-metajudge",
            action="store_true",
            help=f"report what needs no judge only (label accuracy, counts); as {SWITCH_ENV}=none",
        )
    parser.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the cache (GenRM, judge)"
    )


def _add_output_options(parser: argparse.ArgumentParser, default: str, layout: str) -> None:
    parser.add_argument(
        "--output-dir",
        default=default,
        help=f"where results are written: {layout} (default: {default})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run of another GenRM, judge, options or command in the run's folder "
        "(without it that is an error; a rerun of the same run always replaces it)",
    )


def _add_failure_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-failure-rate",
        "--max-judge-failure-rate",
        dest="max_failure_rate",
        type=_rate,
        default=DEFAULT_MAX_FAILURE_RATE,
        metavar="RATE",
        help="exit with status 3 (after writing the results) when at least this share of a "
        "benchmark's GenRM or judge requests failed (default: "
        f"{DEFAULT_MAX_FAILURE_RATE})",
    )


def _group_fields(protocols: Sequence[Protocol[Any, Any, Any]]) -> dict[str, list[str]]:
    """Each family's group filter option (``subset``, ``domain``) with the families using it."""
    fields: dict[str, list[str]] = {}
    for protocol in protocols:
        fields.setdefault(protocol.group_field, []).append(protocol.title)
    return fields


def _family_options_of(
    protocols: Sequence[Protocol[Any, Any, Any]],
) -> dict[str, list[tuple[Option, list[str]]]]:
    """Every family option of ``protocols`` by name: each distinct definition with the
    families that have it."""
    found: dict[str, list[tuple[Option, list[str]]]] = {}
    for protocol in protocols:
        for option in protocol.options:
            definitions = found.setdefault(option.name, [])
            for known, titles in definitions:
                if known == option:
                    titles.append(protocol.title)
                    break
            else:
                definitions.append((option, [protocol.title]))
    return found


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        return failure_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked (reading
    package metadata costs a tenth of ``ralign --help``'s time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import version

        print(f"ralign-tasks {version('ralign-tasks')}")
        parser.exit()


def _add_command(
    commands: Any,
    name: str,
    *,
    help: str,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with what it does (its one-line help)."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ralign", description="Rationale-aware reward-model benchmarks (R-Align)."
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_command(commands, "include-path", help="print the folder for lm_eval --include_path")
    demo = _add_command(
        commands,
        "demo",
        help="offline end-to-end run on the bundled sample with SmolLM2-135M as GenRM and "
        "meta-judge (a smoke test, not a measurement)",
    )
    demo.add_argument(
        "--output-dir",
        default="ralign_demo",
        help="where lm-eval writes results (default: ralign_demo)",
    )

    run = _add_command(
        commands, "run", help="ask a GenRM (OpenAI-compatible endpoint), judge it, report metrics"
    )
    run.add_argument(
        "benchmarks",
        nargs="*",
        default=DEFAULT_RUN,
        help=f"any of {TASK_NAMES} (default: {' '.join(DEFAULT_RUN)})",
    )
    run.add_argument("--genrm-model", help=f"overrides {GENRM_ENV_PREFIX}MODEL")
    run.add_argument("--genrm-base-url", help=f"overrides {GENRM_ENV_PREFIX}BASE_URL")
    _add_data_options(run)

    score = _add_command(
        commands, "score", help="judge and report precomputed GenRM outputs (JSONL of id, output)"
    )
    score.add_argument("benchmark", help=f"one of {TASK_NAMES}")
    stored_outputs = score.add_mutually_exclusive_group(required=True)
    stored_outputs.add_argument(
        "--outputs",
        help="JSONL rows {'id': ..., 'output': ...}; for a benchmark that asks several prompts "
        "per item {'id': ..., 'outputs': [...]} in the order of its prompts",
    )
    stored_outputs.add_argument(
        "--judgebench-outputs",
        metavar="FILE",
        help="judgebench only: one of JudgeBench's own judge-output files (both orders), "
        "scored by the official rule from its stored decisions",
    )
    score.add_argument(
        "--genrm-name", help="the GenRM's name in reports (default: the outputs file's name)"
    )
    _add_data_options(score)

    rc = _add_command(
        commands,
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
    rc.add_argument(
        "--genrm-name", help="the GenRM's name in reports (default: the outputs file's name)"
    )
    _add_data_options(rc, [RATIONALE], judge_optional=False)

    rejudge = _add_command(
        commands,
        "rejudge",
        help="re-run only the judge step of finished runs (lm-eval output folders, Inspect "
        "logs, ralign run folders) with another meta-judge or template: no GenRM call",
    )
    rejudge.add_argument("paths", nargs="+", help="the runs, or folders holding them")
    rejudge.add_argument(
        "--judge-order",
        choices=("golden_first", "genrm_first"),
        help="R-Align rationale fidelity: the meta-judge position probe (default: the run's)",
    )
    _add_output_options(rejudge, "ralign_rejudged", "<OUTPUT_DIR>/<GenRM>__<benchmark>")
    _add_judge_options(rejudge, judge_optional=False)
    _add_failure_option(rejudge)

    report = _add_command(
        commands,
        "report",
        help="compare GenRMs: one table from lm-eval output folders, Inspect logs and ralign "
        "run folders",
    )
    report.add_argument(
        "paths",
        nargs="*",
        help="lm-eval output folders, Inspect logs, ralign run folders, or folders holding them",
    )
    report.add_argument("--by-subset", action="store_true", help="add one row per subset")
    report.add_argument(
        "--details",
        action="store_true",
        help="add the failure counts to the terminal table (Markdown and CSV always have them)",
    )
    report.add_argument(
        "--format",
        choices=("table", "markdown", "csv"),
        default="table",
        help="a terminal table, Markdown or CSV (default: table)",
    )
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
        "--bootstrap",
        type=int,
        default=DRAWS,
        help=f"bootstrap draws for --compare, at least 100 (default: {DRAWS})",
    )
    report.add_argument(
        "--max-failure-rate",
        type=_rate,
        default=DEFAULT_MAX_FAILURE_RATE,
        metavar="RATE",
        help="mark a run as not usable when at least this share of its GenRM or judge "
        f"requests failed (default: {DEFAULT_MAX_FAILURE_RATE})",
    )
    report.add_argument(
        "--include-unusable",
        action="store_true",
        help="let --compare use runs marked as not usable (refused without it)",
    )
    report.add_argument(
        "--agreement",
        nargs="+",
        metavar="RUN",
        help="meta-judge agreement instead of the table: two or more runs of the same GenRM "
        "outputs judged by different meta-judges (or one twice); per benchmark raw agreement, "
        "Cohen's / Fleiss' kappa with a bootstrap CI, the confusion matrix and Kendall's tau "
        "of the GenRMs' F-Score ranking; --plots DIR draws F-Score per GenRM and meta-judge",
    )

    view = _add_command(
        commands,
        "view",
        help="write one self-contained HTML page per R-Align run: every item with its "
        "rationales, filterable by outcome and subset",
    )
    view.add_argument(
        "paths", nargs="+", help="lm-eval output folders, Inspect logs, ralign run folders"
    )
    view.add_argument(
        "--output-dir",
        default="ralign_view",
        help="where the pages are written (default: ralign_view)",
    )

    check = _add_command(
        commands,
        "check-data",
        help="validate the benchmark files of a local folder and list every bad row",
    )
    check.add_argument(
        "benchmarks", nargs="*", help=f"any of {TASK_NAMES} (default: every file present)"
    )
    check.add_argument("--data-dir", help="the folder (default: $RALIGN_DATA_DIR)")
    return parser


def _family_options(args: argparse.Namespace, spec: TaskSpec) -> dict[str, Any]:
    """The family options given on the command line; one that does not apply to the task is
    an error, never silently ignored."""
    protocol = protocol_of(spec)
    known = {option.name for option in protocol.options}
    given = {
        name: getattr(args, name)
        for name in _family_options_of(PROTOCOLS)
        if getattr(args, name, None) is not None
    }
    for name in given:
        if name not in known:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to {spec.task}")
    return protocol.option_values(given, spec.task)


def _check_templates(spec: TaskSpec, judge: JudgeSettings | None) -> None:
    """A missing or broken prompt template stops the run before any call."""
    protocol = protocol_of(spec)
    try:
        protocol.check_templates(None, protocol.judge_template(judge) if judge else None)
    except TemplateError as exc:
        raise ConfigError(f"{spec.task}: prompt template: {exc}") from None


def _load(spec: TaskSpec, args: argparse.Namespace, options: dict[str, Any]) -> LoadResult:
    protocol = protocol_of(spec)
    loaded = protocol.load(
        spec,
        data_source(args.sample, args.data_dir),
        split=options.get("split"),
        skip_bad_rows=args.skip_bad_rows,
    )
    warn_bad_rows(loaded.path, loaded.bad_rows)
    for field in _group_fields(PROTOCOLS):
        if field != protocol.group_field and getattr(args, field, None):
            raise ValueError(f"--{field} does not apply to {spec.task}")
    wanted = getattr(args, protocol.group_field, None)
    loaded.records = keep_named(loaded.records, protocol.group_field, wanted, loaded.path)
    if args.limit is not None:
        loaded.records = loaded.records[: args.limit]
    if not loaded.records:
        raise DataUnavailableError(f"{spec.task}: no items left to evaluate in {loaded.path}")
    return loaded


def _judge_config(args: argparse.Namespace, specs: Sequence[TaskSpec]) -> JudgeSettings | None:
    """The judge of the run from its ``--metajudge-<key>`` flags over ``RALIGN_METAJUDGE_<KEY>``;
    ``None`` with ``--no-metajudge`` (or ``RALIGN_METAJUDGE=none``) or when no task of ``specs``
    has a judge step (the label benchmarks)."""
    if not any(protocol_of(spec).uses_judge for spec in specs):
        return None
    if getattr(args, "no_metajudge", False):
        return None
    if switched_off():
        if "no_metajudge" not in args:  # rc-score and rejudge: the judge is what they run
            raise ConfigError(
                f"{SWITCH_ENV}=none switches the judge off, but this command is the judge's: "
                "unset it"
            )
        return None
    given = {s.key: getattr(args, s.name) for s in JUDGE_SETTINGS if not s.secret}
    judge = resolve_judge(given | ({"cache": False} if args.no_cache else {}))
    flags = "pass --metajudge-model (and --metajudge-base-url)" + (
        ", or --no-metajudge to report what needs no judge, " if "no_metajudge" in args else ", "
    )
    judge.transport.require_model("meta-judge", METAJUDGE_ENV_PREFIX, flags + "or ")
    return judge


def _run_folder(
    args: argparse.Namespace, spec: TaskSpec, options: dict[str, Any], genrm: str
) -> Path:
    """``OUT/<GenRM>/<benchmark>``, then its data options (``_test``) and any scoring option
    that is not the default (``_strict``), so that runs of other GenRMs or settings never
    meet in one folder (a judge or command of its own is refused there, see
    :func:`check_run_folder`)."""
    parts = [spec.folder]
    for option in protocol_of(spec).options:
        if option.stage == "data" or options[option.name] != option.default:
            value = options[option.name]
            # _swap, _samples4, _seed7, _strict
            name = {bool: option.name, int: f"{option.name}{value}"}.get(option.kind, str(value))
            parts.append(name)
    return Path(args.output_dir) / safe_name(genrm) / "_".join(parts)


def _identity(
    genrm: str,
    spec: TaskSpec,
    options: dict[str, Any],
    judge: JudgeSettings | None,
    path: str,
) -> RunIdentity:
    return RunIdentity(
        genrm=genrm,
        task=spec.task,
        options=protocol_of(spec).variant(options),
        judge=str(judge.transport.model) if judge else None,
        judge_endpoint=judge.transport.endpoint if judge else None,
        path=path,
    )


def _settings(
    args: argparse.Namespace,
    loaded: LoadResult,
    judge: JudgeSettings | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "data_file": loaded.path,
        "items": len(loaded.records),
        "skipped_bad_rows": [str(row) for row in loaded.bad_rows],
        **options,
        "meta_judge_model": judge.transport.model if judge else None,
        "meta_judge_endpoint": judge.transport.endpoint if judge else None,
    }


def _finish(run: FinishedRun, folder: Path, title: str, max_failure_rate: float) -> bool:
    """Print the results of a written run; false (after saying why on stderr) when the GenRM
    or the judge failed on at least ``max_failure_rate`` of its requests."""
    print(format_run_table(title, protocol_of(run.spec), run.report))
    print(f"written: {folder}/results.json, {folder}/samples.jsonl\n")
    usable = True
    for role, stats in (("GenRM", run.genrm_stats), ("judge", run.judge_stats)):
        if stats is None or not too_many_failed(stats.failures, stats.requests, max_failure_rate):
            continue
        usable = False
        print(
            f"ralign: error: {run.spec.task}: {stats.failures} of {stats.requests} {role} "
            f"requests to {stats.endpoint} failed ({stats.failure_rate:.0%}, at least "
            f"--max-failure-rate {max_failure_rate:g}); the numbers above are not usable:",
            file=sys.stderr,
        )
        for reason, count in stats.failure_reasons.items():
            print(f"  {count} request(s): {reason}", file=sys.stderr)
        said = [*stats.failure_reasons, *stats.failure_examples.values()]
        if any(is_context_error(text) for text in said):
            prefix = GENRM_ENV_PREFIX if role == "GenRM" else METAJUDGE_ENV_PREFIX
            print(
                f"  the request does not fit the model's context: lower {prefix}MAX_TOKENS, or "
                "serve the model with a longer context",
                file=sys.stderr,
            )
    return usable


def _genrm_step(
    spec: TaskSpec,
    records: Sequence[Any],
    genrm: EndpointConfig,
    judge: JudgeSettings | None,
    options: dict[str, Any],
) -> StepScorer:
    """A run step that asks the GenRM, then judges."""

    def score_step(start: int, stop: int, part: str | None) -> ScoredRun:
        outputs, genrm_stats = generate_outputs(spec, records[start:stop], genrm, options,
                                                part=part)  # fmt: skip
        step = score_outputs(spec, records[start:stop], outputs, judge, options, part)
        step.genrm_stats = genrm_stats
        return step

    return score_step


def _output_step(
    spec: TaskSpec,
    records: Sequence[Any],
    outputs: Sequence[Sequence[GenRMOutput]],
    judge: JudgeSettings | None,
    options: dict[str, Any],
) -> StepScorer:
    """A run step over stored GenRM outputs."""

    def score_step(start: int, stop: int, part: str | None) -> ScoredRun:
        return score_outputs(spec, records[start:stop], outputs[start:stop], judge, options,
                             part)  # fmt: skip

    return score_step


def _judged_step(
    spec: TaskSpec, records: Sequence[Any], judgments: Sequence[Any], judge: JudgeSettings | None
) -> StepScorer:
    """A run step over judgments made already (stored checklists, official judge outputs)."""

    def score_step(start: int, stop: int, part: str | None) -> ScoredRun:
        return score_judgments(spec, records[start:stop], judgments[start:stop], judge, part)

    return score_step


def _outputs_for(
    path: str, spec: TaskSpec, records: Sequence[Any], options: dict[str, Any]
) -> list[list[GenRMOutput]]:
    """The stored outputs of every record (truncation unknown), one per prompt of its family;
    an error naming what is missing or miscounted."""
    outputs = read_outputs_file(path)
    missing = [r.id for r in records if r.id not in outputs]
    if missing:
        raise DataUnavailableError(
            f"{path}: no output for {len(missing)} of {len(records)} items "
            f"(first: {', '.join(missing[:5])})"
        )
    protocol = protocol_of(spec)
    for record in records:
        expected = protocol.prompt_count(record, options)
        if len(outputs[record.id]) != expected:
            raise ValueError(
                f"{path}: item {record.id} has {len(outputs[record.id])} output(s); "
                f"{spec.task} asks {expected} prompt(s) per item (give them as 'outputs', a "
                "list in the order of the prompts)"
            )
    return [[GenRMOutput(text, truncated=None) for text in outputs[r.id]] for r in records]


def _judge_of(spec: TaskSpec, judge: JudgeSettings | None) -> JudgeSettings | None:
    """The run's judge for a task whose family has a judge step; ``None`` otherwise."""
    return judge if protocol_of(spec).uses_judge else None


def _title(spec: TaskSpec, options: dict[str, Any], source: str | None = None) -> str:
    """The run table's title: the task, its data options and any other option that is not
    the default, and where the outputs came from."""
    shown = [
        option for option in protocol_of(spec).options
        if option.stage == "data" or options.get(option.name, option.default) != option.default
    ]  # fmt: skip
    details = [f"{o.name.replace('_', ' ')} {options.get(o.name, o.default)}" for o in shown]
    details += [source] if source else []
    return f"{spec.task} ({', '.join(details)})" if details else spec.task


def _genrm_config(args: argparse.Namespace, spec: TaskSpec) -> EndpointConfig:
    """The GenRM endpoint, with its family's official generation settings as defaults."""
    protocol = protocol_of(spec)
    return EndpointConfig.from_sources(
        GENRM_ENV_PREFIX,
        {
            "model": args.genrm_model,
            "base_url": args.genrm_base_url,
            "cache": False if args.no_cache else None,
        },
        temperature=protocol.genrm_temperature,
        max_tokens=protocol.genrm_max_tokens,
    ).require_model("GenRM", GENRM_ENV_PREFIX, "pass --genrm-model (and --genrm-base-url), or ")


def cmd_run(args: argparse.Namespace) -> int:
    # Every setting and every data file is checked before the first call.
    specs = [get_task(name) for name in args.benchmarks]
    plans = [(spec, _family_options(args, spec), _genrm_config(args, spec)) for spec in specs]
    judge = _judge_config(args, specs)
    for spec, _, _ in plans:
        _check_templates(spec, judge)
    loads = [_load(spec, args, options) for spec, options, _ in plans]
    runs = [
        (
            spec, options, genrm, loaded, _run_folder(args, spec, options, str(genrm.model)),
            _identity(str(genrm.model), spec, options, _judge_of(spec, judge), "ralign run"),
        )
        for (spec, options, genrm), loaded in zip(plans, loads, strict=True)
    ]  # fmt: skip
    for *_, folder, identity in runs:  # before the first call, not after the first benchmark
        check_run_folder(folder, identity, args.overwrite)
    usable = True
    for spec, options, genrm, loaded, folder, identity in runs:
        records = loaded.records
        score_step = _genrm_step(spec, records, genrm, _judge_of(spec, judge), options)
        settings = _settings(args, loaded, judge, options) | {
            "genrm_model": genrm.model,
            "genrm_endpoint": genrm.endpoint,
        }
        run = run_in_steps(spec, len(records), score_step, folder, identity, settings,
                           args.overwrite)  # fmt: skip
        usable &= _finish(run, folder, _title(spec, options), args.max_failure_rate)
    return 0 if usable else UNUSABLE_EXIT


def cmd_score(args: argparse.Namespace) -> int:
    spec = get_task(args.benchmark)
    if args.judgebench_outputs:
        return _score_judgebench_outputs(args, spec)
    options = _family_options(args, spec)
    judge = _judge_config(args, [spec])
    _check_templates(spec, judge)
    loaded = _load(spec, args, options)
    records = loaded.records
    outputs = _outputs_for(args.outputs, spec, records, options)
    score_step = _output_step(spec, records, outputs, judge, options)
    genrm = args.genrm_name or Path(args.outputs).stem
    settings = _settings(args, loaded, judge, options) | {"outputs": args.outputs}
    folder = _run_folder(args, spec, options, genrm)
    identity = _identity(genrm, spec, options, judge if protocol_of(spec).uses_judge else None,
                         f"ralign score {Path(args.outputs).name}")  # fmt: skip
    run = run_in_steps(spec, len(records), score_step, folder, identity, settings, args.overwrite)
    usable = _finish(run, folder, _title(spec, options), args.max_failure_rate)
    return 0 if usable else UNUSABLE_EXIT


def _score_judgebench_outputs(args: argparse.Namespace, spec: TaskSpec) -> int:
    """The official JudgeBench numbers of one of its judge-output files, as a run folder."""
    if spec is not JUDGEBENCH_TASK:
        raise ValueError(f"--judgebench-outputs applies to judgebench, not {spec.task}")
    path = args.judgebench_outputs
    records, judgments, judge = read_official_outputs(path)
    # The official files come from the Arena-Hard judge; the responses' author names the split.
    split = "claude" if any("claude" in r.response_model for r in records) else "gpt"
    options = _family_options(args, spec) | {"verdict_format": "arena_hard", "split": split}
    settings = {"judgebench_outputs": path, "items": len(records), **options}
    genrm = args.genrm_name or judge
    folder = _run_folder(args, spec, options, genrm)
    identity = _identity(genrm, spec, options, None, f"ralign score {Path(path).name}")
    run = run_in_steps(spec, len(records), _judged_step(spec, records, judgments, None), folder,
                       identity, settings, args.overwrite)  # fmt: skip
    usable = _finish(run, folder, _title(spec, options, path), args.max_failure_rate)
    print(official_line(run.report["overall"]))
    return 0 if usable else UNUSABLE_EXIT


def cmd_rc_score(args: argparse.Namespace) -> int:
    judge = _judge_config(args, [RC_TASK])
    assert judge is not None  # rc-score has no --no-metajudge: RC is the judge's verdict
    _check_templates(RC_TASK, judge)
    options = _family_options(args, RC_TASK)
    loaded = _load(RC_TASK, args, options)
    records = loaded.records
    if args.reference:
        judgments = [AtomicJudgment.from_reference(r, args.reference) for r in records]
        source, genrm = f"reference {args.reference}", f"reference/{args.reference}"
        path = f"ralign rc-score --reference {args.reference}"
    else:
        protocol = protocol_of(RC_TASK)
        outputs = _outputs_for(args.outputs, RC_TASK, records, options)
        judgments = [
            protocol.judgment(r, o, options) for r, o in zip(records, outputs, strict=True)
        ]
        source, genrm = args.outputs, Path(args.outputs).stem
        path = f"ralign rc-score {Path(args.outputs).name}"
    genrm = args.genrm_name or genrm
    settings = _settings(args, loaded, judge, options) | {"source": source}
    folder = _run_folder(args, RC_TASK, options, genrm)
    identity = _identity(genrm, RC_TASK, options, judge, path)
    run = run_in_steps(RC_TASK, len(records), _judged_step(RC_TASK, records, judgments, judge),
                       folder, identity, settings, args.overwrite)  # fmt: skip
    usable = _finish(run, folder, _title(RC_TASK, options, source), args.max_failure_rate)
    return 0 if usable else UNUSABLE_EXIT


def cmd_rejudge(args: argparse.Namespace) -> int:
    """Judge the stored GenRM outputs of finished runs again (another meta-judge, template or
    judge order); each becomes a run folder of its own. No GenRM call is made."""
    from ralign_tasks.report.runs import load_runs, no_samples_hint
    from ralign_tasks.report.viewer import page_name

    results, warnings = load_runs(args.paths)
    _warn(warnings)
    runs = []
    for result in results:
        protocol = protocol_of(result.task)
        if not protocol.uses_judge or not result.items:
            why = "its benchmark has no judge step" if not protocol.uses_judge else (
                no_samples_hint(result))  # fmt: skip
            print(f"ralign: warning: {result.source}: not re-judged: {why}", file=sys.stderr)
            continue
        runs.append(result)
    if not runs:
        raise DataUnavailableError("no run with judged items to re-judge under the given paths")
    judge = _judge_config(args, [get_task(r.task) for r in runs])
    usable = True
    taken: set[str] = set()
    for result in runs:
        spec = get_task(result.task)
        _check_templates(spec, judge)
        protocol = protocol_of(spec)
        given = {**result.options, **({"judge_order": args.judge_order} if args.judge_order
                                       and "judge_order" in result.options else {})}  # fmt: skip
        options = protocol.option_values(given, spec.task)
        records, outputs = [], []
        for item in result.full_items():
            records.append(protocol.record_from_dict(item.record))
            outputs.append(protocol.stored_outputs(item.genrm))
        folder = Path(args.output_dir) / page_name(result, taken).removesuffix(".html")
        settings = {"rejudged_from": result.source, "items": len(records), **options} | {
            "meta_judge_model": judge.transport.model if judge else None,
            "meta_judge_endpoint": judge.transport.endpoint if judge else None,
        }
        score_step = _output_step(spec, records, outputs, judge, options)
        # Named by the source's path (a rejudged CLI run and a rejudged lm-eval run of one
        # GenRM are different runs); the source's file is in the settings.
        source_path = result.identity.path if result.identity else result.harness
        identity = _identity(result.model or result.genrm, spec, options, judge,
                             f"ralign rejudge of {source_path}")  # fmt: skip
        run = run_in_steps(spec, len(records), score_step, folder, identity, settings,
                           args.overwrite)  # fmt: skip
        usable &= _finish(run, folder, _title(spec, options, f"re-judged {result.source}"),
                          args.max_failure_rate)  # fmt: skip
    return 0 if usable else UNUSABLE_EXIT


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
    if args.agreement is not None:
        if len(args.agreement) < 2:
            raise ValueError("--agreement needs two or more runs (one per meta-judge)")
        if args.paths or args.compare or args.downstream or args.csv or args.summary_csv:
            raise ValueError(
                "--agreement prints the agreement only (with --plots DIR, its plot): run the "
                "table or --compare as a separate command"
            )
        return
    if not args.paths and not args.compare:
        raise ValueError(
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
        _warn(warnings)
    found = agreement(raters)
    if args.format == "csv":
        raise ValueError("--agreement prints a table or Markdown (--format table|markdown)")
    _emit(format_agreement(found, markdown=args.format == "markdown"), args.output)
    if args.plots:
        for path in plot_agreement(found, Path(args.plots)):
            _written(path)
    return 0 if found else 1


def _refuse_unusable(results: Sequence[Any], max_failure_rate: float) -> None:
    """A comparison never uses a run whose numbers are not usable unless asked."""
    unusable = [f"{r.genrm} on {r.task} ({r.source}): {why}" for r in results
                if (why := r.unusable(max_failure_rate))]  # fmt: skip
    if unusable:
        raise ValueError(
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
            comparison = compare.compare(first, second, warnings, n_bootstrap=args.bootstrap)
        finally:  # the warnings often say why nothing could be compared
            _warn(warnings)
        _emit(compare.RENDERERS[args.format](comparison), args.output)
        return 0
    _warn(warnings)
    if not results:
        print("ralign: error: no R-Align results found", file=sys.stderr)
        return 1
    table = build_table(results, args.by_subset, args.details, args.max_failure_rate)
    _emit(RENDERERS[args.format](table), args.output)
    if args.csv:
        Path(args.csv).write_text(render_csv(table), encoding="utf-8")
        _written(args.csv)
    if args.summary_csv:
        Path(args.summary_csv).write_text(render_summary_csv(table), encoding="utf-8")
        _written(args.summary_csv)
    found = None
    if downstream is not None:
        found = plots.correlations(plots.overall_by_task(results), downstream, warnings)
        _warn(warnings)
        if args.format != "csv":
            print(plots.render_correlations(found, args.format), end="")
    if args.plots:
        for path in plots.write_plots(results, Path(args.plots), found):
            _written(path)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Write the viewer pages; 1 when no run could be shown."""
    from ralign_tasks.report.runs import load_runs, name_by_identity
    from ralign_tasks.report.viewer import ITEMS_SUFFIX, write_views

    results, warnings = load_runs(args.paths)
    # Every run gets its page, named as the report names its row.
    pages = write_views(name_by_identity(results), Path(args.output_dir), warnings)
    _warn(warnings)
    if not pages:
        print("ralign: error: no R-Align run with per-item samples found", file=sys.stderr)
        return 1
    for page in pages:
        items = page.with_name(page.stem + ITEMS_SUFFIX)
        print(f"written: {page}" + (f" (items in {items}/)" if items.is_dir() else ""))
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


# Exit statuses of a run stopped by a signal: 128 + its number, as a shell reports it.
INTERRUPTED_EXIT = 128 + signal.SIGINT
TERMINATED_EXIT = 128 + signal.SIGTERM


class _Signals:
    """SIGTERM (what ``timeout``, Docker and Slurm send) handled as Ctrl-C: the run stops
    through the same path, committing every answer received, and exits with 143."""

    def __init__(self) -> None:
        self.terminated = False

    def __enter__(self) -> _Signals:
        # Only the main thread may set handlers (``main`` called from another thread is left
        # with the process's own).
        self.previous = (
            signal.signal(signal.SIGTERM, self._on_term)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        return self

    def _on_term(self, signum: int, frame: Any) -> None:
        self.terminated = True
        # Delivered as SIGINT, so that a running event loop stops the way Ctrl-C stops it
        # (its tasks cancelled and their cleanup run), and plain code gets KeyboardInterrupt.
        signal.raise_signal(signal.SIGINT)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _interrupted_message(terminated: bool) -> str:
    """What an interrupted run kept, naming the caches it actually used."""
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    if not OPENED_CACHES:
        return f"ralign: {what}. Nothing was cached (--no-cache): a rerun asks every request again."
    caches = ", ".join(str(path) for path in sorted(OPENED_CACHES))
    return (
        f"ralign: {what}. Every answer received so far is cached in {caches}; run the same "
        "command again to resume."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    OPENED_CACHES.clear()  # those of an earlier command of this process are not this one's
    with _Signals() as signals:
        try:
            return _command(args)
        except EndpointDownError as exc:
            print(f"ralign: error: {exc}", file=sys.stderr)
            return UNUSABLE_EXIT
        except (
            StopRun,  # a cache that cannot be used, a folder another run is writing, a bad key
            DemoError,
            ConfigError,
            DataFormatError,
            DataUnavailableError,
            OSError,  # files: missing, not writable, a folder where a file should be
            KeyError,
            ValueError,
        ) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            print(f"ralign: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(_interrupted_message(signals.terminated), file=sys.stderr)
            return TERMINATED_EXIT if signals.terminated else INTERRUPTED_EXIT


def _command(args: argparse.Namespace) -> int:
    if args.command == "include-path":
        print(include_path())
        return 0
    commands = {
        "demo": lambda: run_demo(args.output_dir),
        "run": lambda: cmd_run(args),
        "score": lambda: cmd_score(args),
        "rc-score": lambda: cmd_rc_score(args),
        "rejudge": lambda: cmd_rejudge(args),
        "report": lambda: cmd_report(args),
        "view": lambda: cmd_view(args),
        "check-data": lambda: cmd_check_data(args),
    }
    return commands[args.command]()

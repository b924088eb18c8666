"""The ``ralign`` command line's parser: every subcommand and option, generated over the
registered protocols (their tasks, options and group filters) and the judge settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ralign_tasks.identity import (
    DEFAULT_MAX_FAILURE_RATE,
    failure_rate,
)
from ralign_tasks.judge import JUDGE_SETTINGS
from ralign_tasks.protocols import PROTOCOLS, TASKS, Protocol, protocol_of
from ralign_tasks.protocols.base import Option
from ralign_tasks.scorers.config import (
    GENRM_ENV_PREFIX,
    METAJUDGE_ENV_PREFIX,
)
from ralign_tasks.scorers.probes import PROBES
from ralign_tasks.scorers.settings import (
    EXTRACTOR_ENV_PREFIX,
    EXTRACTOR_PREFIX,
    SWITCH_ENV,
    Setting,
)
from ralign_tasks.scorers.stats import DRAWS

# The task `ralign rc-score` scores (Rationale Consistency of stored outputs).
RC_TASK = "ralign_helpsteer3_atomic"

# The families with bias probes (`ralign probe`).
PROBES_FAMILIES = [p for p in PROTOCOLS if any(o.name == "probe" for o in p.options)]
# `ralign run` with no names: the tasks of the families run by default (R-Align fidelity).
DEFAULT_RUN = [spec.short for p in PROTOCOLS if p.run_by_default for spec in p.tasks]
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
    for field, titles in group_fields(protocols).items():
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
    for name, found in family_options_of(protocols).items():
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


# The extractor flags listed in --help (all the meta-judge's keys are taken; these are the
# ones a user sets).
_EXTRACTOR_SHOWN = frozenset({"model", "base_url", "concurrency", "temperature", "max_tokens"})


def _flag_kind(setting: Setting) -> dict[str, Any]:
    if setting.kind == "bool":
        return {"action": argparse.BooleanOptionalAction}
    return {
        "type": {"int": int, "float": float}.get(setting.kind, str),
        "metavar": "PATH" if setting.template else setting.kind.upper(),
    }


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
        group.add_argument(
            setting.flag,
            dest=setting.name,
            help=f"{setting.help} (default: {setting.default_text})",
            **_flag_kind(setting),
        )
    extractor = parser.add_argument_group(
        "extractor settings (HelpSteer3-Atomic with --genrm-format free, or --extract)",
        f"the same keys: each flag overrides {EXTRACTOR_ENV_PREFIX}<KEY>; a key given neither "
        "way is the meta-judge's (its API key only where the endpoint is the meta-judge's too; "
        f"else {EXTRACTOR_ENV_PREFIX}API_KEY)",
    )
    for setting in JUDGE_SETTINGS:
        if setting.secret or setting.template:
            continue
        extractor.add_argument(
            "--extractor-" + setting.key.replace("_", "-"),
            dest=EXTRACTOR_PREFIX + setting.key,
            help=argparse.SUPPRESS
            if setting.key not in _EXTRACTOR_SHOWN
            else f"the extractor's {setting.key.replace('_', ' ')}",
            **_flag_kind(setting),
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


def _add_cost_options(
    parser: argparse.ArgumentParser, *, dry_run: bool, recorded: bool = False
) -> None:
    """What each role is charged (recorded in the run's usage; ``recorded``: finished runs,
    priced by what they recorded unless told otherwise), and ``--dry-run``."""
    if dry_run:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="make no call: print per benchmark and role the requests still to pay (cache "
            "hits excluded), their prompt and completion tokens and their cost, then exit",
        )
        parser.add_argument(
            "--expect-from",
            nargs="+",
            metavar="RUN",
            help="with --dry-run: expect as many completion tokens per request as these "
            "finished run folders had (default: each request's max_tokens, an upper bound)",
        )
    parser.add_argument(
        "--price-in", type=float, metavar="USD", help="USD per million prompt tokens, every role"
    )
    parser.add_argument(
        "--price-out",
        type=float,
        metavar="USD",
        help="USD per million completion tokens, every role",
    )
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="a price file by model (default: "
        + ("the prices the runs recorded, else " if recorded else "")
        + "$RALIGN_PRICES, else the bundled prices.toml)",
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


def group_fields(protocols: Sequence[Protocol[Any, Any, Any]]) -> dict[str, list[str]]:
    """Each family's group filter option (``subset``, ``domain``) with the families using it."""
    fields: dict[str, list[str]] = {}
    for protocol in protocols:
        fields.setdefault(protocol.group_field, []).append(protocol.title)
    return fields


def family_options_of(
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
    _add_cost_options(run, dry_run=True)

    probe = _add_command(
        commands,
        "probe",
        help="run a GenRM through bias probes (answers dressed up without changing their "
        "substance) and print how far its verdicts and rationales moved",
    )
    probeable = [p for p in PROBES_FAMILIES]
    probe.add_argument(
        "benchmarks",
        nargs="*",
        default=DEFAULT_RUN,
        help=f"any of {', '.join(s.short for p in probeable for s in p.tasks)} (default: "
        f"{' '.join(DEFAULT_RUN)})",
    )
    probe.add_argument(
        "--probes",
        default=",".join(PROBES),
        metavar="NAME[,NAME…]",
        help=f"the probes to run (default: all: {','.join(PROBES)})",
    )
    probe.add_argument("--genrm-model", help=f"overrides {GENRM_ENV_PREFIX}MODEL")
    probe.add_argument("--genrm-base-url", help=f"overrides {GENRM_ENV_PREFIX}BASE_URL")
    probe.add_argument("--plots", metavar="DIR", help="write the flip-rate plot (PNG, SVG) here")
    _add_data_options(probe, probeable)
    _add_cost_options(probe, dry_run=True)

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
    _add_cost_options(score, dry_run=False)

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
        "--extract",
        action="store_true",
        help="with --reference: the extractor lists the reasons of the reference model's "
        "generated text instead of its stored checklist (to qualify an extractor)",
    )
    rc.add_argument(
        "--genrm-name", help="the GenRM's name in reports (default: the outputs file's name)"
    )
    _add_data_options(rc, [protocol_of(RC_TASK)], judge_optional=False)

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

    cost = _add_command(
        commands,
        "cost",
        help="what finished runs paid: requests, cache hits, calls, tokens and cost per role",
    )
    cost.add_argument("paths", nargs="+", help="ralign run folders, or folders holding them")
    _add_cost_options(cost, dry_run=False, recorded=True)

    export = _add_command(
        commands,
        "export",
        help="write runs in a shared results format: Every Eval Ever (per run, an aggregate "
        "record and a per-item JSONL)",
    )
    export.add_argument(
        "paths", nargs="+", help="lm-eval output folders, Inspect logs, ralign run folders"
    )
    export.add_argument(
        "--format", choices=("every-eval-ever",), required=True, help="the format to write"
    )
    export.add_argument(
        "--output-dir",
        required=True,
        help="where the records go, as the datastore lays them out: "
        "DIR/data/<benchmark>/<developer>/<model>/<uuid>.json and <uuid>_samples.jsonl",
    )
    export.add_argument(
        "--source-organization",
        default="unknown",
        help="who ran the evaluation (source_metadata; default: unknown)",
    )
    export.add_argument(
        "--evaluator-relationship",
        choices=("first_party", "third_party", "collaborative", "other"),
        default="third_party",
        help="the evaluator's relationship to the GenRM (default: third_party)",
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

"""The commands that run benchmarks (``run``, ``score``, ``rc-score``, ``rejudge``) as one
run plan each: benchmarks, options, judge, data and output folder, made and checked before
any model call, then executed by one function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from ralign_tasks.cli.messages import warn
from ralign_tasks.cli.parser import RC_TASK, family_options_of, group_fields
from ralign_tasks.cost import expected_completions, format_bills, load_prices, plan_bills
from ralign_tasks.data import (
    DataUnavailableError,
    LoadResult,
    data_source,
    keep_named,
    warn_bad_rows,
)
from ralign_tasks.identity import (
    UNUSABLE_EXIT,
    RunIdentity,
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
from ralign_tasks.protocols import PROTOCOLS, Protocol, TaskSpec, get_task, protocol_of
from ralign_tasks.protocols.base import GenRMOutput
from ralign_tasks.report.console import format_run_table
from ralign_tasks.scorers.config import (
    GENRM_ENV_PREFIX,
    METAJUDGE_ENV_PREFIX,
    ConfigError,
    EndpointConfig,
)
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.probes import PROBES
from ralign_tasks.scorers.settings import (
    EXTRACTOR_ENV_PREFIX,
    SWITCH_ENV,
    JudgeSettings,
    extractor_given,
    switched_off,
)


def _family_options(args: argparse.Namespace, spec: TaskSpec) -> dict[str, Any]:
    """The family options given on the command line; one that does not apply to the task is
    an error, never silently ignored."""
    protocol = protocol_of(spec)
    known = {option.name for option in protocol.options}
    given = {
        name: getattr(args, name)
        for name in family_options_of(PROTOCOLS)
        if getattr(args, name, None) is not None
    }
    for name in given:
        if name not in known:
            raise UserError(f"--{name.replace('_', '-')} does not apply to {spec.task}")
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
    for group in group_fields(PROTOCOLS):
        if group != protocol.group_field and getattr(args, group, None):
            raise UserError(f"--{group} does not apply to {spec.task}")
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
    no_cache = {"cache": False} if args.no_cache else {}
    extractor = extractor_given(vars(args), "the command line") | no_cache
    judge = resolve_judge(given | no_cache, extractor=extractor)
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
    extractor = judge.endpoint_of("extractor") if judge and _extracts(spec, options) else None
    return RunIdentity(
        genrm=genrm,
        task=spec.task,
        options=protocol_of(spec).variant(options),
        judge=str(judge.transport.model) if judge else None,
        judge_endpoint=judge.transport.endpoint if judge else None,
        path=path,
        extractor=f"{extractor.model} at {extractor.endpoint}" if extractor else None,
    )


def _extracts(spec: TaskSpec, options: dict[str, Any]) -> bool:
    """Whether a run's reasons come from the extractor (the option that asks for it)."""
    return options.get("genrm_format") == "free" or bool(options.get("extract"))


def _settings(
    loaded: LoadResult,
    judge: JudgeSettings | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "data_file": loaded.path,
        "items": len(loaded.records),
        "skipped_bad_rows": [str(row) for row in loaded.bad_rows],
        **options,
        **_judge_settings(judge),
    }


def _judge_settings(judge: JudgeSettings | None) -> dict[str, Any]:
    """Who judged a run, as its settings record it."""
    extractor = judge.endpoint_of("extractor") if judge else None
    return {
        "meta_judge_model": judge.transport.model if judge else None,
        "meta_judge_endpoint": judge.transport.endpoint if judge else None,
        # How it was asked (the Every Eval Ever export names them): the templates given by
        # setting key (none: the bundled ones).
        "meta_judge_backend": judge.transport.backend if judge else None,
        "meta_judge_temperature": judge.transport.temperature if judge else None,
        "meta_judge_max_tokens": judge.transport.max_tokens if judge else None,
        "meta_judge_templates": dict(judge.templates) if judge else {},
        "extractor_model": extractor.model if extractor else None,
        "extractor_endpoint": extractor.endpoint if extractor else None,
    }


def _finish(
    run: FinishedRun, folder: Path, title: str, max_failure_rate: float, table: bool = True
) -> bool:
    """Print the results of a written run (``table``: its table); false (after saying why on
    stderr) when the GenRM or the judge failed on at least ``max_failure_rate`` of its
    requests."""
    if table:
        print(format_run_table(title, protocol_of(run.spec), run.report))
        print(f"written: {folder}/results.json, {folder}/samples.jsonl\n")
    usable = True
    protocol = protocol_of(run.spec)
    for role, stats in run.role_stats():
        if not too_many_failed(stats.failures, stats.requests, max_failure_rate):
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
            prefix = {"GenRM": GENRM_ENV_PREFIX, "extractor": EXTRACTOR_ENV_PREFIX}.get(
                protocol.role_of(role) if role != "GenRM" else role, METAJUDGE_ENV_PREFIX
            )
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
            raise UserError(
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


@dataclass
class RunPlan:
    """One benchmark run of a command: what it scores, how, and where it writes. Every plan
    of a command is made (settings, data, templates and folders checked) before the first
    model call."""

    spec: TaskSpec
    options: dict[str, Any]
    records: Sequence[Any]
    score_step: StepScorer
    folder: Path
    identity: RunIdentity
    settings: dict[str, Any]
    title: str
    # After the run table: a line of the benchmark's own (its official numbers).
    official: bool = False
    # Who answers each role, by results.json's usage key (genrm, judge, each prep step).
    endpoints: dict[str, EndpointConfig] = field(default_factory=dict)


def _plan(
    args: argparse.Namespace,
    spec: TaskSpec,
    options: dict[str, Any],
    records: Sequence[Any],
    score_step: StepScorer,
    genrm: str,
    judge: JudgeSettings | None,
    path: str,
    settings: dict[str, Any],
    source: str | None = None,
    folder: Path | None = None,
    genrm_config: EndpointConfig | None = None,
) -> RunPlan:
    judge = _judge_of(spec, judge)
    endpoints = {"genrm": genrm_config} if genrm_config is not None else {}
    if judge is not None:
        endpoints["judge"] = judge.transport
        for step in protocol_of(spec).prep_steps:
            endpoints[step.name] = judge.endpoint_of(step.role)
    return RunPlan(
        spec=spec,
        options=options,
        records=records,
        score_step=score_step,
        folder=folder or _run_folder(args, spec, options, genrm),
        identity=_identity(genrm, spec, options, judge, path),
        settings=settings,
        title=_title(spec, options, source),
        endpoints=endpoints,
    )


def plan_run(args: argparse.Namespace) -> list[RunPlan]:
    """``ralign run``: ask the GenRM, then judge, for each benchmark."""
    specs = [get_task(name) for name in args.benchmarks]
    asked = [(spec, _family_options(args, spec), _genrm_config(args, spec)) for spec in specs]
    judge = _judge_config(args, specs)
    for spec in specs:
        _check_templates(spec, judge)
    plans = []
    for spec, options, genrm in asked:
        loaded = _load(spec, args, options)
        settings = _settings(loaded, judge, options) | {
            "genrm_model": genrm.model,
            "genrm_endpoint": genrm.endpoint,
        }
        step = _genrm_step(spec, loaded.records, genrm, _judge_of(spec, judge), options)
        plans.append(_plan(args, spec, options, loaded.records, step, str(genrm.model), judge,
                           "ralign run", settings, genrm_config=genrm))  # fmt: skip
    return plans


def plan_score(args: argparse.Namespace) -> list[RunPlan]:
    """``ralign score``: judge stored GenRM outputs, or score a benchmark's own judge-output
    file by its official rule."""
    spec = get_task(args.benchmark)
    if args.judgebench_outputs:
        return [_plan_official_outputs(args, spec, args.judgebench_outputs)]
    options = _family_options(args, spec)
    judge = _judge_config(args, [spec])
    _check_templates(spec, judge)
    loaded = _load(spec, args, options)
    outputs = _outputs_for(args.outputs, spec, loaded.records, options)
    step = _output_step(spec, loaded.records, outputs, _judge_of(spec, judge), options)
    genrm = args.genrm_name or Path(args.outputs).stem
    settings = _settings(loaded, judge, options) | {"outputs": args.outputs}
    return [_plan(args, spec, options, loaded.records, step, genrm, judge,
                  f"ralign score {Path(args.outputs).name}", settings)]  # fmt: skip


def _plan_official_outputs(args: argparse.Namespace, spec: TaskSpec, path: str) -> RunPlan:
    """The official numbers of one of a benchmark's own judge-output files, as a run."""
    protocol = protocol_of(spec)
    if type(protocol).official_outputs is Protocol.official_outputs:
        having = [t.short for p in PROTOCOLS for t in p.tasks
                  if type(p).official_outputs is not Protocol.official_outputs]  # fmt: skip
        raise UserError(f"--judgebench-outputs applies to {', '.join(having)}, not {spec.task}")
    records, judgments, judge, stored = protocol.official_outputs(path)
    options = _family_options(args, spec) | stored
    settings = {"judgebench_outputs": path, "items": len(records), **options}
    step = _judged_step(spec, records, judgments, None)
    plan = _plan(args, spec, options, records, step, args.genrm_name or judge, None,
                 f"ralign score {Path(path).name}", settings, source=path)  # fmt: skip
    plan.official = True
    return plan


def plan_rc_score(args: argparse.Namespace) -> list[RunPlan]:
    """``ralign rc-score``: Rationale Consistency of a reference model's stored checklists or
    of a file of GenRM outputs."""
    spec = get_task(RC_TASK)
    protocol = protocol_of(spec)
    judge = _judge_config(args, [spec])
    assert judge is not None  # rc-score has no --no-metajudge: RC is the judge's verdict
    _check_templates(spec, judge)
    options = _family_options(args, spec)
    loaded = _load(spec, args, options)
    records = loaded.records
    if args.extract and not args.reference:
        raise UserError(
            "--extract applies to --reference (stored outputs: pass --genrm-format free)"
        )
    if args.reference:
        judgments = protocol.reference_judgments(records, args.reference, options, args.extract)
        extracted = " --extract" if args.extract else ""
        source = f"reference {args.reference}{', extracted' if args.extract else ''}"
        genrm = f"reference/{args.reference}{'+extract' if args.extract else ''}"
        path = f"ralign rc-score --reference {args.reference}{extracted}"
    else:
        outputs = _outputs_for(args.outputs, spec, records, options)
        judgments = [
            protocol.judgment(r, o, options) for r, o in zip(records, outputs, strict=True)
        ]
        source, genrm = args.outputs, Path(args.outputs).stem
        path = f"ralign rc-score {Path(args.outputs).name}"
    if args.extract:
        options = options | {"extract": True}  # the identity names the extractor
    settings = _settings(loaded, judge, options) | {"source": source}
    step = _judged_step(spec, records, judgments, judge)
    return [_plan(args, spec, options, records, step, args.genrm_name or genrm, judge, path,
                  settings, source=source)]  # fmt: skip


def plan_rejudge(args: argparse.Namespace) -> list[RunPlan]:
    """``ralign rejudge``: judge the stored GenRM outputs of finished runs again (another
    meta-judge, template or judge order); each becomes a run folder of its own. No GenRM
    call is made."""
    from ralign_tasks.report.runs import load_runs, no_samples_hint
    from ralign_tasks.report.viewer import page_name

    results, warnings = load_runs(args.paths)
    warn(warnings)
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
    plans = []
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
        settings = {
            "rejudged_from": result.source, "items": len(records), **options,
            **_judge_settings(judge),
        }  # fmt: skip
        # Named by the source's path (a rejudged CLI run and a rejudged lm-eval run of one
        # GenRM are different runs); the source's file is in the settings.
        source_path = result.identity.path if result.identity else result.harness
        plans.append(_plan(
            args, spec, options, records, _output_step(spec, records, outputs, judge, options),
            result.model or result.genrm, judge, f"ralign rejudge of {source_path}", settings,
            source=f"re-judged {result.source}",
            folder=Path(args.output_dir) / page_name(result, taken).removesuffix(".html"),
        ))  # fmt: skip
    return plans


def plan_probe(args: argparse.Namespace) -> list[RunPlan]:
    """``ralign probe``: ``ralign run`` of each benchmark under each probe (the unprobed
    answers, asked in each run, are paid once: the cache)."""
    if getattr(args, "probe", None):
        raise UserError("ralign probe takes --probes NAME[,NAME…], not --probe")
    probes = [name.strip() for name in args.probes.split(",") if name.strip()]
    unknown = [name for name in probes if name not in PROBES]
    if unknown or not probes:
        raise UserError(f"--probes: {', '.join(unknown) or 'none given'}; the probes are "
                        f"{', '.join(PROBES)}")  # fmt: skip
    for name in args.benchmarks:
        if not any(o.name == "probe" for o in protocol_of(get_task(name)).options):
            raise UserError(f"{name} has no bias probes (R-Align and the label benchmarks have)")
    plans = []
    for probe in probes:
        plans += plan_run(argparse.Namespace(**{**vars(args), "probe": probe}))
    return plans


def _dry_run(plans: Sequence[RunPlan], args: argparse.Namespace) -> int:
    """``--dry-run``: what each plan would still pay, per benchmark and role; no call."""
    prices = load_prices(args.prices, args.price_in, args.price_out)
    expected = expected_completions(args.expect_from or [])
    bills = []
    for plan in plans:
        protocol = protocol_of(plan.spec)
        name = plan.spec.short + (f" ({plan.identity.options})" if plan.identity.options else "")
        bills += plan_bills(
            name, protocol, plan.options,
            lambda plan=plan: plan.score_step(0, len(plan.records), None),
            plan.endpoints, prices, expected,
        )  # fmt: skip
    print(format_bills(bills))
    known = [bill.cost for bill in bills if bill.cost is not None]
    if known:
        unpriced = [bill for bill in bills if bill.cost is None and bill.to_pay]
        print(f"total: {sum(known):,.4f} USD" + (" (and roles without a price)" if unpriced
                                                 else ""))  # fmt: skip
    print("~ estimated   ≤ at most (answers not given yet; completions at max_tokens)")
    return 0


PLANNERS = {"run": plan_run, "score": plan_score, "rc-score": plan_rc_score,
            "rejudge": plan_rejudge, "probe": plan_probe}  # fmt: skip


def plan_runs(args: argparse.Namespace) -> list[RunPlan]:
    """The runs of a command that runs benchmarks (``run``, ``score``, ``rc-score``,
    ``rejudge``)."""
    return PLANNERS[args.command](args)


def execute(plans: Sequence[RunPlan], args: argparse.Namespace) -> int:
    """Run every plan (each folder is checked before the first call: a folder holding
    another run stops the command before anything is paid), print each run's table (``ralign
    probe``: one table of all its runs); exit status 3 when a run's GenRM or judge failed on
    at least ``--max-failure-rate`` of its requests."""
    if getattr(args, "dry_run", False):
        return _dry_run(plans, args)
    if hasattr(args, "prices"):
        prices = load_prices(args.prices, args.price_in, args.price_out)
        for plan in plans:  # what each role is charged; its usage in results.json has the cost
            plan.settings["prices"] = {
                role: price.to_dict()
                for role, config in plan.endpoints.items()
                if (price := prices.of(config.model)) is not None
            }
    for plan in plans:
        check_run_folder(plan.folder, plan.identity, args.overwrite)
    usable = True
    probed = []
    for plan in plans:
        run = run_in_steps(plan.spec, len(plan.records), plan.score_step, plan.folder,
                           plan.identity, plan.settings, args.overwrite)  # fmt: skip
        if args.command == "probe":
            print(f"written: {plan.folder}/results.json, {plan.folder}/samples.jsonl")
            probed.append((plan.spec.short, plan.options["probe"], run.report["overall"]))
            usable &= _finish(run, plan.folder, plan.title, args.max_failure_rate, table=False)
            continue
        usable &= _finish(run, plan.folder, plan.title, args.max_failure_rate)
        if plan.official and (line := protocol_of(plan.spec).official_line(run.report["overall"])):
            print(line)
    if probed:
        from ralign_tasks.report.probes import format_probe_table, plot_probes

        print("\n" + format_probe_table(probed))
        if args.plots:
            for path in plot_probes(probed, Path(args.plots)):
                print(f"written: {path}")
    return 0 if usable else UNUSABLE_EXIT

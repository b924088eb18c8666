"""Every protocol's tasks as Inspect tasks: ``inspect eval ralign_tasks/ralign_helpsteer3``,
``… ralign_tasks/ralign_helpsteer3_atomic`` and so on, one per registered task.

The model under evaluation is the GenRM; the judge is the model bound to the ``meta_judge``
role (``--model-role meta_judge=<provider/model>``), which is required unless ``-T
metajudge=none`` (or ``RALIGN_METAJUDGE=none``) switches the judge off. A task's parameters
(``-T``) are the common ones (``data_dir``, ``sample``, the group filter, the GenRM template),
its family's options and the judge's settings (``metajudge_<key>``, see
:mod:`ralign_tasks.scorers.settings`).
"""

from __future__ import annotations

import inspect as signatures
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import HeadlineMetric
from inspect_ai.model import ChatMessageUser, GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, fork, solver
from jinja2 import TemplateError

from ralign_tasks import __version__
from ralign_tasks.data import DataUnavailableError, data_source, keep_named
from ralign_tasks.identity import DEFAULT_MAX_FAILURE_RATE, failure_rate, is_context_error
from ralign_tasks.inspect_adapter.compat import (
    ModelGenerateError,
    PrerequisiteError,
    StatedError,
    active_model,
)
from ralign_tasks.inspect_adapter.scorer import (
    OPTIONS_KEY,
    OUTPUTS_STORE_KEY,
    SCORERS,
    bound_with_defaults,
    genrm_full_text,
    inspect_aliases,
    inspect_judge,
    inspect_values,
    judge_docs,
    judge_parameters,
    meta_judge_model,
    provider_said,
    ralign_metrics,
)
from ralign_tasks.judge import JUDGE_SETTINGS
from ralign_tasks.protocols import PROTOCOLS, TASK_KEY, TASKS, Protocol, TaskSpec, protocol_of
from ralign_tasks.scorers.config import ConfigError
from ralign_tasks.scorers.settings import NAME_PREFIX

logger = logging.getLogger("ralign_tasks.inspect")


class TaskSetupError(PrerequisiteError):
    """The task's data, options or prompt template are unusable (``inspect eval`` prints the
    message without a traceback)."""


@solver
def require_meta_judge() -> Solver:
    """Fail a sample before generation if no model is bound to the ``meta_judge`` role."""

    async def check(state: TaskState, generate: Generate) -> TaskState:
        meta_judge_model()
        return state

    return check


def task_dataset(
    spec: TaskSpec,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    sample: bool = False,
    group_filter: str | Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    genrm_template: str | None = None,
) -> MemoryDataset:
    """A task's records (bundled sample, ``data_dir``, ``RALIGN_DATA_DIR`` or the hub) as an
    Inspect dataset in file order, optionally only some groups (subsets, domains). A sample
    carries its record (and task) in ``metadata``, so a scorer, also one run later by
    ``inspect score`` on a log, rebuilds the record without the data files."""
    protocol = protocol_of(spec)
    options = protocol.option_values(options or {}, spec.task)
    generation = {o.name: options[o.name] for o in protocol.options_of("generation")}
    loaded = protocol.load(spec, data_source(sample, data_dir), split=options.get("split"))
    records = keep_named(loaded.records, protocol.group_field, group_filter, loaded.path)
    return MemoryDataset(
        [
            Sample(
                id=record.id,
                # The first prompt; a family that asks several per item asks them all in
                # its solver (ask_genrm).
                input=[
                    ChatMessageUser(
                        content=protocol.genrm_prompt(record, options, 0, genrm_template)
                    )
                ],
                target=protocol.target(record),
                metadata={
                    **protocol.record_to_dict(record),
                    TASK_KEY: spec.task,
                    OPTIONS_KEY: generation,
                },
            )
            for record in records
        ],
        name=spec.task,
        location=loaded.path,
    )


@solver
def ask_genrm(genrm_template: str | None = None) -> Solver:
    """Ask the GenRM every prompt of the sample's item, each in a fork of the sample (in
    parallel, within the model's connection limit), with the protocol's follow-up question
    as a second turn where it asks one. The outputs, in the order of the prompts, go to the
    sample's store for the scorer; the first prompt's conversation stays the sample's."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        protocol = protocol_of(state.metadata[TASK_KEY])
        options = _generation_options(protocol, state)
        count = protocol.prompt_count(protocol.record_from_dict(state.metadata), options)
        games = [genrm_game(index, genrm_template) for index in range(count)]
        finished = await fork(state, games)
        state.messages = finished[0].messages
        state.output = finished[0].output
        outputs = [forked.store.get(OUTPUTS_STORE_KEY) for forked in finished]
        state.store.set(OUTPUTS_STORE_KEY, outputs)
        return state

    return solve


def _generation_options(protocol: Protocol[Any, Any, Any], state: TaskState) -> dict[str, Any]:
    return protocol.option_values(state.metadata.get(OPTIONS_KEY) or {}, protocol.name)


class GenRMContextError(StatedError):
    """The GenRM's server refused a request that does not fit its model's context."""


async def generate_fitting(state: TaskState, generate: Generate) -> TaskState:
    """Inspect's generation of the GenRM's answer; a request the server refuses because it does
    not fit the model's context ends the sample naming the setting to lower."""
    try:
        return await generate(state)
    except ModelGenerateError as exc:
        said = provider_said(exc)
        if not is_context_error(said):
            raise
        raise GenRMContextError(
            f"the GenRM's server refused a request that does not fit its model's context "
            f"({said}): lower --max-tokens (the GenRM's max_tokens), or serve the model with a "
            "longer context"
        ) from None


@solver
def ask_genrm_once() -> Solver:
    """Inspect's ``generate`` for a family that asks one prompt per item, with a GenRM request
    over its model's context named as such (see :func:`generate_fitting`)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await generate_fitting(state, generate)

    return solve


@solver
def genrm_game(index: int, genrm_template: str | None = None) -> Solver:
    """Ask the GenRM the ``index``-th prompt of the sample's item (in a fork of the sample),
    and the protocol's follow-up question as a second turn where it asks one; the output
    goes to the fork's store."""

    async def ask(state: TaskState, generate: Generate) -> TaskState:
        protocol = protocol_of(state.metadata[TASK_KEY])
        options = _generation_options(protocol, state)
        record = protocol.record_from_dict(state.metadata)
        prompt = protocol.genrm_prompt(record, options, index, genrm_template)
        state.messages = [ChatMessageUser(content=prompt)]
        state = await generate_fitting(state, generate)
        text = genrm_full_text(state.output)
        if text is not None and (question := protocol.follow_up(options, text)) is not None:
            state.messages.append(ChatMessageUser(content=question))
            state = await generate_fitting(state, generate)
            second = genrm_full_text(state.output)
            text = text if second is None else f"{text}\n{second}"
        truncated = text is not None and state.output.stop_reason == "max_tokens"
        error = None if text is not None else state.output.error or "no answer"
        state.store.set(OUTPUTS_STORE_KEY, {"text": text, "truncated": truncated, "error": error})
        return state

    return ask


def build_task(spec: TaskSpec, judge_given: Mapping[str, Any], **params: Any) -> Task:
    """The Inspect task of one registered task (the body of every generated ``@task``):
    ``params`` are all its parameters, ``judge_given`` the judge's that the user gave."""
    protocol = protocol_of(spec)
    try:
        judge = inspect_judge(protocol, judge_given)
    except (ConfigError, ValueError) as exc:
        raise TaskSetupError(str(exc)) from exc
    # Inside `inspect eval` (an active model is set while tasks are created) the model roles
    # are known already: a missing judge stops the run before it starts. A Task built by hand
    # before eval() gets the same error from its setup step, before any generation.
    if active_model() is not None and judge is not None:
        meta_judge_model()
    try:
        options = protocol.option_values(params, spec.task)
        protocol.check_templates(
            params["genrm_template"], protocol.judge_template(judge) if judge else None
        )
        dataset = task_dataset(
            spec,
            data_dir=params["data_dir"],
            sample=params["sample"],
            group_filter=params[protocol.group_field],
            options=options,
            genrm_template=params["genrm_template"],
        )
    except (DataUnavailableError, ValueError, FileNotFoundError, TemplateError) as exc:
        raise TaskSetupError(str(exc)) from exc
    scoring = {o.name: options[o.name] for o in protocol.options_of("scoring")}
    return Task(
        dataset=dataset,
        setup=require_meta_judge() if judge is not None else None,
        solver=(
            ask_genrm(params["genrm_template"])
            if protocol.asks_several(options)
            else ask_genrm_once()
        ),
        scorer=SCORERS[protocol.scorer_name](**scoring, **inspect_values(protocol, judge)),
        # The official GenRM settings; --temperature, --max-tokens etc. override them.
        config=GenerateConfig(
            temperature=protocol.genrm_temperature, max_tokens=protocol.genrm_max_tokens
        ),
        # The scorer's metrics with this task's failure rule (and without a judge, only what
        # needs none).
        metrics=[
            ralign_metrics(protocol.name, _rate(params["max_failure_rate"]), judge is not None)
        ],
        headline_metric=HeadlineMetric(metric=protocol.schema.headline),
        version=__version__,
        metadata={
            "benchmark": spec.folder,
            **{o.name: options[o.name] for o in protocol.options_of("data")},
        },
    )


def _rate(value: Any) -> float:
    try:
        return failure_rate(value)
    except ValueError as exc:
        raise TaskSetupError(f"max_failure_rate {exc}") from None


def _task_parameters(protocol: Protocol[Any, Any, Any]) -> list[signatures.Parameter]:
    keyword = signatures.Parameter.KEYWORD_ONLY

    def parameter(name: str, default: Any) -> signatures.Parameter:
        return signatures.Parameter(name, keyword, default=default)

    return [
        parameter("data_dir", None),
        parameter("sample", False),
        parameter(protocol.group_field, None),
        *(parameter(option.name, option.default) for option in protocol.options),
        parameter("genrm_template", None),
        *judge_parameters(protocol),
        parameter("max_failure_rate", DEFAULT_MAX_FAILURE_RATE),
    ]


def _unused(spec: TaskSpec, names: Sequence[str]) -> None:
    """Parameters ``spec``'s task does not take: Inspect's warning for an unused parameter
    (an eval of several tasks gives them all the same ``-T``), but a ``metajudge_…`` name that
    is no judge setting, or one that Inspect spells its own way (the role's model, …), is a
    :class:`TaskSetupError` rather than a run with the default."""
    settings = {s.name: s for s in JUDGE_SETTINGS}
    earlier = {old for protocol in PROTOCOLS for old in inspect_aliases(protocol)}
    for name in names:
        setting = settings.get(name)
        if setting is not None and setting.inspect is not None:
            raise TaskSetupError(
                f"{spec.task}: {name} is not a task parameter in Inspect: the judge's "
                f"{setting.key.replace('_', ' ')} is {setting.inspect}"
            )
        if name.startswith(NAME_PREFIX) and setting is None and name not in earlier:
            known = [p.name for p in judge_parameters(protocol_of(spec))]
            raise TaskSetupError(
                f"{spec.task}: unknown meta-judge setting {name!r}"
                + (f"; its settings are {', '.join(known)}" if known else "")
            )
        logger.warning("param '%s' not used by task '%s'", name, spec.task)


def _task_function(spec: TaskSpec) -> Callable[..., Task]:
    """A registered ``@task`` named after ``spec`` whose parameters are its family's."""
    protocol = protocol_of(spec)
    signature = signatures.Signature(_task_parameters(protocol), return_annotation=Task)
    judge_names = {p.name for p in judge_parameters(protocol)}

    def factory(**params: Any) -> Task:
        _unused(spec, [name for name in params if name not in signature.parameters])
        given = {name: value for name, value in params.items() if name in signature.parameters}
        judge_given = {name: value for name, value in given.items() if name in judge_names}
        return build_task(spec, judge_given, **bound_with_defaults(signature, given))

    # Inspect passes a task only the -T parameters its signature names (and warns of the
    # others): ``other`` lets the factory see them, so that a mistyped judge setting is an
    # error rather than a run with the default.
    factory.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            *signature.parameters.values(),
            signatures.Parameter("other", signatures.Parameter.VAR_KEYWORD),
        ]
    )
    factory.__name__ = factory.__qualname__ = spec.task
    option_docs = "".join(f"\n      {o.name}: {o.help}" for o in protocol.options)
    factory.__doc__ = (
        f"{spec.title}: {protocol.title} of a GenRM.\n\n    Args:\n"
        "      data_dir: local copy of the dataset (default: $RALIGN_DATA_DIR, then the hub).\n"
        "      sample: use the bundled sample.\n"
        f"      {protocol.group_field}: keep only these (one name or a list).{option_docs}\n"
        "      genrm_template: path of a Jinja2 template replacing the GenRM prompt.\n"
        + judge_docs(protocol)
        + "      max_failure_rate: the eval fails (status error, samples kept) when at least "
        "this share of the GenRM's or the judge's requests failed.\n"
    )
    return task(name=spec.task)(factory)


TASK_FUNCTIONS: dict[str, Callable[..., Task]] = {
    name: _task_function(spec) for name, spec in TASKS.items()
}
globals().update(TASK_FUNCTIONS)  # importable by name: ``from … import ralign_helpsteer3``

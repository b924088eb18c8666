"""Every protocol's tasks as Inspect tasks: ``inspect eval ralign_tasks/ralign_helpsteer3``,
``… ralign_tasks/ralign_helpsteer3_atomic`` and so on, one per registered task.

The model under evaluation is the GenRM; the judge is the model bound to the ``meta_judge``
role (``--model-role meta_judge=<provider/model>``), which is required. A task's parameters
(``-T``) are the common ones (``data_dir``, ``sample``, the group filter, templates, judge cache)
and its family's options.
"""

from __future__ import annotations

import inspect as signatures
import os
from collections.abc import Callable, Sequence
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import HeadlineMetric
from inspect_ai.model import ChatMessageUser, GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver
from jinja2 import TemplateError

from ralign_tasks import __version__
from ralign_tasks.data import DataUnavailableError, data_source, keep_named
from ralign_tasks.inspect_adapter.compat import PrerequisiteError, active_model
from ralign_tasks.inspect_adapter.scorer import SCORERS, bound_with_defaults, meta_judge_model
from ralign_tasks.protocols import TASK_KEY, TASKS, Protocol, TaskSpec, protocol_of


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
    split: str | None = None,
    genrm_template: str | None = None,
) -> MemoryDataset:
    """A task's records (bundled sample, ``data_dir``, ``RALIGN_DATA_DIR`` or the hub) as an
    Inspect dataset in file order, optionally only some groups (subsets, domains). A sample
    carries its record (and task) in ``metadata``, so a scorer, also one run later by
    ``inspect score`` on a log, rebuilds the record without the data files."""
    protocol = protocol_of(spec)
    loaded = protocol.load(spec, data_source(sample, data_dir), split=split)
    records = keep_named(loaded.records, protocol.group_field, group_filter, loaded.path)
    return MemoryDataset(
        [
            Sample(
                id=record.id,
                input=[ChatMessageUser(content=protocol.genrm_prompt(record, genrm_template))],
                target=protocol.target(record),
                metadata={**protocol.record_to_dict(record), TASK_KEY: spec.task},
            )
            for record in records
        ],
        name=spec.task,
        location=loaded.path,
    )


def build_task(spec: TaskSpec, **params: Any) -> Task:
    """The Inspect task of one registered task (the body of every generated ``@task``)."""
    protocol = protocol_of(spec)
    # Inside `inspect eval` (an active model is set while tasks are created) the model roles
    # are known already: a missing judge stops the run before it starts. A Task built by hand
    # before eval() gets the same error from its setup step, before any generation.
    if active_model() is not None:
        meta_judge_model()
    try:
        options = protocol.option_values(params, spec.task)
        protocol.check_templates(params["genrm_template"], params["metajudge_template"])
        dataset = task_dataset(
            spec,
            data_dir=params["data_dir"],
            sample=params["sample"],
            group_filter=params[protocol.group_field],
            split=options.get("split"),
            genrm_template=params["genrm_template"],
        )
    except (DataUnavailableError, ValueError, FileNotFoundError, TemplateError) as exc:
        raise TaskSetupError(str(exc)) from exc
    scoring = {o.name: options[o.name] for o in protocol.options_of("scoring")}
    return Task(
        dataset=dataset,
        setup=require_meta_judge(),
        solver=generate(),
        scorer=SCORERS[protocol.scorer_name](
            **scoring,
            metajudge_template=params["metajudge_template"],
            metajudge_cache=params["metajudge_cache"],
        ),
        # The official GenRM settings; --temperature, --max-tokens etc. override them.
        config=GenerateConfig(
            temperature=protocol.genrm_temperature, max_tokens=protocol.genrm_max_tokens
        ),
        headline_metric=HeadlineMetric(metric=protocol.schema.headline),
        version=__version__,
        metadata={
            "benchmark": spec.folder,
            **{o.name: options[o.name] for o in protocol.options_of("data")},
        },
    )


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
        parameter("metajudge_template", None),
        parameter("metajudge_cache", False),
    ]


def _task_function(spec: TaskSpec) -> Callable[..., Task]:
    """A registered ``@task`` named after ``spec`` whose parameters are its family's."""
    protocol = protocol_of(spec)
    signature = signatures.Signature(_task_parameters(protocol), return_annotation=Task)

    def factory(**params: Any) -> Task:
        return build_task(spec, **bound_with_defaults(signature, params))

    factory.__signature__ = signature  # type: ignore[attr-defined]
    factory.__name__ = factory.__qualname__ = spec.task
    option_docs = "".join(f"\n      {o.name}: {o.help}" for o in protocol.options)
    factory.__doc__ = (
        f"{spec.title}: {protocol.title} of a GenRM.\n\n    Args:\n"
        "      data_dir: local copy of the dataset (default: $RALIGN_DATA_DIR, then the hub).\n"
        "      sample: use the bundled sample.\n"
        f"      {protocol.group_field}: keep only these (one name or a list).{option_docs}\n"
        "      genrm_template: path of a Jinja2 template replacing the GenRM prompt.\n"
        "      metajudge_template: path of a Jinja2 template replacing the judge prompt.\n"
        "      metajudge_cache: keep the judge's answers in Inspect's model cache.\n"
    )
    return task(name=spec.task)(factory)


TASK_FUNCTIONS: dict[str, Callable[..., Task]] = {
    name: _task_function(spec) for name, spec in TASKS.items()
}
globals().update(TASK_FUNCTIONS)  # importable by name: ``from … import ralign_helpsteer3``

"""The R-Align benchmarks and HelpSteer3-Atomic as Inspect tasks: ``inspect eval
ralign_tasks/ralign_helpsteer3``, ``… ralign_tasks/ralign_helpsteer3_atomic``.

The model under evaluation is the GenRM; the meta-judge is the model bound to the
``meta_judge`` role (``--model-role meta_judge=<provider/model>``), which is required.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from inspect_ai import Task, task

# Not exported by inspect-ai (pinned to 0.3.285): the error type Inspect prints without a
# traceback, and the model being evaluated (already set while `inspect eval` creates tasks).
from inspect_ai._util.error import PrerequisiteError
from inspect_ai.dataset import MemoryDataset
from inspect_ai.log import HeadlineMetric
from inspect_ai.model import GenerateConfig
from inspect_ai.model._model import active_model
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver

from ralign_tasks import __version__
from ralign_tasks.benchmarks import get_benchmark
from ralign_tasks.data import DataUnavailableError
from ralign_tasks.inspect_atomic_dataset import atomic_dataset
from ralign_tasks.inspect_dataset import ralign_dataset
from ralign_tasks.pipeline import GENRM_MAX_TOKENS, GENRM_TEMPERATURE
from ralign_tasks.scorers.inspect_rc_scorer import ralign_rc
from ralign_tasks.scorers.inspect_scorer import meta_judge_model, ralign_fidelity
from ralign_tasks.scorers.verdict import VerdictPolicy


class TaskSetupError(PrerequisiteError):
    """The task's data or prompt template could not be loaded (``inspect eval`` prints the
    message without a traceback)."""


@solver
def require_meta_judge() -> Solver:
    """Fail a sample before generation if no model is bound to the ``meta_judge`` role."""

    async def check(state: TaskState, generate: Generate) -> TaskState:
        meta_judge_model()
        return state

    return check


def task_dataset(load: Callable[[], MemoryDataset]) -> MemoryDataset:
    """Check the ``meta_judge`` role when it can be known, then load the dataset; data and
    template problems become :class:`TaskSetupError`."""
    # Inside `inspect eval` (an active model is set while tasks are created) the model roles
    # are known already: a missing meta-judge stops the run before it starts. A Task built
    # by hand before eval() gets the same error from its setup step, before any generation.
    if active_model() is not None:
        meta_judge_model()
    try:
        return load()
    except (DataUnavailableError, ValueError, FileNotFoundError) as exc:
        raise TaskSetupError(str(exc)) from exc


def ralign_task(
    benchmark: str,
    *,
    data_dir: str | None = None,
    sample: bool = False,
    subset: str | Sequence[str] | None = None,
    verdict_policy: VerdictPolicy = "official",
    genrm_template: str | None = None,
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
) -> Task:
    """The Inspect task of one R-Align benchmark (the ``@task`` functions' shared body)."""
    dataset = task_dataset(
        lambda: ralign_dataset(
            benchmark,
            data_dir=data_dir,
            sample=sample,
            subset=subset,
            genrm_template=genrm_template,
        )
    )
    return Task(
        dataset=dataset,
        setup=require_meta_judge(),
        solver=generate(),
        scorer=ralign_fidelity(
            verdict_policy=verdict_policy,
            metajudge_template=metajudge_template,
            metajudge_cache=metajudge_cache,
        ),
        # The official GenRM settings; --temperature, --max-tokens etc. override them.
        config=GenerateConfig(temperature=GENRM_TEMPERATURE, max_tokens=GENRM_MAX_TOKENS),
        headline_metric=HeadlineMetric(metric="f_score"),
        version=__version__,
        metadata={"benchmark": get_benchmark(benchmark).name},
    )


@task
def ralign_helpsteer3(
    data_dir: str | None = None,
    sample: bool = False,
    subset: str | list[str] | None = None,
    verdict_policy: VerdictPolicy = "official",
    genrm_template: str | None = None,
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
) -> Task:
    """R-Align HelpSteer3: rationale fidelity of a GenRM on HelpSteer3 preference pairs."""
    return ralign_task(
        "helpsteer3",
        data_dir=data_dir,
        sample=sample,
        subset=subset,
        verdict_policy=verdict_policy,
        genrm_template=genrm_template,
        metajudge_template=metajudge_template,
        metajudge_cache=metajudge_cache,
    )


@task
def ralign_rewardbench2(
    data_dir: str | None = None,
    sample: bool = False,
    subset: str | list[str] | None = None,
    verdict_policy: VerdictPolicy = "official",
    genrm_template: str | None = None,
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
) -> Task:
    """R-Align RewardBench 2: rationale fidelity of a GenRM on RewardBench 2 pairs."""
    return ralign_task(
        "reward_bench2",
        data_dir=data_dir,
        sample=sample,
        subset=subset,
        verdict_policy=verdict_policy,
        genrm_template=genrm_template,
        metajudge_template=metajudge_template,
        metajudge_cache=metajudge_cache,
    )


@task
def ralign_ppe(
    data_dir: str | None = None,
    sample: bool = False,
    subset: str | list[str] | None = None,
    verdict_policy: VerdictPolicy = "official",
    genrm_template: str | None = None,
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
) -> Task:
    """R-Align PPE: rationale fidelity of a GenRM on PPE human-preference pairs."""
    return ralign_task(
        "ppe_human_preference_v1",
        data_dir=data_dir,
        sample=sample,
        subset=subset,
        verdict_policy=verdict_policy,
        genrm_template=genrm_template,
        metajudge_template=metajudge_template,
        metajudge_cache=metajudge_cache,
    )


@task
def ralign_helpsteer3_atomic(
    data_dir: str | None = None,
    sample: bool = False,
    split: str = "test",
    domain: str | list[str] | None = None,
    genrm_template: str | None = None,
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
) -> Task:
    """HelpSteer3-Atomic: Rationale Consistency of a GenRM's reasons with human rationales."""
    dataset = task_dataset(
        lambda: atomic_dataset(
            data_dir=data_dir,
            sample=sample,
            split=split,
            domain=domain,
            genrm_template=genrm_template,
        )
    )
    return Task(
        dataset=dataset,
        setup=require_meta_judge(),
        solver=generate(),
        scorer=ralign_rc(metajudge_template=metajudge_template, metajudge_cache=metajudge_cache),
        # The R-Align GenRM settings (SPEC §1); --temperature, --max-tokens etc. override them.
        config=GenerateConfig(temperature=GENRM_TEMPERATURE, max_tokens=GENRM_MAX_TOKENS),
        headline_metric=HeadlineMetric(metric="rc"),
        version=__version__,
        metadata={"benchmark": "helpsteer3_atomic", "split": split},
    )

"""The Inspect scorer and metric of every protocol: the GenRM's output is parsed by the
protocol, the items it sends go to the model bound to the ``meta_judge`` role through the one
ask-until-valid loop, and each sample's score metadata is its judged-item record. The metric
reads the records back and computes the protocol's schema with the same function as the CLI
and lm-eval, so the numbers are identical.

Inspect's metric values must be numbers: an undefined metric (zero denominator) is reported as
NaN (``nan`` in Inspect's results table, ``NaN`` in the log), never as 0. Every sample gets a
score, failures included, so the counts cover all samples.
"""

from __future__ import annotations

import asyncio
import inspect as signatures
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from inspect_ai.model import (
    CachePolicy,
    ChatMessageUser,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
    model_roles,
)
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState
from tenacity import RetryError

from ralign_tasks.identity import (
    DEFAULT_MAX_FAILURE_RATE,
    FailureSettings,
    flagged_roles,
    tally_failures,
    unusable_block,
)
from ralign_tasks.inspect_adapter.compat import (
    ModelGenerateError,
    StatedError,
    computing_for_display,
)
from ralign_tasks.item import checked_item
from ralign_tasks.judge import JUDGE_SETTINGS, resolve_judge
from ralign_tasks.protocols import PROTOCOLS, TASK_KEY, Protocol, TaskSpec, get_task
from ralign_tasks.protocols.base import GenRMOutput, PrepCall
from ralign_tasks.scorers.ask import (
    Answer,
    JudgeCall,
    TransportGaveUp,
    ask_until_valid,
    describe_error,
)
from ralign_tasks.scorers.config import host_of
from ralign_tasks.scorers.settings import (
    NAME_PREFIX,
    SWITCH_NAME,
    JudgeSettings,
    Setting,
    given_by_name,
    switched_off,
    warn_alias,
)

logger = logging.getLogger("ralign_tasks.inspect")

META_JUDGE_ROLE = "meta_judge"
# Lists a free-form rationale's reasons (HelpSteer3-Atomic, genrm_format=free); the meta-judge
# when no model is bound to it.
EXTRACTOR_ROLE = "extractor"
# A sample's generation options (metadata), and the GenRM's outputs of a family that asks
# several prompts per item (store; one {text, truncated, error} per prompt, in order).
OPTIONS_KEY = "ralign_options"
OUTPUTS_STORE_KEY = "ralign_genrm_outputs"
# What a failed task's message tells an Inspect user to change.
INSPECT_SETTINGS = FailureSettings(
    max_failure_rate=f"-T max_failure_rate=… (at least this share fails the eval; default "
    f"{DEFAULT_MAX_FAILURE_RATE})",
    genrm_max_tokens="--max-tokens",
    judge_max_tokens="the judge's max_tokens (-T metajudge_max_tokens=…, or max_tokens in the "
    "role's own config, which wins)",
)


class RunNotUsable(StatedError):
    """A task's GenRM or judge failed on at least ``max_failure_rate`` of its requests: the
    eval ends with status error (its samples are in the log, for ``inspect eval-retry``)."""


class MissingMetaJudgeError(StatedError):
    """No model is bound to the ``meta_judge`` role."""

    def __init__(self) -> None:
        message = (
            "The R-Align tasks need a meta-judge: bind one to the 'meta_judge' model role, e.g.\n"
            "  inspect eval ralign_tasks/ralign_helpsteer3 --model <genrm> "
            "--model-role meta_judge=openai/gpt-5-mini\n"
            "(Python: eval(..., model_roles={'meta_judge': 'openai/gpt-5-mini'})). "
            "It is never silently the model under test."
        )
        super().__init__(message)


def meta_judge_model() -> Model:
    """The model bound to the ``meta_judge`` role; a clear error if there is none."""
    if META_JUDGE_ROLE not in model_roles():
        raise MissingMetaJudgeError()
    return get_model(role=META_JUDGE_ROLE, required=True)


def role_model(role: str) -> Model:
    """The model answering a role's requests: the one bound to ``extractor`` for the
    extractor's (the meta-judge when none is), the meta-judge for the judge's."""
    if role == "extractor" and EXTRACTOR_ROLE in model_roles():
        return get_model(role=EXTRACTOR_ROLE, required=True)
    return meta_judge_model()


def genrm_full_text(output: ModelOutput) -> str | None:
    """The text the GenRM wrote, reasoning parts put back as ``<think>…</think>``, in order;
    ``None`` if there is no answer (the generation failed)."""
    if not output.choices:
        return None
    content = output.choices[0].message.content
    if isinstance(content, str):
        return content
    # A reasoning part's text is its reasoning inside <think>…</think>.
    parts = [part.text for part in content if isinstance(part, ContentReasoning | ContentText)]
    return "\n".join(parts)


def genrm_outputs(state: TaskState) -> list[GenRMOutput]:
    """The GenRM's outputs of a sample, one per prompt: those the ``ask_genrm`` solver stored,
    or the sample's own output."""
    stored = state.store.get(OUTPUTS_STORE_KEY)
    if stored is not None:
        return [GenRMOutput(o["text"], o["truncated"], o["error"]) for o in stored]
    output = genrm_full_text(state.output)
    truncated = output is not None and state.output.stop_reason == "max_tokens"
    error = None if output is not None else state.output.error or "no answer"
    return [GenRMOutput(output, truncated, error)]


def inspect_settings(protocol: Protocol[Any, Any, Any]) -> tuple[Setting, ...]:
    """The judge settings that ``protocol``'s Inspect task and scorer take as ``metajudge_<key>``:
    those Inspect has no syntax of its own for (:attr:`Setting.inspect`), and of the judge
    templates the family's own."""
    return tuple(
        s for s in JUDGE_SETTINGS
        if s.inspect is None and (not s.template or s.key == protocol.judge_template_setting)
    )  # fmt: skip


def inspect_aliases(protocol: Protocol[Any, Any, Any]) -> dict[str, str]:
    """Earlier Inspect names still taken (with a warning), each with its setting's name:
    ``metajudge_attempts``, and ``metajudge_template`` where the family's template is another
    key (it named every family's judge template)."""
    aliases = {"metajudge_attempts": "metajudge_max_attempts"}
    if protocol.judge_template_setting not in (None, "template"):
        aliases["metajudge_template"] = NAME_PREFIX + str(protocol.judge_template_setting)
    return aliases


def inspect_judge(
    protocol: Protocol[Any, Any, Any], given: Mapping[str, Any]
) -> JudgeSettings | None:
    """The judge settings of an Inspect task or scorer: its ``metajudge_*`` parameters in
    ``given`` (those the user gave) over ``RALIGN_METAJUDGE_<KEY>`` over the defaults. ``None``
    for a family without a judge step, or when ``metajudge=none`` (or ``RALIGN_METAJUDGE=none``)
    switches the judge off: the run then reports what needs no judge, as lm-eval's
    ``metajudge: none`` and the CLI's ``--no-metajudge`` do."""
    if not protocol.uses_judge or switched_off(given.get(SWITCH_NAME)):
        return None
    values = dict(given)
    for old, new in inspect_aliases(protocol).items():
        if values.get(old) is not None:
            warn_alias(old, new)
            if old == "metajudge_template":
                # -T reaches every task of an eval: R-Align's template would land here too.
                logger.warning(
                    "%s takes metajudge_template as its judge template; in an eval with "
                    "R-Align tasks, whose judge template that is, pass this one as %s",
                    protocol.title, new,
                )  # fmt: skip
            values.setdefault(new, values[old])
        values.pop(old, None)
    settings = inspect_settings(protocol)
    # Only what Inspect takes from us is read from the environment: the endpoint, key and
    # concurrency are the role's, and a malformed RALIGN_METAJUDGE_BASE_URL meant for the CLI
    # must not stop an Inspect run.
    return resolve_judge(
        given_by_name(values, settings, "Inspect's parameters"), {s.key for s in settings}
    )


def inspect_values(
    protocol: Protocol[Any, Any, Any], judge: JudgeSettings | None
) -> dict[str, Any]:
    """``judge`` as the parameters of ``protocol``'s scorer (``metajudge=none``: no judge)."""
    if judge is None:
        return {SWITCH_NAME: "none"} if protocol.uses_judge else {}
    return {s.name: judge.value(s.key) for s in inspect_settings(protocol)}


def judge_generate_config(judge: JudgeSettings) -> GenerateConfig:
    """The judge's generation settings with bounded retries: ``max_attempts`` per request of at
    most ``timeout`` seconds each (the role's own config is merged over it)."""
    transport = judge.transport
    return GenerateConfig(
        temperature=transport.temperature,
        max_tokens=transport.max_tokens,
        max_retries=transport.max_attempts - 1,
        # Inspect counts whole seconds.
        attempt_timeout=math.ceil(transport.timeout),
    )


def judge_attempts(config: GenerateConfig) -> int:
    """Asks per request: ``config.max_retries`` bounds Inspect's retries of errors and our
    re-asking after an unusable answer alike."""
    return (config.max_retries or 0) + 1


async def ask_judge(
    judge: Model, prompt: str, config: GenerateConfig, cache: bool, attempt: int
) -> Answer:
    """One ask of the judge (one user message). Inspect's own retries of rate limits, 5xx and
    timeouts that end in failure become :class:`TransportGaveUp`; anything else it raises (a
    200 whose body is not a chat completion) is left to the ask-until-valid loop."""
    # A re-ask needs its own cache key, or the cache would return the same answer.
    policy = CachePolicy(expiry=None, scopes={"ralign_ask": str(attempt + 1)}) if cache else False
    try:
        output = await judge.generate(
            [ChatMessageUser(content=prompt)], config=config, cache=policy
        )
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise TransportGaveUp(describe_error(last) if last else str(exc)) from None
    except ModelGenerateError as exc:
        said = provider_said(exc)
        # Named with its status once (OpenAI's message already starts with it).
        shown = not exc.status_code or str(exc.status_code) in said
        text = said if shown else f"Error code: {exc.status_code} - {said}"
        if exc.status_code in _FINAL_STATUSES:  # the same request gets the same answer
            raise TransportGaveUp(text) from None
        raise RuntimeError(text) from None
    usage = output.usage
    return Answer(
        text=output.completion,
        finish_reason=output.stop_reason,
        prompt_tokens=usage.input_tokens if usage else 0,
        completion_tokens=usage.output_tokens if usage else 0,
    )


def provider_said(error: ModelGenerateError) -> str:
    """What the provider answered (its message, or the last line of Inspect's text, which
    carries the whole request before it)."""
    return error.provider_message or str(error).rstrip().rsplit("\n", 1)[-1]


# Client errors that asking again cannot change (not a timeout, conflict or rate limit).
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 422})


def bound_with_defaults(signature: signatures.Signature, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` completed with the signature's defaults; an unknown name is a ``TypeError``."""
    bound = signature.bind(**given)
    bound.apply_defaults()
    return dict(bound.arguments)


def _host(model: Model) -> str:
    """``host:port`` of a model's API (never credentials), or its provider where there is no
    base URL."""
    base_url = getattr(model.api, "base_url", None)
    return host_of(base_url) if base_url else model.api.__class__.__name__


def _number(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


# "unreduced": every (sample, epoch) is one item, and Inspect's default epoch reducer (a mean)
# never sees the values, whose statuses are strings.
@metric(scores="unreduced")
def ralign_metrics(
    family: str, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE, judged: bool = True
) -> Metric:
    """A protocol's metrics (headline first) with bootstrap standard errors, and its counts,
    from the judged-item records in the scores' metadata; without a judge (``judged`` false)
    only those that need none, as in lm-eval.

    When the GenRM or the judge failed on at least ``max_failure_rate`` of its requests, what
    that role measures is NaN (on Inspect's progress display) and the eval's results fail
    (:class:`RunNotUsable`) with a message naming the judge, the counts and the setting to
    change."""
    protocol = next(p for p in PROTOCOLS if p.name == family)

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        items = [checked_item(s.score.metadata) for s in scores]
        roles = tally_failures(protocol.request_errors(item) for item in items)
        flagged = flagged_roles(roles, max_failure_rate)
        unmeasured = set(protocol.unmeasured_metrics(flagged))
        summary = protocol.summarize([protocol.outcome_from_item(item) for item in items])
        # An option is off when none of its metrics has a value (no swapped item): its
        # metrics are not reported; one undefined in a run with it on is NaN, as any other.
        specs = [protocol.schema.spec(name) for name in protocol.schema.metric_names]
        on = {s.option for s in specs if s.option and summary[s.name] is not None}
        reported = [
            s.name for s in specs
            if (s.option is None or s.option in on) and (judged or not s.needs_judge)
        ]  # fmt: skip
        if flagged and not computing_for_display():
            models: dict[str, set[str]] = {}
            for item in items:
                for call in item["judge"]:
                    role = protocol.role_of(call.get("step"))
                    models.setdefault(role, set()).add(call.get("model") or "")
            task = next((item["task"] for item in items), family)
            labels = [protocol.schema.spec(n).label for n in reported if n in unmeasured]
            endpoints = {role: ", ".join(sorted(filter(None, found))) or None
                         for role, found in models.items()}  # fmt: skip
            block = unusable_block(
                task, flagged, endpoints, max_failure_rate, labels, INSPECT_SETTINGS,
            )  # fmt: skip
            # The eval's error: its metrics are not written, its samples are (eval-retry).
            raise RunNotUsable(block.replace(" (NaN), not measured", ", not measured"))
        values: dict[str, float] = {}
        for name in protocol.schema.headline_first:
            if name not in reported:
                continue
            measured = name not in unmeasured
            values[name] = _number(summary[name] if measured else None)
            values[f"{name}_stderr"] = _number(summary["stderr"][name] if measured else None)
        for spec in protocol.schema.counts:
            if (spec.option is None or summary[spec.name] is not None) and (
                judged or not spec.needs_judge
            ):
                values[spec.name] = _number(summary[spec.name])
        return values

    return compute


def score_sample(
    protocol: Protocol[Any, Any, Any], options: dict[str, Any], settings: JudgeSettings | None
) -> Callable[[TaskState, Target], Any]:
    """The scoring function of one protocol's scorer (``settings``: the judge's, ``None``
    without a judge)."""
    template = protocol.judge_template(settings) if settings else None
    cache = settings is not None and settings.transport.cache
    defaults = judge_generate_config(settings) if settings else GenerateConfig()

    async def ask_model(
        model: Model, step: str, prompt: str, check: Callable[[str], Any]
    ) -> JudgeCall[Any]:
        """One request of a step through the ask-until-valid loop; a failure is logged."""
        # A role's own config (--model-role meta_judge="{model: …, temperature: 0}") wins.
        config = defaults.merge(model.config)
        call = await ask_until_valid(
            lambda attempt: ask_judge(model, prompt, config, cache, attempt),
            check,
            judge_attempts(config),
            gave_up=lambda exc: isinstance(exc, TransportGaveUp),
        )
        if not call.ok:
            logger.warning(
                "%s request to %s (%s) failed after %d attempt(s): %s",
                step.replace("_", "-"), model, _host(model), call.attempts, call.error,
            )  # fmt: skip
        return call

    async def score(state: TaskState, target: Target) -> Score:
        # No scores at all without a meta-judge, for a family that has a judge step.
        judge = meta_judge_model() if settings is not None else None
        spec = _task_of(state.metadata, protocol)
        record = protocol.record_from_dict(state.metadata)
        judgment = protocol.judgment(
            record,
            genrm_outputs(state),
            {**options, **(state.metadata.get(OPTIONS_KEY) or {})},
        )
        prep: list[PrepCall] = []
        if judge is not None:
            for step in protocol.prep_steps:
                if step.wanted(judgment):
                    model = role_model(step.role)
                    call = await ask_model(
                        model, step.name, step.prompt(judgment), step.check(judgment)
                    )
                    judgment = step.apply(judgment, call)
                    prep.append(PrepCall(step.name, str(model), call))
        prompts = protocol.judge_prompts(judgment, template)
        calls: list[JudgeCall[Any] | None] = [None] * len(prompts)
        if judge is not None:

            async def ask_slot(slot: int, prompt: str) -> None:
                calls[slot] = await ask_model(
                    judge, protocol.judge_step, prompt, protocol.check(judgment, slot)
                )

            await asyncio.gather(
                *(ask_slot(slot, p) for slot, p in enumerate(prompts) if p is not None)
            )
        run = protocol.run_item(
            spec.task, record, judgment, calls, judge is not None, str(judge) if judge else None,
            prep,
        )  # fmt: skip
        return Score(
            # A score value holds scalars only; the whole outcome (an RM-Bench item's nine
            # cells, ratings) is in the judged-item record, which the metric reads.
            value={
                key: value
                for key, value in run.item["outcome"].items()
                if value is None or isinstance(value, str | int | float | bool)
            },
            answer=run.item["genrm"]["verdict"],
            explanation=protocol.explain(judgment, calls),
            metadata=run.item,
        )

    return score


def _task_of(metadata: dict[str, Any], protocol: Protocol[Any, Any, Any]) -> TaskSpec:
    """The task of a sample: named in its metadata, or (a log of an earlier release, re-judged
    with ``inspect score``) its record's benchmark, or the family's only task."""
    name = metadata.get(TASK_KEY) or metadata.get("benchmark")
    return get_task(name) if name else protocol.tasks[0]


def judge_parameters(protocol: Protocol[Any, Any, Any]) -> list[signatures.Parameter]:
    """The judge's parameters of ``protocol``'s Inspect task and scorer: its settings
    (:func:`inspect_settings`) with their defaults, the switch ``metajudge`` and the earlier
    names (no default: they are only read where given)."""
    if not protocol.uses_judge:
        return []
    keyword = signatures.Parameter.KEYWORD_ONLY
    return [
        *(
            signatures.Parameter(s.name, keyword, default=s.default)
            for s in inspect_settings(protocol)
        ),
        signatures.Parameter(SWITCH_NAME, keyword, default=None),
        *(signatures.Parameter(old, keyword, default=None) for old in inspect_aliases(protocol)),
    ]


def judge_docs(protocol: Protocol[Any, Any, Any]) -> str:
    """The ``Args`` lines of :func:`judge_parameters`."""
    if not protocol.uses_judge:
        return ""
    settings = "".join(
        f"      {s.name}: {s.help} (default: {s.default_text}; {s.env}).\n"
        for s in inspect_settings(protocol)
    )
    aliases = "".join(
        f"      {old}: the earlier name of {new} (warns).\n"
        for old, new in inspect_aliases(protocol).items()
    )
    return (
        settings
        + f"      {SWITCH_NAME}: none switches the judge off (as RALIGN_METAJUDGE=none): only what "
        "needs no judge is reported.\n"
        + aliases
        + "      The judge's model, endpoint, key, concurrency and backend are the meta_judge "
        "role's (--model-role meta_judge=<provider/model>); a temperature, max_tokens or "
        "max_retries in the role's own config wins over these.\n"
    )


def _scorer_factory(protocol: Protocol[Any, Any, Any]) -> Callable[..., Scorer]:
    """The registered scorer of a protocol: parameters are its scoring options and the
    judge's settings."""
    scoring = protocol.options_of("scoring")

    def factory(**given: Any) -> Scorer:
        options = protocol.option_values(
            bound_with_defaults(signature, given), protocol.scorer_name
        )
        return score_sample(protocol, options, inspect_judge(protocol, given))

    keyword = signatures.Parameter.KEYWORD_ONLY
    parameters = [
        *(signatures.Parameter(o.name, keyword, default=o.default) for o in scoring),
        *judge_parameters(protocol),
    ]
    signature = signatures.Signature(parameters)
    factory.__signature__ = signature  # type: ignore[attr-defined]
    factory.__name__ = factory.__qualname__ = protocol.scorer_name
    option_docs = "".join(f"\n      {o.name}: {o.help}" for o in scoring)
    what = (
        "parse the GenRM's output and have the judge (role ``meta_judge``) grade it"
        if protocol.uses_judge
        else "parse the GenRM's verdicts and score them by the benchmark's official rule"
    )
    factory.__doc__ = f"{protocol.title}: {what}.\n\n    Args:{option_docs}\n" + judge_docs(
        protocol
    )
    return scorer(metrics=[ralign_metrics(protocol.name)], name=protocol.scorer_name)(factory)


SCORERS: dict[str, Callable[..., Scorer]] = {p.scorer_name: _scorer_factory(p) for p in PROTOCOLS}
globals().update(SCORERS)  # importable by name: ``from … import ralign_fidelity``

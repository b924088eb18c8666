"""The Inspect scorer of the R-Align tasks: verdict, meta-judge (model role), fidelity metrics.

The GenRM's verdict is parsed by the shared parser over the full text the GenRM wrote
(reasoning parts put back as ``<think>…</think>``); label-correct samples are sent to the model
bound to the ``meta_judge`` role with the shared meta-judge prompt. Every sample gets a score,
failures included, so ``l_acc`` is over all samples.
"""

from __future__ import annotations

from dataclasses import dataclass

# Not exported by inspect-ai (pinned to 0.3.285): the error type Inspect prints without a
# traceback.
from inspect_ai._util.error import PrerequisiteError
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
from inspect_ai.scorer import Score, Scorer, Target, scorer
from inspect_ai.solver import TaskState
from tenacity import RetryError

from ralign_tasks.prompts import render_metajudge_prompt
from ralign_tasks.records import PairRecord
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.inspect_metrics import fidelity, outcome_value
from ralign_tasks.scorers.meta_verdict import MetaStatus, parse_meta_verdict
from ralign_tasks.scorers.metajudge import GenRMJudgment
from ralign_tasks.scorers.verdict import VERDICT_POLICIES, VerdictPolicy

META_JUDGE_ROLE = "meta_judge"
# The official meta-judge settings (SPEC §1), as the CLI and lm-eval use them.
META_JUDGE_DEFAULTS = EndpointConfig()


class MissingMetaJudgeError(PrerequisiteError):
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
        self.args = (message,)  # PrerequisiteError keeps it in .message only; str() needs it


def meta_judge_model() -> Model:
    """The model bound to the ``meta_judge`` role; a clear error if there is none."""
    if META_JUDGE_ROLE not in model_roles():
        raise MissingMetaJudgeError()
    return get_model(role=META_JUDGE_ROLE, required=True)


def genrm_full_text(output: ModelOutput) -> str | None:
    """The text the GenRM wrote, reasoning parts put back as ``<think>…</think>``, in order;
    ``None`` if there is no answer (the generation failed)."""
    if not output.choices:
        return None
    content = output.choices[0].message.content
    if isinstance(content, str):
        return content
    parts = [part.text for part in content if isinstance(part, ContentReasoning | ContentText)]
    return "\n".join(parts)


@dataclass(frozen=True)
class MetaCall:
    """What came of asking the meta-judge about one label-correct sample."""

    status: MetaStatus
    answer: str | None
    error: str | None
    attempts: int


def meta_judge_config(attempts: int, timeout: int) -> GenerateConfig:
    """The official meta-judge settings with bounded retries: ``attempts`` per request of at
    most ``timeout`` seconds each (merge the role's own config over it)."""
    if attempts < 1:
        raise ValueError(f"metajudge_attempts must be at least 1, got {attempts}")
    return GenerateConfig(
        temperature=META_JUDGE_DEFAULTS.temperature,
        max_tokens=META_JUDGE_DEFAULTS.max_tokens,
        max_retries=attempts - 1,
        attempt_timeout=timeout,
    )


def judge_attempts(config: GenerateConfig) -> int:
    """Asks per request: ``config.max_retries`` bounds Inspect's retries of errors and our
    re-asking after an unusable answer alike."""
    return (config.max_retries or 0) + 1


async def ask_once(
    judge: Model, prompt: str, config: GenerateConfig, cache: bool, attempt: int
) -> ModelOutput:
    """Ask the meta-judge once (one user message); raises :class:`RetryError` when Inspect gives
    up retrying an error."""
    # A re-ask needs its own cache key, or the cache would return the same answer.
    policy = CachePolicy(expiry=None, scopes={"ralign_ask": str(attempt)}) if cache else False
    return await judge.generate([ChatMessageUser(content=prompt)], config=config, cache=policy)


def retry_error_text(exc: RetryError) -> str:
    """The error Inspect gave up on, as ``Type: message``."""
    last = exc.last_attempt.exception()
    return f"{type(last).__name__}: {last}" if last else str(exc)


async def ask_meta_judge(
    judge: Model, prompt: str, config: GenerateConfig, cache: bool
) -> MetaCall:
    """Ask the meta-judge, again after an empty answer, up to :func:`judge_attempts` times.

    Errors that Inspect retries (rate limits, 5xx, timeouts) and that persist, and answers that
    stay empty, are CallFail. Errors no retry can fix (bad key, unknown model) propagate and
    stop the run, as with the GenRM.
    """
    attempts = judge_attempts(config)
    answer, error = None, None
    for attempt in range(1, attempts + 1):
        try:
            output = await ask_once(judge, prompt, config, cache, attempt)
        except RetryError as exc:  # Inspect gave up retrying
            return MetaCall(MetaStatus.CALL_FAIL, None, retry_error_text(exc), attempt)
        answer = output.completion
        if answer.strip():
            return MetaCall(parse_meta_verdict(answer), answer, None, attempt)
        error = f"empty answer ({output.error or output.stop_reason})"
    return MetaCall(MetaStatus.CALL_FAIL, answer, error, attempts)


_META_NAMES = {
    MetaStatus.CORRECT: "Correct",
    MetaStatus.INCORRECT: "Incorrect",
    MetaStatus.PARSE_FAIL: "ParseFail",
    MetaStatus.CALL_FAIL: "CallFail",
}


def _explanation(judgment: GenRMJudgment, meta: MetaCall | None) -> str:
    if judgment.output is None:
        return "GenRM call failed: label wrong, not meta-judged."
    if judgment.verdict is None:
        return "GenRM gave no verdict: label wrong, not meta-judged."
    if meta is None:
        label = judgment.record.label
        return f"GenRM picked {judgment.verdict}, the label is {label}: not meta-judged."
    detail = meta.answer if meta.answer and meta.answer.strip() else meta.error or ""
    return f"Meta verdict: {_META_NAMES[meta.status]}\n\n{detail}".strip()


@scorer(metrics=[fidelity()])
def ralign_fidelity(
    verdict_policy: VerdictPolicy = "official",
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
    metajudge_attempts: int = META_JUDGE_DEFAULTS.max_attempts,
    metajudge_timeout: int = int(META_JUDGE_DEFAULTS.timeout),
) -> Scorer:
    """Parse the GenRM verdict and meta-judge label-correct rationales (role ``meta_judge``).

    Args:
      verdict_policy: ``official`` (first ``\\boxed{A|B}``, thinking included) or ``strict``
        (last box after the thinking).
      metajudge_template: path of a Jinja2 template replacing the meta-judge prompt.
      metajudge_cache: keep the meta-judge's answers in Inspect's model cache (no expiry).
      metajudge_attempts: attempts per meta-judge request, for errors and empty answers
        (a ``max_retries`` in the role's own config takes precedence).
      metajudge_timeout: seconds per meta-judge attempt.
    """
    if verdict_policy not in VERDICT_POLICIES:
        raise ValueError(
            f"verdict_policy must be one of {VERDICT_POLICIES}, got {verdict_policy!r}"
        )
    # A role's own config (--model-role meta_judge="{model: …, temperature: 0}") wins.
    defaults = meta_judge_config(metajudge_attempts, metajudge_timeout)

    async def score(state: TaskState, target: Target) -> Score:
        judge = meta_judge_model()  # no scores at all without a meta-judge
        record = PairRecord.from_dict(state.metadata)
        output = genrm_full_text(state.output)
        truncated = output is not None and state.output.stop_reason == "max_tokens"
        judgment = GenRMJudgment.from_output(record, output, verdict_policy, truncated)
        meta = None
        if judgment.label_correct:
            assert judgment.output is not None
            prompt = render_metajudge_prompt(record, judgment.output, metajudge_template)
            meta = await ask_meta_judge(
                judge, prompt, defaults.merge(judge.config), metajudge_cache
            )
        outcome = judgment.outcome(meta.status if meta else None)
        return Score(
            value=outcome_value(outcome),
            answer=judgment.verdict,
            explanation=_explanation(judgment, meta),
            metadata={
                "verdict_policy": verdict_policy,
                "meta_judge": str(judge),
                # Next to the GenRM's output, for reading the meta verdict in `inspect view`.
                "golden_rationale": record.golden_rationale,
                "genrm_output": output,
                "meta_status": meta.status.value if meta else None,
                "meta_answer": meta.answer if meta else None,
                "meta_error": meta.error if meta else None,
                "meta_attempts": meta.attempts if meta else 0,
            },
        )

    return score

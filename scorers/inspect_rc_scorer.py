"""The Inspect scorer of HelpSteer3-Atomic: the GenRM's reasons, the MetaJudge (model role
``meta_judge``), Rationale Consistency metrics (SPEC §2).

The GenRM's reasons and five-way verdict are parsed by the shared parsers over the full text it
wrote (reasoning parts put back as ``<think>…</think>``, then left out by the parsers). Items
with no reason or more than 10 are skipped without a MetaJudge call; the others are sent to
the model bound to the ``meta_judge`` role with the shared RC prompt. Every sample gets a
score, skips and failures included, so the counts cover all samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspect_ai.model import GenerateConfig, Model
from inspect_ai.scorer import Score, Scorer, Target, scorer
from inspect_ai.solver import TaskState
from tenacity import RetryError

from ralign_tasks.atomic_data import AtomicRecord
from ralign_tasks.prompts import render_rc_prompt
from ralign_tasks.rc_pipeline import AtomicJudgment
from ralign_tasks.scorers.atomic import (
    MAX_REASONS_ALLOWED,
    AtomicOutcome,
    ItemStatus,
    RCFormatError,
    parse_rc_answer,
    score_picks,
)
from ralign_tasks.scorers.inspect_metrics import rc_metrics, rc_outcome_value
from ralign_tasks.scorers.inspect_scorer import (
    META_JUDGE_DEFAULTS,
    ask_once,
    genrm_full_text,
    judge_attempts,
    meta_judge_config,
    meta_judge_model,
    retry_error_text,
)

_BLOCK_START, _BLOCK_END = "<RESULT_START>", "<RESULT_END>"


@dataclass(frozen=True)
class RCCall:
    """What came of asking the MetaJudge about one item: its picks (``None`` if it failed)."""

    picks: list[tuple[int, float]] | None
    answer: str | None
    error: str | None
    attempts: int


async def ask_rc_judge(
    judge: Model, judgment: AtomicJudgment, prompt: str, config: GenerateConfig, cache: bool
) -> RCCall:
    """Ask the MetaJudge, again after a malformed answer, up to :func:`judge_attempts` times.

    Errors that Inspect retries (rate limits, 5xx, timeouts) and that persist, and answers that
    stay malformed, leave the picks ``None`` (a judge failure). Errors no retry can fix (bad
    key, unknown model) propagate and stop the run, as with the GenRM.
    """
    n_rationales, n_reasons = len(judgment.record.checklist), len(judgment.scored_reasons)
    attempts = judge_attempts(config)
    answer, error = None, None
    for attempt in range(1, attempts + 1):
        try:
            output = await ask_once(judge, prompt, config, cache, attempt)
        except RetryError as exc:  # Inspect gave up retrying
            return RCCall(None, None, retry_error_text(exc), attempt)
        answer = output.completion
        if not answer.strip():
            error = f"empty answer ({output.error or output.stop_reason})"
            continue
        try:
            return RCCall(parse_rc_answer(answer, n_rationales, n_reasons), answer, None, attempt)
        except RCFormatError as exc:
            error = f"format error: {exc}"
    return RCCall(None, answer, error, attempts)


def _result_block(answer: str) -> str:
    # A well-formed answer has the block; only it is shown, the whole answer is in metadata.
    start = answer.find(_BLOCK_START)
    end = answer.find(_BLOCK_END, start)
    return answer[start : end + len(_BLOCK_END)] if end >= 0 else answer[start:]


def _explanation(judgment: AtomicJudgment, outcome: AtomicOutcome, call: RCCall | None) -> str:
    if outcome.status is ItemStatus.SKIPPED_EMPTY:
        if judgment.output is None:
            return "GenRM call failed: no reasons, skipped (not meta-judged)."
        return "The GenRM listed no reasons: skipped (not meta-judged)."
    if outcome.status is ItemStatus.SKIPPED_LONG:
        return (
            f"The GenRM listed {len(judgment.reasons)} reasons (more than "
            f"{MAX_REASONS_ALLOWED}): skipped (not meta-judged)."
        )
    assert call is not None
    if outcome.scores is None:
        detail = f"{call.error}\n\n{call.answer}" if call.answer else call.error
        return f"MetaJudge failed after {call.attempts} attempt(s): {detail}"
    assert call.answer is not None
    scores = outcome.scores
    return (
        f"rc {scores.rc:.3f}, rc_code {scores.rc_code:.3f}, precision "
        f"{scores.rc_precision:.3f}, F1 {scores.rc_f1:.3f}\n\n{_result_block(call.answer)}"
    )


@scorer(metrics=[rc_metrics()])
def ralign_rc(
    metajudge_template: str | None = None,
    metajudge_cache: bool = False,
    metajudge_attempts: int = META_JUDGE_DEFAULTS.max_attempts,
    metajudge_timeout: int = int(META_JUDGE_DEFAULTS.timeout),
) -> Scorer:
    """Parse the GenRM's reasons and five-way verdict, and have the MetaJudge (role
    ``meta_judge``) match them against the human atomic rationales.

    Args:
      metajudge_template: path of a Jinja2 template replacing the MetaJudge prompt.
      metajudge_cache: keep the MetaJudge's answers in Inspect's model cache (no expiry).
      metajudge_attempts: attempts per item, for errors and malformed answers (a
        ``max_retries`` in the role's own config takes precedence).
      metajudge_timeout: seconds per MetaJudge attempt.
    """
    # A role's own config (--model-role meta_judge="{model: …, temperature: 0}") wins.
    defaults = meta_judge_config(metajudge_attempts, metajudge_timeout)

    async def score(state: TaskState, target: Target) -> Score:
        judge = meta_judge_model()  # no scores at all without a meta-judge
        record = AtomicRecord.from_dict(state.metadata)
        judgment = AtomicJudgment.from_output(record, genrm_full_text(state.output))
        call = None
        status = judgment.skip_status
        scores = None
        if status is None:
            reasons = judgment.scored_reasons
            prompt = render_rc_prompt(reasons, list(record.checklist), metajudge_template)
            call = await ask_rc_judge(
                judge, judgment, prompt, defaults.merge(judge.config), metajudge_cache
            )
            if call.picks is None:
                status = ItemStatus.JUDGE_FAILED
            else:
                status = ItemStatus.SCORED
                scores = score_picks(call.picks, len(reasons))
        outcome = judgment.outcome(status, scores)
        return Score(
            value=rc_outcome_value(outcome),
            answer=judgment.verdict,
            explanation=_explanation(judgment, outcome, call),
            metadata={
                "meta_judge": str(judge),
                "genrm_output": judgment.output,
                "reasons": list(judgment.reasons),
                "human_checklist": list(record.checklist),
                "meta_answer": call.answer if call else None,
                "meta_picks": call.picks if call else None,
                "meta_error": call.error if call else None,
                "meta_attempts": call.attempts if call else 0,
            },
        )

    return score

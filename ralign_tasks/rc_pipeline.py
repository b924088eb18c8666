"""Rationale Consistency scoring: GenRM outputs (or stored reference checklists) → MetaJudge
batch with re-asks on malformed answers → per-item outcomes → metrics. Shared by ``ralign
rc-score`` and both harnesses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ralign_tasks.atomic_data import AtomicRecord
from ralign_tasks.prompts import render_rc_prompt
from ralign_tasks.scorers.atomic import (
    MAX_REASONS_ALLOWED,
    MAX_REASONS_SCORED,
    AtomicOutcome,
    ItemStatus,
    RCFormatError,
    RCScores,
    parse_five_way,
    parse_rc_answer,
    parse_reasons,
    rc_report,
    score_picks,
)
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import BatchStats, ChatRequest, run_chat_batch


@dataclass(frozen=True)
class AtomicJudgment:
    """What a GenRM said about one item: its reasons (all of them) and five-way verdict."""

    record: AtomicRecord
    output: str | None
    reasons: tuple[str, ...]
    verdict: str | None

    @classmethod
    def from_output(cls, record: AtomicRecord, output: str | None) -> AtomicJudgment:
        return cls(record, output, tuple(parse_reasons(output)), parse_five_way(output))

    @classmethod
    def from_reference(cls, record: AtomicRecord, model: str) -> AtomicJudgment:
        """A reference model's stored checklist and label (test split)."""
        if model not in record.references:
            known = ", ".join(sorted(record.references)) or "none"
            raise KeyError(f"item {record.id} has no output of {model!r} (has: {known})")
        stored = record.references[model]
        return cls(record, stored.generated_text, stored.checklist, stored.label)

    @property
    def skip_status(self) -> ItemStatus | None:
        if not self.reasons:
            return ItemStatus.SKIPPED_EMPTY
        if len(self.reasons) > MAX_REASONS_ALLOWED:
            return ItemStatus.SKIPPED_LONG
        return None

    @property
    def scored_reasons(self) -> list[str]:
        return list(self.reasons[:MAX_REASONS_SCORED])

    def outcome(self, status: ItemStatus, scores: RCScores | None = None) -> AtomicOutcome:
        """What the metrics need of this item, given its status and (if scored) scores."""
        return AtomicOutcome(
            domain=self.record.domain,
            status=status,
            scores=scores,
            label=self.record.label,
            verdict=self.verdict,
        )


@dataclass(frozen=True)
class RCJudgement:
    """The MetaJudge's outcome for one item."""

    outcome: AtomicOutcome
    answer: str | None = None
    error: str | None = None
    attempts: int = 0


def rc_request(judgment: AtomicJudgment, config: EndpointConfig, attempt: int) -> ChatRequest:
    prompt = render_rc_prompt(
        judgment.scored_reasons, list(judgment.record.checklist), config.template
    )
    return ChatRequest(str(config.model), prompt, config.temperature, config.max_tokens, attempt)


def judge_rc(
    judgments: Sequence[AtomicJudgment], config: EndpointConfig
) -> tuple[list[RCJudgement], BatchStats]:
    """MetaJudge every scorable item in concurrent batches; a malformed answer is asked again
    (up to ``config.max_attempts`` asks), then the item is a counted failure."""
    done: dict[int, RCJudgement] = {}
    pending = []
    for index, judgment in enumerate(judgments):
        skip = judgment.skip_status
        if skip is None:
            pending.append(index)
        else:
            done[index] = RCJudgement(judgment.outcome(skip))
    total = BatchStats()
    last: dict[int, tuple[str | None, str | None]] = {}
    for attempt in range(config.max_attempts):
        if not pending:
            break
        requests = [rc_request(judgments[i], config, attempt) for i in pending]
        results, stats = run_chat_batch(requests, config, description="rc meta-judge")
        _add(total, stats)
        retry = []
        for index, result in zip(pending, results, strict=True):
            judgment = judgments[index]
            if not result.ok:  # the engine already retried the call itself
                done[index] = RCJudgement(
                    judgment.outcome(ItemStatus.JUDGE_FAILED), None, result.error, attempt + 1
                )
                continue
            try:
                picks = parse_rc_answer(
                    result.text, len(judgment.record.checklist), len(judgment.scored_reasons)
                )
            except RCFormatError as exc:
                last[index] = (result.text, f"format error: {exc}")
                retry.append(index)
                continue
            scores = score_picks(picks, len(judgment.scored_reasons))
            done[index] = RCJudgement(
                judgment.outcome(ItemStatus.SCORED, scores), result.text, None, attempt + 1
            )
        pending = retry
    for index in pending:
        answer, error = last[index]
        done[index] = RCJudgement(
            judgments[index].outcome(ItemStatus.JUDGE_FAILED), answer, error, config.max_attempts
        )
    return [done[i] for i in range(len(judgments))], total


def _add(total: BatchStats, stats: BatchStats) -> None:
    total.requests += stats.requests
    total.cache_hits += stats.cache_hits
    total.calls += stats.calls
    total.failures += stats.failures
    total.prompt_tokens += stats.prompt_tokens
    total.completion_tokens += stats.completion_tokens
    total.wall_s += stats.wall_s


@dataclass
class RCRun:
    """Judged items of one RC evaluation and the metrics over them."""

    judgments: list[AtomicJudgment]
    verdicts: list[RCJudgement]
    report: dict[str, Any]
    stats: BatchStats

    def samples(self) -> list[dict[str, Any]]:
        """One JSON-ready row per item."""
        rows = []
        for judgment, verdict in zip(self.judgments, self.verdicts, strict=True):
            outcome = verdict.outcome
            rows.append(
                {
                    "id": judgment.record.id,
                    "domain": judgment.record.domain,
                    "label": judgment.record.label,
                    "verdict": judgment.verdict,
                    "reasons": list(judgment.reasons),
                    "human_checklist": list(judgment.record.checklist),
                    "status": outcome.status.value,
                    **(asdict(outcome.scores) if outcome.scores else {}),
                    "metajudge_answer": verdict.answer,
                    "metajudge_error": verdict.error,
                    "metajudge_attempts": verdict.attempts,
                }
            )
        return rows


def score_rc(judgments: Sequence[AtomicJudgment], config: EndpointConfig) -> RCRun:
    """MetaJudge the judgments and compute the RC metrics overall and per domain."""
    verdicts, stats = judge_rc(judgments, config)
    report = rc_report([v.outcome for v in verdicts])
    return RCRun(list(judgments), verdicts, report, stats)

"""The meta-judge step: check label-correct GenRM rationales against the golden rationale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ralign_tasks.prompts import render_metajudge_prompt
from ralign_tasks.records import PairRecord
from ralign_tasks.scorers.cache import ResponseCache
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import BatchStats, ChatRequest, ChatResult, run_chat_batch
from ralign_tasks.scorers.meta_verdict import MetaStatus, parse_meta_verdict
from ralign_tasks.scorers.metrics import ItemOutcome
from ralign_tasks.scorers.verdict import Verdict, VerdictPolicy, parse_verdict


@dataclass(frozen=True)
class GenRMJudgment:
    """What the GenRM said about one pair. ``output`` is ``None`` if its call failed."""

    record: PairRecord
    output: str | None
    verdict: Verdict | None
    truncated: bool = False

    @classmethod
    def from_output(
        cls,
        record: PairRecord,
        output: str | None,
        policy: VerdictPolicy = "official",
        truncated: bool = False,
    ) -> GenRMJudgment:
        return cls(record, output, parse_verdict(output, policy), truncated)

    @property
    def label_correct(self) -> bool:
        return self.verdict is not None and self.verdict == self.record.label

    def outcome(self, meta: MetaStatus | None) -> ItemOutcome:
        """What the metrics need of this item, given its meta verdict (None: not judged)."""
        return ItemOutcome(
            subset=self.record.subset,
            label_correct=self.label_correct,
            meta=meta if self.label_correct else None,
            genrm_no_verdict=self.output is not None and self.verdict is None,
            genrm_call_fail=self.output is None,
            genrm_truncated=self.truncated,
        )


@dataclass(frozen=True)
class MetaJudgement:
    """The meta-judge's outcome for one label-correct item."""

    status: MetaStatus
    answer: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    cached: bool = False

    @classmethod
    def from_result(cls, result: ChatResult) -> MetaJudgement:
        status = parse_meta_verdict(result.text) if result.ok else MetaStatus.CALL_FAIL
        return cls(
            status=status,
            answer=result.text,
            error=result.error,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            wall_s=result.wall_s,
            cached=result.cached,
        )


def metajudge_request(judgment: GenRMJudgment, config: EndpointConfig) -> ChatRequest:
    """The chat request that asks the meta-judge about one label-correct judgment."""
    assert judgment.output is not None  # label-correct implies an output
    return ChatRequest(
        model=str(config.model),
        prompt=render_metajudge_prompt(judgment.record, judgment.output, config.template),
        temperature=config.temperature,
        max_tokens=config.max_tokens,
    )


def judge_all(
    judgments: Sequence[GenRMJudgment],
    config: EndpointConfig,
    *,
    cache: ResponseCache | None = None,
) -> tuple[list[MetaJudgement | None], BatchStats]:
    """Meta-judge every label-correct judgment in one concurrent batch.

    Returns one entry per input, in order: ``None`` for label-wrong items (never sent).
    """
    positions = [i for i, judgment in enumerate(judgments) if judgment.label_correct]
    requests = [metajudge_request(judgments[i], config) for i in positions]
    results, stats = run_chat_batch(requests, config, description="meta-judge", cache=cache)
    verdicts: list[MetaJudgement | None] = [None] * len(judgments)
    for position, result in zip(positions, results, strict=True):
        verdicts[position] = MetaJudgement.from_result(result)
    return verdicts, stats

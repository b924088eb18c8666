"""R-Align rationale fidelity (SPEC §1): HelpSteer3, RewardBench 2 and PPE pairs with golden
rationales. The GenRM picks A or B; label-correct picks go to the meta-judge, which checks the
GenRM's rationale against the golden one; L-Acc, S-Corr and F-Score per benchmark and subset."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ralign_tasks.data import parse_turns, require_str
from ralign_tasks.prompts import (
    GENRM_TEMPLATE,
    GENRM_TEMPLATE_ENV,
    METAJUDGE_TEMPLATE,
    METAJUDGE_TEMPLATE_ENV,
    render_genrm_prompt,
    render_metajudge_prompt,
)
from ralign_tasks.protocols.base import GenRMOutput, JudgeCalls, Option, Protocol, TaskSpec
from ralign_tasks.records import PairRecord
from ralign_tasks.scorers.meta_verdict import MetaStatus, parse_meta_verdict
from ralign_tasks.scorers.metrics import FIDELITY_SCHEMA, ItemOutcome, compute_fidelity
from ralign_tasks.scorers.verdict import (
    VERDICT_POLICIES,
    Verdict,
    VerdictPolicy,
    parse_verdict,
    strip_thinking,
)

HF_DATASET = "lyn22333/R-Align-BMK"


def _spec(task: str, title: str, stem: str, *aliases: str) -> TaskSpec:
    return TaskSpec(
        task=task,
        family="fidelity",
        title=title,
        files={"test": f"{stem}.jsonl"},
        folder=aliases[0] if aliases else task.removeprefix("ralign_"),
        hf_dataset=HF_DATASET,
        aliases=aliases,
    )


@dataclass(frozen=True)
class FidelityJudgment:
    """What the GenRM said about one pair. ``output`` is ``None`` if its call failed;
    ``truncated`` is ``None`` when the harness does not say why generation stopped."""

    record: PairRecord
    output: str | None
    verdict: Verdict | None
    truncated: bool | None = False
    error: str | None = None  # why the GenRM call failed

    @classmethod
    def from_output(
        cls,
        record: PairRecord,
        output: str | None,
        policy: VerdictPolicy = "official",
        truncated: bool | None = False,
        error: str | None = None,
    ) -> FidelityJudgment:
        return cls(record, output, parse_verdict(output, policy), truncated, error)

    @property
    def label_correct(self) -> bool:
        return self.verdict is not None and self.verdict == self.record.label


_META_NAMES = {
    MetaStatus.CORRECT: "Correct",
    MetaStatus.INCORRECT: "Incorrect",
    MetaStatus.PARSE_FAIL: "ParseFail",
    MetaStatus.CALL_FAIL: "CallFail",
}


class FidelityProtocol(Protocol[PairRecord, FidelityJudgment, ItemOutcome]):
    name = "fidelity"
    title = "R-Align rationale fidelity"
    scorer_name = "ralign_fidelity"
    judge_step = "meta_judge"
    schema = FIDELITY_SCHEMA
    group_field = "subset"
    genrm_template_file = GENRM_TEMPLATE
    judge_template_file = METAJUDGE_TEMPLATE
    genrm_template_env = GENRM_TEMPLATE_ENV
    judge_template_setting = "template"  # RALIGN_METAJUDGE_TEMPLATE, metajudge_template
    judge_template_env = METAJUDGE_TEMPLATE_ENV
    tasks = (
        _spec("ralign_helpsteer3", "HelpSteer3", "helpsteer3_aug", "helpsteer3"),
        _spec("ralign_rewardbench2", "RewardBench 2", "reward_bench2_aug", "reward_bench2"),
        _spec("ralign_ppe", "PPE", "ppe_human_preference_v1_aug", "ppe_human_preference_v1"),
    )
    options = (
        Option(
            "verdict_policy",
            "official",
            "official: the first \\boxed{A|B} anywhere (thinking included), as the paper's "
            "scripts; strict: the last box after the thinking",
            VERDICT_POLICIES,
        ),
    )

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> PairRecord:
        if not isinstance(row, dict):
            raise ValueError(f"row must be a JSON object, got {type(row).__name__}")
        if "conversations" not in row:
            raise ValueError("missing field 'conversations'")
        turns = parse_turns(row["conversations"], "conversations")
        response_a = require_str(row, "response_A")
        response_b = require_str(row, "response_B")
        label = require_str(row, "gt_label").strip()
        if label not in ("A", "B"):
            raise ValueError(f"field 'gt_label' must be 'A' or 'B', got {row['gt_label']!r}")
        golden = strip_thinking(require_str(row, "gt_judgment"))
        if not golden:
            raise ValueError("field 'gt_judgment' has no rationale after its thinking trace")
        source = row.get("source")
        if not isinstance(source, dict):
            raise ValueError("missing field 'source' (an object with 'subset')")
        subset = require_str(source, "subset", "source.")
        raw_id = row.get("id")
        if raw_id is not None and not isinstance(raw_id, (str, int)):
            raise ValueError(f"field 'id' must be a string or integer, got {type(raw_id).__name__}")
        return PairRecord(
            benchmark=spec.folder,
            id=str(raw_id) if raw_id is not None else f"{spec.folder}-line{line}",
            context=tuple(turns[:-1]),
            prompt=turns[-1].content,
            response_a=response_a,
            response_b=response_b,
            label=label,  # type: ignore[arg-type]
            golden_rationale=golden,
            subset=subset,
        )

    def record_from_dict(self, data: Mapping[str, Any]) -> PairRecord:
        return PairRecord.from_dict(data)

    def record_to_dict(self, record: PairRecord) -> dict[str, Any]:
        return record.to_dict()

    # --- the GenRM -------------------------------------------------------------------------

    def genrm_prompts(
        self, record: PairRecord, options: Mapping[str, Any], template: str | None = None
    ) -> list[str]:
        return [render_genrm_prompt(record, template)]

    def target(self, record: PairRecord) -> str:
        return record.label

    def judgment(
        self, record: PairRecord, outputs: Sequence[GenRMOutput], options: Mapping[str, Any]
    ) -> FidelityJudgment:
        (output,) = outputs
        policy = options.get("verdict_policy", "official")
        return FidelityJudgment.from_output(
            record, output.text, policy, output.truncated, output.error
        )

    # --- the meta-judge --------------------------------------------------------------------

    def judge_prompts(
        self, judgment: FidelityJudgment, template: str | None = None
    ) -> list[str | None]:
        """Only label-correct items are sent (SPEC §1)."""
        if not judgment.label_correct:
            return [None]
        assert judgment.output is not None  # a verdict implies an output
        return [render_metajudge_prompt(judgment.record, judgment.output, template)]

    def check(self, judgment: FidelityJudgment, slot: int) -> Callable[[str], MetaStatus]:
        # Every non-empty answer is final: a ParseFail is a counted outcome, not asked again.
        return parse_meta_verdict

    def outcome(self, judgment: FidelityJudgment, calls: JudgeCalls, judged: bool) -> ItemOutcome:
        (call,) = calls
        meta = None
        if call is not None:
            meta = call.value if call.ok else MetaStatus.CALL_FAIL
        return ItemOutcome(
            subset=judgment.record.subset,
            label_correct=judgment.label_correct,
            meta=meta if judgment.label_correct else None,
            genrm_no_verdict=judgment.output is not None and judgment.verdict is None,
            genrm_call_fail=judgment.output is None,
            genrm_truncated=judgment.truncated,
            judged=judged,
        )

    def explain(self, judgment: FidelityJudgment, calls: JudgeCalls) -> str:
        (call,) = calls
        if judgment.output is None:
            return "GenRM call failed: label wrong, not meta-judged."
        if judgment.verdict is None:
            return "GenRM gave no verdict: label wrong, not meta-judged."
        if call is None:
            label = judgment.record.label
            if judgment.label_correct:
                return f"GenRM picked {judgment.verdict}, the label: not meta-judged (no judge)."
            return f"GenRM picked {judgment.verdict}, the label is {label}: not meta-judged."
        status = call.value if call.ok else MetaStatus.CALL_FAIL
        detail = call.answer if call.answer and call.answer.strip() else call.error or ""
        return f"Meta verdict: {_META_NAMES[status]}\n\n{detail}".strip()

    # --- the judged-item record ------------------------------------------------------------

    def genrm_fields(self, judgment: FidelityJudgment) -> dict[str, Any]:
        return {
            "output": judgment.output,
            "verdict": judgment.verdict,
            "truncated": judgment.truncated,
            "error": judgment.error,
        }

    def judge_value(self, value: MetaStatus) -> str:
        return value.value

    def outcome_to_dict(self, outcome: ItemOutcome) -> dict[str, str | int | float | bool | None]:
        return {
            "label_correct": outcome.label_correct,
            "meta": outcome.meta.value if outcome.meta is not None else None,
            "genrm_no_verdict": outcome.genrm_no_verdict,
            "genrm_call_fail": outcome.genrm_call_fail,
            "genrm_truncated": outcome.genrm_truncated,
            "judged": outcome.judged,
        }

    def outcome_from_item(self, item: Mapping[str, Any]) -> ItemOutcome:
        stored = item["outcome"]
        meta = stored["meta"]
        truncated = stored["genrm_truncated"]
        return ItemOutcome(
            subset=str(item["subset"]),
            label_correct=bool(stored["label_correct"]),
            meta=MetaStatus(meta) if meta is not None else None,
            genrm_no_verdict=bool(stored["genrm_no_verdict"]),
            genrm_call_fail=bool(stored["genrm_call_fail"]),
            genrm_truncated=None if truncated is None else bool(truncated),
            judged=bool(stored["judged"]),
        )

    def outcome_group(self, outcome: ItemOutcome) -> str:
        return outcome.subset

    # --- metrics ---------------------------------------------------------------------------

    def summarize(self, outcomes: Sequence[ItemOutcome]) -> dict[str, Any]:
        return compute_fidelity(outcomes)

    def document_values(self, outcome: ItemOutcome) -> dict[str, float]:
        return outcome.document_values()


FIDELITY = FidelityProtocol()
FIDELITY_TASKS = tuple(spec.task for spec in FIDELITY.tasks)

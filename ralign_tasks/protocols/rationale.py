"""HelpSteer3-Atomic Rationale Consistency (``Qwen/RationaleRM``, SPEC §2). The GenRM lists its
reasons, most important first, and gives a five-way verdict; the MetaJudge matches the reasons
against the human atomic rationales (``- Rx@Sy: score``); RC and the reference code's
recall, precision and F1 per item, then their means.

A free-form GenRM (``genrm_format=free``) answers the pairwise prompt in its own way; the
extractor lists its rationale's reasons (``<REASONS_START>`` … ``S<n>: …``), which then take the
place of the checklist. With ``reason_types`` the judge names each reason's type first.

Splits: ``test`` (1,000 items with two reference models' outputs) and ``full`` (22,116 items).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

from ralign_tasks.data import parse_turns, require_str
from ralign_tasks.prompts import comparison_vars, load_template
from ralign_tasks.protocols.base import (
    GenRMOutput,
    InstanceScore,
    JudgeCalls,
    Option,
    Protocol,
    TaskSpec,
    latest_call,
)
from ralign_tasks.protocols.fidelity import GENRM_TEMPLATE, GENRM_TEMPLATE_ENV
from ralign_tasks.protocols.reasons import (
    EXTRACT_STEP,
    RATIONALE_SOURCES,
    REASON_TYPES_STEP,
    TEMPLATES,
    rationale_text,
)
from ralign_tasks.records import NOT_IN_DOCUMENT, Turn, turn_dicts
from ralign_tasks.scorers.errors import UnknownNameError, UserError
from ralign_tasks.scorers.rationale import (
    MAX_REASONS_ALLOWED,
    MAX_REASONS_SCORED,
    RC_METRICS,
    RC_SCHEMA,
    AtomicOutcome,
    ItemStatus,
    RCScores,
    compute_rc,
    parse_five_way,
    parse_rc_answer,
    parse_reasons,
    score_picks,
    verdict_side,
)
from ralign_tasks.scorers.reasons import REASON_TYPES, type_counts
from ralign_tasks.scorers.verdict import parse_verdict

ATOMIC_GENRM_TEMPLATE = "atomic_genrm.jinja"
ATOMIC_METAJUDGE_TEMPLATE = "atomic_metajudge.jinja"
GENRM_FORMATS = ("checklist", "free")


@dataclass(frozen=True)
class ReferenceOutput:
    """A reference model's stored output on the HelpSteer3-Atomic test split."""

    checklist: tuple[str, ...]
    label: str | None
    generated_text: str | None


@dataclass(frozen=True)
class AtomicRecord:
    """One HelpSteer3-Atomic item. ``label`` is the better response as A (response 1) or B,
    from ``overall_preference`` (negative: response 1); ``None`` when absent or 0."""

    id: str
    domain: str
    context: tuple[Turn, ...]
    prompt: str
    response1: str
    response2: str
    checklist: tuple[str, ...]
    label: Literal["A", "B"] | None
    # Not in the document form: scoring never reads them, and they would double the logs.
    references: dict[str, ReferenceOutput] = field(default_factory=dict, metadata=NOT_IN_DOCUMENT)


def render_atomic_genrm_prompt(record: AtomicRecord, template_path: str | None = None) -> str:
    """The HelpSteer3-Atomic GenRM prompt: ordered reasons, then a five-way verdict
    (A = response 1)."""
    variables = comparison_vars(record.context, record.prompt, record.response1, record.response2)
    return load_template(template_path, ATOMIC_GENRM_TEMPLATE).render(**variables).strip()


def render_free_genrm_prompt(record: AtomicRecord, template_path: str | None = None) -> str:
    """A free-form GenRM's prompt: the pairwise comparison prompt of the R-Align tasks (the
    same GenRM template setting), A = response 1."""
    variables = comparison_vars(record.context, record.prompt, record.response1, record.response2)
    path = template_path or os.environ.get(GENRM_TEMPLATE_ENV)
    return load_template(path, GENRM_TEMPLATE).render(**variables).strip()


def render_rc_prompt(
    reasons: list[str], rationales: list[str], template_path: str | None = None
) -> str:
    """The Rationale Consistency MetaJudge prompt: model reasons as S items, human atomic
    rationales as R items."""
    template = load_template(template_path, ATOMIC_METAJUDGE_TEMPLATE)
    return template.render(reasons=reasons, rationales=rationales).strip()


RC_TASK = TaskSpec(
    task="ralign_helpsteer3_atomic",
    family="rationale",
    title="HelpSteer3-Atomic",
    files={"test": "helpsteer3_test_1000.jsonl", "full": "helpsteer3_human_checklist.jsonl"},
    folder="helpsteer3_atomic",
    hf_dataset="Qwen/RationaleRM",
)
_REFERENCE_KEY = re.compile(r"^model-(.+)-checklist$")
_BLOCK_START, _BLOCK_END = "<RESULT_START>", "<RESULT_END>"


@dataclass(frozen=True)
class AtomicJudgment:
    """What a GenRM said about one item: its reasons (all of them) and verdict (five-way; A
    or B from a free-form GenRM).

    A free-form rationale's reasons are the extractor's: ``rationale`` is what it reads,
    ``extraction`` what came of it (``None`` until asked; ``ok``, or the ItemStatus of a
    failure). With ``classify`` the judge types the reasons (``reason_types``; ``None`` until
    asked or when its answer failed, ``types_failed``)."""

    record: AtomicRecord
    output: str | None
    reasons: tuple[str, ...]
    verdict: str | None
    truncated: bool | None = False
    error: str | None = None  # why the GenRM call failed
    genrm_format: str = "checklist"
    rationale: str | None = None
    extraction: str | None = None
    classify: bool = False
    reason_types: tuple[str, ...] | None = None
    types_failed: bool = False

    @classmethod
    def from_free_output(
        cls,
        record: AtomicRecord,
        output: str | None,
        source: str,
        truncated: bool | None = False,
        error: str | None = None,
    ) -> AtomicJudgment:
        """A free-form GenRM's output: its pairwise verdict (the official rule), and the
        rationale the extractor will read (none when the call failed; an empty one is
        counted as extract_empty without a call)."""
        rationale = None if output is None else rationale_text(output, source)
        return cls(
            record, output, (), parse_verdict(output), truncated, error, genrm_format="free",
            rationale=rationale, extraction="empty" if rationale == "" else None,
        )  # fmt: skip

    def comparison(self) -> dict[str, object]:
        """The comparison's template variables (A = response 1)."""
        record = self.record
        return comparison_vars(record.context, record.prompt, record.response1, record.response2)

    @property
    def wants_extraction(self) -> bool:
        return bool(self.rationale) and self.extraction is None

    @property
    def wants_types(self) -> bool:
        return self.classify and self.reason_types is None and not self.types_failed and (
            self.skip_status is None)  # fmt: skip

    @classmethod
    def from_output(
        cls,
        record: AtomicRecord,
        output: str | None,
        truncated: bool | None = False,
        error: str | None = None,
    ) -> AtomicJudgment:
        reasons, verdict = tuple(parse_reasons(output)), parse_five_way(output)
        return cls(record, output, reasons, verdict, truncated, error)

    @classmethod
    def from_reference(cls, record: AtomicRecord, model: str) -> AtomicJudgment:
        """A reference model's stored checklist and label (test split)."""
        if model not in record.references:
            known = ", ".join(sorted(record.references)) or "none"
            raise UnknownNameError(f"item {record.id} has no output of {model!r} (has: {known})")
        stored = record.references[model]
        return cls(record, stored.generated_text, stored.checklist, stored.label)

    @property
    def skip_status(self) -> ItemStatus | None:
        """Why the item is not sent to the MetaJudge (``None``: it is sent)."""
        if self.extraction is not None and self.extraction != "ok":
            return ItemStatus(f"extract_{self.extraction}")
        if self.wants_extraction:
            return None  # not extracted (a run without a judge)
        if not self.reasons:
            return ItemStatus.SKIPPED_EMPTY
        if len(self.reasons) > MAX_REASONS_ALLOWED:
            return ItemStatus.SKIPPED_LONG
        return None

    @property
    def scored_reasons(self) -> list[str]:
        return list(self.reasons[:MAX_REASONS_SCORED])


def _string_list(row: dict[str, Any], key: str, *, allow_empty: bool) -> tuple[str, ...]:
    value = row.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError(f"field {key!r} must be a list of strings")
    if not allow_empty and not [item for item in value if item.strip()]:
        raise UserError(f"field {key!r} is empty")
    return tuple(value)


def _result_block(answer: str) -> str:
    # A well-formed answer has the block; only it is shown, the whole answer is in the record.
    start = answer.find(_BLOCK_START)
    end = answer.find(_BLOCK_END, start)
    return answer[start : end + len(_BLOCK_END)] if end >= 0 else answer[start:]


# The statuses the viewer files under failures: no well-formed answer of a model.
_FAILED = frozenset({ItemStatus.JUDGE_FAILED, ItemStatus.EXTRACT_CALL_FAIL,
                     ItemStatus.EXTRACT_PARSE_FAIL})  # fmt: skip
_EXTRACTION_FAILURES = {
    ItemStatus.EXTRACT_CALL_FAIL: "The extractor gave no answer: skipped (not meta-judged).",
    ItemStatus.EXTRACT_PARSE_FAIL: "The extractor gave no well-formed list of reasons within "
    "its attempts: skipped (not meta-judged).",
    ItemStatus.EXTRACT_EMPTY: "The extractor found no reason in the rationale (or the "
    "rationale is empty): skipped (not meta-judged).",
}


class RationaleProtocol(Protocol[AtomicRecord, AtomicJudgment, AtomicOutcome]):
    name = "rationale"
    record_type = AtomicRecord
    title = "Rationale Consistency"
    scorer_name = "ralign_rc"
    judge_step = "rc_meta_judge"
    prep_steps = (EXTRACT_STEP, REASON_TYPES_STEP)
    schema = RC_SCHEMA
    group_field = "domain"
    genrm_template_file = ATOMIC_GENRM_TEMPLATE
    judge_template_file = ATOMIC_METAJUDGE_TEMPLATE
    judge_template_setting = "rc_template"  # RALIGN_METAJUDGE_RC_TEMPLATE, metajudge_rc_template
    tasks = (RC_TASK,)
    options = (
        Option("split", "test", "test (1,000 items) or full (22,116)", ("test", "full"), "data"),
        Option(
            "genrm_format",
            "checklist",
            "checklist: the GenRM lists its reasons and a five-way verdict (our prompt); free: "
            "it answers the pairwise prompt (or its own GenRM template) in its own way, and "
            "the extractor lists its rationale's reasons",
            GENRM_FORMATS,
            "generation",
        ),
        Option(
            "rationale_source",
            "visible",
            "free format: what the extractor reads: the visible answer, the thinking, or both",
            RATIONALE_SOURCES,
        ),
        Option(
            "reason_types",
            False,
            "true: the judge types each listed reason (evidence-grounded, criterion-grounded, "
            "generic/style) and the type shares are reported",
            kind=bool,
        ),
    )

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> AtomicRecord:
        if not isinstance(row, dict):
            raise UserError(f"row must be a JSON object, got {type(row).__name__}")
        turns = parse_turns(row.get("context"), "context")
        preference = row.get("overall_preference")
        if preference is not None and (
            isinstance(preference, bool) or not isinstance(preference, int)
        ):
            raise UserError(f"field 'overall_preference' must be an integer, got {preference!r}")
        label = None if not preference else ("A" if preference < 0 else "B")
        references = {}
        for key in row:
            match = _REFERENCE_KEY.match(key)
            if match:
                name = match.group(1)
                generated = row.get(f"model-{name}-generated_text")
                references[name] = ReferenceOutput(
                    checklist=_string_list(row, key, allow_empty=True),
                    label=row.get(f"model-{name}-label"),
                    generated_text=generated if isinstance(generated, str) else None,
                )
        raw_id = row.get("id")
        return AtomicRecord(
            id=str(raw_id) if raw_id is not None else f"{split}-{line}",
            domain=require_str(row, "domain"),
            context=tuple(turns[:-1]),
            prompt=turns[-1].content,
            response1=require_str(row, "response1"),
            response2=require_str(row, "response2"),
            checklist=_string_list(row, "human-checklist", allow_empty=False),
            label=label,
            references=references,
        )

    # --- the GenRM -------------------------------------------------------------------------

    def reference_judgments(
        self,
        records: Sequence[AtomicRecord],
        model: str,
        options: Mapping[str, Any],
        extract: bool = False,
    ) -> list[AtomicJudgment]:
        """A reference model's stored checklists, or with ``extract`` the extractor's
        reasons from its stored generated text."""
        judgments = []
        for record in records:
            stored = AtomicJudgment.from_reference(record, model)
            if extract:
                text = stored.output
                stored = replace(
                    AtomicJudgment.from_free_output(record, text, options["rationale_source"]),
                    verdict=stored.verdict,
                )
            judgments.append(replace(stored, classify=bool(options["reason_types"])))
        return judgments

    def genrm_prompt(
        self,
        record: AtomicRecord,
        options: Mapping[str, Any],
        index: int,
        template: str | None = None,
    ) -> str:
        if options.get("genrm_format") == "free":
            return render_free_genrm_prompt(record, template)
        return render_atomic_genrm_prompt(record, template)

    def genrm_template_files(self) -> tuple[str, ...]:
        return (ATOMIC_GENRM_TEMPLATE, GENRM_TEMPLATE, *TEMPLATES)

    def target(self, record: AtomicRecord) -> str:
        return record.label or ""  # items without a human preference have no label

    def judgment(
        self, record: AtomicRecord, outputs: Sequence[GenRMOutput], options: Mapping[str, Any]
    ) -> AtomicJudgment:
        (output,) = outputs
        if options.get("genrm_format") == "free":
            judgment = AtomicJudgment.from_free_output(
                record, output.text, options["rationale_source"], output.truncated, output.error
            )
        else:
            judgment = AtomicJudgment.from_output(
                record, output.text, output.truncated, output.error
            )
        return replace(judgment, classify=bool(options.get("reason_types")))

    # --- the MetaJudge ---------------------------------------------------------------------

    def judge_slots(self, judgment: AtomicJudgment) -> list[bool]:
        """Items with no reason or more than 10 are skipped without a call."""
        return [judgment.skip_status is None and not judgment.wants_extraction]

    def judge_prompts(
        self, judgment: AtomicJudgment, template: str | None = None
    ) -> list[str | None]:
        if not self.judge_slots(judgment)[0]:
            return [None]
        reasons, rationales = judgment.scored_reasons, list(judgment.record.checklist)
        return [render_rc_prompt(reasons, rationales, template)]

    def check(
        self, judgment: AtomicJudgment, slot: int
    ) -> Callable[[str], list[tuple[int, float]]]:
        n_rationales, n_reasons = len(judgment.record.checklist), len(judgment.scored_reasons)
        # A malformed answer raises RCFormatError (an InvalidAnswer): it is asked again.
        return lambda answer: parse_rc_answer(answer, n_rationales, n_reasons)

    def outcome(self, judgment: AtomicJudgment, calls: JudgeCalls, judged: bool) -> AtomicOutcome:
        (call,) = calls
        scores = None
        status = judgment.skip_status
        if status is None and not judged:
            status = ItemStatus.UNJUDGED
        elif status is None and call is not None and call.ok:
            status = ItemStatus.SCORED
            scores = score_picks(call.value, len(judgment.scored_reasons))
        elif status is None:
            status = ItemStatus.JUDGE_FAILED
        types = judgment.reason_types
        return AtomicOutcome(
            domain=judgment.record.domain,
            status=status,
            scores=scores,
            label=judgment.record.label,
            verdict=judgment.verdict,
            type_counts=type_counts(types),
            top_type=types[0] if types else None,
            types_failed=judgment.types_failed,
            extracted=judgment.genrm_format == "free",
            classified=judgment.classify,
        )

    def explain(self, judgment: AtomicJudgment, calls: JudgeCalls) -> str:
        (call,) = calls
        skip = judgment.skip_status
        if skip in _EXTRACTION_FAILURES:
            return _EXTRACTION_FAILURES[skip]
        if skip is ItemStatus.SKIPPED_EMPTY:
            if judgment.output is None:
                return "GenRM call failed: no reasons, skipped (not meta-judged)."
            return "The GenRM listed no reasons: skipped (not meta-judged)."
        if skip is ItemStatus.SKIPPED_LONG:
            return (
                f"The GenRM listed {len(judgment.reasons)} reasons (more than "
                f"{MAX_REASONS_ALLOWED}): skipped (not meta-judged)."
            )
        if call is None:
            return "Not meta-judged (no MetaJudge in this run)."
        if not call.ok:
            detail = f"{call.error}\n\n{call.answer}" if call.answer else call.error
            return f"MetaJudge failed after {call.attempts} attempt(s): {detail}"
        assert call.answer is not None
        scores = score_picks(call.value, len(judgment.scored_reasons))
        return (
            f"rc {scores.rc:.3f}, rc_code {scores.rc_code:.3f}, precision "
            f"{scores.rc_precision:.3f}, F1 {scores.rc_f1:.3f}\n\n{_result_block(call.answer)}"
        )

    # --- the judged-item record ------------------------------------------------------------

    def genrm_fields(self, judgment: AtomicJudgment) -> dict[str, Any]:
        return {
            "output": judgment.output,
            "verdict": judgment.verdict,
            "truncated": judgment.truncated,
            "error": judgment.error,
            "reasons": list(judgment.reasons),
            "format": judgment.genrm_format,
            # Free format: the reasons are the extractor's (its call is in the judge list).
            "extracted": judgment.extraction is not None,
            "reason_types": list(judgment.reason_types) if judgment.reason_types else None,
        }

    def judge_value(self, value: list[tuple[int, float]]) -> list[list[float]]:
        return [[s, score] for s, score in value]

    def outcome_to_dict(self, outcome: AtomicOutcome) -> dict[str, str | int | float | bool | None]:
        scores = asdict(outcome.scores) if outcome.scores else dict.fromkeys(RC_METRICS)
        counts = outcome.type_counts
        return {
            "status": outcome.status.value,
            **scores,
            "label": outcome.label,
            "verdict": outcome.verdict,
            **{f"types_{kind}": counts[i] if counts else None
               for i, kind in enumerate(REASON_TYPES)},
            "top_type": outcome.top_type,
            "types_failed": outcome.types_failed,
            "extracted": outcome.extracted,
            "classified": outcome.classified,
        }  # fmt: skip

    def outcome_from_item(self, item: Mapping[str, Any]) -> AtomicOutcome:
        stored = item["outcome"]
        status = ItemStatus(stored["status"])
        scored = status is ItemStatus.SCORED
        label, verdict = stored["label"], stored["verdict"]
        return AtomicOutcome(
            domain=str(item["subset"]),
            status=status,
            scores=RCScores(**{n: float(stored[n]) for n in RC_METRICS}) if scored else None,
            label=str(label) if label is not None else None,
            verdict=str(verdict) if verdict is not None else None,
            type_counts=(
                tuple(int(stored[f"types_{kind}"]) for kind in REASON_TYPES)
                if stored.get("types_evidence") is not None else None
            ),
            top_type=stored.get("top_type"),
            types_failed=bool(stored.get("types_failed")),
            extracted=bool(stored.get("extracted")),
            classified=bool(stored.get("classified")),
        )  # fmt: skip

    def outcome_group(self, outcome: AtomicOutcome) -> str:
        return outcome.domain

    # --- metrics ---------------------------------------------------------------------------

    def summarize(self, outcomes: Sequence[AtomicOutcome]) -> dict[str, Any]:
        return compute_rc(outcomes)

    def document_values(self, outcome: AtomicOutcome) -> dict[str, float]:
        return outcome.metric_values()

    def judge_requests_at_most(self, options: Mapping[str, Any]) -> dict[str, int]:
        """One MetaJudge request per item; a free-form rationale's reasons extracted first,
        and typed with ``reason_types``."""
        return {"judge": 1, EXTRACT_STEP.name: int(options.get("genrm_format") == "free"),
                REASON_TYPES_STEP.name: int(bool(options.get("reason_types")))}  # fmt: skip

    def instance_score(self, outcome: AtomicOutcome) -> InstanceScore | None:
        """The item's Rationale Consistency; right when its verdict takes the human side (an
        item without one is never right). Skipped items have none."""
        if outcome.scores is None:
            return None
        side = verdict_side(outcome.verdict)
        return InstanceScore("rc", outcome.scores.rc, outcome.label is not None and
                             side == outcome.label)  # fmt: skip

    # --- the report and the viewer ---------------------------------------------------------

    grade_names = ("matched", "unmatched")
    view_kind = "rationale"
    view_outcomes: ClassVar[dict[str, str]] = {
        "scored": "scored",
        "skipped": "skipped",
        "unjudged": "not judged",  # only a run without a MetaJudge has such items
        "failures": "failures",
    }
    view_optional = frozenset({"unjudged"})

    def judge_grades(
        self, record: AtomicRecord, item: Mapping[str, Any], outcome: AtomicOutcome
    ) -> dict[str, bool | None]:
        """Per human rationale (``R1``, ``R2``, …) of an item sent to the MetaJudge, whether
        it matched one of the GenRM's reasons (a reason picked with a score above 0); ``None``
        for each where no well-formed answer came."""
        if outcome.status is ItemStatus.JUDGE_FAILED:
            return {f"R{n}": None for n in range(1, len(record.checklist) + 1)}
        if outcome.status is not ItemStatus.SCORED:
            return {}
        picks = latest_call(item["judge"], step=self.judge_step)["value"]
        return {f"R{n}": s > 0 and score > 0 for n, (s, score) in enumerate(picks, 1)}

    def view_item(
        self, record: AtomicRecord, item: Mapping[str, Any], outcome: AtomicOutcome
    ) -> dict[str, Any]:
        """Prompt, both answers, the GenRM's output and reasons, each human rationale with
        the reason the MetaJudge matched to it and its score, the item's RC values and the
        MetaJudge's answer."""
        genrm, call = item["genrm"], latest_call(item["judge"], step=self.judge_step)
        extract = latest_call(item["judge"], step=EXTRACT_STEP.name)
        types = latest_call(item["judge"], step=REASON_TYPES_STEP.name)
        status = outcome.status
        picks = call.get("value") if status is ItemStatus.SCORED else None
        key = (
            "failures" if genrm.get("output") is None or status in _FAILED
            else "scored" if status is ItemStatus.SCORED
            else "unjudged" if status is ItemStatus.UNJUDGED
            else "skipped"
        )  # fmt: skip
        return {
            "kind": self.view_kind,
            "id": record.id,
            "subset": outcome.domain,
            "label": record.label or "",
            "verdict": genrm.get("verdict"),
            "outcome": key,
            "status": status.value,
            "context": turn_dicts(record.context),
            "prompt": record.prompt,
            "response_a": record.response1,
            "response_b": record.response2,
            "output": genrm.get("output"),
            "error": genrm.get("error"),
            "truncated": bool(genrm.get("truncated")),
            "reasons": list(genrm.get("reasons") or []),
            "reasons_scored": MAX_REASONS_SCORED,
            "rationales": [
                {
                    "text": text,
                    "reason": picks[index][0] if picks else None,
                    "score": picks[index][1] if picks else None,
                }
                for index, text in enumerate(record.checklist)
            ],
            "scores": [
                {"name": self.schema.label(name), "value": value}
                for name, value in asdict(outcome.scores).items()
            ]
            if outcome.scores
            else None,
            "judge_answer": call.get("answer"),
            "judge_error": call.get("error"),
            "extracted": bool(genrm.get("extracted")),
            "extract_answer": extract.get("answer"),
            "extract_error": extract.get("error"),
            "reason_types": genrm.get("reason_types"),
            "types_error": types.get("error"),
        }


RATIONALE = RationaleProtocol()

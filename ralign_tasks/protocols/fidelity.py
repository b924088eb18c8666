"""R-Align rationale fidelity (SPEC §1): HelpSteer3, RewardBench 2 and PPE pairs with golden
rationales. The GenRM picks A or B; label-correct picks go to the meta-judge, which checks the
GenRM's rationale against the golden one; L-Acc, S-Corr and F-Score per benchmark and subset."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from ralign_tasks.protocols.reasons import (
    EXTRACT_STEP,
    REASON_TYPES_STEP,
    TEMPLATES,
    rationale_text,
)
from ralign_tasks.records import NOT_IN_DOCUMENT, Turn, turn_dicts
from ralign_tasks.scorers.ask import JudgeCall
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.fidelity import (
    FIDELITY_METRICS,
    FIDELITY_SCHEMA,
    ItemOutcome,
    JudgedAnswer,
    MetaStatus,
    compute_fidelity,
    paired_difference,
    parse_meta_verdict,
)
from ralign_tasks.scorers.probes import (
    PROBE_SEED,
    PROBES,
    ProbedPair,
    parse_cue_answer,
    probe_pair,
)
from ralign_tasks.scorers.reasons import REASON_TYPES, type_counts
from ralign_tasks.scorers.verdict import (
    VERDICT_POLICIES,
    Verdict,
    VerdictPolicy,
    parse_verdict,
    strip_thinking,
)

HF_DATASET = "lyn22333/R-Align-BMK"
GENRM_TEMPLATE = "genrm_pairwise.jinja"
METAJUDGE_TEMPLATE = "metajudge.jinja"
CUE_TEMPLATE = "probe_cue.jinja"
# A probe run's judge slots: the pair (0), the probed pair (1), the cue question (2).
CUE_SLOT = 2
GENRM_TEMPLATE_ENV = "RALIGN_GENRM_TEMPLATE"


@dataclass(frozen=True)
class PairRecord:
    """One benchmark item: a prompt, two answers, the better one and why.

    ``context`` holds the dialogue before the final user turn (empty for single-turn items);
    ``golden_rationale`` is the golden judgment with any thinking trace removed.
    """

    benchmark: str
    id: str
    context: tuple[Turn, ...]
    prompt: str
    response_a: str
    response_b: str
    label: Literal["A", "B"]
    golden_rationale: str
    subset: str
    # A line shown before the answers (the bandwagon probe's); never in the data.
    note: str = field(default="", metadata=NOT_IN_DOCUMENT)


def _comparison_vars(record: PairRecord) -> dict[str, object]:
    return comparison_vars(
        record.context, record.prompt, record.response_a, record.response_b, record.note
    )


def render_genrm_prompt(record: PairRecord, template_path: str | None = None) -> str:
    """The GenRM's pairwise-comparison prompt (one user message)."""
    path = template_path or os.environ.get(GENRM_TEMPLATE_ENV)
    return load_template(path, GENRM_TEMPLATE).render(**_comparison_vars(record)).strip()


def render_metajudge_prompt(
    record: PairRecord,
    genrm_output: str,
    template_path: str | None = None,
    *,
    order_swapped: bool = False,
    genrm_first: bool = False,
) -> str:
    """The meta-judge prompt: the comparison as the GenRM saw it, the golden rationale and the
    GenRM's output with its thinking removed (the meta-judge never sees the GenRM's thinking).
    ``order_swapped``: the GenRM saw the answers swapped (a swap run's second order), so the
    golden rationale names them the other way round, which the prompt says. ``genrm_first``:
    the GenRM's output comes before the golden rationale (the meta-judge position probe)."""
    return (
        load_template(template_path, METAJUDGE_TEMPLATE)
        .render(
            **_comparison_vars(record),
            golden_rationale=record.golden_rationale,
            genrm_output=strip_thinking(genrm_output),
            order_swapped=order_swapped,
            genrm_first=genrm_first,
        )
        .strip()
    )


def render_cue_prompt(record: PairRecord, genrm_output: str, cue: str) -> str:
    """The probe's yes/no question to the meta-judge: does the rationale (no thinking) cite the
    injected cue? The comparison is shown as the GenRM saw it (probed)."""
    return (
        load_template(None, CUE_TEMPLATE)
        .render(**_comparison_vars(record), rationale=strip_thinking(genrm_output), cue=cue)
        .strip()
    )


def probed(record: PairRecord, options: Mapping[str, Any]) -> tuple[PairRecord, ProbedPair]:
    """The pair as the probe shows it, and what it changed (seeded by ``probe_seed`` and the
    item's id)."""
    change = probe_pair(
        options["probe"], record.response_a, record.response_b, record.label, record.prompt,
        record.id, options.get("probe_seed", PROBE_SEED),
    )  # fmt: skip
    shown = replace(
        record, response_a=change.response_a, response_b=change.response_b, note=change.note
    )
    return shown, change


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
    ``truncated`` is ``None`` when the harness does not say why generation stopped. In a swap
    run, ``swapped`` is the judgment of the second order (its record has the answers, and
    the label, the other way round)."""

    record: PairRecord
    output: str | None
    verdict: Verdict | None
    truncated: bool | None = False
    error: str | None = None  # why the GenRM call failed
    swapped: FidelityJudgment | None = None
    # A repeated run's other samples (the second to the k-th answer to the same prompt).
    repeats: tuple[FidelityJudgment, ...] = ()
    # A probe run: the judgment of the probed pair (its record shows the answers as probed),
    # and what the probe changed.
    probed: FidelityJudgment | None = None
    probe: ProbedPair | None = None
    # Where the meta-judge prompt puts the GenRM output: after the golden rationale (the
    # protocol's order) or before it (the meta-judge position probe).
    genrm_first: bool = False
    # reason_types: the extractor lists the reasons of the rationale the meta-judge reads
    # (``rationale``), then the judge types them (see ralign_tasks.protocols.reasons).
    classify: bool = False
    rationale: str | None = None
    reasons: tuple[str, ...] = ()
    extraction: str | None = None
    reason_types: tuple[str, ...] | None = None
    types_failed: bool = False

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

    def comparison(self) -> dict[str, object]:
        return _comparison_vars(self.record)

    @property
    def wants_extraction(self) -> bool:
        return self.classify and bool(self.rationale) and self.extraction is None

    @property
    def wants_types(self) -> bool:
        return self.extraction == "ok" and self.reason_types is None and not self.types_failed


_META_NAMES = {
    MetaStatus.CORRECT: "Correct",
    MetaStatus.INCORRECT: "Incorrect",
    MetaStatus.PARSE_FAIL: "ParseFail",
    MetaStatus.CALL_FAIL: "CallFail",
}


class FidelityProtocol(Protocol[PairRecord, FidelityJudgment, ItemOutcome]):
    name = "fidelity"
    record_type = PairRecord
    title = "R-Align rationale fidelity"
    scorer_name = "ralign_fidelity"
    judge_step = "meta_judge"
    prep_steps = (EXTRACT_STEP, REASON_TYPES_STEP)
    schema = FIDELITY_SCHEMA
    group_field = "subset"
    genrm_template_file = GENRM_TEMPLATE
    judge_template_file = METAJUDGE_TEMPLATE
    genrm_template_env = GENRM_TEMPLATE_ENV
    run_by_default = True
    judge_template_setting = "template"  # RALIGN_METAJUDGE_TEMPLATE, metajudge_template
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
        Option(
            "swap",
            False,
            "true: the GenRM also judges every pair with the answers swapped, and the "
            "meta-judge grades each label-correct order (position-swap metrics); false: one "
            "order, the official protocol",
            stage="generation",
            kind=bool,
        ),
        Option(
            "samples",
            1,
            "k > 1: the GenRM answers every pair k times (at the task's temperature); "
            "majority-vote and per-sample metrics, every label-correct sample meta-judged",
            stage="generation",
            kind=int,
        ),
        Option(
            "judge_order",
            "golden_first",
            "golden_first: the meta-judge prompt shows the golden rationale, then the GenRM "
            "output (the protocol); genrm_first: the other way round, to measure the "
            "meta-judge's own position bias with the agreement report",
            ("golden_first", "genrm_first"),
        ),
        Option(
            "probe",
            "none",
            "a bias probe: the GenRM also judges every pair with one answer changed in a way "
            "that leaves its substance alone (verbosity, format, authority, bandwagon: the "
            "worse answer; mirror, the control: the better one gets the format treatment); "
            "flip rate, L-Acc, S-Corr and F-Score under the probe, and whether the rationale "
            "cites the cue",
            ("none", *PROBES),
            "generation",
        ),
        Option(
            "probe_seed",
            PROBE_SEED,
            "the seed of the probes' random choices (same seed, same text)",
            stage="generation",
            kind=int,
        ),
        Option(
            "reason_types",
            False,
            "true: the extractor lists the reasons of each rationale (the visible answer, as "
            "the meta-judge reads it) and the judge types them (evidence-grounded, "
            "criterion-grounded, generic/style): type shares, and S-Corr by top reason type",
            kind=bool,
        ),
    )

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> PairRecord:
        if not isinstance(row, dict):
            raise UserError(f"row must be a JSON object, got {type(row).__name__}")
        if "conversations" not in row:
            raise UserError("missing field 'conversations'")
        turns = parse_turns(row["conversations"], "conversations")
        response_a = require_str(row, "response_A")
        response_b = require_str(row, "response_B")
        label = require_str(row, "gt_label").strip()
        if label not in ("A", "B"):
            raise UserError(f"field 'gt_label' must be 'A' or 'B', got {row['gt_label']!r}")
        golden = strip_thinking(require_str(row, "gt_judgment"))
        if not golden:
            raise UserError("field 'gt_judgment' has no rationale after its thinking trace")
        source = row.get("source")
        if not isinstance(source, dict):
            raise UserError("missing field 'source' (an object with 'subset')")
        subset = require_str(source, "subset", "source.")
        raw_id = row.get("id")
        if raw_id is not None and not isinstance(raw_id, (str, int)):
            raise UserError(f"field 'id' must be a string or integer, got {type(raw_id).__name__}")
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

    # --- the GenRM -------------------------------------------------------------------------

    def option_values(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        values = super().option_values(given, where)
        if values["samples"] < 1:
            raise UserError(f"{where}: samples must be at least 1, got {values['samples']}")
        if values["swap"] and values["samples"] > 1:
            raise UserError(f"{where}: choose swap or samples > 1, not both in one run")
        if values["probe"] != "none" and (values["swap"] or values["samples"] > 1):
            raise UserError(f"{where}: a probe runs alone, without swap or samples > 1")
        return values

    def genrm_template_files(self) -> tuple[str, ...]:
        """The GenRM's template and those of the probe's cue question and the reason steps."""
        return (GENRM_TEMPLATE, CUE_TEMPLATE, *TEMPLATES)

    def samples(self, options: Mapping[str, Any]) -> int:
        return int(options.get("samples", 1))

    def asks_several(self, options: Mapping[str, Any]) -> bool:
        return (
            bool(options.get("swap"))
            or self.samples(options) > 1
            or options.get("probe", "none") != "none"
        )

    def prompt_count(self, record: PairRecord, options: Mapping[str, Any]) -> int:
        # Both orders with swap, the pair and the probed pair with a probe; repeated sampling
        # asks the same prompts k times (each harness asks them anew).
        pair = 2 if options.get("swap") or options.get("probe", "none") != "none" else 1
        return pair * self.samples(options)

    def genrm_prompt(
        self,
        record: PairRecord,
        options: Mapping[str, Any],
        index: int,
        template: str | None = None,
    ) -> str:
        if index == 1 and options.get("probe", "none") != "none":
            return render_genrm_prompt(probed(record, options)[0], template)
        second_order = bool(options.get("swap")) and index % 2 == 1
        return render_genrm_prompt(swapped(record) if second_order else record, template)

    def target(self, record: PairRecord) -> str:
        return record.label

    def judgment(
        self, record: PairRecord, outputs: Sequence[GenRMOutput], options: Mapping[str, Any]
    ) -> FidelityJudgment:
        policy = options.get("verdict_policy", "official")
        first, *more = outputs
        other = probe_answer = change = None
        if options.get("probe", "none") != "none":
            (output,) = more
            more = []
            shown, change = probed(record, options)
            probe_answer = FidelityJudgment.from_output(
                shown, output.text, policy, output.truncated, output.error
            )
        if options.get("swap"):
            (output,) = more
            more = []
            other = FidelityJudgment.from_output(
                swapped(record), output.text, policy, output.truncated, output.error
            )
        repeats = tuple(
            FidelityJudgment.from_output(record, o.text, policy, o.truncated, o.error) for o in more
        )
        judgment = FidelityJudgment.from_output(
            record, first.text, policy, first.truncated, first.error
        )
        classify = bool(options.get("reason_types"))
        # What the meta-judge reads of the first answer (no thinking) is what is extracted.
        rationale = (
            rationale_text(first.text, "visible") if classify and first.text is not None else None
        )
        return replace(
            judgment,
            swapped=other,
            repeats=repeats,
            probed=probe_answer,
            probe=change,
            genrm_first=options.get("judge_order") == "genrm_first",
            classify=classify,
            rationale=rationale,
            extraction="empty" if rationale == "" else None,
        )

    # --- the meta-judge --------------------------------------------------------------------

    @staticmethod
    def _orders(judgment: FidelityJudgment) -> list[FidelityJudgment]:
        """The answers judged in the item's slots: the first order, the second or the probed
        pair, the samples."""
        others = [o for o in (judgment.swapped, judgment.probed) if o is not None]
        return [judgment, *others, *judgment.repeats]

    def judge_slots(self, judgment: FidelityJudgment) -> list[bool]:
        """Only label-correct answers are sent (SPEC §1); a probe run's last slot asks whether
        the probed rationale cites the cue (label-correct probed answers only)."""
        sent = [o.label_correct and o.output is not None for o in self._orders(judgment)]
        return [*sent, sent[1]] if judgment.probed is not None else sent

    def judge_prompts(
        self, judgment: FidelityJudgment, template: str | None = None
    ) -> list[str | None]:
        """In a swap run each order is a slot, the second shown as the GenRM saw it (the
        prompt says the golden rationale names the answers the other way round)."""
        slots = self.judge_slots(judgment)
        prompts = [
            render_metajudge_prompt(
                order.record, order.output, template,
                order_swapped=order is judgment.swapped, genrm_first=judgment.genrm_first,
            )
            if sent
            else None
            for order, sent in zip(self._orders(judgment), slots, strict=False)
        ]  # fmt: skip
        if judgment.probed is not None and judgment.probe is not None:
            shown = judgment.probed
            cue = render_cue_prompt(shown.record, str(shown.output), judgment.probe.cue)
            prompts.append(cue if slots[-1] else None)
        return prompts

    def check(self, judgment: FidelityJudgment, slot: int) -> Callable[[str], Any]:
        if judgment.probed is not None and slot == CUE_SLOT:
            return parse_cue_answer  # a malformed answer is asked again
        # Every non-empty answer is final: a ParseFail is a counted outcome, not asked again.
        return parse_meta_verdict

    def outcome(self, judgment: FidelityJudgment, calls: JudgeCalls, judged: bool) -> ItemOutcome:
        first, *others = calls
        second = probe = None
        cue_cited: bool | None = None
        if judgment.swapped is not None:
            second = _answer(judgment.swapped, others[0])
        if judgment.probed is not None:
            probe = _answer(judgment.probed, others[0])
            cue = others[CUE_SLOT - 1]
            cue_cited = cue.value if cue is not None and cue.ok else None
        samples: tuple[JudgedAnswer, ...] = ()
        if judgment.repeats:
            answers = zip((judgment, *judgment.repeats), calls, strict=True)
            samples = tuple(_answer(answer, call) for answer, call in answers)
        return ItemOutcome(
            subset=judgment.record.subset,
            label_correct=judgment.label_correct,
            meta=_meta(first) if judgment.label_correct else None,
            genrm_no_verdict=judgment.output is not None and judgment.verdict is None,
            genrm_call_fail=judgment.output is None,
            genrm_truncated=_truncated(judgment),
            judged=judged,
            verdict=judgment.verdict,
            second=second,
            samples=samples,
            probe=probe,
            probe_name=judgment.probe.probe if judgment.probe else None,
            cue_asked=judgment.probed is not None and calls[-1] is not None,
            cue_cited=cue_cited,
            classify=judgment.classify,
            extraction=judgment.extraction,
            type_counts=type_counts(judgment.reason_types),
            top_type=judgment.reason_types[0] if judgment.reason_types else None,
            types_failed=judgment.types_failed,
        )

    def explain(self, judgment: FidelityJudgment, calls: JudgeCalls) -> str:
        if judgment.probed is not None and judgment.probe is not None:
            cue = calls[CUE_SLOT]
            cited = (
                "not asked (the probed answer is label-wrong, or there is no judge)" if cue is None
                else ("yes" if cue.value else "no") if cue.ok
                else f"no answer ({cue.error})"
            )  # fmt: skip
            return (
                f"Unprobed: {self._explain_order(judgment, calls[0])}\n\n"
                f"Probed ({judgment.probe.change}): "
                f"{self._explain_order(judgment.probed, calls[1])}\n\n"
                f"Cites the cue ({judgment.probe.cue}): {cited}"
            )
        if judgment.swapped is None and not judgment.repeats:
            return self._explain_order(judgment, calls[0])
        kind = "Order" if judgment.swapped else "Sample"
        answers = (judgment, *([judgment.swapped] if judgment.swapped else []), *judgment.repeats)
        return "\n\n".join(
            f"{kind} {number}: {self._explain_order(answer, call)}"
            for number, (answer, call) in enumerate(zip(answers, calls, strict=True), 1)
        )

    def _explain_order(self, judgment: FidelityJudgment, call: JudgeCall[Any] | None) -> str:
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
        fields: dict[str, Any] = {
            "output": judgment.output,
            "verdict": judgment.verdict,
            "truncated": judgment.truncated,
            "error": judgment.error,
        }
        if judgment.classify:
            fields |= {
                "reasons": list(judgment.reasons),
                "extracted": judgment.extraction is not None,
                "reason_types": list(judgment.reason_types) if judgment.reason_types else None,
            }
        if judgment.swapped is not None:
            order = judgment.swapped
            fields["swapped"] = {
                "output": order.output,
                "verdict": order.verdict,  # in its own naming: A is the answer shown first
                "truncated": order.truncated,
                "error": order.error,
            }
        if judgment.probed is not None and judgment.probe is not None:
            shown, change = judgment.probed, judgment.probe
            fields["probed"] = {
                "output": shown.output,
                "verdict": shown.verdict,
                "truncated": shown.truncated,
                "error": shown.error,
                "probe": change.probe,
                "changed": change.changed,
                "change": change.change,
                "cue": change.cue,
                # The pair exactly as the GenRM saw it under the probe.
                "response_a": change.response_a,
                "response_b": change.response_b,
                "note": change.note,
            }
        if judgment.repeats:
            fields["repeats"] = [
                {"output": r.output, "verdict": r.verdict, "truncated": r.truncated,
                 "error": r.error}
                for r in judgment.repeats
            ]  # fmt: skip
        return fields

    def stored_outputs(self, genrm: Mapping[str, Any]) -> list[GenRMOutput]:
        orders = [genrm, *([genrm["swapped"]] if genrm.get("swapped") else []),
                  *([genrm["probed"]] if genrm.get("probed") else []),
                  *(genrm.get("repeats") or [])]  # fmt: skip
        return [
            GenRMOutput(order["output"], order.get("truncated"), order.get("error"))
            for order in orders
        ]

    def judge_value(self, value: MetaStatus | bool) -> str | bool:
        return value if isinstance(value, bool) else value.value

    def outcome_to_dict(self, outcome: ItemOutcome) -> dict[str, str | int | float | bool | None]:
        fields: dict[str, str | int | float | bool | None] = {
            "label_correct": outcome.label_correct,
            "meta": outcome.meta.value if outcome.meta is not None else None,
            "genrm_no_verdict": outcome.genrm_no_verdict,
            "genrm_call_fail": outcome.genrm_call_fail,
            "genrm_truncated": outcome.genrm_truncated,
            "judged": outcome.judged,
            "verdict": outcome.verdict,
        }
        if outcome.classify:
            counts = outcome.type_counts
            fields |= {
                "extraction": outcome.extraction,
                **{f"types_{kind}": counts[i] if counts else None
                   for i, kind in enumerate(REASON_TYPES)},
                "top_type": outcome.top_type,
                "types_failed": outcome.types_failed,
            }  # fmt: skip
        probe = outcome.probe
        if probe is not None:
            fields |= {
                "probe": outcome.probe_name,
                "probe_verdict": probe.verdict,
                "probe_label_correct": probe.label_correct,
                "probe_meta": probe.meta.value if probe.meta is not None else None,
                "probe_genrm_no_verdict": probe.genrm_no_verdict,
                "probe_genrm_call_fail": probe.genrm_call_fail,
                "cue_asked": outcome.cue_asked,
                "cue_cited": outcome.cue_cited,
            }
        if outcome.samples:  # a list: Inspect's score value leaves it out, its metadata has it
            fields["samples"] = [_answer_dict(answer) for answer in outcome.samples]  # type: ignore[assignment]
        second = outcome.second
        if second is not None:  # flat: the outcome is also Inspect's score value
            fields |= {
                "second_verdict": second.verdict,
                "second_label_correct": second.label_correct,
                "second_meta": second.meta.value if second.meta is not None else None,
                "second_genrm_no_verdict": second.genrm_no_verdict,
                "second_genrm_call_fail": second.genrm_call_fail,
            }
        return fields

    def outcome_from_item(self, item: Mapping[str, Any]) -> ItemOutcome:
        stored = item["outcome"]
        meta = stored["meta"]
        truncated = stored["genrm_truncated"]
        second = None
        if "second_label_correct" in stored:
            second_meta = stored["second_meta"]
            second = JudgedAnswer(
                verdict=stored["second_verdict"],
                label_correct=bool(stored["second_label_correct"]),
                meta=MetaStatus(second_meta) if second_meta is not None else None,
                genrm_no_verdict=bool(stored["second_genrm_no_verdict"]),
                genrm_call_fail=bool(stored["second_genrm_call_fail"]),
            )
        probe = None
        if "probe_label_correct" in stored:
            probe_meta = stored["probe_meta"]
            probe = JudgedAnswer(
                verdict=stored["probe_verdict"],
                label_correct=bool(stored["probe_label_correct"]),
                meta=MetaStatus(probe_meta) if probe_meta is not None else None,
                genrm_no_verdict=bool(stored["probe_genrm_no_verdict"]),
                genrm_call_fail=bool(stored["probe_genrm_call_fail"]),
            )
        cited = stored.get("cue_cited")
        return ItemOutcome(
            subset=str(item["subset"]),
            label_correct=bool(stored["label_correct"]),
            meta=MetaStatus(meta) if meta is not None else None,
            genrm_no_verdict=bool(stored["genrm_no_verdict"]),
            genrm_call_fail=bool(stored["genrm_call_fail"]),
            genrm_truncated=None if truncated is None else bool(truncated),
            judged=bool(stored["judged"]),
            # Records written before swap runs have no verdict field.
            verdict=stored.get("verdict"),
            second=second,
            samples=tuple(_answer_from(answer) for answer in stored.get("samples") or ()),
            probe=probe,
            probe_name=stored.get("probe"),
            cue_asked=bool(stored.get("cue_asked")),
            cue_cited=None if cited is None else bool(cited),
            classify="extraction" in stored,
            extraction=stored.get("extraction"),
            type_counts=(
                tuple(int(stored[f"types_{kind}"]) for kind in REASON_TYPES)
                if stored.get("types_evidence") is not None else None
            ),
            top_type=stored.get("top_type"),
            types_failed=bool(stored.get("types_failed")),
        )  # fmt: skip

    def outcome_group(self, outcome: ItemOutcome) -> str:
        return outcome.subset

    # --- metrics ---------------------------------------------------------------------------

    def summarize(self, outcomes: Sequence[ItemOutcome]) -> dict[str, Any]:
        return compute_fidelity(outcomes)

    def document_values(self, outcome: ItemOutcome) -> dict[str, float]:
        return outcome.document_values()

    def judge_requests_at_most(self, options: Mapping[str, Any]) -> dict[str, int]:
        """One grade per label-correct answer (both orders with swap, each sample), a probe
        run's cue question; the first answer's reasons extracted and typed."""
        probe = options.get("probe", "none") != "none"
        answers = 2 if options.get("swap") or probe else int(options.get("samples", 1))
        typed = int(bool(options.get("reason_types")))
        return {"judge": answers + int(probe), EXTRACT_STEP.name: typed,
                REASON_TYPES_STEP.name: typed}  # fmt: skip

    def instance_score(self, outcome: ItemOutcome) -> InstanceScore | None:
        """The item's label accuracy (its rationale's grade is in its record)."""
        return InstanceScore("l_acc", float(outcome.label_correct), outcome.label_correct)

    # --- the report and the viewer ---------------------------------------------------------

    plot_pair = ("l_acc", "f_score")
    summary_csv = (
        ("l_acc", "label_acc"),
        ("s_corr", "spurious_correctness"),
        ("f_score", "fidelity_score"),
    )
    grade_names = (MetaStatus.CORRECT.value, MetaStatus.INCORRECT.value)
    view_kind = "fidelity"
    view_outcomes: ClassVar[dict[str, str]] = {
        "faithful": "faithful",
        "spurious": "spurious-correct",
        "label-wrong": "label-wrong",
        "unjudged": "not judged",  # only a run without a meta-judge has such items
        "failures": "failures",
    }
    view_optional = frozenset({"unjudged"})

    def headline_metrics(self) -> tuple[str, ...]:
        return FIDELITY_METRICS

    def paired_difference(
        self, first: Sequence[ItemOutcome], second: Sequence[ItemOutcome], *, draws: int
    ) -> dict[str, dict[str, Any]]:
        """The paired bootstrap over the outcome categories (:func:`paired_difference`)."""
        return paired_difference(first, second, draws=draws)

    def judge_grades(
        self, record: PairRecord, item: Mapping[str, Any], outcome: ItemOutcome
    ) -> dict[str, bool | None]:
        """Per order sent to the meta-judge (label-correct), whether it found the rationale
        Correct; ``None`` for a ParseFail, a CallFail or no meta-judge."""
        answers = [outcome, *([outcome.second] if outcome.second is not None else [])]
        return {
            str(slot): None if answer.meta not in _GRADES else answer.meta is MetaStatus.CORRECT
            for slot, answer in enumerate(answers)
            if answer.label_correct
        }

    def view_item(
        self, record: PairRecord, item: Mapping[str, Any], outcome: ItemOutcome
    ) -> dict[str, Any]:
        """Prompt, both answers, golden rationale, GenRM output and the meta-judge's verdict
        and answer (a swap run: the second order too)."""
        genrm, judge = item["genrm"], item["judge"]
        step = self.judge_step
        first, second = latest_call(judge, 0, step), latest_call(judge, 1, step)
        return {
            "kind": self.view_kind,
            "id": record.id,
            "subset": outcome.subset,
            "label": record.label,
            "verdict": genrm.get("verdict"),
            "outcome": _view_outcome(outcome),
            "context": turn_dicts(record.context),
            "prompt": record.prompt,
            "response_a": record.response_a,
            "response_b": record.response_b,
            "golden_rationale": record.golden_rationale,
            "output": genrm.get("output"),
            "call_fail": outcome.genrm_call_fail,
            "no_verdict": outcome.genrm_no_verdict,
            "truncated": outcome.genrm_truncated,
            "label_correct": outcome.label_correct,
            "meta": outcome.meta.value if outcome.meta is not None else None,
            "meta_answer": first.get("answer"),
            "meta_error": first.get("error"),
            "reasons": genrm.get("reasons"),
            "reason_types": genrm.get("reason_types"),
            "extract_answer": latest_call(judge, 0, EXTRACT_STEP.name).get("answer"),
            "extract_error": latest_call(judge, 0, EXTRACT_STEP.name).get("error"),
            "types_error": latest_call(judge, 0, REASON_TYPES_STEP.name).get("error"),
            **_second_order(genrm, outcome, second.get("answer")),
            "probed": _probed(genrm, outcome, second, latest_call(judge, CUE_SLOT, step)),
        }


def swapped(record: PairRecord) -> PairRecord:
    """The pair with its answers shown the other way round (and its label flipped)."""
    return replace(
        record,
        response_a=record.response_b,
        response_b=record.response_a,
        label="B" if record.label == "A" else "A",
    )


def _answer(judgment: FidelityJudgment, call: JudgeCall[Any] | None) -> JudgedAnswer:
    """One more answer of an item (an order, a sample) as the metrics count it."""
    return JudgedAnswer(
        verdict=judgment.verdict,
        label_correct=judgment.label_correct,
        meta=_meta(call) if judgment.label_correct else None,
        genrm_no_verdict=judgment.output is not None and judgment.verdict is None,
        genrm_call_fail=judgment.output is None,
    )


def _answer_dict(answer: JudgedAnswer) -> dict[str, Any]:
    return {
        "verdict": answer.verdict,
        "label_correct": answer.label_correct,
        "meta": answer.meta.value if answer.meta is not None else None,
        "genrm_no_verdict": answer.genrm_no_verdict,
        "genrm_call_fail": answer.genrm_call_fail,
    }


def _answer_from(stored: Mapping[str, Any]) -> JudgedAnswer:
    return JudgedAnswer(
        verdict=stored["verdict"],
        label_correct=bool(stored["label_correct"]),
        meta=MetaStatus(stored["meta"]) if stored["meta"] is not None else None,
        genrm_no_verdict=bool(stored["genrm_no_verdict"]),
        genrm_call_fail=bool(stored["genrm_call_fail"]),
    )


def _meta(call: JudgeCall[Any] | None) -> MetaStatus | None:
    if call is None:
        return None
    return call.value if call.ok else MetaStatus.CALL_FAIL


def _truncated(judgment: FidelityJudgment) -> bool | None:
    """Truncated in any order or sample (``None``: unknown)."""
    others = [o for o in (judgment.swapped, judgment.probed) if o is not None]
    flags = [judgment.truncated, *(other.truncated for other in [*others, *judgment.repeats])]
    return None if None in flags else any(flags)


_GRADES = (MetaStatus.CORRECT, MetaStatus.INCORRECT)


def _view_outcome(outcome: ItemOutcome) -> str:
    """The viewer's outcome of one item: ``failures`` when the GenRM call failed or gave no
    verdict, ``label-wrong`` when its verdict picks the worse answer, ``unjudged`` when it was
    never sent to a meta-judge (a run without one), else the meta-judge's verdict on the
    rationale (``faithful``/``spurious``), ``failures`` when its call or answer failed."""
    if outcome.genrm_call_fail or outcome.genrm_no_verdict:
        return "failures"
    if not outcome.label_correct:
        return "label-wrong"
    if outcome.meta is None:
        return "unjudged"
    if outcome.meta is MetaStatus.CORRECT:
        return "faithful"
    if outcome.meta is MetaStatus.INCORRECT:
        return "spurious"
    return "failures"


def _second_order(
    genrm: Mapping[str, Any], outcome: ItemOutcome, meta_answer: str | None
) -> dict[str, Any]:
    """A swap run's second order (answers shown the other way round), and whether the two
    verdicts agree once mapped back (``None`` outside swap runs)."""
    second, stored = outcome.second, genrm.get("swapped")
    if second is None or not stored:
        return {"swapped": None, "consistent": None}
    mapped = {"A": "B", "B": "A"}.get(second.verdict or "")
    verdict = genrm.get("verdict")
    return {
        "swapped": {
            "output": stored.get("output"),
            "verdict": second.verdict,
            "verdict_mapped": mapped,
            "label_correct": second.label_correct,
            "meta": second.meta.value if second.meta is not None else None,
            "meta_answer": meta_answer,
        },
        "consistent": verdict is not None and mapped == verdict,
    }


def _probed(
    genrm: Mapping[str, Any],
    outcome: ItemOutcome,
    meta: Mapping[str, Any],
    cue: Mapping[str, Any],
) -> dict[str, Any] | None:
    """A probe run's probed pair as the viewer shows it (``None`` outside probe runs)."""
    stored, probe = genrm.get("probed"), outcome.probe
    if not stored or probe is None:
        return None
    return {
        **{key: stored.get(key) for key in ("probe", "changed", "change", "cue", "response_a",
                                              "response_b", "note", "output")},
        "verdict": probe.verdict,
        "label_correct": probe.label_correct,
        "meta": probe.meta.value if probe.meta is not None else None,
        "meta_answer": meta.get("answer"),
        "cue_cited": outcome.cue_cited,
        "cue_answer": cue.get("answer"),
    }  # fmt: skip


FIDELITY = FidelityProtocol()
FIDELITY_TASKS = tuple(spec.task for spec in FIDELITY.tasks)

"""lm-evaluation-harness adapter of HelpSteer3-Atomic (Rationale Consistency): dataset,
prompt and the task class for ``task_configs/ralign_helpsteer3_atomic.yaml``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import datasets

from ralign_tasks.atomic_data import AtomicRecord, load_atomic
from ralign_tasks.data import keep_named, sample_data_dir, warn_bad_rows
from ralign_tasks.lm_eval_tasks import BatchJudgedTask, register_metric_names
from ralign_tasks.prompts import render_atomic_genrm_prompt
from ralign_tasks.rc_pipeline import AtomicJudgment, judge_rc
from ralign_tasks.scorers.atomic import RC_METRICS, AtomicOutcome, ItemStatus, RCScores

logger = logging.getLogger("ralign_tasks.lm_eval")
COUNTS = ("skipped_empty", "skipped_long", "judge_failed")


def load_atomic_docs(
    split: str = "test",
    data_dir: str | None = None,
    sample: bool = False,
    skip_bad_rows: bool = False,
    domain: str | Sequence[str] | None = None,
    **_other_metadata: Any,
) -> dict[str, datasets.Dataset]:
    """``custom_dataset`` hook: one split as flat documents (``split``: test or full;
    ``domain``: one name or a list)."""
    loaded = load_atomic(
        split, sample_data_dir() if sample else data_dir, skip_bad_rows=skip_bad_rows
    )
    warn_bad_rows(loaded.path, loaded.bad_rows)
    records = keep_named(loaded.records, "domain", domain or None, loaded.path)
    return {"test": datasets.Dataset.from_list([r.to_dict() for r in records])}


def doc_to_text(doc: Mapping[str, Any]) -> str:
    """The GenRM prompt: ordered reasons, then a five-way verdict."""
    return render_atomic_genrm_prompt(AtomicRecord.from_dict(doc))


def doc_to_target(doc: Mapping[str, Any]) -> str:
    return doc["label"] or ""  # items without a human preference have no label


class RCTask(BatchJudgedTask):
    """HelpSteer3-Atomic: every output's reasons go to the MetaJudge in one batch."""

    def judge_outputs(self, outputs: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        judgments = [
            AtomicJudgment.from_output(AtomicRecord.from_dict(doc), output)
            for doc, output in outputs
        ]
        if self.meta_config is None:
            return [judged_record(j, None, None, None) for j in judgments]
        verdicts, stats = judge_rc(judgments, self.meta_config)
        logger.info("%s: %s", self.config.task, stats.summary("rc meta-judge"))
        return [
            judged_record(j, v.outcome, v.answer, v.error)
            for j, v in zip(judgments, verdicts, strict=True)
        ]

    def document_metrics(self, judged: dict[str, Any]) -> dict[str, Any]:
        scores = judged.get("scores")
        outcome = AtomicOutcome(
            domain=judged["domain"],
            status=ItemStatus(judged["status"]) if judged["status"] else ItemStatus.SCORED,
            scores=RCScores(**scores) if scores else None,
            label=judged["label"],
            verdict=judged["verdict"],
        )
        values: dict[str, Any] = outcome.metric_values()
        if self.meta_config is None:
            return {"outcome_acc": values["outcome_acc"]}
        for name in COUNTS:
            values[name] = int(judged["status"] == name)
        return values


def judged_record(
    judgment: AtomicJudgment,
    outcome: AtomicOutcome | None,
    answer: str | None,
    error: str | None,
) -> dict[str, Any]:
    """The filtered response of one document in the samples log."""
    return {
        "output": judgment.output,
        "reasons": list(judgment.reasons),
        "verdict": judgment.verdict,
        "domain": judgment.record.domain,
        "label": judgment.record.label,
        "status": outcome.status.value if outcome else None,
        "scores": asdict(outcome.scores) if outcome and outcome.scores else None,
        "metajudge_answer": answer,
        "metajudge_error": error,
    }


register_metric_names(
    [(name, True) for name in (*RC_METRICS, "outcome_acc")] + [(n, False) for n in COUNTS]
)

"""Inspect metrics over per-sample scores: the shared :func:`compute_fidelity` (R-Align) and
:func:`compute_rc` (HelpSteer3-Atomic).

Each sample's ``Score.value`` is :func:`outcome_value` of its :class:`ItemOutcome` (or
:func:`rc_outcome_value` of its :class:`AtomicOutcome`); the metric turns the values back into
outcomes and calls the same function the CLI and lm-eval use, so the numbers are identical.
Inspect's metric values must be numbers: an undefined metric (zero denominator) is reported as
NaN (``nan`` in Inspect's results table, ``NaN`` in the log and ``inspect view``, ``n/a`` in
the progress line); never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from inspect_ai.scorer import Metric, SampleScore, Value, metric

from ralign_tasks.scorers.atomic import (
    RC_METRICS,
    AtomicOutcome,
    ItemStatus,
    RCScores,
    compute_rc,
)
from ralign_tasks.scorers.meta_verdict import MetaStatus
from ralign_tasks.scorers.metrics import ItemOutcome, compute_fidelity

# The headline metric first: Inspect takes the first value as the summary of a run.
REPORTED_METRICS = ("f_score", "l_acc", "s_corr")
# Failure counts reported next to the metrics.
FAILURE_COUNTS = (
    "genrm_no_verdict",
    "genrm_call_fail",
    "genrm_truncated",
    "meta_parse_fail",
    "meta_call_fail",
)

# Rationale Consistency: rc (the paper's definition) first, then the counts behind it.
RC_REPORTED = (*RC_METRICS, "outcome_acc")
RC_COUNTS = (*(status.value for status in ItemStatus), "outcome_tie", "outcome_no_verdict")

ScoreValue = dict[str, str | bool | None]
RCScoreValue = dict[str, str | float | None]


def outcome_value(outcome: ItemOutcome) -> ScoreValue:
    """An item's outcome as an Inspect score value (a flat dict)."""
    return {
        "subset": outcome.subset,
        "label_correct": outcome.label_correct,
        "meta": outcome.meta.value if outcome.meta is not None else None,
        "genrm_no_verdict": outcome.genrm_no_verdict,
        "genrm_call_fail": outcome.genrm_call_fail,
        "genrm_truncated": outcome.genrm_truncated,
    }


def value_outcome(value: Value) -> ItemOutcome:
    """The outcome that :func:`outcome_value` stored."""
    if not isinstance(value, Mapping):
        raise TypeError(f"not an R-Align score value: {value!r}")
    meta = value.get("meta")
    return ItemOutcome(
        subset=str(value["subset"]),
        label_correct=bool(value["label_correct"]),
        meta=MetaStatus(meta) if meta is not None else None,
        genrm_no_verdict=bool(value["genrm_no_verdict"]),
        genrm_call_fail=bool(value["genrm_call_fail"]),
        genrm_truncated=bool(value["genrm_truncated"]),
    )


def _number(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


# "unreduced": every (sample, epoch) is one item, and Inspect's default epoch reducer
# (a mean) never sees the dict values, whose subset and meta status are strings.
@metric(scores="unreduced")
def fidelity() -> Metric:
    """L-Acc, S-Corr, F-Score with bootstrap standard errors, and the failure counts."""

    def compute(scores: list[SampleScore]) -> Value:
        report = compute_fidelity([value_outcome(s.score.value) for s in scores])
        values: dict[str, float] = {}
        for name in REPORTED_METRICS:
            values[name] = _number(report[name])
            values[f"{name}_stderr"] = _number(report["stderr"][name])
        for name in FAILURE_COUNTS:
            values[name] = float(report[name])
        return values

    return compute


def rc_outcome_value(outcome: AtomicOutcome) -> RCScoreValue:
    """An item's RC outcome as an Inspect score value (a flat dict; scores ``None`` unless the
    item was scored)."""
    scores = {
        name: getattr(outcome.scores, name) if outcome.scores else None for name in RC_METRICS
    }
    return {
        "domain": outcome.domain,
        "status": outcome.status.value,
        **scores,
        "label": outcome.label,
        "verdict": outcome.verdict,
    }


def value_rc_outcome(value: Value) -> AtomicOutcome:
    """The outcome that :func:`rc_outcome_value` stored."""
    if not isinstance(value, Mapping):
        raise TypeError(f"not a Rationale Consistency score value: {value!r}")
    status = ItemStatus(value["status"])
    scored = status is ItemStatus.SCORED
    label, verdict = value["label"], value["verdict"]
    return AtomicOutcome(
        domain=str(value["domain"]),
        status=status,
        scores=RCScores(**{name: float(value[name]) for name in RC_METRICS}) if scored else None,
        label=str(label) if label is not None else None,
        verdict=str(verdict) if verdict is not None else None,
    )


@metric(scores="unreduced")
def rc_metrics() -> Metric:
    """Rationale Consistency (``rc``, ``rc_code``, ``rc_precision``, ``rc_f1``) and outcome
    accuracy with bootstrap standard errors, and the item counts."""

    def compute(scores: list[SampleScore]) -> Value:
        report = compute_rc([value_rc_outcome(s.score.value) for s in scores])
        values: dict[str, float] = {}
        for name in RC_REPORTED:
            values[name] = _number(report[name])
            values[f"{name}_stderr"] = _number(report[f"{name}_stderr"])
        for name in RC_COUNTS:
            values[name] = float(report[name])
        return values

    return compute

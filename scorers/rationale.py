"""Rationale Consistency (SPEC §2): parsing the GenRM's reasons and five-way verdict, parsing
the MetaJudge's ``Rx@Sy: score`` block, matching, and the per-item and aggregate metrics."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ralign_tasks.scorers.ask import InvalidAnswer
from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.reasons import STEP_COUNTS, TYPE_METRICS, TYPE_SPECS, compute_types
from ralign_tasks.scorers.schema import MetricSpec, Schema
from ralign_tasks.scorers.stats import DRAWS, SEED, bootstrap_sums
from ralign_tasks.scorers.verdict import strip_thinking

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")

FIVE_WAY = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
MAX_REASONS_SCORED = 5  # the model checklist is capped at its top 5 reasons
MAX_REASONS_ALLOWED = 10  # longer lists are skipped, as in the paper
RC_METRICS = ("rc", "rc_code", "rc_precision", "rc_f1", "rc_ap")
RC_SCHEMA = Schema(
    metrics=(
        MetricSpec("rc", "RC", True, "summary", description="paper: one-to-one matching"),
        MetricSpec("rc_code", "RC (code)", True, "summary", description="each R's best score"),
        MetricSpec("rc_precision", "Precision", True, "summary"),
        MetricSpec("rc_f1", "F1", True, "summary", description="per item, code P and R"),
        MetricSpec("rc_ap", "AP", True, "summary", description="the code's average precision"),
        MetricSpec(
            "outcome_acc",
            "Outcome acc",
            True,
            "summary",
            needs_judge=False,
            description="the verdict's side equals the human preference",
        ),
        *TYPE_SPECS,
    ),
    counts=(
        MetricSpec("scored", "scored", True, "count", detail=True),
        MetricSpec("skipped_empty", "empty", False, "count", needs_judge=False),
        MetricSpec("skipped_long", ">10", False, "count", needs_judge=False),
        MetricSpec("judge_failed", "judge-fail", False, "count"),
        # Only in runs that extract reasons (genrm_format free, or rc-score --extract), and
        # that type them (reason_types).
        *(
            replace(spec, option="reason_types" if spec.name == "types_failed" else "genrm_format")
            for spec in STEP_COUNTS
        ),
        MetricSpec("unjudged", "unjudged", False, "count", needs_judge=False, detail=True),
        MetricSpec("outcome_tie", "ties", False, "count", needs_judge=False, detail=True),
        MetricSpec(
            "outcome_no_verdict", "no-verdict", False, "count", needs_judge=False, detail=True
        ),
    ),
    headline="rc",
)

_FIVE_WAY_BOX = re.compile(r"\\boxed\{\s*(A>>B|A>B|A=B|B>A|B>>A)\s*\}")
_RESULT_BLOCK = re.compile(r"<RESULT_START>(.*?)(?:<RESULT_END>|$)", re.DOTALL)
_NUMBERED = re.compile(r"^\s*(?:\*\*)?\d+[.)]\s*(?:\*\*)?\s*(.+?)\s*$")
_BULLETED = re.compile(r"^\s*[-*•]\s+(.+?)\s*$")
_RC_LINE = re.compile(r"-\s*R(\d+)@S(\d+):\s*(\d+(?:\.\d+)?)")


class ItemStatus(str, Enum):
    """What became of one item in the RC evaluation."""

    SCORED = "scored"
    SKIPPED_EMPTY = "skipped_empty"  # the GenRM listed no reason
    SKIPPED_LONG = "skipped_long"  # more than 10 reasons
    JUDGE_FAILED = "judge_failed"  # no well-formed MetaJudge answer within the attempts
    UNJUDGED = "unjudged"  # a run without a MetaJudge
    # A free-form rationale whose reasons the extractor did not list: no answer, no
    # well-formed answer within the attempts, or none found (skipped like an empty list).
    EXTRACT_CALL_FAIL = "extract_call_fail"
    EXTRACT_PARSE_FAIL = "extract_parse_fail"
    EXTRACT_EMPTY = "extract_empty"


class RCFormatError(InvalidAnswer):
    """A MetaJudge answer that breaks the ``- Rx@Sy: score`` protocol."""


def parse_five_way(text: str | None) -> str | None:
    """The last five-way ``\\boxed{…}`` verdict after the thinking, or ``None``."""
    if text is None:
        return None
    boxes = _FIVE_WAY_BOX.findall(strip_thinking(text))
    return boxes[-1] if boxes else None


def verdict_side(verdict: str | None) -> str | None:
    """``A`` or ``B`` for a directional verdict, ``=`` for a tie, ``None`` for none."""
    if verdict is None:
        return None
    return "=" if verdict == "A=B" else verdict[0]


def parse_reasons(text: str | None) -> list[str]:
    """The GenRM's reasons in order: numbered or bulleted lines (inside ``<RESULT_START>`` …
    ``<RESULT_END>`` when present), thinking and the verdict line left out."""
    if text is None:
        return []
    body = strip_thinking(text)
    block = _RESULT_BLOCK.search(body)
    if block:
        body = block.group(1)
    reasons = []
    for line in body.splitlines():
        match = _NUMBERED.match(line) or _BULLETED.match(line)
        if match and not _FIVE_WAY_BOX.search(match.group(1)):
            reasons.append(match.group(1))
    return reasons


def parse_rc_answer(answer: str, n_rationales: int, n_reasons: int) -> list[tuple[int, float]]:
    """The MetaJudge's pick for each human rationale: ``[(S index, score), …]`` for R1..Rn
    (S index 0 = no match). Raises :class:`RCFormatError` on any protocol breach."""
    block = _RESULT_BLOCK.search(answer)
    if not block or "<RESULT_END>" not in answer:
        raise RCFormatError("no <RESULT_START> … <RESULT_END> block")
    lines = _RC_LINE.findall(block.group(1))
    if not lines:
        raise RCFormatError("no '- Rx@Sy: score' lines in the result block")
    r_numbers = [int(r) for r, _, _ in lines]
    if r_numbers != list(range(1, n_rationales + 1)):
        raise RCFormatError(f"R numbers {r_numbers} are not 1..{n_rationales} in order")
    picks = []
    for _, s, score in lines:
        value = float(score)
        if not 0.0 <= value <= 1.0:
            raise RCFormatError(f"score {score} outside [0, 1]")
        if int(s) > n_reasons:
            raise RCFormatError(f"S{s} does not exist (the model listed {n_reasons})")
        picks.append((int(s), value))
    return picks


@dataclass(frozen=True)
class RCScores:
    rc: float  # paper: optimal one-to-one matching
    rc_code: float  # reference code: each R's own best score
    rc_precision: float  # reference code
    rc_f1: float  # reference code: from its own precision and recall (rc_code)
    rc_ap: float  # reference code: average precision


def score_picks(picks: Sequence[tuple[int, float]], n_reasons: int) -> RCScores:
    """Per-item scores from the MetaJudge's picks (one ``(S index, score)`` per human
    rationale; S index 0 = no match), SPEC §2.

    ``rc`` is the paper's recall (optimal one-to-one matching); the others are the official
    analysis script's: ``rc_code`` (each R's own best score), precision (Σ over matched S of
    its best score ÷ min(|S|, 5)), F1 from that precision and ``rc_code``, and average
    precision (the matched S in ascending order, the running mean of their best scores,
    summed and divided by |R|).
    """
    # Imported here: scipy.optimize takes a third of a second, which `ralign --help` need not pay.
    from scipy.optimize import linear_sum_assignment

    n_rationales = len(picks)
    matrix = np.zeros((n_rationales, n_reasons))
    for r, (s, value) in enumerate(picks):
        if s > 0:
            matrix[r, s - 1] = value
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    recall = float(matrix[rows, cols].sum()) / n_rationales
    recall_code = sum(value for s, value in picks if s > 0) / n_rationales
    best_per_reason = matrix.max(axis=0)
    precision = float(best_per_reason.sum()) / min(n_reasons, MAX_REASONS_SCORED)
    total = precision + recall_code
    f1 = 2 * precision * recall_code / total if total > 0 else 0.0
    matched = sorted({s for s, _ in picks if s > 0})
    best = [float(best_per_reason[s - 1]) for s in matched]
    running_means = [sum(best[: i + 1]) / (i + 1) for i in range(len(best))]
    average_precision = sum(running_means) / n_rationales
    return RCScores(recall, recall_code, precision, f1, average_precision)


@dataclass(frozen=True)
class AtomicOutcome:
    """The scored facts of one item, as the metrics need them."""

    domain: str
    status: ItemStatus
    scores: RCScores | None
    label: str | None  # the human side, A or B
    verdict: str | None  # the GenRM's verdict: five-way, or A or B (a free-form GenRM)
    # How many of the item's reasons are of each of REASON_TYPES, and the top reason's type
    # (``None``: its reasons were not typed).
    type_counts: tuple[int, ...] | None = None
    top_type: str | None = None
    types_failed: bool = False  # its reasons were sent to be typed, and no answer came
    # Whether its run extracted reasons (free format, --extract) and typed them.
    extracted: bool = False
    classified: bool = False

    def metric_values(self) -> dict[str, float]:
        """Per-item values of the metrics and counts; NaN where the item is outside a metric's
        denominator (lm-eval's ``nanmean`` skips it). The reason-type metrics are ratios of
        sums (:func:`compute_rc`), not means of per-item values."""
        values = {
            name: getattr(self.scores, name) if self.scores else math.nan for name in RC_METRICS
        }
        side = verdict_side(self.verdict)
        values["outcome_acc"] = math.nan if self.label is None else float(side == self.label)
        for status in ItemStatus:
            values[status.value] = float(self.status is status)
        values["outcome_tie"] = float(side == "=")
        values["outcome_no_verdict"] = float(side is None)
        values["types_failed"] = float(self.types_failed)
        return values


_EXTRACTION_COUNTS = ("extract_call_fail", "extract_parse_fail", "extract_empty")
# The metrics that are means of per-item values (the reason-type ones are ratios of sums).
_MEANS = tuple(name for name in RC_SCHEMA.metric_names if name not in TYPE_METRICS)


def _means(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric's mean over the items that define it, from summed (value, defined) column
    pairs (in ``_MEANS`` order)."""
    pairs = sums.reshape(*sums.shape[:-1], -1, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(pairs[..., 1] > 0, pairs[..., 0] / pairs[..., 1], np.nan)
    return {name: means[..., i] for i, name in enumerate(_MEANS)}


def compute_rc(
    outcomes: Sequence[AtomicOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """Means over the items each metric is defined for (``np.nanmean`` in item order, the same
    arithmetic as lm-eval's ``nanmean``), bootstrap stderr and 95% CIs over items
    (``scorers/stats.py``: a draw's mean is over its items that define the metric), and the
    counts."""
    per_item = [o.metric_values() for o in outcomes]
    report: dict[str, Any] = {"n": len(outcomes)}
    for name in RC_SCHEMA.count_names:
        report[name] = int(sum(item[name] for item in per_item))
    # The counts of a step the run did not take are not reported (None).
    if not any(o.extracted for o in outcomes):
        report.update(dict.fromkeys(_EXTRACTION_COUNTS))
    if not any(o.classified for o in outcomes):
        report["types_failed"] = None
    names = _MEANS
    values = np.array([[item[name] for name in names] for item in per_item], dtype=float)
    values = values.reshape(len(per_item), len(names))
    point: dict[str, float | None] = {}
    for index, name in enumerate(names):
        column = values[:, index]
        point[name] = float(np.nanmean(column)) if (~np.isnan(column)).any() else None
    defined = ~np.isnan(values)
    columns = np.stack([np.where(defined, values, 0.0), defined], axis=-1)
    columns = columns.reshape(len(values), 2 * len(names))
    report.update(point)
    report["stderr"], report["ci"] = bootstrap_sums(columns, _means, point, draws=draws, seed=seed)
    types = compute_types([o.type_counts for o in outcomes], [o.top_type for o in outcomes],
                          draws=draws, seed=seed)  # fmt: skip
    report["stderr"].update(types.pop("stderr"))
    report["ci"].update(types.pop("ci"))
    report.update(types)
    return report

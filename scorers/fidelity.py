"""R-Align fidelity (SPEC §1): the meta-judge's answer parser, the per-item outcome, and the
metrics L-Acc, S-Corr, F-Score with their counts and bootstrap CIs, the swap and sampling metrics.

Every metric is a ratio of sums of per-item columns (an item's outcome category, its swap or
sampling facts), which is what ``scorers/stats.py`` resamples. Undefined values (a zero
denominator) are ``None``, never 0 or NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.probes import MOVED_SPECS
from ralign_tasks.scorers.reasons import (
    OPTION as TYPES_OPTION,
)
from ralign_tasks.scorers.reasons import (
    STEP_COUNTS,
    TYPE_METRICS,
    TYPE_SPECS,
    type_columns,
    type_values,
)
from ralign_tasks.scorers.schema import MetricSpec, Schema
from ralign_tasks.scorers.stats import DRAWS, SEED, bootstrap_sums, finite, paired_sums

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")


class MetaStatus(str, Enum):
    """Outcome of judging one label-correct GenRM rationale."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    PARSE_FAIL = "parse_fail"
    CALL_FAIL = "call_fail"


_ANALYSIS_OPEN = "<genrm_analysis>"
_VERDICT_OPEN = "<final_verdict>"
_VERDICT_CLOSE = "</final_verdict>"


def parse_meta_verdict(answer: str) -> MetaStatus:
    """Classify a meta-judge answer exactly as the official scripts do.

    Both ``<genrm_analysis>`` and ``<final_verdict>`` opening tags must be present, else
    ParseFail. The verdict is the text after the first ``<final_verdict>`` up to the next
    ``</final_verdict>`` (or the end when unclosed), stripped; only a case-insensitive exact
    ``correct`` is Correct, anything else (``**Correct**``, ``Correct.``) is Incorrect.
    An empty answer is a call failure, not a parse failure: the engine retries it.
    """
    if _ANALYSIS_OPEN not in answer or _VERDICT_OPEN not in answer:
        return MetaStatus.PARSE_FAIL
    verdict = answer.split(_VERDICT_OPEN, 1)[1].split(_VERDICT_CLOSE, 1)[0].strip()
    return MetaStatus.CORRECT if verdict.lower() == "correct" else MetaStatus.INCORRECT


FIDELITY_SCHEMA = Schema(
    metrics=(
        MetricSpec(
            "l_acc",
            "L-Acc",
            True,
            "summary",
            needs_judge=False,
            description="label accuracy: L / N",
        ),
        MetricSpec(
            "s_corr",
            "S-Corr",
            False,
            "summary",
            description="spurious correctness: 1 - C / (C + I)",
        ),
        MetricSpec(
            "f_score", "F-Score", True, "summary", description="fidelity: C / (N - CF - PF)"
        ),
        MetricSpec(
            "position_consistency",
            "consistent",
            True,
            "summary",
            needs_judge=False,
            option="swap",
            description="items whose two verdicts agree once mapped back",
        ),
        MetricSpec(
            "first_position_rate",
            "1st pos",
            False,
            "summary",
            needs_judge=False,
            option="swap",
            description="verdicts naming the answer shown first",
        ),
        MetricSpec(
            "l_acc_swap",
            "L-Acc swap",
            True,
            "summary",
            needs_judge=False,
            option="swap",
            description="net vote over both orders > 0",
        ),
        MetricSpec(
            "s_corr_swap",
            "S-Corr swap",
            False,
            "summary",
            option="swap",
            description="label-correct in both orders, both rationales judged: at "
            "least one Incorrect",
        ),
        MetricSpec(
            "f_score_swap",
            "F-Score swap",
            True,
            "summary",
            option="swap",
            description="both orders label-correct and Correct / (N - items with a "
            "CallFail or ParseFail in either order)",
        ),
        MetricSpec(
            "l_acc_maj",
            "L-Acc maj",
            True,
            "summary",
            needs_judge=False,
            option="samples",
            description="majority verdict of the samples right",
        ),
        MetricSpec(
            "l_acc_mean",
            "L-Acc mean",
            True,
            "summary",
            needs_judge=False,
            option="samples",
            description="mean per-sample label accuracy",
        ),
        MetricSpec(
            "verdict_stability",
            "stability",
            True,
            "summary",
            needs_judge=False,
            option="samples",
            description="mean share of an item's samples giving its majority verdict",
        ),
        MetricSpec(
            "f_score_mean",
            "F-Score mean",
            True,
            "summary",
            option="samples",
            description="mean over samples of each sample's F-Score",
        ),
        *MOVED_SPECS,
        MetricSpec(
            "s_corr_probe",
            "S-Corr probe",
            False,
            "summary",
            option="probe",
            description="S-Corr of the answers under the probe",
        ),
        MetricSpec(
            "f_score_probe",
            "F-Score probe",
            True,
            "summary",
            option="probe",
            description="F-Score of the answers under the probe",
        ),
        MetricSpec(
            "f_score_probe_diff",
            "ΔF-Score",
            True,
            "summary",
            option="probe",
            description="F-Score under the probe minus F-Score (paired over items)",
        ),
        MetricSpec(
            "cue_cited_rate",
            "cue cited",
            False,
            "summary",
            option="probe",
            description="label-correct probed rationales that give the injected cue as a reason",
        ),
        *TYPE_SPECS,
        *(
            MetricSpec(
                f"s_corr_top_{kind}",
                f"S-Corr top {kind}",
                False,
                "summary",
                option=TYPES_OPTION,
                description=f"S-Corr among the items whose top reason is {title}",
            )
            for kind, title in (("evidence", "evidence-grounded"), ("generic", "generic/style"))
        ),
    ),
    counts=(
        MetricSpec("label_correct", "label-ok", True, "count", needs_judge=False, detail=True),
        MetricSpec("meta_correct", "C", True, "count", detail=True),
        MetricSpec("meta_incorrect", "I", False, "count", detail=True),
        MetricSpec("genrm_call_fail", "GenRM fail", False, "count", needs_judge=False),
        MetricSpec("genrm_no_verdict", "no-verdict", False, "count", needs_judge=False),
        MetricSpec("genrm_truncated", "truncated", False, "count", needs_judge=False),
        MetricSpec("meta_parse_fail", "meta PF", False, "count"),
        MetricSpec("meta_call_fail", "meta CF", False, "count"),
        MetricSpec("meta_unjudged", "unjudged", False, "count", needs_judge=False),
        *(replace(spec, option=TYPES_OPTION) for spec in STEP_COUNTS),
        MetricSpec("cue_failed", "cue-fail", False, "count", detail=True, option="probe"),
    ),
    headline="f_score",
)
# The official R-Align metrics (the comparison and the plots work on these).
FIDELITY_METRICS = ("l_acc", "s_corr", "f_score")
# Outcome categories of one item; "unjudged" = label-correct but never meta-judged.
CATEGORIES = ("label_wrong", "correct", "incorrect", "parse_fail", "call_fail", "unjudged")
_STATUS_CATEGORY = {
    MetaStatus.CORRECT: "correct",
    MetaStatus.INCORRECT: "incorrect",
    MetaStatus.PARSE_FAIL: "parse_fail",
    MetaStatus.CALL_FAIL: "call_fail",
}


@dataclass(frozen=True)
class JudgedAnswer:
    """One more GenRM answer of an item: the second order of a swap run (the answers shown
    the other way round) or a sample of a repeated run. The GenRM's verdict in its own
    naming (A = the answer it saw first), whether it names the better answer, the
    meta-judge's verdict on its rationale, and how the GenRM failed."""

    verdict: str | None
    label_correct: bool
    meta: MetaStatus | None = None
    genrm_no_verdict: bool = False
    genrm_call_fail: bool = False


@dataclass(frozen=True)
class ItemOutcome:
    """The scored facts of one item, as the metrics need them (``verdict`` is the GenRM's
    A/B; ``second`` the swapped order of a swap run)."""

    subset: str
    label_correct: bool
    meta: MetaStatus | None = None
    genrm_no_verdict: bool = False
    genrm_call_fail: bool = False
    # None: the harness does not say why generation stopped (lm-eval).
    genrm_truncated: bool | None = False
    # False: the run had no meta-judge at all (S-Corr and F-Score are then undefined).
    judged: bool = True
    verdict: str | None = None
    second: JudgedAnswer | None = None
    # A repeated run's samples, the first one included (empty otherwise).
    samples: tuple[JudgedAnswer, ...] = ()
    # A probe run: the answer to the probed pair, the probe's name, whether the meta-judge
    # was asked if its rationale cites the cue, and its answer (None: asked, no answer).
    probe: JudgedAnswer | None = None
    probe_name: str | None = None
    cue_asked: bool = False
    cue_cited: bool | None = None
    # reason_types: whether the run asked for them, what became of the extraction (None: not
    # asked, e.g. no output; ok, empty, parse_fail, call_fail), each type's count among the
    # item's reasons and its top reason's type (None: not typed), and a failed typing.
    classify: bool = False
    extraction: str | None = None
    type_counts: tuple[int, ...] | None = None
    top_type: str | None = None
    types_failed: bool = False

    @property
    def category(self) -> str:
        if not self.label_correct:
            return "label_wrong"
        return _STATUS_CATEGORY[self.meta] if self.meta is not None else "unjudged"

    def document_values(self) -> dict[str, float]:
        """Per-item values of the counts (0/1; NaN where a fact is unknown), which lm-eval
        sums; the metrics it computes with :func:`compute_fidelity` itself."""
        category = self.category
        nan = math.nan
        return {
            "label_correct": float(self.label_correct),
            "meta_correct": float(category == "correct"),
            "meta_incorrect": float(category == "incorrect"),
            "genrm_call_fail": float(self.genrm_call_fail),
            "genrm_no_verdict": float(self.genrm_no_verdict),
            "genrm_truncated": nan if self.genrm_truncated is None else float(self.genrm_truncated),
            "meta_parse_fail": float(category == "parse_fail"),
            "meta_call_fail": float(category == "call_fail"),
            "meta_unjudged": float(category == "unjudged"),
            "extract_call_fail": float(self.extraction == "call_fail"),
            "extract_parse_fail": float(self.extraction == "parse_fail"),
            "extract_empty": float(self.extraction == "empty"),
            "types_failed": float(self.types_failed),
            "cue_failed": float(self.cue_asked and self.cue_cited is None),
        }


def _metric_values(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of summed item columns (last axis follows ``_COLUMNS``); NaN where undefined
    or, for S-Corr and F-Score, where the run had no meta-judge."""
    wrong, correct, incorrect, parse_fail, call_fail, unjudged, no_judge = np.moveaxis(sums, -1, 0)
    n = sums[..., : len(CATEGORIES)].sum(axis=-1)
    labelled = n - wrong
    judged_all = (unjudged == 0) & (no_judge == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        l_acc = np.where(n > 0, labelled / n, np.nan)
        decided = correct + incorrect
        # I / (C + I) equals the paper's 1 - C / (C + I) and is correctly rounded, so it
        # matches a mean over per-item indicators bit for bit (the lm-eval path).
        s_corr = np.where(judged_all & (decided > 0), incorrect / decided, np.nan)
        denominator = n - call_fail - parse_fail
        # Without a meta-judge there is no fidelity, also in a group where nothing was
        # label-correct (whose F-Score would otherwise be a computed 0).
        f_score = np.where(judged_all & (denominator > 0), correct / denominator, np.nan)
    return {"l_acc": l_acc, "s_corr": s_corr, "f_score": f_score}


# An item's columns: its outcome category (one-hot), and whether its run had no meta-judge.
_COLUMNS = (*CATEGORIES, "no_judge")


def _item_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    position = {name: index for index, name in enumerate(CATEGORIES)}
    columns = np.zeros((len(outcomes), len(_COLUMNS)))
    for row, outcome in enumerate(outcomes):
        columns[row, position[outcome.category]] = 1.0
        columns[row, -1] = float(not outcome.judged)
    return columns


def _known_count(flags: Sequence[bool | None]) -> int | None:
    """How many flags are true; ``None`` when the items have flags but none is known."""
    known = [flag for flag in flags if flag is not None]
    return sum(known) if known or not flags else None


def _point(values: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    return {name: finite(float(value)) for name, value in values.items()}


def compute_fidelity(
    outcomes: Sequence[ItemOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """Counts, metrics, bootstrap stderr and 95% CIs (``scorers/stats.py``) for one group."""
    tally = Counter(outcome.category for outcome in outcomes)
    columns = _item_columns(outcomes)
    point = _point(_metric_values(columns.sum(axis=0)))
    n = len(outcomes)
    report: dict[str, Any] = {
        "n": n,
        "label_correct": n - int(tally["label_wrong"]),
        "meta_correct": tally["correct"],
        "meta_incorrect": tally["incorrect"],
        "meta_parse_fail": tally["parse_fail"],
        "meta_call_fail": tally["call_fail"],
        "meta_unjudged": tally["unjudged"],
        "genrm_no_verdict": sum(o.genrm_no_verdict for o in outcomes),
        "genrm_call_fail": sum(o.genrm_call_fail for o in outcomes),
        "genrm_truncated": _known_count([o.genrm_truncated for o in outcomes]),
        **point,
    }
    stderr, ci = bootstrap_sums(columns, _metric_values, point, draws=draws, seed=seed)
    for part in (compute_reason_types, compute_probe):
        values = part(outcomes, draws=draws, seed=seed)
        stderr.update(values.pop("stderr"))
        ci.update(values.pop("ci"))
        report.update(values)
    sampled = [o for o in outcomes if o.samples]
    if sampled and len(sampled) != len(outcomes):
        raise ValueError("a group mixes repeated and single-sample items")
    repeated = compute_samples(outcomes, draws=draws, seed=seed) if sampled else {
        "stderr": dict.fromkeys(SAMPLE_METRICS), "ci": dict.fromkeys(SAMPLE_METRICS),
        **dict.fromkeys(SAMPLE_METRICS)}  # fmt: skip
    stderr.update(repeated.pop("stderr"))
    ci.update(repeated.pop("ci"))
    report.update(repeated)
    swapped = [o for o in outcomes if o.second is not None]
    if swapped and len(swapped) != len(outcomes):
        raise ValueError("a group mixes swapped and unswapped items")
    if swapped:
        swap = compute_swap(outcomes, draws=draws, seed=seed)
        stderr.update(swap.pop("stderr"))
        ci.update(swap.pop("ci"))
        report.update(swap)
    else:
        report.update(dict.fromkeys(SWAP_METRICS))
        stderr.update(dict.fromkeys(SWAP_METRICS))
        ci.update(dict.fromkeys(SWAP_METRICS))
    report["stderr"] = stderr
    report["ci"] = ci
    return report


def paired_difference(
    first: Sequence[ItemOutcome],
    second: Sequence[ItemOutcome],
    *,
    draws: int = DRAWS,
    seed: int = SEED,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of each official metric's difference between two GenRMs judged on the
    same items (``first[i]`` and ``second[i]`` are one item): :func:`stats.paired_sums`."""
    if len(first) != len(second):
        raise ValueError(f"paired outcomes differ in length: {len(first)} and {len(second)}")
    return paired_sums(
        _item_columns(first), _item_columns(second), _metric_values, FIDELITY_METRICS,
        draws=draws, seed=seed,
    )  # fmt: skip


# --- Reason types (issue 23): what kind of reasons the rationales give ----------------------

TOP_S_CORR = ("s_corr_top_evidence", "s_corr_top_generic")
REASON_TYPE_METRICS = (*TYPE_METRICS, *TOP_S_CORR)
_STEP_COUNT_NAMES = tuple(spec.name for spec in STEP_COUNTS)


def _reason_type_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    """Per item: the reason-type columns (scorers/reasons.py), then for S-Corr by top reason
    type, per type (evidence, generic): judged Correct or Incorrect with that top type, and
    Incorrect with it; and whether its run had no meta-judge."""
    types = type_columns([o.type_counts for o in outcomes], [o.top_type for o in outcomes])
    rows = []
    for o in outcomes:
        decided = o.label_correct and o.meta in (MetaStatus.CORRECT, MetaStatus.INCORRECT)
        incorrect = o.label_correct and o.meta is MetaStatus.INCORRECT
        row = []
        for kind in ("evidence", "generic"):
            row += [decided and o.top_type == kind, incorrect and o.top_type == kind]
        rows.append([*row, not o.judged])
    return np.hstack([types, np.asarray(rows, dtype=float).reshape(-1, 5)])


def _reason_type_values(sums: np.ndarray) -> dict[str, np.ndarray]:
    width = sums.shape[-1] - 5
    values = type_values(sums[..., :width])
    evidence_decided, evidence_incorrect, generic_decided, generic_incorrect, no_judge = (
        np.moveaxis(sums[..., width:], -1, 0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, decided, incorrect in (
            ("s_corr_top_evidence", evidence_decided, evidence_incorrect),
            ("s_corr_top_generic", generic_decided, generic_incorrect),
        ):
            values[name] = np.where((no_judge == 0) & (decided > 0), incorrect / decided, np.nan)
    return values


def compute_reason_types(
    outcomes: Sequence[ItemOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """With reason_types: each type's share of the typed reasons and of the top reasons, and
    S-Corr among the items whose top reason is evidence-grounded and generic/style, with
    bootstrap CIs over items (an item's reasons drawn together), and the extraction and
    typing counts; ``None`` for all of them in a run without the option."""
    if not any(o.classify for o in outcomes):
        empty = dict.fromkeys(REASON_TYPE_METRICS)
        return {**empty, **dict.fromkeys(_STEP_COUNT_NAMES), "stderr": dict(empty),
                "ci": dict(empty)}  # fmt: skip
    columns = _reason_type_columns(outcomes)
    point = _point(_reason_type_values(columns.sum(axis=0)))
    stderr, ci = bootstrap_sums(columns, _reason_type_values, point, draws=draws, seed=seed)
    extraction = Counter(o.extraction for o in outcomes)
    return {
        **point,
        "extract_call_fail": extraction["call_fail"],
        "extract_parse_fail": extraction["parse_fail"],
        "extract_empty": extraction["empty"],
        "types_failed": sum(o.types_failed for o in outcomes),
        "stderr": stderr,
        "ci": ci,
    }


# --- Bias probes (issue 24): the same pairs with one answer dressed up ----------------------

PROBE_METRICS = ("flip_rate", "l_acc_probe", "l_acc_probe_diff", "s_corr_probe",
                 "f_score_probe", "f_score_probe_diff", "cue_cited_rate")  # fmt: skip


def _probe_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    """Per item (a unit: the pair and the probed pair together): 1, label-correct unprobed,
    label-correct probed, a flip (the first and not the second), the probed answer's meta
    outcome (Correct, Incorrect, ParseFail, CallFail), the unprobed one's (Correct, ParseFail
    or CallFail), the cue question answered and answered yes, and whether its run had no
    meta-judge."""
    rows = []
    for o in outcomes:
        probe = o.probe
        assert probe is not None, "a probe metric of an item without its probed answer"
        meta = probe.meta if probe.label_correct else None
        rows.append([
            1, o.label_correct, probe.label_correct, o.label_correct and not probe.label_correct,
            meta is MetaStatus.CORRECT, meta is MetaStatus.INCORRECT,
            meta is MetaStatus.PARSE_FAIL, meta is MetaStatus.CALL_FAIL,
            o.category == "correct", o.category in ("parse_fail", "call_fail"),
            o.cue_cited is not None, o.cue_cited is True, not o.judged,
        ])  # fmt: skip
    return np.asarray(rows, dtype=float).reshape(-1, 13)


def _probe_values(sums: np.ndarray) -> dict[str, np.ndarray]:
    (n, right, right_probe, flips, correct_p, incorrect_p, parse_fail_p, call_fail_p, correct,
     failed, cue_answered, cue_yes, no_judge) = np.moveaxis(sums, -1, 0)  # fmt: skip
    judged = no_judge == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f_score_probe = np.where(
            judged & (n - parse_fail_p - call_fail_p > 0),
            correct_p / (n - parse_fail_p - call_fail_p), np.nan,
        )  # fmt: skip
        f_score = np.where(judged & (n - failed > 0), correct / (n - failed), np.nan)
        decided = correct_p + incorrect_p
        return {
            "flip_rate": np.where(n > 0, flips / n, np.nan),
            "l_acc_probe": np.where(n > 0, right_probe / n, np.nan),
            "l_acc_probe_diff": np.where(n > 0, (right_probe - right) / n, np.nan),
            "s_corr_probe": np.where(judged & (decided > 0), incorrect_p / decided, np.nan),
            "f_score_probe": f_score_probe,
            "f_score_probe_diff": f_score_probe - f_score,
            "cue_cited_rate": np.where(judged & (cue_answered > 0), cue_yes / cue_answered, np.nan),
        }


def compute_probe(
    outcomes: Sequence[ItemOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """A probe run's metrics (docs: robustness): the flip rate (label-correct unprobed and
    label-wrong probed, over all items), L-Acc, S-Corr and F-Score under the probe, the
    paired differences of L-Acc and F-Score (probed minus unprobed), and the share of the
    label-correct probed rationales that cite the cue; bootstrap CIs over items, each drawn
    with both its answers (a paired bootstrap). ``None`` for all of them without a probe, and
    the judge's without a meta-judge; ``cue_failed`` counts the cue questions asked and never
    answered well-formed."""
    probed = [o for o in outcomes if o.probe is not None]
    if not probed:
        empty = dict.fromkeys(PROBE_METRICS)
        return {**empty, "cue_failed": None, "stderr": dict(empty), "ci": dict(empty)}
    if len(probed) != len(outcomes):
        raise ValueError("a group mixes probed and unprobed items")
    columns = _probe_columns(outcomes)
    point = _point(_probe_values(columns.sum(axis=0)))
    stderr, ci = bootstrap_sums(columns, _probe_values, point, draws=draws, seed=seed)
    cue_failed = sum(o.cue_asked and o.cue_cited is None for o in outcomes)
    return {**point, "cue_failed": cue_failed, "stderr": stderr, "ci": ci}


# --- Position swap (issue 14): both orders of every pair ----------------------------------

SWAP_METRICS = ("position_consistency", "first_position_rate", "l_acc_swap", "s_corr_swap",
                "f_score_swap")  # fmt: skip
_FAILED = (MetaStatus.CALL_FAIL, MetaStatus.PARSE_FAIL)


def _vote(label_correct: bool, verdict: str | None) -> int:
    """JudgeBench's vote: +1 for the better answer, -1 for the other, 0 without a verdict."""
    if verdict is None:
        return 0
    return 1 if label_correct else -1


def _swap_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    """Per item (rows; an item is one unit, both orders): consistent, first-shown picks,
    verdicts, net-vote correct, faithful, excluded (a CallFail or ParseFail in either order),
    in S-Corr's denominator, in its numerator, and whether its run had no meta-judge; the
    metrics are ratios of these columns' sums."""
    rows = []
    for o in outcomes:
        second = o.second
        assert second is not None, "a swap metric of an item without its second order"
        verdicts = [v for v in (o.verdict, second.verdict) if v is not None]
        both_right = o.label_correct and second.label_correct
        metas = (o.meta, second.meta)
        both_decided = all(m in (MetaStatus.CORRECT, MetaStatus.INCORRECT) for m in metas)
        rows.append([
            # Once mapped back, order 2's verdict equals order 1's iff both name the same answer.
            o.verdict is not None and second.verdict is not None
            and o.label_correct == second.label_correct,
            sum(v == "A" for v in verdicts),
            len(verdicts),
            _vote(o.label_correct, o.verdict) + _vote(second.label_correct, second.verdict) > 0,
            both_right and all(m is MetaStatus.CORRECT for m in metas),
            any(m in _FAILED for m in metas),
            both_right and both_decided,
            both_right and both_decided and MetaStatus.INCORRECT in metas,
            not o.judged,
            1,
        ])  # fmt: skip
    return np.asarray(rows, dtype=float).reshape(-1, 10)


def _swap_values(sums: np.ndarray) -> dict[str, np.ndarray]:
    consistent, first, verdicts, net, faithful, excluded, s_den, s_num, no_judge, n = np.moveaxis(
        sums, -1, 0
    )
    judged = no_judge == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "position_consistency": np.where(n > 0, consistent / n, np.nan),
            "first_position_rate": np.where(verdicts > 0, first / verdicts, np.nan),
            "l_acc_swap": np.where(n > 0, net / n, np.nan),
            "s_corr_swap": np.where(judged & (s_den > 0), s_num / s_den, np.nan),
            "f_score_swap": np.where(
                judged & (n - excluded > 0), faithful / (n - excluded), np.nan
            ),
        }


def compute_swap(
    outcomes: Sequence[ItemOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """The position-swap metrics of a group of swapped items (docs: robustness), with
    bootstrap stderr and 95% CIs over items; ``None`` where undefined, and S-Corr and F-Score
    of the swap without a meta-judge."""
    columns = _swap_columns(outcomes)
    point = _point(_swap_values(columns.sum(axis=0)))
    stderr, ci = bootstrap_sums(columns, _swap_values, point, draws=draws, seed=seed)
    return {**point, "stderr": stderr, "ci": ci}


# --- Repeated sampling (issue 14): k GenRM answers per item -------------------------------

SAMPLE_METRICS = ("l_acc_maj", "l_acc_mean", "verdict_stability", "f_score_mean")


def _sample_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    """Per item (a unit, with all its k samples): majority verdict right, share of samples
    label-correct, share of samples giving the item's most frequent verdict, whether its run
    had no meta-judge, 1 (the item count); then per sample: Correct, and in F-Score's
    denominator (no CallFail or ParseFail)."""
    if len({len(o.samples) for o in outcomes}) > 1:
        raise ValueError("items with different numbers of samples")
    rows = []
    for o in outcomes:
        samples = o.samples
        right = sum(s.label_correct for s in samples)
        wrong = sum(s.verdict is not None and not s.label_correct for s in samples)
        row = [right > wrong, right / len(samples), max(right, wrong) / len(samples)]
        row += [not o.judged, 1]
        for s in samples:
            row += [s.label_correct and s.meta is MetaStatus.CORRECT, s.meta not in _FAILED]
        rows.append(row)
    width = 5 + 2 * (len(outcomes[0].samples) if outcomes else 0)
    return np.asarray(rows, dtype=float).reshape(-1, width)


def _sample_values(sums: np.ndarray) -> dict[str, np.ndarray]:
    majority, mean_right, stability, no_judge, n = np.moveaxis(sums[..., :5], -1, 0)
    per_sample = sums[..., 5:].reshape(*sums.shape[:-1], -1, 2)
    correct, counted = per_sample[..., 0], per_sample[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f_score = np.where(counted > 0, correct / counted, np.nan).mean(axis=-1)
        return {
            "l_acc_maj": np.where(n > 0, majority / n, np.nan),
            "l_acc_mean": np.where(n > 0, mean_right / n, np.nan),
            "verdict_stability": np.where(n > 0, stability / n, np.nan),
            "f_score_mean": np.where(no_judge == 0, f_score, np.nan),
        }


def compute_samples(
    outcomes: Sequence[ItemOutcome], *, draws: int = DRAWS, seed: int = SEED
) -> dict[str, Any]:
    """The repeated-sampling metrics of a group of items with k samples each (docs:
    robustness): majority-vote label accuracy (a tie of verdicts is wrong), the mean
    per-sample label accuracy, verdict stability (the mean share of an item's samples that
    give its most frequent verdict), and the mean over samples of each sample's F-Score;
    bootstrap CIs resample items (each with all its samples), not samples."""
    columns = _sample_columns(outcomes)
    point = _point(_sample_values(columns.sum(axis=0)))
    if len(columns):
        # Means of per-item shares (k/3 is not exact), by np.mean as they always were: the
        # draws' sums add in another order, which can change the last digit.
        for index, name in enumerate(("l_acc_maj", "l_acc_mean", "verdict_stability")):
            point[name] = float(columns[:, index].mean())
    stderr, ci = bootstrap_sums(columns, _sample_values, point, draws=draws, seed=seed)
    return {**point, "stderr": stderr, "ci": ci}

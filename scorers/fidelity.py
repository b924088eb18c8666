"""R-Align fidelity (SPEC §1): the meta-judge's answer parser, the per-item outcome, and the
metrics L-Acc, S-Corr, F-Score with their counts and bootstrap CIs, the swap and sampling metrics.

Every metric is a function of how many items fall in each outcome category, so resampling
items with replacement is exactly a multinomial draw over the observed category shares:
the bootstrap below draws category counts directly (same distribution, no per-item copies).
Undefined values (a zero denominator) are ``None``, never 0 or NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.schema import MetricSpec, Schema

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
DEFAULT_BOOTSTRAP = 10_000
DEFAULT_SEED = 20260101


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
        }


def _metric_values(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics for category-count rows (last axis follows CATEGORIES); NaN where undefined."""
    wrong, correct, incorrect, parse_fail, call_fail, unjudged = np.moveaxis(counts, -1, 0)
    n = counts.sum(axis=-1).astype(float)
    labelled = (n - wrong).astype(float)
    judged_all = unjudged == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        l_acc = np.where(n > 0, labelled / n, np.nan)
        decided = (correct + incorrect).astype(float)
        # I / (C + I) equals the paper's 1 - C / (C + I) and is correctly rounded, so it
        # matches a mean over per-item indicators bit for bit (the lm-eval path).
        s_corr = np.where(judged_all & (decided > 0), incorrect / decided, np.nan)
        denominator = (n - call_fail - parse_fail).astype(float)
        f_score = np.where(judged_all & (denominator > 0), correct / denominator, np.nan)
    return {"l_acc": l_acc, "s_corr": s_corr, "f_score": f_score}


def _known_count(flags: Sequence[bool | None]) -> int | None:
    """How many flags are true; ``None`` when the items have flags but none is known."""
    known = [flag for flag in flags if flag is not None]
    return sum(known) if known or not flags else None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compute_fidelity(
    outcomes: Sequence[ItemOutcome],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Counts, metrics, bootstrap stderr and percentile CIs for one group of items."""
    tally = Counter(outcome.category for outcome in outcomes)
    counts = np.array([tally[c] for c in CATEGORIES], dtype=np.int64)
    n = int(counts.sum())
    point = {name: _finite(v) for name, v in _metric_values(counts).items()}
    if not all(outcome.judged for outcome in outcomes):
        # Without a meta-judge there is no fidelity, also in a group where nothing was
        # label-correct (whose F-Score would otherwise be a computed 0).
        point["s_corr"] = point["f_score"] = None
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
    stderr: dict[str, float | None] = dict.fromkeys(FIDELITY_METRICS)
    ci: dict[str, list[float] | None] = dict.fromkeys(FIDELITY_METRICS)
    if n > 0 and n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(n, counts / n, size=n_bootstrap)
        tail = (1.0 - confidence) / 2.0 * 100.0
        _intervals(_metric_values(draws), point, stderr, ci, tail)
    sampled = [o for o in outcomes if o.samples]
    if sampled and len(sampled) != len(outcomes):
        raise ValueError("a group mixes repeated and single-sample items")
    repeated = compute_samples(outcomes, seed=seed) if sampled else {
        "stderr": dict.fromkeys(SAMPLE_METRICS), "ci": dict.fromkeys(SAMPLE_METRICS),
        **dict.fromkeys(SAMPLE_METRICS)}  # fmt: skip
    stderr.update(repeated.pop("stderr"))
    ci.update(repeated.pop("ci"))
    report.update(repeated)
    swapped = [o for o in outcomes if o.second is not None]
    if swapped and len(swapped) != len(outcomes):
        raise ValueError("a group mixes swapped and unswapped items")
    if swapped:
        swap = compute_swap(outcomes, seed=seed)
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


def _intervals(
    draws: dict[str, np.ndarray],
    point: dict[str, float | None],
    stderr: dict[str, float | None],
    ci: dict[str, list[float] | None],
    tail: float = 2.5,
) -> None:
    """Fill ``stderr`` and ``ci`` (percentile, ``tail`` percent cut off each side) from each
    metric's bootstrap draws; left ``None`` where the metric is undefined or fewer than two
    draws are finite."""
    for name, values in draws.items():
        defined = values[np.isfinite(values)]
        if point[name] is None or defined.size < 2:
            continue
        stderr[name] = float(np.std(defined, ddof=1))
        low, high = np.percentile(defined, [tail, 100.0 - tail])
        ci[name] = [float(low), float(high)]


def _category_index(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    position = {name: index for index, name in enumerate(CATEGORIES)}
    return np.array([position[o.category] for o in outcomes], dtype=np.int64)


def paired_difference(
    first: Sequence[ItemOutcome],
    second: Sequence[ItemOutcome],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of ``metric(first) - metric(second)`` for two GenRMs judged on the same
    items (``first[i]`` and ``second[i]`` are one item).

    Each draw resamples items with replacement and recomputes both GenRMs' metrics on the same
    draw, so the spread reflects only their disagreement, not which items were drawn. As in
    :func:`compute_fidelity`, a draw is a multinomial over the observed joint outcome pairs
    (first's category, second's category), which is the same distribution as resampling items.
    Per metric: both values, the difference, its percentile CI and a two-sided bootstrap p-value
    (twice the smaller share of draws at or beyond 0 on either side, counting the data as one
    draw, so at least ``2 / (draws + 1)``; ``None`` when undefined).
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes differ in length: {len(first)} and {len(second)}")
    width = len(CATEGORIES)
    joint = _category_index(first) * width + _category_index(second)
    cells = np.bincount(joint, minlength=width * width).astype(np.int64)
    n = int(cells.sum())

    def metrics_of(cell_counts: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        table = cell_counts.reshape(*cell_counts.shape[:-1], width, width)
        return _metric_values(table.sum(axis=-1)), _metric_values(table.sum(axis=-2))

    point_first, point_second = metrics_of(cells)
    # A run without a meta-judge has no S-Corr or F-Score to compare (see compute_fidelity).
    for point, outcomes in ((point_first, first), (point_second, second)):
        if not all(outcome.judged for outcome in outcomes):
            point["s_corr"] = point["f_score"] = np.array(np.nan)
    draws_first = draws_second = None
    if n > 0 and n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws_first, draws_second = metrics_of(rng.multinomial(n, cells / n, size=n_bootstrap))
    tail = (1.0 - confidence) / 2.0 * 100.0
    result: dict[str, dict[str, Any]] = {}
    for name in FIDELITY_METRICS:
        value_first = _finite(float(point_first[name]))
        value_second = _finite(float(point_second[name]))
        defined = value_first is not None and value_second is not None
        entry: dict[str, Any] = {
            "n": n,
            "first": value_first,
            "second": value_second,
            "difference": value_first - value_second if defined else None,
            "ci": None,
            "p_value": None,
        }
        if defined and draws_first is not None and draws_second is not None:
            differences = draws_first[name] - draws_second[name]
            differences = differences[np.isfinite(differences)]
            if differences.size >= 2:
                low, high = np.percentile(differences, [tail, 100.0 - tail])
                entry["ci"] = [float(low), float(high)]
                # With the usual +1 (the observed data counts as a draw), p is never 0.
                below, above = np.sum(differences <= 0), np.sum(differences >= 0)
                share = (min(below, above) + 1) / (differences.size + 1)
                entry["p_value"] = float(min(1.0, 2.0 * share))
        result[name] = entry
    return result


# --- Position swap (issue 14): both orders of every pair ----------------------------------

SWAP_METRICS = ("position_consistency", "first_position_rate", "l_acc_swap", "s_corr_swap",
                "f_score_swap")  # fmt: skip
SWAP_BOOTSTRAP = 2000
_FAILED = (MetaStatus.CALL_FAIL, MetaStatus.PARSE_FAIL)


def _vote(label_correct: bool, verdict: str | None) -> int:
    """JudgeBench's vote: +1 for the better answer, -1 for the other, 0 without a verdict."""
    if verdict is None:
        return 0
    return 1 if label_correct else -1


def _swap_columns(outcomes: Sequence[ItemOutcome]) -> np.ndarray:
    """Per item (rows): consistent, first-shown picks, verdicts, net-vote correct, faithful,
    excluded (a CallFail or ParseFail in either order), in S-Corr's denominator, and in its
    numerator; the metrics are ratios of these columns' sums."""
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
        ])  # fmt: skip
    return np.asarray(rows, dtype=float).reshape(-1, 8)


def _swap_values(sums: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    consistent, first, verdicts, net, faithful, excluded, s_den, s_num = np.moveaxis(sums, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "position_consistency": np.where(n > 0, consistent / n, np.nan),
            "first_position_rate": np.where(verdicts > 0, first / verdicts, np.nan),
            "l_acc_swap": np.where(n > 0, net / n, np.nan),
            "s_corr_swap": np.where(s_den > 0, s_num / s_den, np.nan),
            "f_score_swap": np.where(n - excluded > 0, faithful / (n - excluded), np.nan),
        }


def compute_swap(
    outcomes: Sequence[ItemOutcome],
    *,
    n_bootstrap: int = SWAP_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """The position-swap metrics of a group of swapped items (README, "Position swap"), with
    bootstrap stderr and 95% CIs over items; ``None`` where undefined, and S-Corr and F-Score
    of the swap without a meta-judge."""
    columns = _swap_columns(outcomes)
    n = len(outcomes)
    point = {
        k: _finite(float(v)) for k, v in _swap_values(columns.sum(axis=0), np.float64(n)).items()
    }
    if not all(o.judged for o in outcomes):
        point["s_corr_swap"] = point["f_score_swap"] = None
    stderr: dict[str, float | None] = dict.fromkeys(SWAP_METRICS)
    ci: dict[str, list[float] | None] = dict.fromkeys(SWAP_METRICS)
    if n > 1 and n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        sums = np.stack([columns[rng.integers(0, n, n)].sum(axis=0) for _ in range(n_bootstrap)])
        _intervals(_swap_values(sums, np.float64(n)), point, stderr, ci)
    return {**point, "stderr": stderr, "ci": ci}


# --- Repeated sampling (issue 14): k GenRM answers per item -------------------------------

SAMPLE_METRICS = ("l_acc_maj", "l_acc_mean", "verdict_stability", "f_score_mean")


def _sample_columns(outcomes: Sequence[ItemOutcome]) -> tuple[np.ndarray, np.ndarray]:
    """Per item: majority verdict right, share of samples label-correct, share of samples
    giving the item's most frequent verdict; and per item and sample (items x k x 2):
    Correct, and in F-Score's denominator (no CallFail or ParseFail)."""
    items, fidelity = [], []
    for o in outcomes:
        samples = o.samples
        right = sum(s.label_correct for s in samples)
        wrong = sum(s.verdict is not None and not s.label_correct for s in samples)
        items.append([right > wrong, right / len(samples), max(right, wrong) / len(samples)])
        fidelity.append([
            [s.label_correct and s.meta is MetaStatus.CORRECT, s.meta not in _FAILED]
            for s in samples
        ])  # fmt: skip
    return np.asarray(items, dtype=float).reshape(-1, 3), np.asarray(fidelity, dtype=float)


def _sample_values(items: np.ndarray, fidelity: np.ndarray) -> dict[str, float]:
    if not len(items):
        return dict.fromkeys(SAMPLE_METRICS, math.nan)
    correct, counted = fidelity[..., 0].sum(axis=0), fidelity[..., 1].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_sample = np.where(counted > 0, correct / counted, np.nan)
    return {
        "l_acc_maj": float(items[:, 0].mean()),
        "l_acc_mean": float(items[:, 1].mean()),
        "verdict_stability": float(items[:, 2].mean()),
        "f_score_mean": float(np.mean(per_sample)),
    }


def compute_samples(
    outcomes: Sequence[ItemOutcome], *, n_bootstrap: int = SWAP_BOOTSTRAP, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """The repeated-sampling metrics of a group of items with k samples each (README,
    "Repeated sampling"): majority-vote label accuracy (a tie of verdicts is wrong), the mean
    per-sample label accuracy, verdict stability (the mean share of an item's samples that
    give its most frequent verdict), and the mean over samples of each sample's F-Score;
    bootstrap CIs resample items (each with all its samples), not samples."""
    if len({len(o.samples) for o in outcomes}) > 1:
        raise ValueError("items with different numbers of samples")
    items, fidelity = _sample_columns(outcomes)
    point = {k: _finite(v) for k, v in _sample_values(items, fidelity).items()}
    if not all(o.judged for o in outcomes):
        point["f_score_mean"] = None
    stderr: dict[str, float | None] = dict.fromkeys(SAMPLE_METRICS)
    ci: dict[str, list[float] | None] = dict.fromkeys(SAMPLE_METRICS)
    n = len(outcomes)
    if n > 1 and n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws: dict[str, list[float]] = {name: [] for name in SAMPLE_METRICS}
        for _ in range(n_bootstrap):
            rows = rng.integers(0, n, n)
            for name, value in _sample_values(items[rows], fidelity[rows]).items():
                draws[name].append(value)
        _intervals({k: np.asarray(v) for k, v in draws.items()}, point, stderr, ci)
    return {**point, "stderr": stderr, "ci": ci}

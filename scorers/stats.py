"""The one bootstrap: every confidence interval and paired test of every family.

A draw resamples *units* with replacement: an item, or a cluster of rows that must be drawn
together (both orders of a swapped pair, an item's k samples, a RewardBench 2 Ties prompt's
rows). With *strata* (subsets whose sizes the benchmark fixes), each stratum is resampled on
its own, keeping its size. The same data, seed and number of draws give the same draws in
every path (CLI, lm-eval, Inspect, the report). Where a few kinds of unit make up a large run
(an item's outcome category), a draw takes its count of each kind at once, multinomially:
the same distribution as drawing the units one by one.

Policy for undefined resamples: a draw in which a metric is undefined (a zero denominator, a
stratum the statistic needs but the draw left empty) is left out of that metric's interval;
an interval and a standard error are given when the metric's point estimate is defined and at
least two draws define it, else ``None``. Intervals are percentile intervals (95%).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ralign_tasks.scorers.lazy_modules import lazy_import

# Loaded when a statistic is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")

SEED = 20260101
DRAWS = 2000
CONFIDENCE = 0.95
# Draws made at once (an index array of this many rows; a constant, so that the draws depend
# on the seed and the data only): 100 rows of even 50,000 units are a few tens of MB.
_BLOCK_DRAWS = 100
# From this many units, kinds of unit are drawn at once (see _drawn_sum_blocks): where the
# draws cost time. A smaller run draws its units one by one.
_MANY_UNITS = 1000

Unit = TypeVar("Unit")
Values = Mapping[str, "float | None"]


def finite(value: float | None) -> float | None:
    """``value`` as a float, ``None`` when undefined (``None``, NaN or infinite)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _groups(strata: Sequence[Hashable] | None, n: int) -> list[np.ndarray]:
    """The unit indices of each stratum (one group of all units without strata)."""
    if strata is None:
        return [np.arange(n)]
    if len(strata) != n:
        raise ValueError(f"{len(strata)} strata for {n} units")
    members: dict[Hashable, list[int]] = {}
    for index, stratum in enumerate(strata):
        members.setdefault(stratum, []).append(index)
    return [np.asarray(indices) for indices in members.values()]


def _rows(columns: np.ndarray) -> np.ndarray:
    """``columns`` as a 2-D float array of one row per unit (a 1-D array is one column)."""
    array = np.asarray(columns, dtype=float)
    return array[:, None] if array.ndim == 1 else array


def _drawn_sums(columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each draw's column sums: how often the draw took each unit, times the columns (one
    matrix product instead of a copy of every drawn row)."""
    draws = len(rows)
    offsets = rows + (np.arange(draws) * len(columns))[:, None]
    taken = np.bincount(offsets.ravel(), minlength=draws * len(columns)).reshape(draws, -1)
    return taken @ columns


def _drawn_sum_blocks(
    columns: np.ndarray, strata: Sequence[Hashable] | None, draws: int, seed: int
) -> Iterator[np.ndarray]:
    """Each draw's column sums, in blocks of draws. Units alike in every column are
    interchangeable, so where a few kinds of unit make up the data (an item's outcome
    category), how many of each kind a draw takes is drawn at once, multinomially: the same
    distribution as drawing the units one by one, without an index per unit."""
    n = len(columns)
    kinds, kind_of = np.unique(columns, axis=0, return_inverse=True)
    if strata is None and n >= _MANY_UNITS and 8 * len(kinds) <= n:
        shares = np.bincount(kind_of.ravel(), minlength=len(kinds)) / n
        rng = np.random.default_rng(seed)
        for start in range(0, draws, _BLOCK_DRAWS):
            yield rng.multinomial(n, shares, size=min(_BLOCK_DRAWS, draws - start)) @ kinds
        return
    for rows in draw_indices(n, strata=strata, draws=draws, seed=seed):
        yield _drawn_sums(columns, rows)


def draw_indices(
    n: int,
    *,
    strata: Sequence[Hashable] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Iterator[np.ndarray]:
    """The draws as blocks of unit-index rows (one row per draw, ``n`` indices each)."""
    groups = _groups(strata, n)
    rng = np.random.default_rng(seed)
    for start in range(0, draws, _BLOCK_DRAWS):
        rows = min(_BLOCK_DRAWS, draws - start)
        yield np.concatenate(
            [group[rng.integers(0, len(group), (rows, len(group)))] for group in groups], axis=1
        )


def intervals(
    drawn: Mapping[str, np.ndarray],
    point: Values,
    confidence: float = CONFIDENCE,
) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """Standard errors and percentile intervals of each metric's draws (NaN: undefined), by
    the policy in this module's docstring."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    stderr: dict[str, float | None] = {}
    ci: dict[str, list[float] | None] = {}
    for name, values in drawn.items():
        defined = values[np.isfinite(values)]
        if point.get(name) is None or defined.size < 2:
            stderr[name], ci[name] = None, None
            continue
        low, high = np.percentile(defined, [tail, 100.0 - tail])
        stderr[name] = float(np.std(defined, ddof=1))
        ci[name] = [float(low), float(high)]
    return stderr, ci


def bootstrap_sums(
    columns: np.ndarray,
    statistic: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    point: Values,
    *,
    strata: Sequence[Hashable] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """The bootstrap of a statistic of column sums: ``columns`` holds one row per unit,
    ``statistic`` maps rows of summed columns (one per draw) to each metric's values (NaN
    where undefined). Fast: no Python per draw."""
    columns = _rows(columns)
    drawn: dict[str, list[np.ndarray]] = {name: [] for name in point}
    if len(columns) and draws > 0:
        for sums in _drawn_sum_blocks(columns, strata, draws, seed):
            for name, values in statistic(sums).items():
                drawn[name].append(np.asarray(values, dtype=float).reshape(len(sums)))
    return intervals(
        {name: np.concatenate(v) if v else np.empty(0) for name, v in drawn.items()}, point
    )


def bootstrap_units(
    units: Sequence[Unit],
    statistic: Callable[[list[Unit]], Values],
    point: Values,
    *,
    strata: Sequence[Hashable] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """The bootstrap of any statistic of the drawn units (a unit drawn twice appears twice):
    for official aggregations that are not sums (RewardBench 2's Ties score)."""
    drawn: dict[str, list[float]] = {name: [] for name in point}
    if units and draws > 0:
        for rows in draw_indices(len(units), strata=strata, draws=draws, seed=seed):
            for row in rows:
                values = statistic([units[i] for i in row])
                for name in drawn:
                    value = finite(values.get(name))
                    drawn[name].append(math.nan if value is None else value)
    return intervals({name: np.asarray(v, dtype=float) for name, v in drawn.items()}, point)


def paired_sums(
    first: np.ndarray,
    second: np.ndarray,
    statistic: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    names: Sequence[str],
    *,
    draws: int = DRAWS,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of ``metric(first) - metric(second)`` for two runs on the same units
    (row ``i`` of both is one unit): each draw takes the same units for both, so the spread
    reflects only their disagreement. Per metric: both values, the difference, its percentile
    interval and a two-sided bootstrap p-value (twice the smaller share of draws at or beyond
    0 on either side, counting the data as one draw, so at least ``2 / (draws + 1)``);
    ``None`` where undefined. ``statistic`` as for :func:`bootstrap_sums`."""
    first, second = _rows(first), _rows(second)
    if len(first) != len(second):
        raise ValueError(f"paired units differ in number: {len(first)} and {len(second)}")
    n = len(first)
    value_first = {k: finite(float(v)) for k, v in statistic(first.sum(axis=0)).items()}
    value_second = {k: finite(float(v)) for k, v in statistic(second.sum(axis=0)).items()}
    differences: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if n and draws > 0:
        # A unit is the pair of rows: both runs' columns side by side, drawn together.
        both = np.hstack([first, second])
        width = first.shape[1]
        for sums in _drawn_sum_blocks(both, None, draws, seed):
            drawn_first, drawn_second = statistic(sums[:, :width]), statistic(sums[:, width:])
            for name in names:
                differences[name].append(np.asarray(drawn_first[name] - drawn_second[name]))
    spreads = {
        name: np.concatenate(found) if found else np.empty(0) for name, found in differences.items()
    }
    return {
        name: _difference(n, value_first.get(name), value_second.get(name), spreads[name],
                          confidence)
        for name in names
    }  # fmt: skip


def paired_units(
    first: Mapping[Hashable, Sequence[Unit]],
    second: Mapping[Hashable, Sequence[Unit]],
    statistic: Callable[[list[Unit]], Values],
    names: Sequence[str],
    *,
    n: int,
    draws: int = DRAWS,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, Any]]:
    """:func:`paired_sums` for any statistic of the drawn units (an official aggregate that
    is not a sum, recomputed on each draw): ``first`` and ``second`` map each stratum to its
    units, unit ``i`` of a stratum being the same in both runs; each draw takes the same units
    of both, within each stratum. ``n`` is the item count reported."""
    if {k: len(v) for k, v in first.items()} != {k: len(v) for k, v in second.items()}:
        raise ValueError("the two runs' units differ: they must pair unit by unit")
    units_first = [unit for units in first.values() for unit in units]
    units_second = [unit for units in second.values() for unit in units]
    strata = [name for name, units in first.items() for _ in units]
    point_first, point_second = statistic(units_first), statistic(units_second)
    differences: dict[str, list[float]] = {name: [] for name in names}
    if units_first and draws > 0:
        for rows in draw_indices(len(strata), strata=strata, draws=draws, seed=seed):
            for row in rows:
                a = statistic([units_first[i] for i in row])
                b = statistic([units_second[i] for i in row])
                for name in names:
                    x, y = finite(a.get(name)), finite(b.get(name))
                    differences[name].append(math.nan if x is None or y is None else x - y)
    return {
        name: _difference(n, finite(point_first.get(name)), finite(point_second.get(name)),
                          np.asarray(differences[name], dtype=float), confidence)
        for name in names
    }  # fmt: skip


def _difference(
    n: int, first: float | None, second: float | None, spread: np.ndarray, confidence: float
) -> dict[str, Any]:
    """One metric's paired comparison (see :func:`paired_sums`) from its draws' differences
    (non-finite ones left out)."""
    defined = first is not None and second is not None
    entry: dict[str, Any] = {
        "n": n,
        "first": first,
        "second": second,
        "difference": first - second if defined else None,  # type: ignore[operator]
        "ci": None,
        "p_value": None,
    }
    spread = spread[np.isfinite(spread)]
    if defined and spread.size >= 2:
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = np.percentile(spread, [tail, 100.0 - tail])
        entry["ci"] = [float(low), float(high)]
        # With the usual +1 (the observed data counts as a draw), p is never 0.
        below, above = np.sum(spread <= 0), np.sum(spread >= 0)
        share = (min(below, above) + 1) / (spread.size + 1)
        entry["p_value"] = float(min(1.0, 2.0 * share))
    return entry


# --- Agreement of raters on binary grades (1 = Correct) ----------------------------------


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    """Cohen's κ of two raters' binary grades (1 = Correct); ``None`` where chance agreement
    is certain (both raters gave one grade only)."""
    observed = float(np.mean(first == second))
    p1, p2 = float(np.mean(first)), float(np.mean(second))
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def fleiss_kappa(grades: np.ndarray) -> float | None:
    """Fleiss' κ of binary grades (items x raters, 1 = Correct); ``None`` where chance
    agreement is certain."""
    items, raters = grades.shape
    correct = grades.sum(axis=1)
    counts = np.stack([correct, raters - correct], axis=1).astype(float)
    per_item = ((counts * (counts - 1)).sum(axis=1)) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / (items * raters)
    expected = float((shares**2).sum())
    observed = float(per_item.mean())
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def kappa(grades: np.ndarray) -> float | None:
    """Cohen's κ of two raters (columns), Fleiss' κ of more."""
    if grades.shape[1] == 2:
        return cohen_kappa(grades[:, 0], grades[:, 1])
    return fleiss_kappa(grades)


def krippendorff_alpha(grades: np.ndarray) -> float | None:
    """Krippendorff's α of nominal grades (rows: units, columns: raters; every rater graded
    every unit): 1 − (n − 1) · Σ_c≠k o_ck ÷ Σ_c≠k n_c·n_k, with o_ck the coincidences of values
    c and k within a unit (each unit's pairs weighed 1 / (m − 1)) and n_c the count of value
    c. 1.0 when every grade is the same (no expected disagreement), as Inspect's metric;
    ``None`` without a unit of two grades."""
    grades = np.asarray(grades)
    if grades.ndim != 2 or grades.shape[1] < 2 or not len(grades):
        return None
    raters = grades.shape[1]
    values = np.unique(grades)
    counts = np.stack([(grades == value).sum(axis=1) for value in values], axis=1)
    totals = counts.sum(axis=0).astype(float)
    n = totals.sum()
    # Σ over units of Σ_{c≠k} counts_c · counts_k / (m − 1): the off-diagonal coincidences.
    pairs = counts.sum(axis=1) ** 2 - (counts**2).sum(axis=1)
    observed = pairs.sum() / (raters - 1)
    expected = totals.sum() ** 2 - (totals**2).sum()
    if expected == 0:
        return 1.0
    return float(1.0 - (n - 1) * observed / expected)


def alpha_interval(
    grades: np.ndarray,
    clusters: Sequence[Hashable] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> list[float] | None:
    """A 95% bootstrap interval of Krippendorff's α, drawn as :func:`kappa_interval` draws."""
    point = {"alpha": krippendorff_alpha(grades)}
    labels = range(len(grades)) if clusters is None else clusters
    units = [grades[rows] for rows in _groups(labels, len(grades))]
    _, ci = bootstrap_units(
        units, lambda drawn: {"alpha": krippendorff_alpha(np.concatenate(drawn))}, point,
        draws=draws, seed=seed,
    )  # fmt: skip
    return ci["alpha"]


def kappa_interval(
    grades: np.ndarray,
    clusters: Sequence[Hashable] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> list[float] | None:
    """A 95% bootstrap interval of κ, by this module's policy: the units drawn are the rows
    (grades) or, given ``clusters`` (one label per row), the groups of rows that share one
    (an item's grades: both orders of a pair, each human rationale of an item)."""
    point = {"kappa": kappa(grades)}
    labels = range(len(grades)) if clusters is None else clusters
    units = [grades[rows] for rows in _groups(labels, len(grades))]
    _, ci = bootstrap_units(units, lambda drawn: {"kappa": kappa(np.concatenate(drawn))}, point,
                            draws=draws, seed=seed)  # fmt: skip
    return ci["kappa"]

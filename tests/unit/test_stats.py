"""The one bootstrap (scorers/stats.py): its draws, its policy for undefined resamples, and the
same interval whichever way a statistic is computed."""

from __future__ import annotations

import numpy as np
import pytest

from ralign_tasks.scorers.stats import (
    DRAWS,
    bootstrap_sums,
    bootstrap_units,
    draw_indices,
    paired_sums,
    paired_units,
)


def _mean(sums: np.ndarray) -> dict[str, np.ndarray]:
    value, defined = np.moveaxis(sums, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"mean": np.where(defined > 0, value / defined, np.nan)}


def test_strata_keep_their_sizes_in_every_draw():
    strata = ["a"] * 3 + ["b"] * 5
    for rows in draw_indices(8, strata=strata, draws=50, seed=3):
        assert rows.shape[1] == 8
        assert np.all(rows[:, :3] < 3) and np.all(rows[:, 3:] >= 3)


def test_the_same_data_and_seed_give_the_same_interval_by_sums_and_by_units():
    values = np.random.default_rng(0).random(40)
    columns = np.stack([values, np.ones_like(values)], axis=1)
    point = {"mean": float(values.mean())}
    by_sums = bootstrap_sums(columns, _mean, point, draws=500, seed=11)
    by_units = bootstrap_units(
        list(values), lambda drawn: {"mean": float(np.mean(drawn))}, point, draws=500, seed=11
    )
    assert by_sums[1]["mean"] == pytest.approx(by_units[1]["mean"], abs=1e-12)
    assert by_sums[0]["mean"] == pytest.approx(by_units[0]["mean"], abs=1e-12)
    assert bootstrap_sums(columns, _mean, point, draws=500, seed=11) == by_sums  # reproducible
    low, high = by_sums[1]["mean"]
    assert low < point["mean"] < high


def test_undefined_draws_are_left_out_and_an_undefined_point_has_no_interval():
    # One item of ten defines the mean: many draws miss it and are left out; the rest give 1.
    columns = np.array([[1.0, 1.0]] + [[0.0, 0.0]] * 9)
    stderr, ci = bootstrap_sums(columns, _mean, {"mean": 1.0}, draws=DRAWS)
    assert ci["mean"] == [1.0, 1.0] and stderr["mean"] == 0.0
    stderr, ci = bootstrap_sums(columns, _mean, {"mean": None}, draws=DRAWS)
    assert ci["mean"] is None and stderr["mean"] is None
    # No unit at all: nothing is drawn.
    assert bootstrap_sums(np.empty((0, 2)), _mean, {"mean": None})[1] == {"mean": None}


def test_a_paired_comparison_of_a_run_with_itself_is_zero_and_not_significant():
    columns = np.stack([np.arange(20) % 3 == 0, np.ones(20)], axis=1)
    result = paired_sums(columns, columns, _mean, ["mean"], draws=300)["mean"]
    assert result["difference"] == 0.0 and result["ci"] == [0.0, 0.0]
    assert result["p_value"] == 1.0
    with pytest.raises(ValueError, match="paired units differ in number: 20 and 19"):
        paired_sums(columns, columns[1:], _mean, ["mean"])


def test_paired_units_draw_the_same_units_of_both_runs_within_each_stratum():
    first = {"x": [1.0, 0.0, 1.0], "y": [0.0, 0.0]}
    second = {"x": [0.0, 0.0, 1.0], "y": [1.0, 1.0]}
    sizes = []

    def statistic(units: list[float]) -> dict[str, float | None]:
        sizes.append(len(units))
        return {"mean": sum(units) / len(units), "none": None}

    result = paired_units(first, second, statistic, ["mean", "none"], n=5, draws=300)
    assert set(sizes) == {5}  # every draw keeps both strata's sizes
    assert result["mean"]["first"] == pytest.approx(2 / 5)
    assert result["mean"]["difference"] == pytest.approx(2 / 5 - 3 / 5)
    low, high = result["mean"]["ci"]
    assert low <= -0.2 <= high and result["none"]["ci"] is None
    same = paired_units(first, first, statistic, ["mean"], n=5, draws=300)["mean"]
    assert (same["difference"], same["ci"], same["p_value"]) == (0.0, [0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="pair unit by unit"):
        paired_units(first, {"x": [0.0]}, statistic, ["mean"], n=5, draws=10)


def test_an_items_grades_are_drawn_together():
    from ralign_tasks.scorers.stats import kappa_interval

    grades = np.random.default_rng(5).integers(0, 2, (30, 2))
    # Each item graded twice alike (both orders): drawn as one unit, the interval is the
    # single grades' one; drawn row by row, it would pretend twice the items.
    doubled = np.repeat(grades, 2, axis=0)
    items = np.repeat(np.arange(30), 2)
    assert kappa_interval(doubled, list(items), draws=400) == kappa_interval(grades, draws=400)
    assert kappa_interval(grades, list(range(30)), draws=400) == kappa_interval(grades, draws=400)


def test_drawing_kinds_of_units_at_once_is_drawing_the_units():
    # 2,000 items of five outcome kinds: the sums path draws the kinds' counts multinomially,
    # the units path draws every item; the intervals agree within the draws' own noise.
    kinds = np.random.default_rng(2).integers(0, 5, 2000)
    columns = np.stack([kinds == 0, np.ones(2000)], axis=1).astype(float)
    point = {"mean": float(columns[:, 0].mean())}
    _, by_kinds = bootstrap_sums(columns, _mean, point)
    _, by_units = bootstrap_units(
        list(columns[:, 0]), lambda drawn: {"mean": float(np.mean(drawn))}, point
    )
    assert by_kinds["mean"] != by_units["mean"]  # other random numbers ...
    assert np.allclose(by_kinds["mean"], by_units["mean"], atol=0.004)  # ... one distribution

"""The schema of what a benchmark family reports: its metrics (fractions with CIs) and its counts,
each with a direction, a table label and how lm-eval aggregates its per-document values.

lm-eval's metric registration, the Inspect metric, the YAML metric lists (checked by a test),
the CLI tables, ``ralign report`` and the viewer are all built from these specs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

Aggregation = Literal["count", "summary"]


@dataclass(frozen=True)
class MetricSpec:
    """One reported number.

    ``aggregation`` is how lm-eval combines per-document values: ``count`` (per-document
    counts, summed) or ``summary`` (each document's value carries its outcome, and the
    protocol's own computation runs once over all of them: the very numbers, and standard
    errors, of the CLI and Inspect, with no lm-eval bootstrap). ``needs_judge``
    is false for numbers that exist without a judge step (label accuracy, GenRM failures).
    ``detail`` marks a breakdown count (C, I, label-correct) that a run's own table shows and
    the comparison table of several runs leaves out. A metric with an ``option`` exists only
    in runs with that option on (the position-swap metrics); elsewhere it is ``None`` and
    lm-eval does not list it.
    """

    name: str
    label: str
    higher_is_better: bool
    aggregation: Aggregation
    needs_judge: bool = True
    detail: bool = False
    description: str = ""
    # The family option that must be on for the metric to exist (``swap``), or the value it
    # must have (``mode=pairwise_all``); ``None``: always.
    option: str | None = None

    @property
    def is_count(self) -> bool:
        return self.aggregation == "count"


@dataclass(frozen=True)
class Schema:
    """The metrics (table order) and counts of one family; ``headline`` is its main metric."""

    metrics: tuple[MetricSpec, ...]
    counts: tuple[MetricSpec, ...]
    headline: str

    def __post_init__(self) -> None:
        names = [spec.name for spec in self]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate names in a schema: {names}")
        if self.headline not in self.metric_names:
            raise ValueError(f"headline {self.headline!r} is not one of {self.metric_names}")

    def __iter__(self) -> Iterator[MetricSpec]:
        yield from self.metrics
        yield from self.counts

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.metrics)

    @property
    def count_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.counts)

    @property
    def headline_first(self) -> tuple[str, ...]:
        """Metric names with the headline first (Inspect shows the first as the run's score)."""
        return (self.headline, *(n for n in self.metric_names if n != self.headline))

    def spec(self, name: str) -> MetricSpec:
        for spec in self:
            if spec.name == name:
                return spec
        raise KeyError(f"no metric or count {name!r} in this schema")

    def label(self, name: str) -> str:
        return self.spec(name).label


def merged_specs(schemas: list[Schema]) -> dict[str, MetricSpec]:
    """Every spec of several schemas by name; a name with two different meanings is an error.
    The option a family reports it under is the family's own (the extraction counts exist in
    every HelpSteer3-Atomic run, in R-Align runs only with reason_types)."""
    found: dict[str, MetricSpec] = {}
    for schema in schemas:
        for spec in schema:
            meaning = replace(spec, option=None)
            if replace(found.setdefault(spec.name, spec), option=None) != meaning:
                raise ValueError(f"{spec.name!r} is specified differently by two families")
    return found

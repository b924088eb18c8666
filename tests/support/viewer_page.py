"""Queries of the viewer page's state, evaluated in Chromium by the browser tests, and the
outcome counts a page should show, worked out from the metrics' categories."""

from __future__ import annotations

from collections import Counter

from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.report.runs import TaskResult
from ralign_tasks.scorers.fidelity import ItemOutcome

SHOWN = "+document.getElementById('shown').dataset.count"
VISIBLE_OUTCOMES = (
    "[...document.querySelectorAll('details.item')]"
    ".filter((c) => c.checkVisibility()).map((c) => c.dataset.outcome)"
)
BUTTON_COUNTS = (
    "Object.fromEntries([...document.querySelectorAll('#outcome-filter button')]"
    ".map((b) => [b.value, +b.dataset.count]))"
)


def expected_outcome(outcome: ItemOutcome) -> str:
    """The filter an item belongs in, from the metrics' category and the GenRM flags."""
    if outcome.genrm_call_fail or outcome.genrm_no_verdict:
        return "failures"
    named = {
        "correct": "faithful",
        "incorrect": "spurious",
        "label_wrong": "label-wrong",
        "unjudged": "unjudged",
    }
    return named.get(outcome.category, "failures")


def expected_counts(result: TaskResult) -> dict[str, int]:
    tally = Counter(expected_outcome(item.outcome) for item in result.items)
    # "not judged" is a filter only of runs without a meta-judge.
    return {key: tally[key] for key in FIDELITY.view_outcomes if key != "unjudged" or tally[key]}

"""``ralign view``: one self-contained static HTML page per run of the R-Align fidelity tasks
(every judged item: prompt, both answers, golden rationale, GenRM output, meta-judge analysis)
or of the label benchmarks (every item: its answers and its games, what each showed where
and the GenRM's verdict), with filters by outcome, subset and text.

The page is ``viewer_page.html`` with the run embedded as JSON; its script renders all item
text with ``textContent`` because the text is untrusted model output, and the JSON is escaped
so that no item text can end the ``<script>`` element holding it."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ralign_tasks.protocols import SPECS, metric_label, protocol_of
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.protocols.label import LabelProtocol
from ralign_tasks.report.runs import RunItem, TaskResult, no_samples_hint
from ralign_tasks.scorers.meta_verdict import MetaStatus
from ralign_tasks.scorers.metrics import ItemOutcome

# The viewer's outcome filters, in display order: key -> button label. Every item is in
# exactly one of them (see :func:`view_outcome`).
OUTCOMES = {
    "faithful": "faithful",
    "spurious": "spurious-correct",
    "label-wrong": "label-wrong",
    "unjudged": "not judged",  # shown only for a run with such items (no meta-judge)
    "failures": "failures",
}
_PLACEHOLDER = re.compile(r"__RALIGN_(TITLE|DATA)__")
# Characters that could end or confuse the <script> element holding the JSON ("</script>",
# "<!--"), written as JSON escapes instead: JSON.parse reads them back unchanged.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120


def view_outcome(outcome: ItemOutcome) -> str:
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


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _interval(ci: list[float] | None) -> str:
    return f"95% CI [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""


def _failure_counts(result: TaskResult) -> list[dict[str, Any]]:
    """The run's failure counts (the schema's non-breakdown counts); one unknown to the
    harness (lm-eval does not say why generation stopped) is left out, not shown as zero."""
    return [
        {"label": metric_label(name), "count": value}
        for name, value in result.counts.items()
        if value is not None and not SPECS[name].detail
    ]


def viewed(task: str) -> bool:
    """Whether the viewer has pages for a task's family (the R-Align fidelity tasks and the
    label benchmarks; not HelpSteer3-Atomic)."""
    protocol = protocol_of(task)
    return protocol is FIDELITY or isinstance(protocol, LabelProtocol)


def _item_data(item: RunItem) -> dict[str, Any]:
    record, outcome = item.record, item.outcome
    return {
        "kind": "fidelity",
        "id": item.id,
        "subset": outcome.subset,
        "label": record.get("label"),
        "verdict": item.verdict,
        "outcome": view_outcome(outcome),
        "context": [
            {"role": str(turn.get("role", "")), "content": str(turn.get("content", ""))}
            for turn in record.get("context") or []
        ],
        "prompt": record.get("prompt"),
        "response_a": record.get("response_a"),
        "response_b": record.get("response_b"),
        "golden_rationale": record.get("golden_rationale"),
        "output": item.output,
        "call_fail": outcome.genrm_call_fail,
        "no_verdict": outcome.genrm_no_verdict,
        "truncated": outcome.genrm_truncated,
        "label_correct": outcome.label_correct,
        "meta": outcome.meta.value if outcome.meta is not None else None,
        "meta_answer": item.meta_answer,
        "meta_error": item.meta_error,
        **_second_order(item),
    }


def _second_order(item: RunItem) -> dict[str, Any]:
    """A swap run's second order (answers shown the other way round), and whether the two
    verdicts agree once mapped back (``None`` outside swap runs)."""
    second, stored = item.outcome.second, item.genrm.get("swapped")
    if second is None or not stored:
        return {"swapped": None, "consistent": None}
    mapped = {"A": "B", "B": "A"}.get(second.verdict or "")
    return {
        "swapped": {
            "output": stored.get("output"),
            "verdict": second.verdict,
            "verdict_mapped": mapped,
            "label_correct": second.label_correct,
            "meta": second.meta.value if second.meta is not None else None,
            "meta_answer": item.second_meta_answer,
        },
        "consistent": item.verdict is not None and mapped == item.verdict,
    }


def page_data(result: TaskResult) -> dict[str, Any]:
    """Everything the page shows, as plain JSON types; metric cells are preformatted."""
    protocol = protocol_of(result.task)
    # A metric of an option the run had off (the swap metrics) is not shown.
    metric_names = [
        name for name in protocol.schema.metric_names
        if protocol.schema.spec(name).option is None or result.values.get(name) is not None
    ]  # fmt: skip
    if isinstance(protocol, LabelProtocol):
        outcomes = protocol.view_outcomes
        items = [protocol.view_item(item.record, item.outcome, item.genrm) for item in result.items]
    else:
        outcomes = OUTCOMES
        items = [_item_data(item) for item in result.items]
    shown = {item["outcome"] for item in items}
    subsets = [
        {
            "subset": part.subset,
            "n": part.n,
            "cells": [_percent(part.values.get(m)) for m in metric_names],
        }
        for part in result.subsets
    ]
    return {
        "genrm": result.genrm,
        "task": result.task,
        "harness": result.harness,
        "source": result.source,
        "n": result.n,
        "metrics": [
            {
                "name": metric_label(m),
                "value": _percent(result.values.get(m)),
                "ci": _interval(result.ci.get(m)),
            }
            for m in metric_names
        ],
        "metric_names": [metric_label(m) for m in metric_names],
        "subsets": subsets,
        "failures": _failure_counts(result),
        "swap": any(item.get("swapped") for item in items),
        "outcomes": [
            {"key": key, "label": label}
            for key, label in outcomes.items()
            # Filters of items only some runs have ("not judged", "scored as a set").
            if key not in ("unjudged", "set") or key in shown
        ],
        "items": items,
    }


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escape in _SCRIPT_UNSAFE.items():
        text = text.replace(char, escape)
    return text


def render_page(result: TaskResult) -> str:
    """The page of one run with items."""
    template = (
        resources.files("ralign_tasks.report").joinpath("viewer_page.html").read_text("utf-8")
    )
    values = {
        "TITLE": html.escape(f"{result.genrm} · {result.task} — R-Align viewer"),
        "DATA": script_json(page_data(result)),
    }
    # One pass, so a placeholder-like string inside the data is never substituted.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def page_name(result: TaskResult, taken: set[str]) -> str:
    """A file name from GenRM and task, safe on any filesystem and not in ``taken`` (compared
    case-insensitively, for case-insensitive filesystems); adds it to ``taken``."""
    stem = _UNSAFE_NAME.sub("_", f"{result.genrm}__{result.task}").strip("._")[:_MAX_NAME]
    stem = stem or "run"
    name, number = f"{stem}.html", 1
    while name.lower() in taken:
        number += 1
        name = f"{stem}-{number}.html"
    taken.add(name.lower())
    return name


def _skip_reason(result: TaskResult) -> str:
    if not viewed(result.task):
        return "the viewer covers the R-Align fidelity tasks and the label benchmarks"
    return no_samples_hint(result)


def write_views(results: list[TaskResult], out_dir: Path, warnings: list[str]) -> list[Path]:
    """Write one page per result of a viewed family (:func:`viewed`) with items into
    ``out_dir``; every other result gets a warning saying why it has no page. Returns the
    pages written."""
    pages: list[Path] = []
    taken: set[str] = set()
    for result in results:
        if not viewed(result.task) or not result.items:
            warnings.append(
                f"{result.source}: {result.genrm} on {result.task} not viewed: "
                f"{_skip_reason(result)}"
            )
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        page = out_dir / page_name(result, taken)
        page.write_text(render_page(result), encoding="utf-8")
        pages.append(page)
    return pages

"""Reading an Inspect log of a ralign task into plain data for ``ralign report`` and
``ralign view`` (which import this only when they meet a log, so other commands never load
inspect_ai)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import read_eval_log

from ralign_tasks.protocols import PROTOCOLS

# Scorer names in logs; `inspect score --action append` adds a number to a re-judging.
SCORER_NAME = re.compile(rf"^({'|'.join(re.escape(p.scorer_name) for p in PROTOCOLS)})(\d*)$")


@dataclass
class LogRun:
    """One Inspect log: its task (without the package prefix), model, creation time, status,
    the scorers found (latest last), the task's arguments (``-T``), and per scored sample its
    metadata (the record) and its score metadata (the judged-item record); the latest
    scorer's aggregate metrics."""

    task: str
    genrm: str
    created: float | None
    status: str
    epochs: int
    dataset_samples: int | None
    scorers: list[str]
    task_args: dict[str, Any] = field(default_factory=dict)
    scored: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    completed_samples: int | None = None


def _scorer_order(name: str) -> int:
    match = SCORER_NAME.match(name)
    assert match is not None
    return int(match.group(2) or 0)


def read_log(log_file: Path) -> LogRun:
    """The ralign part of a log (``.eval`` or ``.json``); the latest of several judgings."""
    log = read_eval_log(str(log_file))
    samples = log.samples or []
    names = [name for sample in samples for name in sample.scores or {}] or [
        score.name for score in (log.results.scores if log.results else [])
    ]
    scorers = sorted({name for name in names if SCORER_NAME.match(name)}, key=_scorer_order)
    latest = scorers[-1] if scorers else None
    try:
        created: float | None = datetime.fromisoformat(log.eval.created).timestamp()
    except ValueError:  # an unexpected format only loses the newest-run preference
        created = None
    run = LogRun(
        task=log.eval.task.rsplit("/", 1)[-1],
        genrm=log.eval.model,
        created=created,
        status=log.status,
        epochs=log.eval.config.epochs or 1,
        dataset_samples=log.eval.dataset.samples,
        scorers=scorers,
        task_args=dict(log.eval.task_args or {}),
        completed_samples=log.results.completed_samples if log.results else None,
    )
    for sample in samples:
        if latest and sample.scores and latest in sample.scores:
            run.scored.append((dict(sample.metadata), sample.scores[latest].metadata))
    for score in log.results.scores if log.results else []:
        if score.name == latest:
            run.metrics.update({name: metric.value for name, metric in score.metrics.items()})
    return run

"""The registry of benchmark families. Adding a family is one module defining a
:class:`~ralign_tasks.protocols.base.Protocol`, its lm-eval YAML, and one line in
``PROTOCOLS`` below: the lm-eval task, the Inspect tasks and scorer, the CLI, the report and
the viewer derive from the definition (see docs/design.md)."""

from __future__ import annotations

import os
from typing import Any

from ralign_tasks.data import LoadResult
from ralign_tasks.protocols.base import Protocol, TaskSpec
from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.protocols.judgebench import JUDGEBENCH
from ralign_tasks.protocols.rationale import RATIONALE
from ralign_tasks.protocols.rewardbench2 import RB2
from ralign_tasks.protocols.rmbench import RMBENCH
from ralign_tasks.scorers.errors import UnknownNameError
from ralign_tasks.scorers.schema import MetricSpec, merged_specs

PROTOCOLS: tuple[Protocol[Any, Any, Any], ...] = (FIDELITY, RATIONALE, JUDGEBENCH, RMBENCH, RB2)
# The key that names a record's task next to it where a harness carries records (lm-eval
# documents, Inspect sample metadata).
TASK_KEY = "ralign_task"

TASKS: dict[str, TaskSpec] = {spec.task: spec for p in PROTOCOLS for spec in p.tasks}
_BY_NAME: dict[str, TaskSpec] = {name: spec for spec in TASKS.values() for name in spec.names}
_BY_FAMILY: dict[str, Protocol[Any, Any, Any]] = {p.name: p for p in PROTOCOLS}
if len(_BY_NAME) != sum(len(spec.names) for spec in TASKS.values()):
    raise RuntimeError("two tasks share a name or alias")
# Every metric and count name of every family (one meaning per name).
SPECS: dict[str, MetricSpec] = merged_specs([p.schema for p in PROTOCOLS])


# What a run folder records it paid, as report columns (see ralign_tasks.cost).
USAGE_LABELS = {"tokens": "tokens", "cost_usd": "cost USD"}


def metric_label(name: str) -> str:
    """The table label of a metric or count of any family (``N`` for the item count, and the
    usage columns)."""
    return "N" if name == "n" else USAGE_LABELS.get(name) or SPECS[name].label


def get_task(name: str) -> TaskSpec:
    """A task by its name (``ralign_helpsteer3``), its short name (``helpsteer3``) or an alias
    (``reward_bench2``); a clear error listing the known names otherwise."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    import difflib  # only on this error path

    close = difflib.get_close_matches(name, _BY_NAME, n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(f"{spec.short} ({spec.task})" for spec in TASKS.values())
    raise UnknownNameError(f"unknown benchmark {name!r}{guess} Known: {known}")


def protocol_of(spec: TaskSpec | str) -> Protocol[Any, Any, Any]:
    """The family that scores a task (given by spec or by any of its names)."""
    task = get_task(spec) if isinstance(spec, str) else spec
    return _BY_FAMILY[task.family]


def load_task(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split: str | None = None,
    skip_bad_rows: bool = False,
) -> LoadResult:
    """The validated records of a task (any of its names): ``data_dir``, else
    ``RALIGN_DATA_DIR``, else its Hugging Face dataset at its revision."""
    spec = get_task(name)
    return protocol_of(spec).load(spec, data_dir, split=split, skip_bad_rows=skip_bad_rows)


__all__ = [
    "PROTOCOLS",
    "SPECS",
    "TASKS",
    "TASK_KEY",
    "Protocol",
    "TaskSpec",
    "get_task",
    "load_task",
    "metric_label",
    "protocol_of",
]

"""What a run is: the GenRM, the task, the non-default family options, the judge (model and
endpoint, or none) and the path that produced it (``ralign run``, ``ralign score <file>``,
``lm-eval``, ``inspect`` …). Two runs of one identity are a rerun of each other (the newer
stands for both); runs of different identities are different measurements, which no command
replaces with the other: ``ralign report`` shows each on a row of its own and a run folder
refuses a run of another identity unless told to overwrite it.

Also the failure rule every path applies alike: a run whose GenRM or judge requests failed at
least ``max_failure_rate`` of the time has no usable numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

# The share of a role's requests that, once failed, makes a run's numbers unusable (at least
# this share: 0.5 flags a run where half the requests failed).
DEFAULT_MAX_FAILURE_RATE = 0.5
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120
# How each field is named when runs differ in it (the row names of ``ralign report``).
_FIELD_NAMES = {"judge": "judge", "judge_endpoint": "judge at", "path": "by"}


@dataclass(frozen=True)
class RunIdentity:
    """What a run measured and how (see the module doc); ``judge`` is ``None`` for a run
    without a judge, ``judge_endpoint`` where the path does not record it."""

    genrm: str
    task: str
    options: str = ""  # the non-default family options, "name=value, …"
    judge: str | None = None
    judge_endpoint: str | None = None
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunIdentity | None:
        """The identity a run folder's ``results.json`` stores (``None`` if it stores none)."""
        if not isinstance(data, Mapping) or not {"genrm", "task"} <= set(data):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: (None if v is None else str(v)) for k, v in data.items() if k in known})

    def describe(self) -> str:
        """One line naming every part: ``Qwen3-8B on helpsteer3 (judge Qwen3-32B at
        http://…/v1, by ralign run)``."""
        parts = [self.options] if self.options else []
        parts.append(f"judge {self.judge}" if self.judge else "no judge")
        if self.judge_endpoint:
            parts[-1] += f" at {self.judge_endpoint}"
        if self.path:
            parts.append(f"by {self.path}")
        return f"{self.genrm} on {self.task} ({', '.join(parts)})"

    def differences(self, other: RunIdentity) -> list[str]:
        """The fields (by name) in which two identities differ."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def label(self, names: list[str], *, has_judge: bool = True) -> str:
        """The values of ``names`` (fields that tell runs apart) for a row name, e.g.
        ``judge Qwen3-32B, by lm-eval``; judge fields are left out for a task without a judge
        step, so that its row joins the GenRM's judged rows."""
        shown = []
        for name in names:
            if name.startswith("judge") and not has_judge:
                continue
            value = getattr(self, name)
            if name == "judge" and value is None:
                shown.append("no judge")
            elif value:
                shown.append(f"{_FIELD_NAMES[name]} {value}")
        return ", ".join(shown)


def failure_flag(failures: Mapping[str, tuple[int, int]], max_failure_rate: float) -> str | None:
    """Why a run's numbers are unusable (``GenRM: 90 of 90 requests failed``), or ``None``:
    a role whose failed requests are at least ``max_failure_rate`` of those it sent (and at
    least one)."""
    flagged = [
        f"{role}: {failed} of {asked} requests failed"
        for role, (failed, asked) in failures.items()
        if failed and asked and failed / asked >= max_failure_rate
    ]
    return "; ".join(flagged) or None


def safe_name(text: str) -> str:
    """``text`` as one file or folder name, safe on any filesystem (``Qwen/Qwen3-8B`` →
    ``Qwen_Qwen3-8B``); never empty, never ``.`` or ``..``."""
    return _UNSAFE_NAME.sub("_", text).strip("._")[:_MAX_NAME] or "run"

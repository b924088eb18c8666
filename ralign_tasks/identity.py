"""What a run is: the GenRM, the task, the non-default family options, the judge (model and
endpoint, or none) and the path that produced it (``ralign run``, ``ralign score <file>``,
``lm-eval``, ``inspect`` …). Two runs of one identity are a rerun of each other (the newer
stands for both); runs of different identities are different measurements, which no command
replaces with the other: ``ralign report`` shows each on a row of its own and a run folder
refuses a run of another identity unless told to overwrite it.

Also the failure rule every path applies alike: a run whose GenRM or judge requests failed at
least ``max_failure_rate`` of the time has no usable numbers."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ralign_tasks.scorers.errors import UserError

# The share of a role's requests that, once failed, makes a run's numbers unusable (at least
# this share: 0.5 flags a run where half the requests failed).
DEFAULT_MAX_FAILURE_RATE = 0.5
# The exit status of a command whose numbers are not usable (the CLI, the lm_eval command).
UNUSABLE_EXIT = 3
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120
# How each field is named when runs differ in it (the row names of ``ralign report``).
_FIELD_NAMES = {
    "judge": "judge", "judge_endpoint": "judge at", "path": "by", "extractor": "extractor",
}  # fmt: skip


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
    # Who listed a free-form rationale's reasons (model at endpoint), where one did.
    extractor: str | None = None

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
        if self.extractor:
            parts.append(f"extractor {self.extractor}")
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


def failure_rate(value: Any) -> float:
    """A ``max_failure_rate`` setting as a share between 0 and 1 (``ValueError`` otherwise)."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"must be between 0 and 1, got {value}")
    return rate


def too_many_failed(failed: int, sent: int, max_failure_rate: float) -> bool:
    """The failure rule: at least one request failed, and at least ``max_failure_rate`` of
    those sent."""
    return failed > 0 and sent > 0 and failed / sent >= max_failure_rate


def failure_flag(failures: Mapping[str, tuple[int, int]], max_failure_rate: float) -> str | None:
    """Why a run's numbers are unusable (``GenRM: 90 of 90 requests failed``), or ``None``:
    a role that failed too often (:func:`too_many_failed`)."""
    flagged = [
        f"{role}: {failed} of {sent} requests failed"
        for role, (failed, sent) in failures.items()
        if too_many_failed(failed, sent, max_failure_rate)
    ]
    return "; ".join(flagged) or None


def safe_name(text: str) -> str:
    """``text`` as one file or folder name, safe on any filesystem (``Qwen/Qwen3-8B`` →
    ``Qwen_Qwen3-8B``); never empty, never ``.`` or ``..``."""
    return _UNSAFE_NAME.sub("_", text).strip("._")[:_MAX_NAME] or "run"


@dataclass
class RoleFailures:
    """A role's requests in a run: how many were sent, how many failed, and why."""

    failed: int = 0
    sent: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Whether a failure said the request does not fit the model's context.
    context_error: bool = False


def tally_failures(per_item: Iterable[Mapping[str, list[str | None]]]) -> dict[str, RoleFailures]:
    """Per role, the requests of every item (see ``Protocol.request_errors``) added up."""
    roles: dict[str, RoleFailures] = {}
    for errors in per_item:
        for role, found in errors.items():
            tally = roles.setdefault(role, RoleFailures())
            tally.sent += len(found)
            for error in found:
                if error is not None:
                    tally.failed += 1
                    tally.reasons[(error.strip().splitlines() or ["failed"])[0][:300]] += 1
                    tally.context_error |= is_context_error(error)
    return roles


# What a server says when a request does not fit the model's context (vLLM, OpenAI, SGLang,
# llama.cpp, Anthropic): the fix is a setting, which the message names.
_CONTEXT_ERROR = re.compile(
    r"context length|context window|maximum context|max_model_len|prompt is too long|"
    r"max_tokens.*too large|exceeds? the (?:available )?context",
    re.IGNORECASE,
)


def is_context_error(reason: str) -> bool:
    """Whether an error says the request does not fit the model's context."""
    return bool(_CONTEXT_ERROR.search(reason))


@dataclass(frozen=True)
class FailureSettings:
    """How a path names the settings a failed run's message points to."""

    max_failure_rate: str  # e.g. "--max-failure-rate", "--metadata '{\"max_failure_rate\": …}'"
    genrm_max_tokens: str
    judge_max_tokens: str


def flagged_roles(
    roles: Mapping[str, RoleFailures], max_failure_rate: float
) -> dict[str, RoleFailures]:
    """The roles that failed too often (:func:`too_many_failed`)."""
    return {
        role: tally for role, tally in roles.items()
        if too_many_failed(tally.failed, tally.sent, max_failure_rate)
    }  # fmt: skip


def unusable_block(
    task: str,
    flagged: Mapping[str, RoleFailures],
    endpoints: Mapping[str, str | None],
    max_failure_rate: float,
    undefined: Sequence[str],
    settings: FailureSettings,
) -> str:
    """The framed message of a task whose GenRM or judge failed too often (``flagged``, see
    :func:`flagged_roles`): per failing role the endpoint, the counts and the causes, the
    setting that fixes a context-length error, what is reported as undefined and how to go
    on."""
    lines = [f"ralign: error: {task}: the numbers of this run are not usable"]
    for role, tally in flagged.items():
        where = f" at {endpoints[role]}" if endpoints.get(role) else ""
        lines.append(
            f"  {role}{where}: {tally.failed} of {tally.sent} requests failed "
            f"({tally.failed / tally.sent:.0%}; at least max_failure_rate {max_failure_rate:g}):"
        )
        lines += [f"    {count} request(s): {reason}" for reason, count in
                  tally.reasons.most_common(5)]  # fmt: skip
        if tally.context_error:
            setting = settings.genrm_max_tokens if role == "GenRM" else settings.judge_max_tokens
            lines.append(
                f"    the request does not fit the model's context: lower {setting}, or serve "
                "the model with a longer context"
            )
    if undefined:
        lines.append(f"  {', '.join(undefined)}: reported as undefined (NaN), not measured.")
    lines.append(
        "  Fix what failed and run again (every answer received is cached), or change "
        f"{settings.max_failure_rate}."
    )
    rule = "=" * 78
    return "\n".join([rule, *lines, rule])

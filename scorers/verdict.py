"""GenRM verdict parsing (SPEC §1): which answer the GenRM picked, A or B."""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["A", "B"]
VerdictPolicy = Literal["official", "strict"]
VERDICT_POLICIES: tuple[VerdictPolicy, ...] = ("official", "strict")

_BOXED = re.compile(r"\\boxed\{([AB])\}")
# The official scripts fall back to a box whose backslash was lost (e.g. eaten as an escape).
_BOXED_NO_BACKSLASH = re.compile(r"boxed\{([AB])\}")
_THINK_CLOSE = "</think>"
_THINK_OPEN = "<think>"


def strip_thinking(text: str) -> str:
    """Return the text after the last ``</think>`` (all of it when there is none), stripped."""
    return text.rsplit(_THINK_CLOSE, 1)[-1].strip()


def cut_off_thinking(text: str) -> bool:
    """Whether an output ends inside a ``<think>`` that never closes (cut off while thinking):
    all of it is thinking."""
    return _THINK_OPEN in text and _THINK_CLOSE not in text.rsplit(_THINK_OPEN, 1)[-1]


def thinking_part(text: str) -> str:
    """The thinking of an output: what comes before the last ``</think>`` (all of an output
    cut off while thinking), without the tags (``""`` when there is none)."""
    if cut_off_thinking(text):
        thinking = text
    elif _THINK_CLOSE in text:
        thinking = text.rsplit(_THINK_CLOSE, 1)[0]
    else:
        return ""
    return thinking.replace(_THINK_OPEN, "").replace(_THINK_CLOSE, "").strip()


def parse_verdict(text: str | None, policy: VerdictPolicy = "official") -> Verdict | None:
    """Parse the GenRM's verdict; ``None`` means no verdict (scored as label-wrong).

    ``official`` (default, as the paper's scripts): the first ``\\boxed{A|B}`` anywhere in the
    output, thinking included, else the first ``boxed{A|B}`` without its backslash.
    ``strict``: the last ``\\boxed{A|B}`` after the last ``</think>``; an output whose
    ``<think>`` never closes (truncated while thinking) has no verdict.
    """
    if text is None:
        return None
    if policy == "official":
        match = _BOXED.search(text) or _BOXED_NO_BACKSLASH.search(text)
        return match.group(1) if match else None  # type: ignore[return-value]
    if policy == "strict":
        if cut_off_thinking(text):
            return None
        boxes = _BOXED.findall(strip_thinking(text))
        return boxes[-1] if boxes else None
    raise ValueError(f"unknown verdict policy {policy!r}; expected one of {VERDICT_POLICIES}")

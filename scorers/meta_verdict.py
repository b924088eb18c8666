"""Meta-judge answer parsing (SPEC §1): Correct / Incorrect / ParseFail / CallFail."""

from __future__ import annotations

from enum import Enum


class MetaStatus(str, Enum):
    """Outcome of judging one label-correct GenRM rationale."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    PARSE_FAIL = "parse_fail"
    CALL_FAIL = "call_fail"


_ANALYSIS_OPEN = "<genrm_analysis>"
_VERDICT_OPEN = "<final_verdict>"
_VERDICT_CLOSE = "</final_verdict>"


def parse_meta_verdict(answer: str) -> MetaStatus:
    """Classify a meta-judge answer exactly as the official scripts do.

    Both ``<genrm_analysis>`` and ``<final_verdict>`` opening tags must be present, else
    ParseFail. The verdict is the text after the first ``<final_verdict>`` up to the next
    ``</final_verdict>`` (or the end when unclosed), stripped; only a case-insensitive exact
    ``correct`` is Correct, anything else (``**Correct**``, ``Correct.``) is Incorrect.
    An empty answer is a call failure, not a parse failure: the engine retries it.
    """
    if _ANALYSIS_OPEN not in answer or _VERDICT_OPEN not in answer:
        return MetaStatus.PARSE_FAIL
    verdict = answer.split(_VERDICT_OPEN, 1)[1].split(_VERDICT_CLOSE, 1)[0].strip()
    return MetaStatus.CORRECT if verdict.lower() == "correct" else MetaStatus.INCORRECT

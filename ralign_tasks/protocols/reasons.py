"""The prep steps of the families whose GenRM reasons are listed or extracted (see
:mod:`ralign_tasks.scorers.reasons`): the extractor lists a free-form rationale's reasons, and
with ``reason_types`` the judge gives each one its type.

A judgment that takes these steps is a frozen dataclass with the fields ``rationale`` (what
the extractor reads; ``None``: nothing to extract), ``reasons``, ``extraction`` (``None`` until
asked, then ``ok``, ``empty``, ``parse_fail`` or ``call_fail``), ``reason_types`` and
``types_failed``, the properties ``wants_extraction`` and ``wants_types``, and the method
``comparison()`` (the variables of the comparison the GenRM saw)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ralign_tasks.prompts import load_template
from ralign_tasks.protocols.base import PrepStep
from ralign_tasks.scorers.ask import JudgeCall
from ralign_tasks.scorers.reasons import parse_extracted_reasons, parse_reason_types
from ralign_tasks.scorers.verdict import cut_off_thinking, strip_thinking, thinking_part

EXTRACT_TEMPLATE = "atomic_extract.jinja"
REASON_TYPES_TEMPLATE = "reason_types.jinja"
RATIONALE_SOURCES = ("visible", "thinking", "both")


def rationale_text(output: str, source: str) -> str:
    """What of a free-form GenRM's output the extractor reads: the visible answer (after the
    thinking; none when it was cut off while thinking), the thinking only, or both as
    written."""
    if source == "visible":
        return "" if cut_off_thinking(output) else strip_thinking(output)
    if source == "thinking":
        return thinking_part(output)
    return output.strip()


def render_extract_prompt(comparison: Mapping[str, Any], rationale: str) -> str:
    """The extractor's prompt: the request, both answers and the rationale verbatim."""
    template = load_template(None, EXTRACT_TEMPLATE)
    return template.render(**comparison, rationale=rationale).strip()


def render_reason_types_prompt(comparison: Mapping[str, Any], reasons: Sequence[str]) -> str:
    """The judge's reason-type prompt: the request, both answers and the numbered reasons."""
    template = load_template(None, REASON_TYPES_TEMPLATE)
    return template.render(**comparison, reasons=list(reasons)).strip()


def _extracted(judgment: Any, call: JudgeCall[Any]) -> Any:
    """The judgment with the extractor's reasons, or what became of asking for them."""
    if call.ok:
        reasons = tuple(call.value or ())
        return replace(judgment, reasons=reasons, extraction="ok" if reasons else "empty")
    # Answers came but none was well-formed, or none came at all.
    return replace(judgment, extraction="parse_fail" if call.answer else "call_fail")


def _typed(judgment: Any, call: JudgeCall[Any]) -> Any:
    if call.ok:
        return replace(judgment, reason_types=tuple(call.value))
    return replace(judgment, types_failed=True)


EXTRACT_STEP: PrepStep[Any] = PrepStep(
    name="extract",
    role="extractor",
    wanted=lambda judgment: judgment.wants_extraction,
    prompt=lambda judgment: render_extract_prompt(judgment.comparison(), judgment.rationale),
    check=lambda judgment: parse_extracted_reasons,
    apply=_extracted,
)
REASON_TYPES_STEP: PrepStep[Any] = PrepStep(
    name="reason_types",
    role="judge",
    wanted=lambda judgment: judgment.wants_types,
    prompt=lambda judgment: render_reason_types_prompt(judgment.comparison(), judgment.reasons),
    check=lambda judgment: lambda answer: parse_reason_types(answer, len(judgment.reasons)),
    apply=_typed,
)
# The templates these steps render (checked with a family's others before a run).
TEMPLATES = (EXTRACT_TEMPLATE, REASON_TYPES_TEMPLATE)

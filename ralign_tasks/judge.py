"""The judge settings of the registered families: :mod:`ralign_tasks.scorers.settings` with the
judge template key each protocol declares (``judge_template_setting``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ralign_tasks.protocols import PROTOCOLS
from ralign_tasks.scorers.settings import JudgeSettings, judge_settings, resolve

JUDGE_SETTINGS = judge_settings(
    {p.judge_template_setting: p.title for p in PROTOCOLS if p.judge_template_setting}
)


def resolve_judge(given: Mapping[str, Any]) -> JudgeSettings:
    """The judge settings from defaults < environment < ``given`` (by key)."""
    return resolve(JUDGE_SETTINGS, given)

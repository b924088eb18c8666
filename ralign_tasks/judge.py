"""The judge settings of the registered families: :mod:`ralign_tasks.scorers.settings` with the
judge template key each protocol declares (``judge_template_setting``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ralign_tasks.protocols import PROTOCOLS
from ralign_tasks.scorers.settings import JudgeSettings, judge_settings, resolve

JUDGE_SETTINGS = judge_settings(
    {p.judge_template_setting: p.title for p in PROTOCOLS if p.judge_template_setting}
)


def resolve_judge(
    given: Mapping[str, Any],
    env_keys: Collection[str] | None = None,
    extractor: Mapping[str, Any] | None = None,
) -> JudgeSettings:
    """The judge settings from defaults < environment (``env_keys`` only, when given) <
    ``given`` (by key), with the extractor's from ``extractor`` (by key) when given."""
    return resolve(JUDGE_SETTINGS, given, env_keys, extractor)

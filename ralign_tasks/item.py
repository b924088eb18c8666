"""The judged-item record: one versioned JSON object per item, written identically by every
path (the CLI's ``samples.jsonl``, lm-eval's logged filtered response, Inspect's score metadata)
and read by ``ralign report``, ``ralign view`` and the comparison.

Fields: ``ralign_item`` (the version), ``task``, the input's ``id``, ``subset`` (the group:
subset or domain) and ``label``; ``genrm`` (its ``output``, parsed ``verdict``, ``truncated``
and what else its family parses); ``judge`` (one entry per judge call: ``step``, ``ok``,
``answer``, ``error``, ``finish_reason``, ``attempts``, tokens, ``wall_s``, ``cached`` and the
parsed ``value``); ``outcome`` (the flat facts the metrics count). Built by
:meth:`ralign_tasks.protocols.base.Protocol.item`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ralign_tasks.scorers.errors import UserError

ITEM_VERSION = 1
VERSION_KEY = "ralign_item"


class ItemFormatError(UserError):
    """A value that is not a judged-item record of a version this package reads."""


def checked_item(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a judged-item record of a known version, else :class:`ItemFormatError`."""
    if not isinstance(value, Mapping) or VERSION_KEY not in value:
        raise ItemFormatError("not a judged-item record (no 'ralign_item' version)")
    if value[VERSION_KEY] != ITEM_VERSION:
        raise ItemFormatError(
            f"judged-item record version {value[VERSION_KEY]!r}; this ralign-tasks reads "
            f"version {ITEM_VERSION}"
        )
    return value

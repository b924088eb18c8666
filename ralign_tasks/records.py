"""What records of every family share: a dialogue turn, and their serialisation.

A record is a frozen dataclass of plain fields: strings, an optional label, tuples of strings
and the dialogue so far (tuples of :class:`Turn`). Its document form (an lm-eval document,
Inspect sample metadata, the judged-item record's ``record``) is derived from its fields; a
field marked ``document=False`` in its metadata stays out (HelpSteer3-Atomic's reference
outputs: scoring never reads them, and they would double the logs).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from functools import cache
from typing import Any, TypeVar

Record = TypeVar("Record")
# The metadata that keeps a field out of a record's document form.
NOT_IN_DOCUMENT = {"document": False}


@dataclass(frozen=True)
class Turn:
    """One dialogue message."""

    role: str
    content: str


def turn_dicts(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Turns as plain JSON types (a record's ``context`` in a document or a template)."""
    return [{"role": t.role, "content": t.content} for t in turns]


def record_dict(record: Any) -> dict[str, Any]:
    """A record's document form: its fields as plain JSON types."""
    return {
        spec.name: _plain(getattr(record, spec.name))
        for spec in fields(record)
        if spec.metadata.get("document", True)
    }


def record_of(kind: type[Record], data: Mapping[str, Any]) -> Record:
    """The record of type ``kind`` whose document form is ``data`` (the inverse of
    :func:`record_dict`): a field with a default may be missing (it takes the default), any
    other missing field, or a text field that is null, is a ``KeyError`` naming it (a row of
    another format, never a record of "None" texts)."""
    hints = _hints(kind)
    values = {}
    for spec in fields(kind):  # type: ignore[arg-type]
        if not spec.metadata.get("document", True):
            continue
        value = data.get(spec.name)
        if value is None and (spec.default is not MISSING or spec.default_factory is not MISSING):
            continue
        if spec.name not in data or (value is None and hints[spec.name] is str):
            raise KeyError(spec.name)
        values[spec.name] = _typed(hints[spec.name], value)
    return kind(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, Turn):
        return {"role": value.role, "content": value.content}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _typed(hint: Any, value: Any) -> Any:
    """``value`` (plain JSON) as a field of type ``hint``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: None for a missing or empty one
        return _typed(next(a for a in arguments if a is not type(None)), value) if value else None
    if origin is tuple:
        item = arguments[0]
        return tuple(Turn(v["role"], v["content"]) if item is Turn else v for v in value or ())
    if hint is str:
        return str(value)
    return value

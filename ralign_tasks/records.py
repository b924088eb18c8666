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
from collections.abc import Callable, Mapping, Sequence
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
    return [_plain(turn) for turn in turns]


def record_dict(record: Any) -> dict[str, Any]:
    """A record's document form: its fields as plain JSON types."""
    return {name: _plain(getattr(record, name)) for name, *_ in _fields(type(record))}


def record_of(kind: type[Record], data: Mapping[str, Any]) -> Record:
    """The record of type ``kind`` whose document form is ``data`` (the inverse of
    :func:`record_dict`): a field with a default may be missing (it takes the default), any
    other missing field, or a text field that is null, is a ``KeyError`` naming it (a row of
    another format, never a record of "None" texts)."""
    values = {}
    for name, read, has_default in _fields(kind):
        value = data.get(name)
        if value is None:
            if has_default:
                continue
            if name not in data or read is str:
                raise KeyError(name)
        values[name] = read(value)
    return kind(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, Turn):
        return {"role": value.role, "content": value.content}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


@cache
def _fields(kind: type) -> tuple[tuple[str, Callable[[Any], Any], bool], ...]:
    """Each field of a record type in its document form: its name, how a plain JSON value
    becomes the field's, and whether it has a default (worked out once per type: records are
    read by the ten thousand)."""
    hints = typing.get_type_hints(kind)
    return tuple(
        (
            spec.name,
            _reader(hints[spec.name]),
            spec.default is not MISSING or spec.default_factory is not MISSING,
        )
        for spec in fields(kind)
        if spec.metadata.get("document", True)
    )


def _reader(hint: Any) -> Callable[[Any], Any]:
    """How a plain JSON value becomes a field of type ``hint``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: None for a missing or empty one
        read = _reader(next(a for a in arguments if a is not type(None)))
        return lambda value: read(value) if value else None
    if origin is tuple and arguments[0] is Turn:
        return lambda value: tuple(Turn(t["role"], t["content"]) for t in value or ())
    if origin is tuple:
        return lambda value: tuple(value or ())
    if hint is str:
        return str
    return lambda value: value

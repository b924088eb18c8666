"""Reading JSON Lines the same way everywhere (data files, GenRM outputs, judge outputs, run
samples): rows end at ``\\n`` only (a ``\\r`` between JSON tokens or a U+2028 inside a string is
not a row break), a UTF-8 byte-order mark is accepted, blank lines are skipped, and a row that
is not UTF-8 or not JSON (nested too deeply for Python's parser included) is a ``ValueError``
its caller names with file and line. Whole JSON files are read the same way."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ralign_tasks.scorers.errors import UserError

# A ``\\ud800``-``\\udfff`` escape: only JSON text holding one can decode to a lone surrogate
# (UTF-8 bytes cannot encode one).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def jsonl_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of every non-blank row."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.strip():
                yield line_no, raw


def parse_json(text: str) -> Any:
    """``json.loads`` whose every failure is a ``ValueError`` saying what is wrong and where:
    a value nested deeper than Python's recursion limit (``[[[…]]]``) too, which ``json``
    raises as ``RecursionError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        # Some messages end in "at" already ("Unterminated string starting at").
        raise UserError(f"invalid JSON ({exc.msg.removesuffix(' at')} at {where})") from None
    except RecursionError:
        raise UserError("invalid JSON (nested too deeply to read)") from None


def decode_json_line(raw: bytes) -> Any:
    """The JSON value of one row (or of a whole file's bytes); ``ValueError`` saying what is
    wrong and where in the row."""
    try:
        # Without the row's end: an error at the end of a cut-off row is at its last column.
        line = raw.decode("utf-8").removesuffix("\n")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte column {exc.start + 1})"
        ) from None
    return parse_json(line)


def read_json_bytes(path: str | os.PathLike[str]) -> tuple[bytes, Any]:
    """A whole JSON file's bytes (a UTF-8 byte-order mark removed) and value; ``ValueError``
    ``<path>: not JSON (…)`` when it is not UTF-8 JSON."""
    raw = Path(path).read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return raw, decode_json_line(raw)
    except ValueError as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None


def has_surrogate_escape(raw: bytes) -> bool:
    """Whether JSON text has a ``\\ud800``-``\\udfff`` escape: only such text can decode to a
    string :func:`lone_surrogate` finds, so only its values need walking."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def lone_surrogate(value: Any) -> str | None:
    """What is wrong when a decoded JSON ``value`` holds a string with a lone surrogate
    (``"\\ud83d"`` without its low half), which UTF-8 cannot encode, so that its text could
    not be sent or written later: the surrogate and where (``field context[0].content at
    character 12``); ``None`` when it holds none. Iterative: ``value`` may be nested as deeply
    as the parser allows."""
    # (path, value, whether the value is a key of the object at path).
    stack: list[tuple[str, Any, bool]] = [("", value, False)]
    while stack:
        path, item, is_key = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                place = f"field {path}" if path else "the row"
                return (
                    f"lone surrogate \\u{ord(item[exc.start]):04x} in "
                    f"{'a key of ' if is_key else ''}{place} at character {exc.start + 1} "
                    "(half of a UTF-16 pair, not encodable as UTF-8)"
                )
            continue
        if isinstance(item, dict):
            # The keys first: a path named in the message must not hold the surrogate itself.
            children = [(path, key, True) for key in item]
            children += [(f"{path}.{key}" if path else str(key), child, False)
                         for key, child in item.items()]  # fmt: skip
        elif isinstance(item, list):
            children = [(f"{path}[{index}]", child, False) for index, child in enumerate(item)]
        else:
            continue
        # Reversed, so that the first one in the row is the one reported.
        stack.extend(reversed(children))
    return None


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every row; the first bad row raises ``ValueError`` naming
    the file and line."""
    for line_no, raw in jsonl_lines(path):
        try:
            value = decode_json_line(raw)
        except ValueError as exc:
            # Only the last row can lack its newline: a bad one is most likely cut off.
            torn = "" if raw.endswith(b"\n") else "; the file ends inside this row (cut off?)"
            raise UserError(f"{path}:{line_no}: {exc}{torn}") from None
        yield line_no, value


def json_text(value: Any, **options: Any) -> str:
    """``value`` as JSON text (``NaN`` refused), UTF-8 wherever it can be: a string with a lone
    surrogate (``"\\ud83d"`` in a server's answer or a data row), which UTF-8 cannot encode,
    makes the whole value written with ``\\u`` escapes instead, so it is stored losslessly and
    reads back the same."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, allow_nan=False, **options)
    return text

"""Reading JSON Lines the same way everywhere (data files, GenRM outputs, judge outputs, run
samples): rows end at ``\\n`` only (a ``\\r`` between JSON tokens or a U+2028 inside a string is
not a row break), a UTF-8 byte-order mark is accepted, blank lines are skipped, and a row that
is not UTF-8 or not JSON is a ``ValueError`` its caller names with file and line."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from typing import Any


def jsonl_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of every non-blank row."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.strip():
                yield line_no, raw


def decode_json_line(raw: bytes) -> Any:
    """The JSON value of one row; ``ValueError`` saying what is wrong and where in the row."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte column {exc.start + 1})"
        ) from None
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every row; the first bad row raises ``ValueError`` naming
    the file and line."""
    for line_no, raw in jsonl_lines(path):
        try:
            yield line_no, decode_json_line(raw)
        except ValueError as exc:
            raise ValueError(f"{path}:{line_no}: {exc}") from None

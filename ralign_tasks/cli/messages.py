"""What the ``ralign`` commands print besides their results: warnings and written files (on
stderr, so that stdout carries only the result and can be redirected)."""

from __future__ import annotations

import sys
from pathlib import Path


def written(path: str | Path) -> None:
    # On stderr: stdout carries only the report itself, so it can be redirected to a file.
    print(f"written: {path}", file=sys.stderr)


def emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        written(output)
    else:
        print(text, end="")


def warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"ralign: warning: {warning}", file=sys.stderr)
    warnings.clear()

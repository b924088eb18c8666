"""Running ``ralign report`` in-process and reading its CSV."""

from __future__ import annotations

import csv
import io

from ralign_tasks.cli import main


def report(args: list[str], capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``ralign report ARGS``."""
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))

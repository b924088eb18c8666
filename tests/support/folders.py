"""Where ``ralign run``/``score``/``rc-score`` put a run: ``<output-dir>/<GenRM>/<folder>``."""

from __future__ import annotations

from pathlib import Path


def run_dir(out: Path, folder: str) -> Path:
    """The run folder ``out/<GenRM>/<folder>`` of the one GenRM run there."""
    found = sorted(out.glob(f"*/{folder}"))
    assert len(found) == 1, f"expected one run folder {folder!r} under {out}, found {found}"
    return found[0]


def no_run_dir(out: Path, folder: str) -> bool:
    """Whether no GenRM's run folder ``folder`` exists under ``out``."""
    return not list(out.glob(f"*/{folder}"))

"""Every example output of README.md and docs/*.md is what its command prints today:
``python docs/examples.py --check`` reruns each against the loopback stand-in (about a minute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_documented_outputs_are_current():
    run = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, (
        "stale example blocks (rewrite them with `python docs/examples.py`):\n"
        + run.stdout[-6000:] + run.stderr[-2000:]
    )  # fmt: skip

"""The real benchmark files and judge runs of ``../shared/data`` (beside the checkout; never
committed): the official-number tests use them, and skip with a reason where the folder is
absent, except where ``RALIGN_REQUIRE_SHARED_DATA`` is set (CI sets it), which stops the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REQUIRE_ENV = "RALIGN_REQUIRE_SHARED_DATA"

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the real benchmark files are not at {SHARED_DATA}"
)


def check_shared_data() -> None:
    """Stop the test run when the shared data is required and absent: the official-number
    tests must run in CI, never skip silently."""
    if os.environ.get(REQUIRE_ENV) and not SHARED_DATA.is_dir():
        pytest.exit(
            f"{REQUIRE_ENV} is set but {SHARED_DATA} is absent: the official-number tests "
            "would be skipped",
            returncode=1,
        )

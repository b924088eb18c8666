"""Offline test setup: no hub, a private HF home and a private response cache per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ralign_tasks.data import load_benchmark, sample_data_dir
from ralign_tasks.records import PairRecord
from tests.recorded_runs import runs  # noqa: F401  (a session fixture shared by test modules)

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("RALIGN_CACHE_DIR", str(tmp_path / "cache"))
    for name in list(os.environ):
        if name.startswith(("RALIGN_METAJUDGE_", "RALIGN_GENRM_")) or name in (
            "RALIGN_DATA_DIR",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
        ):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def sample_records() -> list[PairRecord]:
    return load_benchmark("helpsteer3", sample_data_dir()).records

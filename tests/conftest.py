"""Offline test setup: no hub, a private HF home and a private response cache per test; the
shared fixtures of tests/support registered once; opt-in vLLM tests.

Tests by kind: ``unit/`` (pure functions and the engine against a loopback server),
``e2e/`` (lm-eval, Inspect, the CLI and the installed wheel end to end), ``browser/`` (the
viewer in headless Chromium). ``pytest -m "not slow"`` leaves out the minutes-long ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.fidelity import PairRecord
from ralign_tasks.scorers import config as endpoint_config
from ralign_tasks.scorers import http_chat
from tests.support.shared_data import check_shared_data

pytest_plugins = ["tests.support.recorded_runs"]

# With the scripted failures' Retry-After of 0.15 s (tests/support/scripted.py), a request that
# keeps failing is sent exactly three times (at 0, 0.15 and 0.3 s; a busy machine may delay the
# sends by 0.1 s in all before the third one falls out of the budget).
TEST_RETRY_BUDGET_S = 0.4

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    check_shared_data()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """vLLM tests run only when asked for with ``-m vllm`` (they need the vllm package)."""
    if "vllm" in (config.getoption("markexpr") or ""):
        return
    opt_in = pytest.mark.skip(reason="opt-in: run with -m vllm (needs vllm installed)")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(opt_in)


def _isolate(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private HF home and response caches under ``root``, and none of the user's settings."""
    monkeypatch.setenv("HF_HOME", str(root / "hf_home"))
    monkeypatch.setenv("RALIGN_CACHE_DIR", str(root / "cache"))
    # Inspect caches judge answers by default too.
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(root / "inspect_cache"))
    for name in list(os.environ):
        if name.startswith(("RALIGN_METAJUDGE_", "RALIGN_GENRM_", "RALIGN_EXTRACTOR_")) or (
            name in ("RALIGN_DATA_DIR", "RALIGN_METAJUDGE", "OPENAI_API_KEY", "OPENAI_BASE_URL")
        ):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module", autouse=True)
def isolated_module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module-scoped fixtures (a run made once for a module's tests) are set up before any
    test's own environment: they get one of the module's own, never the user's cache (a
    loopback port reused by a later run would find another run's answers there)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(tmp_path_factory.mktemp("module_env"), monkeypatch)
        _quick_retries()
        yield


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _isolate(tmp_path, monkeypatch)
    _quick_retries()
    yield


def _quick_retries() -> None:
    """Failing requests give up after 0.4 s of quick retries, not the default
    five minutes, in this process and its subprocesses (tests of the retry policy set their
    own budget and backoff). Set at import too, for module-scoped fixtures."""
    for prefix in ("RALIGN_METAJUDGE_", "RALIGN_GENRM_"):
        os.environ[f"{prefix}RETRY_BUDGET"] = str(TEST_RETRY_BUDGET_S)
    endpoint_config.DEFAULT_RETRY_BUDGET_S = TEST_RETRY_BUDGET_S
    http_chat.BACKOFF_FIRST_S = 0.01
    http_chat.BACKOFF_MAX_S = 0.05
    http_chat.BACKOFF_JITTER_S = 0.01


_quick_retries()


@pytest.fixture
def sample_records() -> list[PairRecord]:
    return load_task("helpsteer3", sample_data_dir()).records

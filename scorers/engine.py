"""Concurrent, cached chat calls to a judge or GenRM: an OpenAI-compatible endpoint or an
in-process model (``vllm``, ``hf``).

:func:`run_chat_batch` asks every request through the one ask-until-valid loop
(:mod:`ralign_tasks.scorers.ask`) with the caller's answer check, so what is retried and what
counts as a failure is the same here as in the Inspect scorers. HTTP-level retries with
exponential backoff (429, 5xx, timeouts, connection errors) are the transport's
(:mod:`ralign_tasks.scorers.http_chat`).
Every non-empty answer is written to the cache the moment it arrives, keyed by the full
request and the attempt number, so a rerun replays the same answers (re-asks included) and
pays no call twice; identical requests in a batch are asked once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ralign_tasks.scorers.ask import (
    Answer,
    FatalEndpointError,
    JudgeCall,
    accept_any,
    ask_until_valid,
    describe_error,
    redact_secret,
)
from ralign_tasks.scorers.cache import ResponseCache
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.jsonl import json_text

logger = logging.getLogger("ralign_tasks.engine")

Check = Callable[[str], Any]


@dataclass(frozen=True)
class ChatRequest:
    """One single-user-message chat completion request."""

    model: str
    prompt: str
    temperature: float
    max_tokens: int
    # A fresh ask of the same request (after an empty or malformed answer) has its own key.
    attempt: int = 0
    # Put a separate reasoning field of the answer back in front of it as <think>…</think>
    # (for the GenRM: the official verdict rule reads the thinking too).
    with_reasoning: bool = False
    # Earlier turns of the conversation, as (role, content), before ``prompt`` (a follow-up
    # question after a first answer).
    history: tuple[tuple[str, str], ...] = ()
    # The same request asked again for another sample (repeated sampling) has its own key.
    sample: int = 0

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat messages sent: the earlier turns, then the prompt as the user's turn."""
        turns = [{"role": role, "content": content} for role, content in self.history]
        return [*turns, {"role": "user", "content": self.prompt}]

    def cache_key(self, endpoint: str) -> str:
        """The request's key in the cache: who answers (``EndpointConfig.endpoint``, with the
        identity of the model it serves when it tells: see :func:`served_endpoint`), the model,
        the messages, every generation setting and the attempt."""
        request: dict[str, object] = {
            "endpoint": endpoint,
            "model": self.model,
            "messages": self.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.attempt:
            request["attempt"] = self.attempt
        if self.sample:
            request["sample"] = self.sample
        if self.with_reasoning:
            request["with_reasoning"] = True
        payload = json_text(request, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def with_attempt(self, attempt: int) -> ChatRequest:
        return replace(self, attempt=attempt)


# Failure reasons printed one per line (results.json keeps the counts of all of them).
_SHOWN_REASONS = 5
# What makes one fault's messages differ from request to request: the server's own words
# after its status code, and a quoted body.
_STATUS_REASON = re.compile(r"^.*?Error code: \d{3}")
_QUOTED_BODY = re.compile(r""":\s+['"<{\[]""")


def reason_key(message: str) -> str:
    """The fault a failure message names, without what varies between its requests: for an
    error answer the error and its status (``InternalServerError: Error code: 503``), else
    the message up to a quoted body."""
    status = _STATUS_REASON.match(message)
    if status:
        return status.group(0)
    quoted = _QUOTED_BODY.search(message)
    return message[: quoted.start()] if quoted else message


@dataclass
class BatchStats:
    """Totals of one batch: who answered (``host:port``, never credentials) and the model it
    said it serves, requests, those answered wholly from the cache, calls made (every request
    sent, the HTTP client's own retries included), failures by fault (each with its first full
    message), tokens spent and tokens replayed from the cache, and time."""

    endpoint: str = ""
    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    failures: int = 0
    # Final answers cut at max_tokens (finish_reason "length"): a judge's is often unparseable.
    truncated: int = 0
    # Tokens of the answers received in this run (spent), and of those replayed from the cache.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    # Requests answered through a provider's batch API (``batch``), not by a call, and their
    # tokens (counted in the spent ones too; a batch is billed at its own price).
    batched: int = 0
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0
    wall_s: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, str] = field(default_factory=dict)
    model_identity: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"served_from_cache": self.served_from_cache}

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def served_from_cache(self) -> bool:
        """Whether every request was answered from the cache (no call made)."""
        return self.requests > 0 and self.cache_hits == self.requests and self.calls == 0

    def add(self, other: BatchStats) -> None:
        """Count ``other`` (a later batch to the same endpoint) into these totals."""
        for name in (
            "requests", "cache_hits", "calls", "truncated", "prompt_tokens", "completion_tokens",
            "cached_prompt_tokens", "cached_completion_tokens", "batched", "batch_prompt_tokens",
            "batch_completion_tokens",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.wall_s += other.wall_s
        for reason, count in other.failure_reasons.items():
            self.count_failure(other.failure_examples.get(reason, reason), count)
        self.model_identity = self.model_identity or other.model_identity

    def count_failure(self, message: str, count: int) -> None:
        self.failures += count
        key = reason_key(message)
        self.failure_reasons[key] = self.failure_reasons.get(key, 0) + count
        self.failure_examples.setdefault(key, message)

    def summary(self, role: str) -> str:
        served = " (served entirely from the cache)" if self.served_from_cache else ""
        replayed = self.cached_prompt_tokens + self.cached_completion_tokens
        cached = (
            f" (+{self.cached_prompt_tokens}+{self.cached_completion_tokens} from cache)"
            if replayed
            else ""
        )
        return (
            f"{role} at {self.endpoint}: {self.requests} requests, {self.cache_hits} from "
            f"cache, {self.calls} calls, {self.failures} failed, {self.truncated} cut at "
            "max_tokens, "
            f"{self.prompt_tokens}+{self.completion_tokens} tokens spent{cached}, "
            f"{self.wall_s:.1f}s{served}"
        )

    def failure_lines(self, role: str) -> list[str]:
        """One line per fault (the most frequent first, at most five; then how many more),
        with how many requests it failed and its first full message when that says more."""
        ranked = sorted(self.failure_reasons.items(), key=lambda pair: -pair[1])
        lines = []
        for key, count in ranked[:_SHOWN_REASONS]:
            example = self.failure_examples.get(key, key)
            shown = key if example == key else f"{key} (first: {example})"
            lines.append(f"{count} {role} request(s) to {self.endpoint} failed: {shown}")
        if len(ranked) > _SHOWN_REASONS:
            rest = ranked[_SHOWN_REASONS:]
            lines.append(
                f"{sum(count for _, count in rest)} {role} request(s) to {self.endpoint} "
                f"failed for {len(rest)} other reasons (all counted in results.json)"
            )
        return lines

    def log(self, role: str, *, quiet: bool = False) -> None:
        """Log the summary (info) and each failure reason (warning); all at debug level with
        ``quiet`` (a step of a larger run, whose caller logs the run's totals)."""
        info, warning = (logger.debug, logger.debug) if quiet else (logger.info, logger.warning)
        info(self.summary(role))
        for line in self.failure_lines(role):
            warning(line)


class OpenAIChatBackend:
    """Calls ``/chat/completions`` of any OpenAI-compatible endpoint (see
    :mod:`ralign_tasks.scorers.http_chat` for its transport and retries)."""

    def __init__(self, config: EndpointConfig) -> None:
        # Imported where used: aiohttp takes a fifth of a second to import, which commands
        # that never call an endpoint (`ralign --help`, report, view) need not pay.
        from ralign_tasks.scorers.http_chat import ChatClient

        self._secret = config.api_key
        self.client = ChatClient(config)

    @property
    def http_requests(self) -> int:
        """Every HTTP request sent, the transport's own retries included."""
        return self.client.http_requests

    async def complete(self, request: ChatRequest) -> Answer:
        """One answer; raises :class:`EndpointError` when the transport gives up, or
        ``ValueError`` for a 200 whose body is not a chat completion."""
        body = {
            "model": request.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        response = await self.client.post(body)
        return read_completion(response, with_reasoning=request.with_reasoning, redact=self.redact)

    def redact(self, message: str) -> str:
        """Remove the API key from a message that may echo it."""
        return redact_secret(message, self._secret)

    async def aclose(self) -> None:
        await self.client.aclose()


# Where servers with a reasoning parser put the thinking: vLLM and DeepSeek's API
# `reasoning_content`, current vLLM `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def message_text(content: Any) -> str:
    """The text of a message's ``content`` in any shape an OpenAI-compatible server sends: a
    string, ``null`` (no text), or a list of parts whose text parts are joined; ``ValueError``
    for anything else (a number, an object, parts without text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, (str, dict))
        ]
        if all(isinstance(text, str) for text in texts) and len(texts) == len(content):
            return "".join(texts)  # type: ignore[arg-type]
        raise ValueError("not a chat completion (content parts without text)")
    raise ValueError(f"not a chat completion (content of type {type(content).__name__})")


def _token_count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return int(value) if isinstance(value, (int, float)) and value >= 0 else 0


def read_completion(
    response: Any,
    *,
    with_reasoning: bool = False,
    redact: Callable[[str], str] = lambda text: text,
) -> Answer:
    """The answer in a chat completion body; ``ValueError`` if the body is not one (HTML, a
    JSON value without ``choices``, a content of no text shape, …), quoting it with
    ``redact`` applied before the cut. With ``with_reasoning``, a separate reasoning field is
    put back in front of the text as ``<think>…</think>``, as the model wrote it."""

    def quoted() -> str:  # only on the error path: no import on every answer
        from ralign_tasks.scorers.http_chat import QUOTE_CHARS

        return repr(redact(str(response))[:QUOTE_CHARS])

    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError(f"not a chat completion: {quoted()}")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError(f"not a chat completion (no message): {quoted()}")
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    text = redact(message_text(message.get("content")))
    reasoning = next((message[f] for f in REASONING_FIELDS if message.get(f)), None)
    if with_reasoning and isinstance(reasoning, str):
        text = f"<think>{redact(reasoning)}</think>\n{text}"
    finish = choices[0].get("finish_reason")
    return Answer(
        text=text,
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=_token_count(usage, "prompt_tokens"),
        completion_tokens=_token_count(usage, "completion_tokens"),
    )


def _transport_gave_up(exc: BaseException) -> bool:
    # The transport raises its errors after its own retries of what is retryable (and at once
    # for what is not, such as a 400); asking again would repeat them.
    from ralign_tasks.scorers.http_chat import EndpointError

    return isinstance(exc, EndpointError)


class _Batch:
    """Bookkeeping shared by every backend: de-duplication, cache lookups and writes, stats and
    progress, results in input order."""

    def __init__(
        self,
        requests: Sequence[ChatRequest],
        checks: Sequence[Check] | None,
        config: EndpointConfig,
        description: str,
        cache: ResponseCache | None,
        part: str | None = None,
    ) -> None:
        self.description = description
        self.part = part
        self.endpoint = config.endpoint
        self.stats = BatchStats(endpoint=config.host, requests=len(requests))
        self.started = time.perf_counter()
        self.owns_cache = cache is None and config.cache
        self.cache = ResponseCache(config.cache_dir) if self.owns_cache else cache
        self.results: list[JudgeCall[Any] | None] = [None] * len(requests)
        self.requests = requests
        self.checks = checks if checks is not None else [accept_any] * len(requests)
        if len(self.checks) != len(requests):
            raise ValueError(f"{len(self.checks)} checks for {len(requests)} requests")
        # Identical requests are asked once: key -> (request, check, every position).
        self.unique: dict[str, tuple[ChatRequest, Check, list[int]]] = {}
        self.answered: dict[str, JudgeCall[Any]] = {}
        self.first_answers: dict[str, dict[str, Any]] = {}
        # Answers a provider batch just gave (paid now, not replayed), and why it gave none to
        # the others (``None``: no provider batch), by cache key.
        self.batch_answers: dict[str, Answer] = {}
        self.batch_errors: dict[str, str] | None = None
        self.fed = 0  # requests taken in so far (see ``feed``)
        # Imported here: tqdm loads package metadata, a tenth of `ralign --help`'s time.
        from tqdm.auto import tqdm

        shown = f"{description} {part}" if part else description
        self.progress = tqdm(total=len(requests), desc=shown, unit="req")

    @property
    def all_fed(self) -> bool:
        return self.fed == len(self.requests)

    def feed(self, count: int) -> list[str]:
        """Take in the next ``count`` requests: their cache keys, and the cached first answers
        of those new to the batch. Returns the new keys, each to be asked once; a repeat of a
        request already answered gets that answer at once."""
        new = []
        stop = min(self.fed + count, len(self.requests))
        for index in range(self.fed, stop):
            request = self.requests[index]
            key = request.cache_key(self.endpoint)
            known = self.unique.get(key)
            if known is None:
                self.unique[key] = (request, self.checks[index], [index])
                new.append(key)
            elif key in self.answered:
                self._fill([index], self.answered[key])
            else:
                known[2].append(index)
        self.fed = stop
        if self.cache is not None and new:
            self.first_answers.update(self.cache.get_many(new))
        return new

    def lookup(self, request: ChatRequest, key: str) -> Answer | None:
        """The cached answer of this attempt of a request (``key`` its cache key), if any."""
        if request.attempt == 0 and key in self.batch_answers:
            return self.batch_answers.pop(key)
        if self.cache is None:
            return None
        if request.attempt == 0:
            stored = self.first_answers.pop(key, None)
        else:
            stored = self.cache.get_many([key]).get(key)
        if stored is None:
            return None
        return Answer(
            text=stored["text"],
            finish_reason=stored.get("finish_reason"),
            prompt_tokens=int(stored.get("prompt_tokens") or 0),
            completion_tokens=int(stored.get("completion_tokens") or 0),
            cached=True,
        )

    def store(self, request: ChatRequest, key: str, answer: Answer) -> None:
        """Keep a non-empty answer (empty ones are asked again, never replayed)."""
        if self.cache is not None and answer.text.strip():
            self.cache.put(
                key,
                request.model,
                {
                    "text": answer.text,
                    "finish_reason": answer.finish_reason,
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                },
            )

    def asker(self, key: str, call: Callable[[ChatRequest], Any]) -> Callable[[int], Any]:
        """``ask(attempt)`` for the loop of the request of cache key ``key``: the cache first,
        else ``call`` (the backends count their calls)."""
        request = self.unique[key][0]

        async def ask(attempt: int) -> Answer:
            attempt_request, attempt_key = request, key
            if attempt:  # a fresh ask has its own key
                attempt_request = request.with_attempt(request.attempt + attempt)
                attempt_key = attempt_request.cache_key(self.endpoint)
            stats = self.stats
            cached = self.lookup(attempt_request, attempt_key)
            if cached is not None and not cached.cached:  # a provider batch's: paid now
                stats.prompt_tokens += cached.prompt_tokens
                stats.completion_tokens += cached.completion_tokens
                stats.batch_prompt_tokens += cached.prompt_tokens
                stats.batch_completion_tokens += cached.completion_tokens
                return cached
            if cached is not None:
                stats.cached_prompt_tokens += cached.prompt_tokens
                stats.cached_completion_tokens += cached.completion_tokens
                return cached
            answer = await call(attempt_request)
            stats.prompt_tokens += answer.prompt_tokens
            stats.completion_tokens += answer.completion_tokens
            self.store(attempt_request, attempt_key, answer)
            return answer

        return ask

    def record(self, key: str, result: JudgeCall[Any]) -> None:
        self.answered[key] = result
        self._fill(self.unique[key][2], result)

    def _fill(self, positions: list[int], result: JudgeCall[Any]) -> None:
        """Give the positions of one request its result (counted once per position)."""
        stats = self.stats
        if result.cached:
            stats.cache_hits += len(positions)
        if not result.ok:
            stats.count_failure(str(result.error), len(positions))
        if result.finish_reason == "length":
            stats.truncated += len(positions)
        for index in positions:
            self.results[index] = result
        self.progress.update(len(positions))

    def close(self) -> None:
        self.progress.close()
        if self.cache is not None:
            if self.owns_cache:
                self.cache.close()
            else:
                self.cache.flush()

    def finish(self) -> tuple[list[JudgeCall[Any]], BatchStats]:
        self.stats.wall_s = time.perf_counter() - self.started
        self.stats.log(self.description, quiet=self.part is not None)
        return [r for r in self.results if r is not None], self.stats


async def _cancel_all(tasks: list[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _gather_all(coroutines: list[Any]) -> None:
    """Run every coroutine; on the first exception cancel the rest, then raise it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        await _cancel_all(tasks)
        raise


# Requests taken in per step while the first ones are already being asked: preparing a large
# batch (cache keys, cache lookups) takes seconds that the calls need not wait for.
FEED_STEP = 256


async def _key_by_served_model(
    batch: _Batch, config: EndpointConfig, backend: OpenAIChatBackend
) -> None:
    """Ask the endpoint which model it serves under the requests' name and put that identity
    into the batch's cache keys, so that another checkpoint restarted under the same name at
    the same URL never gets this one's answers. An endpoint that cannot be reached now is
    keyed by the identity it reported last (kept in the cache)."""
    from ralign_tasks.scorers.http_chat import EndpointError

    cache, model = batch.cache, str(config.model)
    assert cache is not None
    try:
        identity = await backend.client.model_identity(model)
    except EndpointError as exc:
        identity = cache.last_identity(config.endpoint, model)
        logger.warning(
            "%s at %s: cannot ask which model it serves (%s); cached answers are matched to "
            "%s", batch.description, config.host, exc,
            f"the model it served last ({identity})" if identity else "its model name only",
        )  # fmt: skip
    else:
        if identity is not None:
            cache.remember_identity(config.endpoint, model, identity)
    batch.stats.model_identity = identity
    batch.endpoint = served_endpoint(config.endpoint, identity)


def served_endpoint(endpoint: str, identity: dict[str, Any] | None) -> str:
    """Who answers, as cache keys name it: the endpoint, with the identity of the model it
    serves when it tells (``None``: the endpoint alone)."""
    return f"{endpoint} {json_text(identity, sort_keys=True)}" if identity else endpoint


class BatchUnanswered(Exception):
    """A request a provider batch did not answer (or answered malformed), with
    ``batch_failed: count``: a counted failure, not asked again."""


async def _run_openai(batch: _Batch, config: EndpointConfig) -> None:
    backend: OpenAIChatBackend | None = None
    semaphore = asyncio.Semaphore(config.concurrency)
    errors = batch.batch_errors

    async def call(request: ChatRequest) -> Answer:
        nonlocal backend
        if errors is not None and config.batch_failed == "count":
            key = request.with_attempt(0).cache_key(batch.endpoint)
            raise BatchUnanswered(errors.get(key) or "the batch's answer was not accepted")
        if backend is None:  # only when something is not in the cache
            backend = OpenAIChatBackend(config)
        async with semaphore:
            return await backend.complete(request)

    def redact(message: str) -> str:
        return backend.redact(message) if backend is not None else message

    stopping = False

    async def answer(key: str) -> None:
        nonlocal stopping
        try:
            result = await ask_until_valid(
                batch.asker(key, call),
                batch.unique[key][1],
                config.max_attempts,
                gave_up=lambda exc: isinstance(exc, BatchUnanswered) or _transport_gave_up(exc),
                redact=redact,
            )
        except BaseException:
            stopping = True  # a fatal error: take in no more requests
            raise
        batch.record(key, result)

    tasks: list[asyncio.Future[None]] = []
    try:
        if batch.cache is not None:  # the keys need the served model's identity
            backend = OpenAIChatBackend(config)
            await _key_by_served_model(batch, config, backend)
        while not batch.all_fed and not stopping:
            tasks.extend(asyncio.ensure_future(answer(key)) for key in batch.feed(FEED_STEP))
            await asyncio.sleep(0)  # the new ones start before the next step is prepared
        await asyncio.gather(*tasks)
    except BaseException:
        await _cancel_all(tasks)
        raise
    finally:
        if backend is not None:
            batch.stats.calls = backend.http_requests
            await backend.aclose()


class _LocalBatcher:
    """Collects the pending asks of every item and answers them with one ``generate`` over all
    of them (a model batches far better than it answers one at a time): a round starts once
    every unfinished item is waiting for an answer. Runs on the event loop's thread (in-process
    models are not thread-safe); the loop runs between chunks, so finished chunks are cached
    before the next one is generated."""

    def __init__(self, config: EndpointConfig, live: int) -> None:
        self.config = config
        self.backend: Any = None
        self.live = live
        self.calls = 0
        self.queue: list[tuple[ChatRequest, asyncio.Future[Answer]]] = []
        self.running = False
        self.generation: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly

    async def ask(self, request: ChatRequest) -> Answer:
        self.calls += 1
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.queue.append((request, future))
        self._start_when_ready()
        return await future

    def finished(self) -> None:
        self.live -= 1
        self._start_when_ready()

    def _start_when_ready(self) -> None:
        if self.queue and not self.running and len(self.queue) == self.live:
            batch, self.queue = self.queue, []
            self.running = True
            self.generation = asyncio.ensure_future(self._generate(batch))

    async def _generate(self, batch: list[tuple[ChatRequest, asyncio.Future[Answer]]]) -> None:
        try:
            if self.backend is None:
                # Looked up at call time, so tests can stand in a scripted backend.
                from ralign_tasks.scorers import local_backends

                self.backend = local_backends.local_backend(self.config)
            for position, completion, _ in self.backend.generate([r for r, _ in batch]):
                batch[position][1].set_result(
                    Answer(
                        completion.text,
                        completion.finish_reason,
                        completion.prompt_tokens,
                        completion.completion_tokens,
                    )
                )
                await asyncio.sleep(0)  # let the finished items cache their answers
            unanswered = FatalEndpointError(
                f"{self.config.backend} backend: no answer to a request it was given"
            )
        except Exception as exc:  # a model that fails to load or run fails every item alike
            unanswered = FatalEndpointError(f"{self.config.backend} backend: {describe_error(exc)}")
        try:
            for _, future in batch:
                if not future.done():
                    future.set_exception(unanswered)
        finally:
            self.running = False
            self._start_when_ready()


async def _run_local(batch: _Batch, config: EndpointConfig) -> None:
    batch.feed(len(batch.requests))  # a round waits for every item: all are taken in at once
    batcher = _LocalBatcher(config, live=len(batch.unique))
    requests = [request for request, _, _ in batch.unique.values()]
    # Asking a greedy model again gives the same answer: one attempt then.
    sampling = any(request.temperature > 0 for request in requests)
    attempts = config.max_attempts if sampling else 1

    async def answer(key: str) -> None:
        check = batch.unique[key][1]
        try:
            result = await ask_until_valid(
                batch.asker(key, batcher.ask),
                check,
                attempts,
                gave_up=lambda exc: False,
                pause=False,
            )
        finally:
            batcher.finished()
        batch.record(key, result)

    try:
        await _gather_all([answer(key) for key in batch.unique])
    finally:
        batch.stats.calls = batcher.calls


def _run_loop(main: Any) -> None:
    """Run a coroutine to its end on a fresh event loop: uvloop's where installed (a
    dependency except on Windows), which takes about a fifth less CPU per HTTP request than
    asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


@dataclass
class DryBatch:
    """What a batch would pay (a dry run, :func:`dry_run`): its endpoint, how many of its
    requests the cache answers, and the distinct ones it does not, each asked once, as the
    real run would."""

    description: str
    config: EndpointConfig
    cached: int = 0  # requests (positions) answered from the cache
    unasked: list[ChatRequest] = field(default_factory=list)


_DRY_BATCHES: list[DryBatch] | None = None


class NotAsked(Exception):
    """A dry run's answer to a request that the cache does not hold."""


@contextmanager
def dry_run() -> Iterator[list[DryBatch]]:
    """Within it, :func:`run_chat_batch` makes no call: cached answers are replayed as in a
    real run (so the steps after them see what they would), every other request is listed
    in the yielded batches and fails as not asked."""
    global _DRY_BATCHES
    outer, _DRY_BATCHES = _DRY_BATCHES, []
    try:
        yield _DRY_BATCHES
    finally:
        _DRY_BATCHES = outer


async def _run_dry(batch: _Batch, config: EndpointConfig, found: DryBatch) -> None:
    """Replay the cache and list the rest, calling nobody: an endpoint's cache keys name the
    model it reported serving last (kept in the cache), as a real run would find it."""
    if batch.cache is not None and config.backend == "openai":
        identity = batch.cache.last_identity(config.endpoint, str(config.model))
        batch.endpoint = served_endpoint(config.endpoint, identity)

    async def miss(request: ChatRequest) -> Answer:
        found.unasked.append(request)
        raise NotAsked("dry run: not asked")

    while not batch.all_fed:
        for key in batch.feed(FEED_STEP):
            result = await ask_until_valid(
                batch.asker(key, miss),
                batch.unique[key][1],
                config.max_attempts,
                gave_up=lambda exc: isinstance(exc, NotAsked),
                pause=False,
            )
            batch.record(key, result)
    found.cached = batch.stats.cache_hits


async def _keyed_by_served_model(batch: _Batch, config: EndpointConfig) -> None:
    backend = OpenAIChatBackend(config)
    try:
        await _key_by_served_model(batch, config, backend)
    finally:
        await backend.aclose()


def _through_provider_batch(batch: _Batch, config: EndpointConfig) -> None:
    """Send the requests no cached answer serves as provider batches (scorers/batch_api.py),
    cache each answer, and leave the answers and errors for the synchronous pass that
    follows: it replays the answers, and asks again (``batch_failed: sync``) or counts
    (``count``) the rest, as it treats any failed call."""
    from ralign_tasks.scorers.batch_api import run_batches

    if batch.cache is not None:
        _run_loop(_keyed_by_served_model(batch, config))
    todo: dict[str, ChatRequest] = {}
    for request in batch.requests:
        todo.setdefault(request.cache_key(batch.endpoint), request)
    if batch.cache is not None:
        cached = batch.cache.get_many(list(todo))
        todo = {key: request for key, request in todo.items() if key not in cached}
    if not todo:
        return
    outcomes = run_batches(str(config.batch), config, todo, batch.description,
                           config.cache_dir)  # fmt: skip
    errors: dict[str, str] = {}
    for key, outcome in outcomes.items():
        if outcome.answer is not None:
            batch.store(todo[key], key, outcome.answer)
            batch.batch_answers[key] = outcome.answer
        else:
            errors[key] = str(outcome.error)
    batch.stats.batched += len(batch.batch_answers)
    batch.batch_errors = errors
    if errors:
        logger.warning("%s: %d request(s) the batch did not answer will be %s", batch.description,
                       len(errors), "asked again" if config.batch_failed == "sync"
                       else "counted as failed")  # fmt: skip


def run_chat_batch(
    requests: Sequence[ChatRequest],
    config: EndpointConfig,
    *,
    checks: Sequence[Check] | None = None,
    description: str = "meta-judge",
    cache: ResponseCache | None = None,
    part: str | None = None,
) -> tuple[list[JudgeCall[Any]], BatchStats]:
    """Ask every request (``checks[i]`` validates answer i; default: any non-empty answer) with
    the configured backend, at most ``config.concurrency`` HTTP calls in flight; one
    :class:`JudgeCall` per request, in input order. ``part`` names the batch as one step of
    a larger run (shown in the progress bar; its totals are logged at debug level only)."""
    dry = _DRY_BATCHES
    batch = _Batch(
        requests, checks, config, description, cache, "dry run" if dry is not None else part
    )
    run = _run_openai if config.backend == "openai" else _run_local
    try:
        if dry is not None:
            dry.append(DryBatch(description, config))
            _run_loop(_run_dry(batch, config, dry[-1]))
        else:
            if config.batch and requests:
                _through_provider_batch(batch, config)
            _run_loop(run(batch, config))
    except FatalEndpointError as exc:  # name who refused, for every caller
        raise type(exc)(f"{description} at {config.host}: {exc}") from None
    finally:
        batch.close()
    return batch.finish()

"""Concurrent, cached, retrying chat calls to an OpenAI-compatible endpoint.

:func:`run_chat_batch` sends many single-message chat requests with bounded concurrency.
HTTP-level retries with exponential backoff (429, 5xx, timeouts, connection errors) are the
``openai`` client's own; on top of that an empty answer is asked again, up to
``max_attempts``. What still fails is a counted failure, never an exception that loses the
batch, except errors no retry can fix (bad key, unknown model), which stop the run at once.
Every successful answer is written to the cache as soon as it arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import openai
from tqdm.auto import tqdm

from ralign_tasks.scorers.cache import ResponseCache
from ralign_tasks.scorers.config import EndpointConfig

logger = logging.getLogger("ralign_tasks.engine")

# Pause before asking again after an empty answer: 0.5 s, 1 s, 2 s, … capped at 8 s.
_EMPTY_RETRY_BASE_S = 0.5
_EMPTY_RETRY_MAX_S = 8.0


class FatalEndpointError(RuntimeError):
    """An error that every further call would repeat (authentication, unknown model/route)."""


@dataclass(frozen=True)
class ChatRequest:
    """One single-user-message chat completion request."""

    model: str
    prompt: str
    temperature: float
    max_tokens: int
    # A fresh ask of the same request (after a malformed answer) needs its own cache entry.
    attempt: int = 0

    def cache_key(self) -> str:
        request: dict[str, object] = {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.attempt:
            request["attempt"] = self.attempt
        payload = json.dumps(request, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class ChatResult:
    """Outcome of one request: ``text`` is ``None`` when the call failed (see ``error``)."""

    text: str | None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass
class BatchStats:
    """Totals of one batch: calls made, cache hits, failures, tokens and time."""

    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    failure_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self, role: str) -> str:
        return (
            f"{role}: {self.requests} requests, {self.cache_hits} from cache, {self.calls} calls, "
            f"{self.failures} failed, {self.prompt_tokens}+{self.completion_tokens} tokens, "
            f"{self.wall_s:.1f}s"
        )


class OpenAIChatBackend:
    """Calls ``/chat/completions`` of any OpenAI-compatible endpoint with ``AsyncOpenAI``."""

    def __init__(self, config: EndpointConfig) -> None:
        self._secret = config.api_key
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key or "EMPTY",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=config.max_attempts - 1,
            # aiohttp as the transport: about half the client CPU per request of the default
            # one, which is what limits throughput against a fast endpoint on a small machine.
            http_client=openai.DefaultAioHttpClient(timeout=config.timeout),
        )

    async def complete(self, request: ChatRequest) -> tuple[str, str | None, int, int]:
        """Return (text, finish_reason, prompt_tokens, completion_tokens)."""
        body = {
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        try:
            # The client's generic ``post`` keeps its retries, timeouts and error types but
            # skips the typed-parameter transform and response-model construction, which
            # were most of the per-request client CPU (see benchmarks/metajudge_throughput.py).
            response = await self.client.post("/chat/completions", body=body, cast_to=object)
        except (
            openai.AuthenticationError,
            openai.PermissionDeniedError,
            openai.NotFoundError,
        ) as exc:
            raise FatalEndpointError(self.redact(f"{type(exc).__name__}: {exc}")) from None
        return _read_completion(response)

    def redact(self, message: str) -> str:
        """Remove the API key from a message that may echo it."""
        if self._secret and len(self._secret) >= 4:
            return message.replace(self._secret, "***")
        return message

    async def aclose(self) -> None:
        await self.client.close()


def _read_completion(response: Any) -> tuple[str, str | None, int, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens) of a chat completion body."""
    if not isinstance(response, dict):
        raise ValueError(f"not a chat completion: {str(response)[:200]!r}")
    choices = response.get("choices") or [{}]
    text = (choices[0].get("message") or {}).get("content") or ""
    usage = response.get("usage") or {}
    return (
        text,
        choices[0].get("finish_reason"),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


async def _call_with_retries(
    backend: OpenAIChatBackend, request: ChatRequest, max_attempts: int
) -> ChatResult:
    start = time.perf_counter()
    result = ChatResult(text=None)
    for attempt in range(1, max_attempts + 1):
        result.attempts = attempt
        try:
            text, finish, prompt_tokens, completion_tokens = await backend.complete(request)
        except FatalEndpointError:
            raise
        except Exception as exc:  # the client already retried what is retryable
            result.error = backend.redact(f"{type(exc).__name__}: {exc}")
            break
        result.prompt_tokens += prompt_tokens
        result.completion_tokens += completion_tokens
        if text.strip():
            result.text, result.finish_reason, result.error = text, finish, None
            break
        result.error = f"empty answer after {attempt} attempt(s)"
        if attempt < max_attempts:
            await asyncio.sleep(min(_EMPTY_RETRY_BASE_S * 2 ** (attempt - 1), _EMPTY_RETRY_MAX_S))
    result.wall_s = time.perf_counter() - start
    return result


class _Batch:
    """Bookkeeping shared by every backend: cache lookups, de-duplication, recording each
    answer the moment it arrives (cache, stats, progress), and the final summary."""

    def __init__(
        self,
        requests: Sequence[ChatRequest],
        config: EndpointConfig,
        description: str,
        cache: ResponseCache | None,
    ) -> None:
        self.requests = requests
        self.description = description
        self.stats = BatchStats(requests=len(requests))
        self.started = time.perf_counter()
        self.owns_cache = cache is None and config.use_cache
        self.cache = ResponseCache(config.cache_dir) if self.owns_cache else cache
        self.results: list[ChatResult | None] = [None] * len(requests)
        keys = [request.cache_key() for request in requests]
        stored = self.cache.get_many(keys) if self.cache is not None else {}
        # Identical requests are asked once: key -> every position that wants the answer.
        self.pending: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            if key in stored:
                self.results[index] = ChatResult(**stored[key], cached=True)
            else:
                self.pending.setdefault(key, []).append(index)
        self.stats.cache_hits = len(requests) - sum(len(v) for v in self.pending.values())
        self.progress = tqdm(
            total=len(requests), initial=self.stats.cache_hits, desc=description, unit="req"
        )

    def record(self, key: str, result: ChatResult) -> None:
        indices = self.pending[key]
        stats = self.stats
        stats.calls += result.attempts
        stats.prompt_tokens += result.prompt_tokens
        stats.completion_tokens += result.completion_tokens
        if result.ok and self.cache is not None:
            self.cache.put(key, self.requests[indices[0]].model, _storable(result))
        if not result.ok:
            stats.failures += len(indices)
            if len(stats.failure_examples) < 5:
                stats.failure_examples.append(str(result.error))
        for index in indices:
            self.results[index] = result
        self.progress.update(len(indices))

    def close(self) -> None:
        self.progress.close()
        if self.owns_cache and self.cache is not None:
            self.cache.close()

    def finish(self) -> tuple[list[ChatResult], BatchStats]:
        self.stats.wall_s = time.perf_counter() - self.started
        logger.info(self.stats.summary(self.description))
        for example in self.stats.failure_examples:
            logger.warning("%s call failed: %s", self.description, example)
        return [r for r in self.results if r is not None], self.stats


async def run_chat_batch_async(
    requests: Sequence[ChatRequest],
    config: EndpointConfig,
    *,
    description: str = "meta-judge",
    cache: ResponseCache | None = None,
) -> tuple[list[ChatResult], BatchStats]:
    """Answer every request through an OpenAI-compatible endpoint (cache first), with at most
    ``config.concurrency`` calls in flight; results keep the input order."""
    batch = _Batch(requests, config, description, cache)
    backend = OpenAIChatBackend(config) if batch.pending else None
    semaphore = asyncio.Semaphore(config.concurrency)

    async def answer(key: str, request: ChatRequest) -> None:
        async with semaphore:
            result = await _call_with_retries(backend, request, config.max_attempts)
        batch.record(key, result)

    try:
        if backend is not None:
            tasks = [
                asyncio.ensure_future(answer(key, requests[indices[0]]))
                for key, indices in batch.pending.items()
            ]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    finally:
        batch.close()
        if backend is not None:
            await backend.aclose()
    return batch.finish()


def run_local_batch(
    requests: Sequence[ChatRequest],
    config: EndpointConfig,
    *,
    description: str = "meta-judge",
    cache: ResponseCache | None = None,
) -> tuple[list[ChatResult], BatchStats]:
    """Answer every request with an in-process model (``hf`` or ``vllm`` backend), in batches;
    each finished batch is cached at once. When sampling, empty answers are asked again, up to
    ``max_attempts`` in all."""
    from ralign_tasks.scorers.local_backends import local_backend

    batch = _Batch(requests, config, description, cache)
    try:
        todo = {key: requests[indices[0]] for key, indices in batch.pending.items()}
        attempts: dict[str, ChatResult] = {key: ChatResult(text=None) for key in todo}
        backend = local_backend(config) if todo else None
        # Asking a greedy local model again gives the same empty answer: one attempt then.
        sampling = any(request.temperature > 0 for request in todo.values())
        max_attempts = config.max_attempts if sampling else 1
        for attempt in range(1, max_attempts + 1):
            if not todo:
                break
            keys = list(todo)
            for position, completion, wall_s in backend.generate([todo[k] for k in keys]):
                key = keys[position]
                result = attempts[key]
                result.attempts = attempt
                result.prompt_tokens += completion.prompt_tokens
                result.completion_tokens += completion.completion_tokens
                result.wall_s += wall_s
                if completion.text.strip():
                    result.text, result.finish_reason = completion.text, completion.finish_reason
                    result.error = None
                else:
                    result.error = f"empty answer after {attempt} attempt(s)"
                if result.ok or attempt == max_attempts:
                    batch.record(key, result)
                    del todo[key]
    finally:
        batch.close()
    return batch.finish()


def run_chat_batch(
    requests: Sequence[ChatRequest],
    config: EndpointConfig,
    *,
    description: str = "meta-judge",
    cache: ResponseCache | None = None,
) -> tuple[list[ChatResult], BatchStats]:
    """Answer every request with the configured backend; results keep the input order."""
    if config.backend == "openai":
        return asyncio.run(
            run_chat_batch_async(requests, config, description=description, cache=cache)
        )
    return run_local_batch(requests, config, description=description, cache=cache)


def _storable(result: ChatResult) -> dict[str, Any]:
    """The fields of a successful result worth keeping (``cached`` is set on the way out)."""
    return {
        "text": result.text,
        "error": result.error,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "wall_s": result.wall_s,
        "attempts": result.attempts,
    }

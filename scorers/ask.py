"""The one ask-until-valid loop: every judge call of every path (the engine's OpenAI-compatible
and in-process backends, the Inspect scorers) asks through :func:`ask_until_valid`, so a
failure means the same thing everywhere.

One request is asked up to ``max_attempts`` times:

- an answer that the caller's ``check`` accepts ends the loop (``JudgeCall.ok``);
- an empty answer, or one that ``check`` rejects with :class:`InvalidAnswer` (a protocol
  breach, e.g. no ``Rx@Sy`` block), is asked again as a fresh attempt;
- an error the transport already retried (the engine's transport or Inspect's own retries of
  429/5xx/timeouts/connection errors) ends the loop at once: retrying it again would multiply
  the caller's retry budget;
- any other error (a 200 whose body is not a chat completion: invalid JSON, HTML, no
  ``choices``) is asked again;
- an error every further call would repeat (bad key, unknown model or route) raises
  :class:`FatalEndpointError` and stops the run.

What is still not valid after the last attempt is a counted failure (``JudgeCall.ok`` false,
``error`` saying why), never an exception that loses other work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Pause before asking again after an empty answer or an unretried error: 0.5 s, 1 s, 2 s, …
# capped at 8 s. A malformed answer is asked again at once (the endpoint is answering fine).
RETRY_PAUSE_BASE_S = 0.5
RETRY_PAUSE_MAX_S = 8.0
# HTTP statuses that no retry can fix: bad key, forbidden, unknown model or route.
FATAL_STATUSES = frozenset({401, 403, 404})


class InvalidAnswer(ValueError):
    """An answer that breaks the judge's output protocol: it is asked again."""


class StopRun(RuntimeError):
    """An error that ends the run at once instead of being counted per request."""


class FatalEndpointError(StopRun):
    """An error that every further call would repeat (authentication, unknown model/route)."""


class EndpointDownError(FatalEndpointError):
    """The endpoint stayed unreachable for longer than the retry budget: the run stops (a
    rerun resumes from the cache)."""


class TransportGaveUp(RuntimeError):
    """A harness's transport retried an error and gave up; the message is that error's."""


@dataclass(frozen=True)
class Answer:
    """One answer of a chat endpoint."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class JudgeCall(Generic[T]):
    """What came of asking one request until valid. ``value`` is what ``check`` made of the
    accepted answer; ``error`` is ``None`` exactly when an answer was accepted."""

    value: T | None = None
    answer: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    cached: bool = False  # every attempt was answered from the cache

    @property
    def ok(self) -> bool:
        return self.error is None and self.attempts > 0

    def to_dict(self) -> dict[str, Any]:
        """The call as plain JSON types (without ``value``: its meaning is the caller's)."""
        return {
            "ok": self.ok,
            "answer": self.answer,
            "error": self.error,
            "finish_reason": self.finish_reason,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": self.wall_s,
            "cached": self.cached,
        }


def redact_secret(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of the API key ``secret`` replaced by ``***`` (a key too
    short to be told from ordinary text is left alone)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def accept_any(text: str) -> str:
    """The check of a GenRM call: every non-empty answer is its output."""
    return text


def _type_and_message(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception an error was raised from."""
    seen = {id(exc)}

    def inner_of(error: BaseException) -> BaseException | None:
        if error.__cause__ is not None:
            return error.__cause__
        return None if error.__suppress_context__ else error.__context__

    while (inner := inner_of(exc)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception and, when it wraps another of another type, the
    root cause first: a refused connection that the client reports as a timeout reads
    ``ConnectionRefusedError: … (reported as APITimeoutError)``. A :class:`TransportGaveUp`
    is described by its message (its inner error's description)."""
    if isinstance(exc, TransportGaveUp):
        return str(exc).strip()
    if getattr(exc, "status_code", None) is not None:  # the server answered: its error is it
        return _type_and_message(exc)
    root = root_cause(exc)
    if root is exc or type(root) is type(exc):
        return _type_and_message(exc)
    return f"{_type_and_message(root)} (reported as {type(exc).__name__})"


def is_fatal(exc: BaseException) -> bool:
    """Whether an error would repeat on every call (an HTTP 401/403/404 of any client)."""
    return getattr(exc, "status_code", None) in FATAL_STATUSES


def retry_pause(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after an empty answer or an error."""
    return min(RETRY_PAUSE_BASE_S * 2**attempt, RETRY_PAUSE_MAX_S)


async def ask_until_valid(
    ask: Callable[[int], Awaitable[Answer]],
    check: Callable[[str], T],
    max_attempts: int,
    *,
    gave_up: Callable[[BaseException], bool],
    redact: Callable[[str], str] = lambda message: message,
    pause: bool = True,
) -> JudgeCall[T]:
    """Ask (``ask(attempt)``, attempts numbered from 0) until ``check`` accepts an answer, at
    most ``max_attempts`` times (see the module docstring for what is asked again).

    ``gave_up(exc)`` tells whether the transport already retried ``exc``; ``redact`` removes
    secrets from error texts; ``pause`` waits before re-asking after an empty answer or error
    (off for in-process models, where waiting changes nothing).
    """
    call: JudgeCall[T] = JudgeCall()
    started = time.perf_counter()
    from_cache = True
    for attempt in range(max_attempts):
        call.attempts = attempt + 1
        try:
            answer = await ask(attempt)
        except StopRun:
            raise
        except Exception as exc:  # counted below; only fatal ones stop the run
            message = redact(describe_error(exc))
            if is_fatal(exc):
                raise FatalEndpointError(message) from None
            # The record pairs the last error with the last answer: this attempt had none.
            call.error, call.answer, call.finish_reason, from_cache = message, None, None, False
            if gave_up(exc):
                break
            if pause and attempt + 1 < max_attempts:
                await asyncio.sleep(retry_pause(attempt))
            continue
        from_cache = from_cache and answer.cached
        call.prompt_tokens += answer.prompt_tokens
        call.completion_tokens += answer.completion_tokens
        call.answer, call.finish_reason = answer.text, answer.finish_reason
        if not answer.text.strip():
            call.error = f"empty answer (finish reason: {answer.finish_reason})"
            if pause and attempt + 1 < max_attempts:
                await asyncio.sleep(retry_pause(attempt))
            continue
        try:
            call.value = check(answer.text)
        except InvalidAnswer as exc:
            call.error = f"malformed answer: {exc}"
            continue
        call.error = None
        break
    call.cached = from_cache and call.ok
    call.wall_s = time.perf_counter() - started
    return call

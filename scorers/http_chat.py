"""The engine's HTTP path to an OpenAI-compatible ``/chat/completions``: one ``aiohttp``
session per batch, each request's transport retries run by ``tenacity``.

What is retried, and how, is what OpenAI-compatible clients do: 408, 409, 429 and 5xx
answers, timeouts and connection errors, up to ``max_attempts`` sends in all, waiting what
the server asks (``retry-after-ms`` or ``Retry-After``, when at most a minute) or else an
exponential backoff with jitter (0.5 s, 1 s, 2 s, … capped at 8 s). Every other error answer
is raised at once. The request body is serialised once and the answer parsed once, with no
typed request or response models: on a small machine against a fast endpoint, the client's
CPU per request is what limits throughput (see ``benchmarks/metajudge_throughput.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential, wait_random

from ralign_tasks.scorers.config import EndpointConfig

# A server's own Retry-After is followed up to this many seconds; a longer one (a daily quota)
# is the backoff's business, so that a run never sleeps for hours on one request.
MAX_RETRY_AFTER_S = 60.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
BACKOFF_JITTER_S = 0.25
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# How much of an error answer's body its message quotes.
_ERROR_BODY_CHARS = 500


class EndpointError(Exception):
    """The endpoint could not be asked, or answered with an error; raised after the transport's
    own retries (when the error is retryable)."""

    status_code: int | None = None


class EndpointStatusError(EndpointError):
    """An HTTP error answer: ``Error code: <status> - <the server's message>``."""

    def __init__(self, status_code: int, detail: str, retry_after: float | None) -> None:
        super().__init__(f"Error code: {status_code} - {detail}")
        self.status_code = status_code
        self.retry_after = retry_after


class BadRequestError(EndpointStatusError):
    """400: the server refuses the request as it is."""


class AuthenticationError(EndpointStatusError):
    """401: no key, or a wrong one."""


class PermissionDeniedError(EndpointStatusError):
    """403: the key may not use this model or route."""


class NotFoundError(EndpointStatusError):
    """404: no such model or route (often a base URL without ``/v1``)."""


class RateLimitError(EndpointStatusError):
    """429: too many requests or tokens; retried."""


class InternalServerError(EndpointStatusError):
    """5xx: the server failed; retried."""


class EndpointTimeoutError(EndpointError):
    """No complete answer within the configured timeout; retried."""


class EndpointConnectionError(EndpointError):
    """The endpoint could not be reached, or dropped the connection; retried. The underlying
    error (refused, reset, DNS) is its cause."""


_STATUS_ERRORS: dict[int, type[EndpointStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error(status: int, body: bytes, headers: Any) -> EndpointStatusError:
    """The error of an HTTP error answer, with the server's message and its Retry-After."""
    text = body.decode("utf-8", errors="replace")
    detail = text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else parsed.get("message")
        detail = str(message) if message else text
    kind = _STATUS_ERRORS.get(status) or (
        InternalServerError if status >= 500 else EndpointStatusError
    )
    return kind(status, detail.strip()[:_ERROR_BODY_CHARS], retry_after(headers))


def retry_after(headers: Any) -> float | None:
    """The seconds a server asks to wait (``retry-after-ms``, else ``Retry-After`` in seconds
    or as an HTTP date); ``None`` when it asks nothing usable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def is_retryable(exc: BaseException) -> bool:
    """Whether the transport sends a request again after this error."""
    if isinstance(exc, (EndpointTimeoutError, EndpointConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, EndpointStatusError) and (
        status in RETRYABLE_STATUSES or (status is not None and status >= 500)
    )


class _WaitAsAsked(wait_base):
    """The server's Retry-After when it gives a usable one, else the exponential backoff."""

    def __init__(self) -> None:
        self.backoff = wait_exponential(multiplier=BACKOFF_FIRST_S, max=BACKOFF_MAX_S) + (
            wait_random(0, BACKOFF_JITTER_S)
        )

    def __call__(self, retry_state: Any) -> float:
        outcome = retry_state.outcome
        asked = getattr(outcome.exception(), "retry_after", None) if outcome else None
        if asked is not None and 0 <= asked <= MAX_RETRY_AFTER_S:
            return float(asked)
        return float(self.backoff(retry_state))


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP(S)_PROXY``, ``NO_PROXY``)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class ChatClient:
    """Posts chat completion requests to one endpoint; counts every HTTP request sent (the
    retries included). Create and close it inside the event loop that uses it."""

    def __init__(self, config: EndpointConfig) -> None:
        self.url = f"{config.endpoint}/chat/completions"
        self.timeout = config.timeout
        self.headers = {
            "Authorization": f"Bearer {config.api_key or 'EMPTY'}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.http_requests = 0
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.concurrency),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
        )
        # Looked up once: aiohttp's own lookup (``trust_env``) also reads ~/.netrc in a thread
        # on every request, which took more CPU than the rest of the request.
        self.proxy = env_proxy(self.url)
        self.retrying = AsyncRetrying(
            stop=stop_after_attempt(config.max_attempts),
            wait=_WaitAsAsked(),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )

    async def post(self, body: dict[str, Any]) -> Any:
        """The JSON value of a 200 answer to ``body``; :class:`EndpointError` once the
        transport gives up, ``ValueError`` for a 200 whose body is not JSON."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        # The first send goes without tenacity: setting up its per-call state costs about a
        # tenth of a millisecond of CPU, a fifth of the whole request, and the first send
        # nearly always succeeds. Its error, if any, is tenacity's first attempt.
        try:
            raw = await self._send(payload)
        except EndpointError as first_error:
            raw = await self._retry(payload, first_error)
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError(f"not a chat completion: {raw[:200]!r}") from None

    async def _retry(self, payload: bytes, first_error: EndpointError) -> bytes:
        """Hand the request to tenacity after its first send failed with ``first_error``:
        tenacity decides, from that error on, whether, when and how often to send again."""
        pending: EndpointError | None = first_error
        async for attempt in self.retrying.copy():
            with attempt:
                if pending is not None:
                    error, pending = pending, None
                    raise error
                return await self._send(payload)
        raise AssertionError("tenacity ended without an answer or an error")  # reraise=True

    async def _send(self, payload: bytes) -> bytes:
        self.http_requests += 1
        try:
            async with self.session.post(
                self.url, data=payload, headers=self.headers, proxy=self.proxy
            ) as answer:
                body = await answer.read()
                if answer.status >= 400:
                    raise status_error(answer.status, body, answer.headers)
                return body
        except asyncio.TimeoutError:
            raise EndpointTimeoutError(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise EndpointConnectionError(f"cannot reach {self.url}: {exc}") from exc

    async def aclose(self) -> None:
        await self.session.close()

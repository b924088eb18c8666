"""The engine's HTTP path to an OpenAI-compatible ``/chat/completions``: one ``aiohttp``
session per batch, and the retry policy that lets a run outlast a real outage.

A request is sent again after a transient failure (408, 409, 429 and 5xx answers, timeouts,
connection errors) until it succeeds or its **retry budget** (``retry_budget`` seconds since
its first send) would be exceeded, waiting what the server asks (``retry-after-ms`` or
``Retry-After``, when at most a minute and within the budget) or else a capped exponential
backoff with jitter (0.5 s, 1 s, 2 s, … 8 s). Every other error answer is raised at once.

While the endpoint refuses connections (a server restarting), requests do not each burn their
budget: they wait together while one of them probes the endpoint at the backoff's pace, and
all go on once it answers. If it is still unreachable ``retry_budget`` seconds after it went
down, :class:`EndpointDownError` stops the run (a rerun resumes from the cache).

An answer larger than ``max_answer_bytes`` is a counted failure naming the limit; error texts
that quote the server are redacted of the API key before they are cut. The request body is
serialised once and the answer parsed once, with no typed request or response models: on a
small machine against a fast endpoint, the client's CPU per request is what limits throughput
(see ``benchmarks/metajudge_throughput.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ralign_tasks.scorers.ask import EndpointDownError, redact_secret
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.jsonl import json_text

logger = logging.getLogger("ralign_tasks.http")

# A server's own Retry-After is followed up to this many seconds; a longer one (a daily quota)
# is the backoff's business, so that a run never sleeps for hours on one request.
MAX_RETRY_AFTER_S = 60.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
BACKOFF_JITTER_S = 0.25
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# How much of an error answer's body its message quotes.
_ERROR_BODY_CHARS = 500
# How much of a 200 that is not a chat completion its message quotes.
QUOTE_CHARS = 200
_READ_CHUNK = 1 << 16
# A model's `created` this close to the answer's own time is the time of the answer (vLLM
# stamps its model list when asked), not the model's.
_STAMPED_NOW_S = 5.0
# A 400 saying max_tokens does not fit the model's context, with the context's size and the
# prompt's tokens (vLLM's wordings, old and new): the request fits with fewer completion tokens.
_CONTEXT_SIZE = re.compile(r"maximum context length is (\d+) tokens|max_model_len=(\d+)")
_PROMPT_TOKENS = re.compile(r"\((\d+) in the messages|request has (\d+) input tokens")
# vLLM's check before it counts the prompt: max_tokens alone exceeds the context.
_OVER_CONTEXT = re.compile(r"cannot be greater than max_model_len=(\d+)")


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


class AnswerTooLargeError(EndpointError):
    """An answer beyond ``max_answer_bytes`` (an endless body): counted, never retried."""


_STATUS_ERRORS: dict[int, type[EndpointStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def redacted_quote(text: str, secret: str | None, chars: int) -> str:
    """At most ``chars`` characters of a server's text, the key removed first (so that no part
    of it survives the cut)."""
    return redact_secret(text, secret)[:chars]


def status_error(
    status: int, body: bytes, headers: Any, secret: str | None = None
) -> EndpointStatusError:
    """The error of an HTTP error answer, with the server's message (without the key) and its
    Retry-After."""
    text = body.decode("utf-8", errors="replace")
    detail = text
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else parsed.get("message")
        detail = str(message) if message else text
    kind = _STATUS_ERRORS.get(status) or (
        InternalServerError if status >= 500 else EndpointStatusError
    )
    return kind(status, redacted_quote(detail.strip(), secret, _ERROR_BODY_CHARS),
                retry_after(headers))  # fmt: skip


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


def backoff(attempt: int) -> float:
    """Seconds before send ``attempt + 2`` after a transient error with no usable Retry-After:
    0.5 s, 1 s, 2 s, … capped at 8 s, plus up to a quarter second of jitter (so that requests
    that failed together do not all come back together)."""
    return min(BACKOFF_FIRST_S * 2**attempt, BACKOFF_MAX_S) + random.uniform(0, BACKOFF_JITTER_S)


def is_unreachable(exc: BaseException) -> bool:
    """Whether an error says the endpoint is not there (refused, reset, DNS), as opposed to an
    answer, even an error answer, or a slow one."""
    return isinstance(exc, EndpointConnectionError)


class _Reachability:
    """Whether the endpoint accepts connections, shared by a client's requests. While it does
    not, one request (the probe) keeps sending at the backoff's pace; the others wait for it
    to get through."""

    def __init__(self, host: str, budget: float) -> None:
        self.host = host
        self.budget = budget
        self.down_since: float | None = None
        self.last_error: BaseException | None = None
        self.prober: object | None = None
        self.announced = False
        self.back = asyncio.Event()
        self.back.set()

    def went_down(self, exc: BaseException) -> None:
        """A request could not reach the endpoint. Said on the console from the second such
        failure of an outage: a lone dropped connection (a keep-alive race) is no outage."""
        self.last_error = exc
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.back.clear()
        elif not self.announced:
            self.announced = True
            logger.warning(
                "%s is unreachable (%s); requests wait for it to come back, at most %g s "
                "(retry_budget)", self.host, exc, self.budget,
            )  # fmt: skip

    def reached(self) -> None:
        """The endpoint answered (anything, an error answer included)."""
        if self.down_since is not None:
            if self.announced:
                logger.warning(
                    "%s answers again after %.1f s",
                    self.host, time.monotonic() - self.down_since,
                )  # fmt: skip
            self.down_since = None
            self.announced = False
            self.back.set()
        self.prober = None

    def release(self, request: object) -> None:
        """``request`` leaves (an answer, an error, a cancellation): if it was the probe,
        another waiting request takes over."""
        if self.prober is request:
            self.prober = None

    def _gone_for_good(self) -> EndpointDownError:
        return EndpointDownError(
            f"unreachable for more than {self.budget:g} s (retry_budget): {self.last_error}. "
            "Every finished item and every answer received is kept: run the same command "
            "again to resume"
        )

    async def enter(self, request: object) -> float:
        """Wait until ``request`` may be sent (while the endpoint is down, only as the probe);
        the seconds it waited."""
        if self.down_since is None:
            return 0.0
        entered = time.monotonic()
        while self.down_since is not None:
            left = self.down_since + self.budget - time.monotonic()
            if left <= 0:
                raise self._gone_for_good()
            if self.prober is None or self.prober is request:
                self.prober = request
                break
            # Woken when the endpoint is back, or to look again whether the probe left.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.back.wait(), min(left, 1.0))
        return time.monotonic() - entered


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP(S)_PROXY``, ``NO_PROXY``)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def fitting_max_tokens(error: str, asked: int) -> int | None:
    """The completion tokens that fit when a server refused ``asked`` for its context and said
    how large the context and the prompt are (or, before counting the prompt, that ``asked``
    alone exceeds the context: the context's size, which the server then refuses with the
    counts); ``None`` when it did not say, or nothing fits."""
    over = _OVER_CONTEXT.search(error)
    if over:
        room = int(over.group(1))
        return room if 0 < room < asked else None
    size, prompt = _CONTEXT_SIZE.search(error), _PROMPT_TOKENS.search(error)
    if not (size and prompt):
        return None
    room = int(size.group(1) or size.group(2)) - int(prompt.group(1) or prompt.group(2))
    return room if 0 < room < asked else None


class ChatClient:
    """Posts chat completion requests to one endpoint; counts every HTTP request sent (the
    retries included). Create and close it inside the event loop that uses it."""

    def __init__(self, config: EndpointConfig) -> None:
        self.base_url = config.endpoint
        self.url = f"{config.endpoint}/chat/completions"
        self.timeout = config.timeout
        self.budget = config.retry_budget
        self.max_answer_bytes = config.max_answer_bytes
        self.secret = config.api_key
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
        self.reachability = _Reachability(config.host, config.retry_budget)
        self.host = config.host
        self.context_announced = False

    async def post(self, body: dict[str, Any]) -> Any:
        """The JSON value of a 200 answer to ``body``; :class:`EndpointError` once the
        retry policy gives up (see the module docstring), :class:`EndpointDownError` when the
        endpoint stays unreachable, ``ValueError`` for a 200 whose body is not JSON."""
        payload = json_text(body).encode("utf-8")
        started = time.monotonic()
        attempt = 0
        request = object()  # this request, for the reachability gate
        try:
            while True:
                # Waiting out an outage is the outage's budget, not the request's.
                started += await self.reachability.enter(request)
                try:
                    raw = await self._send(payload)
                except EndpointError as exc:
                    fitting = (
                        fitting_max_tokens(str(exc), body["max_tokens"])
                        if isinstance(exc, BadRequestError) and "max_tokens" in body
                        else None
                    )
                    if fitting is not None:  # the same request, asking what fits the context
                        self._announce_context(body["max_tokens"], str(exc))
                        body = {**body, "max_tokens": fitting}
                        payload = json_text(body).encode("utf-8")
                        continue
                    if is_unreachable(exc):
                        self.reachability.went_down(exc)
                    elif isinstance(exc, EndpointStatusError):  # an answer, if an error
                        self.reachability.reached()
                    if not is_retryable(exc):
                        raise
                    if self.reachability.down_since is not None:
                        wait: float | None = backoff(attempt)  # `enter` ends a long outage
                    else:
                        wait = self._wait(exc, attempt, started)
                        if wait is None:
                            raise
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
                self.reachability.reached()
                break
        finally:
            self.reachability.release(request)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            text = raw.decode("utf-8", errors="replace")
            quoted = redacted_quote(text, self.secret, QUOTE_CHARS)
            raise ValueError(f"not a chat completion: {quoted!r}") from None

    def _announce_context(self, asked: int, error: str) -> None:
        if self.context_announced:
            return
        self.context_announced = True
        found = _CONTEXT_SIZE.search(error)
        size = (found.group(1) or found.group(2)) if found else "?"
        logger.warning(
            "%s: max_tokens %d does not fit the model's context (%s tokens) with the prompt; "
            "each such request asks for what fits instead (set MAX_TOKENS of this role, e.g. "
            "RALIGN_METAJUDGE_MAX_TOKENS, to choose)",
            self.host, asked, size,
        )  # fmt: skip

    def _wait(self, exc: EndpointError, attempt: int, started: float) -> float | None:
        """Seconds to wait before sending again, or ``None`` when the wait would end past the
        retry budget: the server's Retry-After when usable, else the backoff."""
        asked = getattr(exc, "retry_after", None)
        wait = (
            float(asked)
            if asked is not None and 0 <= asked <= MAX_RETRY_AFTER_S
            else backoff(attempt)
        )
        if time.monotonic() + wait - started > self.budget:
            return None
        return wait

    async def _send(self, payload: bytes) -> bytes:
        self.http_requests += 1
        try:
            async with self.session.post(
                self.url, data=payload, headers=self.headers, proxy=self.proxy
            ) as answer:
                body = await self._read(answer)
                if answer.status >= 400:
                    raise status_error(answer.status, body, answer.headers, self.secret)
                return body
        except asyncio.TimeoutError:
            raise EndpointTimeoutError(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise EndpointConnectionError(f"cannot reach {self.url}: {exc}") from exc

    async def _read(self, answer: aiohttp.ClientResponse) -> bytes:
        """The body, at most ``max_answer_bytes`` of it (an endless body is refused, never
        held)."""
        limit = self.max_answer_bytes
        length = answer.content_length
        if length is not None and length <= limit:
            return await answer.read()
        if length is None:
            body = bytearray()
            async for chunk in answer.content.iter_chunked(_READ_CHUNK):
                body += chunk
                if len(body) > limit:
                    break
            else:
                return bytes(body)
        answer.close()  # the rest is never read
        raise AnswerTooLargeError(
            f"the answer exceeded max_answer_bytes ({limit:,} bytes; HTTP {answer.status})"
        )

    async def model_identity(self, model: str) -> dict[str, Any] | None:
        """What the endpoint says of the model it serves under ``model`` (``GET /models``:
        ``id``, and ``root`` and ``created`` when given), or ``None`` when it says nothing
        usable. Raises :class:`EndpointError` when it cannot be reached. (Not counted in
        ``http_requests``, which counts chat calls.)"""
        try:
            async with self.session.get(
                f"{self.base_url}/models", headers=self.headers, proxy=self.proxy,
                timeout=aiohttp.ClientTimeout(total=min(self.timeout, 30.0)),
            ) as answer:  # fmt: skip
                if answer.status >= 400:
                    return None
                body = await self._read(answer)
                stamped = _answer_time(answer.headers.get("date"))
        except asyncio.TimeoutError:
            raise EndpointTimeoutError("no answer to GET /models within 30 s") from None
        except aiohttp.ClientError as exc:
            raise EndpointConnectionError(f"cannot reach {self.base_url}/models: {exc}") from exc
        except AnswerTooLargeError:
            return None
        try:
            listing = json.loads(body)
        except (ValueError, RecursionError):
            return None
        entries = listing.get("data") if isinstance(listing, dict) else None
        entry = next(
            (e for e in entries or [] if isinstance(e, dict) and e.get("id") == model), None
        ) if isinstance(entries, list) else None  # fmt: skip
        if entry is None:
            return None
        identity = {key: entry[key] for key in ("id", "root", "created") if key in entry}
        created = identity.get("created")
        if isinstance(created, (int, float)) and abs(created - stamped) <= _STAMPED_NOW_S:
            del identity["created"]
        return identity

    async def aclose(self) -> None:
        await self.session.close()


def _answer_time(date_header: str | None) -> float:
    """When the server answered: its ``Date`` header, else this machine's clock."""
    if date_header:
        try:
            return parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()

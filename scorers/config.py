"""Settings of a chat endpoint (meta-judge or GenRM), from env vars and/or a mapping: where and
how requests are sent, nothing about what they ask (the judge's other settings, its templates,
are in :mod:`settings`).

A key is ``<PREFIX><KEY>`` in the environment (``RALIGN_METAJUDGE_TIMEOUT``), or ``<key>`` in a
mapping such as the CLI's flags; a mapping value wins over the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from ralign_tasks.scorers.errors import UserError

logger = logging.getLogger("ralign_tasks.settings")

# Where the openai client sends requests when no base URL is given.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
METAJUDGE_ENV_PREFIX = "RALIGN_METAJUDGE_"
GENRM_ENV_PREFIX = "RALIGN_GENRM_"
BACKENDS = ("openai", "vllm", "hf")
# Provider batch APIs (scorers/batch_api.py) and what becomes of a request a batch left unanswered.
BATCH_PROVIDERS = ("openai", "anthropic")
BATCH_FAILED = ("sync", "count")
# Earlier names of settings, still read (with a warning): old name -> setting.
ALIASES = {"use_cache": "cache"}


# Seconds within which a request's transient failures are sent again (see ``retry_budget``).
DEFAULT_RETRY_BUDGET_S = 300.0


def _default_retry_budget() -> float:
    # Looked up when a config is made, so that a test suite can shorten it for every config.
    return DEFAULT_RETRY_BUDGET_S


class ConfigError(UserError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to call a chat model. ``api_key`` is never shown in reprs or logs."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    backend: str = "openai"
    concurrency: int = 128
    # Seconds one send may take before it is a timeout (a hung request is found in minutes).
    timeout: float = 600.0
    # Asks of a request whose answer is empty, malformed or not a chat completion.
    max_attempts: int = 3
    # Seconds within which a request's transient failures (429, 5xx, timeouts, connection
    # errors) are sent again, and an unreachable endpoint is waited for: long enough to
    # outlast a server restart (a vLLM restart takes about 90 s).
    retry_budget: float = field(default_factory=_default_retry_budget)
    # An answer beyond this size (an endless body) is a counted failure.
    max_answer_bytes: int = 8 * 1024 * 1024
    temperature: float = 0.4
    max_tokens: int = 16384
    # A provider's batch API for the requests no cached answer serves (openai, anthropic), and
    # what becomes of a request the batch did not answer: asked again synchronously (sync) or
    # counted as failed (count).
    batch: str | None = None
    batch_failed: str = "sync"
    cache_dir: str | None = None
    # Whether answers are read from and written to the cache (``cache_dir``).
    cache: bool = True
    # In-process backends (vllm, hf): passed through to vllm.LLM / transformers.
    dtype: str | None = None
    device_map: str | None = None
    batch_size: int = 8
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None

    @classmethod
    def from_sources(
        cls,
        prefix: str = METAJUDGE_ENV_PREFIX,
        overrides: Mapping[str, Any] | None = None,
        env_names: Collection[str] | None = None,
        **defaults: Any,
    ) -> EndpointConfig:
        """Build from ``defaults`` < environment (``prefix + KEY``) < ``overrides``; with
        ``env_names``, only those settings are read from the environment (a path that takes
        the others its own way, Inspect's model role, is not stopped by a malformed one)."""
        values: dict[str, Any] = dict(defaults)
        given: set[str] = set()  # settings the user chose (environment or overrides)
        for name in (*ALIASES, *cls.names()):
            value = os.environ.get(prefix + name.upper())
            if value in (None, "") or (
                env_names is not None and ALIASES.get(name, name) not in env_names
            ):
                continue
            if name in ALIASES:
                logger.warning(
                    "%s%s is now %s%s", prefix, name.upper(), prefix, ALIASES[name].upper()
                )
                name = ALIASES[name]
            values[name] = value
            given.add(name)
        for name, value in (overrides or {}).items():
            if value not in (None, ""):
                values[name] = value
                given.add(name)
        if not values.get("api_key") and not values.get("base_url"):
            # Talking to api.openai.com itself: the usual OpenAI variable is fine.
            values["api_key"] = os.environ.get("OPENAI_API_KEY")
        if values.get("backend") == "hf" and "temperature" not in given:
            values["temperature"] = 0.0  # transformers judging is greedy unless asked otherwise
        config = cls(**{name: _coerce(cls, prefix, name, value) for name, value in values.items()})
        if env_names is None or "base_url" in env_names:
            config.check_credentials(prefix)
        return config

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name (``model``, ``base_url``, …)."""
        return tuple(spec.name for spec in fields(cls))

    def check_credentials(self, prefix: str) -> None:
        """Refuse a base URL that carries credentials: the client always sends its key as a
        bearer token, and aiohttp then refuses every request ("Cannot combine AUTHORIZATION
        header with … credentials"); the key belongs in ``<prefix>API_KEY``."""
        if self.backend != "openai":
            return
        parts = urlsplit(self.base_url or os.environ.get("OPENAI_BASE_URL") or "")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                f"the base URL of host {parts.hostname} carries credentials (user:password@): "
                f"pass the key as {prefix}API_KEY and remove it from the URL"
            )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in (
            "concurrency",
            "max_attempts",
            "max_tokens",
            "batch_size",
            "tensor_parallel_size",
            "data_parallel_size",
            "max_answer_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch not in (None, *BATCH_PROVIDERS):
            raise ConfigError(f"batch must be one of {BATCH_PROVIDERS}, got {self.batch!r}")
        if self.batch is not None and self.backend != "openai":
            raise ConfigError(f"batch needs an endpoint, not the {self.backend} backend")
        if self.batch_failed not in BATCH_FAILED:
            raise ConfigError(
                f"batch_failed must be one of {BATCH_FAILED}, got {self.batch_failed!r}"
            )
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")
        if self.retry_budget < 0:
            raise ConfigError(f"retry_budget must be 0 or more, got {self.retry_budget}")

    def require_model(self, role: str, prefix: str, flags: str = "") -> EndpointConfig:
        """Return self, or raise a clear error if no model is configured, naming the variables
        and, where given, the command's own ``flags`` for it."""
        if not self.model:
            raise ConfigError(
                f"no {role} model configured: {flags}set {prefix}MODEL (and {prefix}BASE_URL "
                f"for an OpenAI-compatible server such as `vllm serve`, {prefix}API_KEY if it "
                "needs one)"
            )
        return self

    def with_(self, **changes: Any) -> EndpointConfig:
        return replace(self, **changes)

    @property
    def endpoint(self) -> str:
        """Who answers: the base URL the openai client uses (never with credentials: see
        ``__post_init__``), or the in-process backend. Part of every cache key, so two
        endpoints that serve the same model name never share answers."""
        if self.backend != "openai":
            return f"in-process:{self.backend}"
        base = self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
        return base.rstrip("/")

    @property
    def host(self) -> str:
        """``host:port`` of the endpoint (or the in-process backend), for messages."""
        return host_of(self.endpoint) if self.backend == "openai" else self.endpoint


def _coerce(cls: type[EndpointConfig], prefix: str, name: str, value: Any) -> Any:
    kind = {spec.name: spec.type for spec in fields(cls)}.get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r}")
    kind = str(kind).removesuffix(" | None")
    if value is None or not isinstance(value, str):
        return value
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return lowered in ("1", "true", "yes", "on")
    except ValueError:
        raise ConfigError(
            f"{prefix}{name.upper()} (or {name!r}) must be of type {kind}, got {value!r}"
        ) from None
    return value


def host_of(url: str) -> str:
    """``host:port`` of a URL, never its user name or password (the URL itself when it has no
    host)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname

"""The meta-judge's settings: one object (:class:`JudgeSettings`), resolved once from defaults <
environment < the path's own syntax, with one spelling and one default per setting everywhere.

A setting ``<key>`` (:func:`judge_settings`) is spelled

- CLI: ``--metajudge-<key>`` (dashes) on ``run``, ``score``, ``rc-score`` and ``rejudge``;
- environment: ``RALIGN_METAJUDGE_<KEY>``;
- lm-eval: ``--metadata '{"metajudge_<key>": …}'``;
- Inspect: ``-T metajudge_<key>``, except where Inspect has syntax of its own for it
  (:attr:`Setting.inspect`): its judge is the model bound to the role ``meta_judge``
  (``--model-role meta_judge=<provider/model>``), so model, endpoint, key, concurrency and the
  in-process backends are that role's, and Inspect's own client sends its requests.

The **extractor** (the model that lists a free-form rationale's reasons) has the same transport
keys: ``--extractor-<key>``, ``RALIGN_EXTRACTOR_<KEY>``, lm-eval's ``extractor_<key>``, and in
Inspect the model role ``extractor``. Each key it is not given is the meta-judge's (the API key
only where its endpoint is the meta-judge's too).

The API key is read from the environment only in the CLI and lm-eval (:attr:`Setting.secret`).
Each family's judge template is a setting too, under the key its protocol declares, so that
this module knows no family. ``RALIGN_METAJUDGE=none`` switches the judge off in every path,
as the CLI's ``--no-metajudge``, lm-eval's ``metajudge: none`` and Inspect's ``-T
metajudge=none`` do. A name kept from an earlier release (:data:`ALIASES`) still works and
warns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ralign_tasks.scorers.config import ALIASES as TRANSPORT_ALIASES
from ralign_tasks.scorers.config import METAJUDGE_ENV_PREFIX, ConfigError, EndpointConfig

logger = logging.getLogger("ralign_tasks.settings")

# lm-eval's metadata keys and Inspect's task parameters: lm-eval merges --model_args into the
# same mapping, so a bare `model` there would be the GenRM's own.
NAME_PREFIX = "metajudge_"
EXTRACTOR_PREFIX = "extractor_"
EXTRACTOR_ENV_PREFIX = "RALIGN_EXTRACTOR_"
# `metajudge: none` (lm-eval, Inspect's -T), `RALIGN_METAJUDGE=none`: no judge.
SWITCH_NAME = "metajudge"
SWITCH_ENV = "RALIGN_METAJUDGE"
# Earlier names (without the prefix), read with a warning: old name -> setting key.
ALIASES = dict(TRANSPORT_ALIASES)

_ROLE = "--model-role meta_judge="
# What each transport setting means, and Inspect's own syntax for it (None: -T metajudge_<key>).
_TRANSPORT: dict[str, tuple[str, str | None]] = {
    "model": (
        "the judge's model name (in-process backends: a folder or hub name)",
        f"the role's model: {_ROLE}<provider/model>",
    ),
    "base_url": (
        "OpenAI-compatible /v1 root, e.g. http://localhost:8000/v1",
        f"the role's model_args: {_ROLE}'{{model: …, model_args: {{base_url: …}}}}'",
    ),
    "api_key": (
        "the endpoint's key (OPENAI_API_KEY when no base URL is set)",
        "the role's provider key variable (OPENAI_API_KEY, …)",
    ),
    "backend": (
        "openai (an endpoint), vllm or hf (in-process GPU judging)",
        "the role's provider: openai/…, vllm/…, hf/…",
    ),
    "concurrency": (
        "judge requests in flight at once",
        f"the role's max_connections: {_ROLE}'{{model: …, max_connections: 32}}'",
    ),
    "timeout": ("seconds one judge request may take", None),
    "max_attempts": ("asks per judge request (errors, empty or malformed answers)", None),
    "retry_budget": (
        "seconds within which a request's transient failures are sent again",
        f"Inspect's own retries: the role's max_retries, timeout ({_ROLE}'{{model: …}}')",
    ),
    "max_answer_bytes": (
        "a larger answer is a counted failure",
        "not applicable: Inspect's provider reads the answers",
    ),
    "batch": (
        "openai or anthropic: send the requests not in the cache as one provider batch (half "
        "price, answered within hours; a killed run polls the same batches again)",
        f"the role's own batch config: {_ROLE}'{{model: …, batch: true}}' (--batch batches "
        "the eval's model, the GenRM)",
    ),
    "batch_failed": (
        "a request the batch left unanswered or malformed: sync (asked again at once) or "
        "count (a counted failure)",
        "Inspect's batcher: a failed request is retried by Inspect",
    ),
    "temperature": ("the judge's sampling temperature", None),
    "max_tokens": ("the judge's answer limit in tokens", None),
    "cache_dir": (
        "where answers are cached",
        "Inspect's model cache: INSPECT_CACHE_DIR",
    ),
    "cache": ("read and write the judge's answers in the cache", None),
    **{
        name: (f"in-process backends: {name} of vllm.LLM / transformers", "the role's model_args")
        for name in (
            "dtype",
            "device_map",
            "batch_size",
            "tensor_parallel_size",
            "data_parallel_size",
            "gpu_memory_utilization",
            "max_model_len",
        )
    },
}
# Defaults shown where the field's own default does not say it.
_SHOWN_DEFAULTS = {
    "model": "none: required",
    "base_url": "OpenAI's API",
    "api_key": "OPENAI_API_KEY when no base URL is set",
    "temperature": "0.4; CLI and lm-eval with the hf backend: 0 (Inspect: 0.4 for every provider)",
    "cache_dir": "$RALIGN_CACHE_DIR, else the user cache dir",
    "cache": "on",
    "batch": "off",
    **{
        name: "the backend's own"
        for name in ("dtype", "device_map", "gpu_memory_utilization", "max_model_len")
    },
}


@dataclass(frozen=True)
class Setting:
    """One judge setting: its key, meaning, default and type, and where a path spells it
    otherwise than by the rule of this module's docstring."""

    key: str
    help: str
    default: Any
    kind: str  # "str", "int", "float" or "bool"
    # Inspect's own syntax for the setting, where it is not ``-T metajudge_<key>``.
    inspect: str | None = None
    # Read from the environment only in the CLI and lm-eval (never on a command line, nor in
    # lm-eval's results file, which records the metadata).
    secret: bool = False
    # A family's judge template (a path), not a transport setting.
    template: bool = False
    shown_default: str | None = None

    @property
    def flag(self) -> str:
        """The CLI's spelling."""
        return "--metajudge-" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return METAJUDGE_ENV_PREFIX + self.key.upper()

    @property
    def name(self) -> str:
        """lm-eval's ``--metadata`` key and Inspect's ``-T`` parameter."""
        return NAME_PREFIX + self.key

    @property
    def default_text(self) -> str:
        return self.shown_default or str(self.default)


def judge_settings(templates: Mapping[str, str]) -> tuple[Setting, ...]:
    """Every judge setting: the transport's, then one judge template per key of
    ``templates`` (key -> the family's title, for the help)."""
    transport, defaults = [], EndpointConfig()
    for spec in fields(EndpointConfig):
        help, inspect = _TRANSPORT[spec.name]  # a new transport field needs its line above
        transport.append(
            Setting(
                spec.name,
                help,
                getattr(defaults, spec.name),
                str(spec.type).removesuffix(" | None"),
                inspect,
                secret=spec.name == "api_key",
                shown_default=_SHOWN_DEFAULTS.get(spec.name),
            )
        )
    return (
        *transport,
        *(
            Setting(
                key,
                f"{title}: path of a Jinja2 template replacing the judge prompt",
                None,
                "str",
                template=True,
                shown_default="the bundled one",
            )
            for key, title in templates.items()
        ),
    )


@dataclass(frozen=True)
class JudgeSettings:
    """The judge of a run: where and how it is called (``transport``, which knows nothing of
    families) and the judge template each family's key names (``None``: the bundled one)."""

    transport: EndpointConfig
    templates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Who lists a free-form rationale's reasons (None: the meta-judge itself).
    extractor: EndpointConfig | None = None

    def endpoint_of(self, role: str) -> EndpointConfig:
        """The transport of a role's requests (``judge`` or ``extractor``)."""
        if role == "extractor" and self.extractor is not None:
            return self.extractor
        return self.transport

    def template(self, key: str | None) -> str | None:
        """The judge template chosen under a family's ``key``; ``None``: the bundled one."""
        return self.templates.get(key) if key else None

    def value(self, key: str) -> Any:
        """A setting's value by its key."""
        if key in EndpointConfig.names():
            return getattr(self.transport, key)
        return self.template(key)


def given_by_name(
    values: Mapping[str, Any],
    settings: Sequence[Setting],
    where: str,
    aliases: Mapping[str, str] = ALIASES,
) -> dict[str, Any]:
    """The settings among ``values`` named ``metajudge_<key>`` (lm-eval's metadata, Inspect's
    parameters), by key; names of other settings are not looked at. An alias warns; an unknown
    ``metajudge_…`` name, or a secret, is a :class:`ConfigError` naming ``where`` it was
    given."""
    known = {setting.key: setting for setting in settings}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if not name.startswith(NAME_PREFIX) or value is None:
            continue
        key = name.removeprefix(NAME_PREFIX)
        if key in aliases:
            warn_alias(name, NAME_PREFIX + aliases[key])
            key = aliases[key]
        setting = known.get(key)
        if setting is None:
            raise ConfigError(
                f"unknown meta-judge setting {name!r} in {where}; the settings are "
                + ", ".join(s.name for s in settings if not s.secret)
            )
        if setting.secret:
            raise ConfigError(
                f"pass {setting.name} as {setting.env} in the environment, not in {where}: "
                "it would be written into the results"
            )
        given[key] = value
    return given


def warn_alias(old: str, new: str) -> None:
    """A setting given under an earlier name: it works, and says its name."""
    logger.warning("%s is now %s, its name in every path", old, new)


def extractor_given(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The extractor's settings among ``values`` named ``extractor_<key>`` (lm-eval's metadata,
    the CLI's flags), by key; an unknown ``extractor_…`` name, or the key, is a
    :class:`ConfigError` naming ``where`` it was given."""
    known = [name for name in EndpointConfig.names() if name != "api_key"]
    given = {}
    for name, value in values.items():
        if not name.startswith(EXTRACTOR_PREFIX) or value is None:
            continue
        key = name.removeprefix(EXTRACTOR_PREFIX)
        if key == "api_key":
            raise ConfigError(
                f"pass {EXTRACTOR_ENV_PREFIX}API_KEY in the environment, not {name} in {where}: "
                "it would be written into the results"
            )
        if key not in known:
            raise ConfigError(
                f"unknown extractor setting {name!r} in {where}; the settings are "
                + ", ".join(EXTRACTOR_PREFIX + k for k in known)
            )
        given[key] = value
    return given


def resolve_extractor(judge: EndpointConfig, given: Mapping[str, Any]) -> EndpointConfig:
    """The extractor's transport: the meta-judge's < ``RALIGN_EXTRACTOR_<KEY>`` < ``given`` (by
    key). The meta-judge's key goes with its endpoint only: an extractor elsewhere gets
    ``RALIGN_EXTRACTOR_API_KEY`` or none."""
    base = {name: getattr(judge, name) for name in EndpointConfig.names()}
    url = given.get("base_url") or os.environ.get(EXTRACTOR_ENV_PREFIX + "BASE_URL")
    if url and url != judge.base_url:
        base["api_key"] = None
    return EndpointConfig.from_sources(EXTRACTOR_ENV_PREFIX, given, **base)


def resolve(
    settings: Sequence[Setting],
    given: Mapping[str, Any],
    env_keys: Collection[str] | None = None,
    extractor: Mapping[str, Any] | None = None,
) -> JudgeSettings:
    """The judge settings from defaults < ``RALIGN_METAJUDGE_<KEY>`` < ``given`` (by key;
    ``None`` values are not given); with ``env_keys``, only those are read from the
    environment. ``extractor``: the extractor's given settings (by key; ``None``: the
    extractor is a role of its own, Inspect's)."""
    templates = {s.key for s in settings if s.template}
    transport = EndpointConfig.from_sources(
        METAJUDGE_ENV_PREFIX,
        {k: v for k, v in given.items() if k not in templates},
        env_names=env_keys,
    )
    chosen = {}
    for setting in settings:
        if setting.template:
            value = given.get(setting.key) or os.environ.get(setting.env)
            if value:
                chosen[setting.key] = str(value)
    extractor_config = None if extractor is None else resolve_extractor(transport, extractor)
    return JudgeSettings(transport, MappingProxyType(chosen), extractor_config)


def switched_off(value: object = None) -> bool:
    """Whether the judge is switched off: ``value`` (a path's own switch) when given, else
    ``RALIGN_METAJUDGE``, is ``none``."""
    given = os.environ.get(SWITCH_ENV, "") if value is None else value
    return str(given).strip().lower() == "none"

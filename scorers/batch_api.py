"""A batch of requests through a provider's batch API (OpenAI's ``/v1/batches``, Anthropic's
Message Batches), with the official ``openai`` / ``anthropic`` SDKs: about half the price of
the same calls, answered within hours instead of seconds.

:func:`run_batches` submits the requests no cached answer serves (several batches where the
provider's limits ask for it), writes one state file per batch into the cache folder's
``batches/`` before polling, polls with a growing pause and a progress bar, and returns each
request's answer or error. A run killed while polling finds its state files on the next start
and polls the same batches again instead of paying twice; a batch's state file goes when its
results are in. The engine (:mod:`ralign_tasks.scorers.engine`) writes the answers into the
cache and treats each error as a failed call: asked again synchronously, or counted
(``batch_failed``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ralign_tasks.scorers.ask import Answer
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.jsonl import json_text

if TYPE_CHECKING:
    from ralign_tasks.scorers.engine import ChatRequest

logger = logging.getLogger("ralign_tasks.batch_api")

# Each provider's limits on one batch: requests, and bytes of its input.
LIMITS = {"openai": (50_000, 190 * 1024 * 1024), "anthropic": (100_000, 240 * 1024 * 1024)}
# Seconds between polls: the first pause, then doubled up to the last (``RALIGN_BATCH_POLL_S``
# sets the first, as tests do).
POLL_FIRST_S = 10.0
POLL_MAX_S = 300.0
POLL_ENV = "RALIGN_BATCH_POLL_S"
STATE_FOLDER = "batches"


@dataclass(frozen=True)
class BatchOutcome:
    """One request's fate in a batch: its answer, or why there is none."""

    answer: Answer | None
    error: str | None = None


class _OpenAIBatches:
    """OpenAI's file + batch endpoints (``/v1/files``, ``/v1/batches``)."""

    def __init__(self, config: EndpointConfig) -> None:
        import openai

        self.client = openai.OpenAI(
            api_key=config.api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            base_url=config.endpoint, timeout=config.timeout, max_retries=5,
        )  # fmt: skip

    def submit(self, requests: Sequence[tuple[str, ChatRequest]]) -> str:
        lines = "".join(
            json_text({
                "custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": r.model, "messages": r.messages, "temperature": r.temperature,
                         "max_tokens": r.max_tokens},
            }) + "\n"
            for custom_id, r in requests
        )  # fmt: skip
        upload = self.client.files.create(
            file=("ralign-batch.jsonl", lines.encode("utf-8")), purpose="batch"
        )
        batch = self.client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return batch.id

    def done(self, batch_id: str) -> bool:
        status = self.client.batches.retrieve(batch_id).status
        return status in ("completed", "failed", "expired", "cancelled")

    def results(self, batch_id: str) -> Iterator[tuple[str, BatchOutcome]]:
        from ralign_tasks.scorers.engine import read_completion

        batch = self.client.batches.retrieve(batch_id)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in self.client.files.content(file_id).text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                response = row.get("response") or {}
                error = row.get("error")
                if not error and response.get("status_code") == 200:
                    try:
                        answer = read_completion(response.get("body"), with_reasoning=True)
                    except ValueError as exc:
                        yield row["custom_id"], BatchOutcome(None, f"batch answer: {exc}")
                        continue
                    yield row["custom_id"], BatchOutcome(answer)
                    continue
                message = (error or {}).get("message") or json_text(response.get("body"))
                status = response.get("status_code")
                yield (
                    row["custom_id"],
                    BatchOutcome(
                        None, f"batch request failed ({status or 'no response'}): {message}"
                    ),
                )
        if batch.status != "completed":
            yield "", BatchOutcome(None, f"batch {batch_id} ended {batch.status}")


class _AnthropicBatches:
    """Anthropic's Message Batches (``/v1/messages/batches``)."""

    def __init__(self, config: EndpointConfig) -> None:
        import anthropic

        # The base URL is the OpenAI-compatible one the synchronous calls use (…/v1/); the
        # SDK adds /v1 itself.
        base = config.endpoint.removesuffix("/v1") if config.base_url else None
        self.client = anthropic.Anthropic(
            api_key=config.api_key or os.environ.get("ANTHROPIC_API_KEY") or "unused",
            base_url=base, timeout=config.timeout, max_retries=5,
        )  # fmt: skip

    def submit(self, requests: Sequence[tuple[str, ChatRequest]]) -> str:
        batch = self.client.messages.batches.create(requests=[
            {"custom_id": custom_id,
             "params": {"model": r.model, "max_tokens": r.max_tokens,
                        "temperature": r.temperature, "messages": r.messages}}
            for custom_id, r in requests
        ])  # fmt: skip
        return batch.id

    def done(self, batch_id: str) -> bool:
        return self.client.messages.batches.retrieve(batch_id).processing_status == "ended"

    def results(self, batch_id: str) -> Iterator[tuple[str, BatchOutcome]]:
        for row in self.client.messages.batches.results(batch_id):
            result = row.result
            if result.type == "succeeded":
                message = result.message
                text = "".join(
                    getattr(part, "text", "") for part in message.content
                    if getattr(part, "type", "") == "text"
                )  # fmt: skip
                finish = "length" if message.stop_reason == "max_tokens" else "stop"
                usage = message.usage
                yield row.custom_id, BatchOutcome(Answer(
                    text, finish, int(usage.input_tokens or 0), int(usage.output_tokens or 0)
                ))  # fmt: skip
                continue
            error = getattr(result, "error", None)
            detail = getattr(getattr(error, "error", None), "message", None) or result.type
            yield row.custom_id, BatchOutcome(None, f"batch request {result.type}: {detail}")


def _client(provider: str, config: EndpointConfig) -> Any:
    return _OpenAIBatches(config) if provider == "openai" else _AnthropicBatches(config)


def state_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    from ralign_tasks.scorers.cache import default_cache_dir

    return (Path(cache_dir) if cache_dir else default_cache_dir()) / STATE_FOLDER


def _chunks(
    todo: Sequence[tuple[str, ChatRequest]], provider: str
) -> Iterator[list[tuple[str, ChatRequest]]]:
    """The requests in batches within the provider's limits."""
    most, most_bytes = LIMITS[provider]
    chunk: list[tuple[str, ChatRequest]] = []
    size = 0
    for item in todo:
        length = len(json_text(item[1].messages).encode("utf-8")) + 512
        if chunk and (len(chunk) == most or size + length > most_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += length
    if chunk:
        yield chunk


def _pending(folder: Path, provider: str, endpoint: str, wanted: set[str]) -> dict[str, set[str]]:
    """Batches an earlier run submitted for some of ``wanted`` and did not see finish."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob(f"{provider}-*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("unreadable batch state %s: left alone", path)
            continue
        if state.get("endpoint") != endpoint:
            continue
        keys = set(state.get("keys") or ()) & wanted
        if keys:
            found[str(state["batch_id"])] = keys
    return found


def run_batches(
    provider: str,
    config: EndpointConfig,
    todo: Mapping[str, ChatRequest],
    description: str,
    cache_dir: str | os.PathLike[str] | None,
) -> dict[str, BatchOutcome]:
    """Every request of ``todo`` (by cache key) through the provider's batch API: resumed
    batches first, new ones for the rest; each key's outcome."""
    from tqdm.auto import tqdm

    folder = state_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    client = _client(provider, config)
    pending = _pending(folder, provider, config.endpoint, set(todo))
    resumed = set().union(*pending.values()) if pending else set()
    if pending:
        logger.info("%s: polling %d batch(es) an earlier run submitted (%d requests)",
                    description, len(pending), len(resumed))  # fmt: skip
    fresh = [(key, request) for key, request in todo.items() if key not in resumed]
    for chunk in _chunks(fresh, provider):
        batch_id = client.submit(chunk)
        keys = [key for key, _ in chunk]
        state = {"provider": provider, "batch_id": batch_id, "endpoint": config.endpoint,
                 "model": config.model, "submitted": time.time(), "keys": keys}  # fmt: skip
        path = folder / f"{provider}-{batch_id}.json"
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json_text(state), encoding="utf-8")
        partial.replace(path)
        pending[batch_id] = set(keys)
    outcomes: dict[str, BatchOutcome] = {}
    pause = float(os.environ.get(POLL_ENV) or POLL_FIRST_S)
    progress = tqdm(total=len(todo), desc=f"{description} batch", unit="req")
    try:
        while pending:
            for batch_id in list(pending):
                if not client.done(batch_id):
                    continue
                keys = pending.pop(batch_id)
                ended = None
                for custom_id, outcome in client.results(batch_id):
                    if not custom_id:  # the batch's own end: failed, expired, cancelled
                        ended = outcome.error
                    elif custom_id in keys:
                        outcomes[custom_id] = outcome
                for key in keys - outcomes.keys():
                    outcomes[key] = BatchOutcome(None, ended or f"no result in batch {batch_id}")
                progress.update(len(keys))
                (folder / f"{provider}-{batch_id}.json").unlink(missing_ok=True)
            if pending:
                time.sleep(pause)
                pause = min(pause * 2, POLL_MAX_S)
    finally:
        progress.close()
    return outcomes

"""In-process judging backends: one ``vllm.LLM`` over the whole batch, or batched
``transformers`` generation. Both load the model once per process and are reused by every
later batch (the three tasks of a group share one loaded judge).

Each backend's ``generate(requests)`` yields ``(position, Completion, wall_s)`` as batches
finish, so the engine caches finished answers before the next batch starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest

logger = logging.getLogger("ralign_tasks.local_backends")

# vLLM schedules a whole batch itself; chunks this large cost it nothing measurable but let
# the cache keep finished work if a long run is stopped.
VLLM_CHUNK = 1024


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class LocalBackend(Protocol):
    def generate(
        self, requests: Sequence[ChatRequest]
    ) -> Iterator[tuple[int, Completion, float]]: ...


def _by_settings(requests: Sequence[ChatRequest]) -> dict[tuple[float, int], list[int]]:
    """Positions grouped by generation settings (one judge batch normally has one group)."""
    groups: dict[tuple[float, int], list[int]] = {}
    for position, request in enumerate(requests):
        groups.setdefault((request.temperature, request.max_tokens), []).append(position)
    return groups


class VLLMBackend:
    """``vllm.LLM.chat`` over all requests at once, with the model's own chat template and
    prefix caching (every meta-judge prompt shares its long instructions)."""

    def __init__(self, config: EndpointConfig) -> None:
        from vllm import LLM

        options: dict[str, Any] = {
            "model": config.model,
            "enable_prefix_caching": True,
            "tensor_parallel_size": config.tensor_parallel_size,
        }
        if config.data_parallel_size > 1:
            options["data_parallel_size"] = config.data_parallel_size
        for name in ("dtype", "gpu_memory_utilization", "max_model_len"):
            if getattr(config, name) is not None:
                options[name] = getattr(config, name)
        logger.info("loading meta-judge %s with vLLM (%s)", config.model, options)
        self.llm = LLM(**options)

    def generate(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion, float]]:
        from vllm import SamplingParams

        for (temperature, max_tokens), positions in _by_settings(requests).items():
            params = SamplingParams(temperature=temperature, max_tokens=max_tokens)
            for start in range(0, len(positions), VLLM_CHUNK):
                chunk = positions[start : start + VLLM_CHUNK]
                began = time.perf_counter()
                outputs = self.llm.chat([requests[p].messages for p in chunk], params)
                wall_s = time.perf_counter() - began
                for position, output in zip(chunk, outputs, strict=True):
                    choice = output.outputs[0]
                    completion = Completion(
                        text=choice.text,
                        finish_reason=choice.finish_reason,
                        prompt_tokens=len(output.prompt_token_ids or ()),
                        completion_tokens=len(choice.token_ids),
                    )
                    yield position, completion, wall_s


class HFBackend:
    """Batched ``transformers`` generation: chat template, left padding, batches of similar
    length (longest first, so an out-of-memory error shows up at once), greedy unless a
    temperature is set."""

    def __init__(self, config: EndpointConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.batch_size = config.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(config.model, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        options: dict[str, Any] = {"dtype": config.dtype or "auto"}
        if config.device_map:
            options["device_map"] = config.device_map
        logger.info("loading meta-judge %s with transformers (%s)", config.model, options)
        self.model = AutoModelForCausalLM.from_pretrained(config.model, **options)
        self.model.eval()

    def _encode(self, request: ChatRequest) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion, float]]:
        import torch

        encoded = [self._encode(request) for request in requests]
        eos_ids = self._eos_ids()
        for (temperature, max_tokens), positions in _by_settings(requests).items():
            positions = sorted(positions, key=lambda p: len(encoded[p]), reverse=True)
            for start in range(0, len(positions), self.batch_size):
                chunk = positions[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {"input_ids": [encoded[p] for p in chunk]}, return_tensors="pt"
                ).to(self.model.device)
                sampling = (
                    {"do_sample": True, "temperature": temperature}
                    if temperature > 0
                    else {"do_sample": False}
                )
                began = time.perf_counter()
                with torch.inference_mode():
                    output = self.model.generate(
                        **batch,
                        max_new_tokens=max_tokens,
                        pad_token_id=self.tokenizer.pad_token_id,
                        **sampling,
                    )
                wall_s = time.perf_counter() - began
                width = batch["input_ids"].shape[1]
                for row, position in enumerate(chunk):
                    new_tokens = output[row, width:].tolist()
                    stop = next((i for i, t in enumerate(new_tokens) if t in eos_ids), None)
                    kept = new_tokens if stop is None else new_tokens[:stop]
                    completion = Completion(
                        text=self.tokenizer.decode(kept, skip_special_tokens=True),
                        finish_reason="stop" if stop is not None else "length",
                        prompt_tokens=len(encoded[position]),
                        completion_tokens=len(kept),
                    )
                    yield position, completion, wall_s

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        ids = [*ids, self.tokenizer.eos_token_id]
        return {i for i in ids if i is not None}


_LOADED: dict[tuple[Any, ...], LocalBackend] = {}


def local_backend(config: EndpointConfig) -> LocalBackend:
    """The loaded backend for ``config``, created on first use and kept for the process."""
    key = (
        config.backend,
        config.model,
        config.dtype,
        config.device_map,
        config.batch_size,
        config.tensor_parallel_size,
        config.data_parallel_size,
        config.gpu_memory_utilization,
        config.max_model_len,
    )
    if key not in _LOADED:
        backends = {"vllm": VLLMBackend, "hf": HFBackend}
        if config.backend not in backends:
            raise ValueError(f"{config.backend!r} is not an in-process backend")
        _LOADED[key] = backends[config.backend](config)
    return _LOADED[key]

"""Prompt tokens of chat requests before they are sent (``--dry-run``): counted with the
model's own tokenizer and chat template when the model is local (an in-process backend, or a
model folder), with tiktoken when it knows the model (OpenAI's chat formula: each message's
tokens and a few per message), else estimated at four characters a token, and marked so."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ralign_tasks.scorers.config import EndpointConfig

CHARS_PER_TOKEN = 4
# OpenAI's chat format: tokens around each message, and those priming the reply.
TIKTOKEN_PER_MESSAGE = 3
TIKTOKEN_REPLY = 3


@dataclass(frozen=True)
class TokenCounter:
    """Counts one endpoint's prompt tokens; ``exact``: by its tokenizer, not an estimate."""

    method: str
    exact: bool
    count_messages: Callable[[Sequence[dict[str, str]]], int]

    def count(self, messages: Sequence[dict[str, str]]) -> int:
        return self.count_messages(messages)


def estimate(messages: Sequence[dict[str, str]]) -> int:
    """About four characters a token, and a few tokens per message for the chat format."""
    return sum(
        math.ceil(len(message["content"]) / CHARS_PER_TOKEN) + TIKTOKEN_PER_MESSAGE
        for message in messages
    )


def _local_counter(model: str) -> TokenCounter:
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(model)

    def count(messages: Sequence[dict[str, str]]) -> int:
        # As the hf backend encodes a request (the vllm backend applies the same template).
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return TokenCounter(f"tokenizer of {model}", True, count)


def _tiktoken_counter(model: str) -> TokenCounter | None:
    try:
        import tiktoken

        encoding = tiktoken.encoding_for_model(model)
    except Exception:  # not installed, a model it does not know, or its files not at hand
        return None

    def count(messages: Sequence[dict[str, str]]) -> int:
        return TIKTOKEN_REPLY + sum(
            TIKTOKEN_PER_MESSAGE + len(encoding.encode(message["content"])) for message in messages
        )

    return TokenCounter(f"tiktoken {encoding.name}", True, count)


def token_counter(config: EndpointConfig) -> TokenCounter:
    """The best counter for an endpoint's model (see the module doc)."""
    model = str(config.model)
    if config.backend != "openai" or Path(model).expanduser().is_dir():
        return _local_counter(str(Path(model).expanduser()) if config.backend == "openai"
                              else model)  # fmt: skip
    return _tiktoken_counter(model) or TokenCounter("estimate (4 characters a token)", False,
                                                    estimate)  # fmt: skip

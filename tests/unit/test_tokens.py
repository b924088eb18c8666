"""Prompt-token counters of ``--dry-run``: the estimate, and tiktoken's chat formula (with a
stand-in encoding: tiktoken fetches its real ones from the internet)."""

from __future__ import annotations

import sys
import types

from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.tokens import estimate, token_counter

MESSAGES = [{"role": "user", "content": "Which answer is better? " * 3}]


def test_an_unknown_model_is_estimated_at_four_characters_a_token(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # not installed
    counter = token_counter(EndpointConfig(model="some-endpoint-model"))
    assert not counter.exact and counter.method.startswith("estimate")
    assert counter.count(MESSAGES) == estimate(MESSAGES) == 18 + 3  # 72 characters, 1 message


def test_a_model_tiktoken_knows_is_counted_by_its_chat_formula(monkeypatch):
    encoding = types.SimpleNamespace(name="o200k_base", encode=lambda text: text.split())
    known = {"gpt-4.1": encoding}

    def encoding_for_model(model):
        if model not in known:
            raise KeyError(model)
        return known[model]

    fake = types.SimpleNamespace(encoding_for_model=encoding_for_model)
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    counter = token_counter(EndpointConfig(model="gpt-4.1"))
    assert counter.exact and counter.method == "tiktoken o200k_base"
    # 12 words; 3 tokens around the message, 3 priming the reply.
    assert counter.count(MESSAGES) == 12 + 3 + 3
    assert not token_counter(EndpointConfig(model="qwen-judge")).exact

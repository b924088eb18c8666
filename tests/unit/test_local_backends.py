"""In-process judging backends: the engine path shared by `hf` and `vllm`, and the real
transformers backend on a tiny random model."""

from __future__ import annotations

import pytest

from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import get_task, load_task
from ralign_tasks.protocols.fidelity import FidelityJudgment
from ralign_tasks.scorers import local_backends
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest, FatalEndpointError, run_chat_batch
from ralign_tasks.scorers.fidelity import MetaStatus
from ralign_tasks.scorers.local_backends import Completion
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.testing.loopback import LoopbackServer, prompt_of
from ralign_tasks.testing.random_model import build_random_llama
from tests.support.scripted import meta_answer

# Raw meta-judge answers keyed by a word of the GenRM output they judge.
ANSWERS = {
    "alpha": meta_answer("Correct"),
    "beta": meta_answer("Incorrect"),
    "gamma": "no tags at all",
    "delta": meta_answer("**Correct**"),
    "epsilon": "",  # empty every time: a call failure
}


def scripted_answer(prompt: str) -> str:
    return next(answer for word, answer in ANSWERS.items() if f"because {word}" in prompt)


class ScriptedLocalBackend:
    """Stands in for a loaded model: answers from ANSWERS, one batch per call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, requests):
        self.calls.append(len(requests))
        for position, request in enumerate(requests):
            text = scripted_answer(request.prompt)
            yield position, Completion(text, "stop", 10, len(text.split())), 0.01


HELPSTEER3 = get_task("helpsteer3")


def judgments(records):
    label_correct = [r for r in records][: len(ANSWERS)]
    return [
        FidelityJudgment.from_output(r, f"I pick it because {word}. \\boxed{{{r.label}}}")
        for r, word in zip(label_correct, ANSWERS, strict=True)
    ]


def judge_all(judgments, config):
    """Meta verdicts (the judge calls of the label-correct items) and the batch stats."""
    items, stats, _ = judge_items(
        HELPSTEER3, [j.record for j in judgments], judgments, JudgeSettings(config)
    )
    return items, stats


@pytest.fixture
def scripted_local(monkeypatch):
    backend = ScriptedLocalBackend()
    monkeypatch.setattr(local_backends, "local_backend", lambda config: backend)
    return backend


def test_all_backends_give_the_same_verdicts(sample_records, scripted_local):
    items = judgments(sample_records)
    by_backend = {}
    for backend in ("hf", "vllm"):
        config = EndpointConfig(model="judge", backend=backend, cache=False)
        verdicts, _ = judge_all(items, config)
        by_backend[backend] = [v.outcome.meta for v in verdicts]
    with LoopbackServer(lambda body: scripted_answer(prompt_of(body))) as server:
        config = EndpointConfig(model="judge", base_url=server.base_url, cache=False)
        verdicts, _ = judge_all(items, config)
        by_backend["openai"] = [v.outcome.meta for v in verdicts]
    expected = [
        MetaStatus.CORRECT,
        MetaStatus.INCORRECT,
        MetaStatus.PARSE_FAIL,
        MetaStatus.INCORRECT,
        MetaStatus.CALL_FAIL,
    ]
    assert by_backend == {"hf": expected, "vllm": expected, "openai": expected}


def test_local_batch_retries_empty_answers_and_caches_the_rest(sample_records, scripted_local):
    items = judgments(sample_records)
    config = EndpointConfig(model="judge", backend="hf", max_attempts=3, temperature=0.4)
    verdicts, stats = judge_all(items, config)
    # One batch of 5, then the empty one twice more.
    assert scripted_local.calls == [5, 1, 1]
    assert verdicts[4].calls[0].error == "empty answer (finish reason: stop)"
    assert stats.failures == 1 and stats.calls == 4 + 3
    again, stats = judge_all(items, config)
    assert stats.cache_hits == 4 and scripted_local.calls[3:] == [1, 1, 1]
    assert [v.outcome for v in again] == [v.outcome for v in verdicts]


def test_hf_defaults_to_greedy(monkeypatch):
    monkeypatch.setenv("RALIGN_METAJUDGE_BACKEND", "hf")
    assert EndpointConfig.from_sources().temperature == 0.0
    monkeypatch.setenv("RALIGN_METAJUDGE_TEMPERATURE", "0.7")
    assert EndpointConfig.from_sources().temperature == 0.7


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, sample_texts=None):
    from ralign_tasks.data import sample_data_dir

    records = load_task("helpsteer3", sample_data_dir()).records
    corpus = [r.prompt + r.response_a + r.golden_rationale for r in records] * 4
    return build_random_llama(tmp_path_factory.mktemp("tiny") / "llama", corpus)


def test_hf_backend_on_a_tiny_model(tiny_model):
    config = EndpointConfig(model=str(tiny_model), backend="hf", max_tokens=6, batch_size=3)
    prompts = ["short", "a longer prompt " * 30, *(f"prompt number {i}" for i in range(5))]
    requests = [ChatRequest(config.model, p, 0.0, 6) for p in prompts]
    backend = local_backends.local_backend(config)
    batched = {position: c for position, c, _ in backend.generate(requests)}
    assert sorted(batched) == list(range(len(requests)))
    # Greedy: a prompt inside a left-padded batch gets what it gets alone.
    alone = local_backends.local_backend(config.with_(batch_size=1))
    for position, request in enumerate(requests[:3]):
        ((_, single, _),) = alone.generate([request])
        assert single == batched[position]
    for completion in batched.values():
        assert completion.completion_tokens <= 6 and completion.prompt_tokens > 0
        assert completion.finish_reason in ("stop", "length")
    assert batched[1].prompt_tokens > batched[0].prompt_tokens
    # Through the engine: tokens are counted and finished answers are cached.
    results, stats = run_chat_batch(requests, config)
    assert stats.prompt_tokens == sum(c.prompt_tokens for c in batched.values())
    rerun, rerun_stats = run_chat_batch(requests, config)
    assert rerun_stats.calls == stats.failures
    assert [r.answer for r in rerun] == [r.answer for r in results]


def test_hf_backend_judges_through_judge_items(tiny_model, sample_records):
    items = [FidelityJudgment.from_output(r, f"\\boxed{{{r.label}}}") for r in sample_records[:3]]
    config = EndpointConfig(model=str(tiny_model), backend="hf", max_tokens=4)
    verdicts, stats = judge_all(items, config)
    assert stats.requests == 3
    # A random model's answers carry no tags: parse failures, or call failures if empty.
    assert {v.outcome.meta for v in verdicts} <= {MetaStatus.PARSE_FAIL, MetaStatus.CALL_FAIL}


def test_a_local_model_that_fails_stops_the_run(sample_records, monkeypatch):
    """A model that cannot load or run fails every item alike: the run stops with the error
    instead of counting every item as a failed call."""

    def broken(config):
        raise OSError("no model folder at /nowhere")

    monkeypatch.setattr(local_backends, "local_backend", broken)
    config = EndpointConfig(model="/nowhere", backend="hf", cache=False)
    with pytest.raises(FatalEndpointError, match="hf backend: OSError: no model folder"):
        judge_all(judgments(sample_records), config)

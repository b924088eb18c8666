"""Throughput of the in-process judging backends against a plain one-at-a-time loop.

For the same model, prompts (real meta-judge prompts built from the bundled sample) and
generation length, greedy, with ``min_new_tokens = max_new_tokens`` so every request generates
the same number of tokens whatever the model writes:

* ``hf``: our batched transformers backend vs ``model.generate`` called once per prompt;
* ``vllm`` (when installed): our backend (one ``LLM.chat`` over all requests) vs raw
  ``LLM.generate`` on the chat-templated prompt strings.

Reports items/s and generated tokens/s. Any causal LM folder works; a random-weight model built
from a config is fine for throughput (``--random-config``). Examples:

    python benchmarks/local_judge_throughput.py \
        --model ~/.cache/ralign-tasks/models/SmolLM2-135M-Instruct
    python benchmarks/local_judge_throughput.py \
        --random-config qwen3-0.6b-like --items 256 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.fidelity import FIDELITY, render_metajudge_prompt
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import ChatRequest
from ralign_tasks.scorers.local_backends import HFBackend, VLLMBackend
from ralign_tasks.testing.random_model import build_random_llama

# Shapes of public models of that size, for GPU runs where no checkpoint can be downloaded
# (random weights: the arithmetic is the same, the text is noise). Vocabulary: the small BPE
# trained on the fly, which makes the output projection cheaper than the real models'.
RANDOM_SHAPES = {
    "qwen3-0.6b-like": dict(
        hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128,
    ),
    "llama-1b-like": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64,
    ),
}  # fmt: skip


def sample_records():
    return [
        record
        for spec in FIDELITY.tasks
        for record in load_task(spec.task, sample_data_dir()).records
    ]


def judge_requests(model: str, items: int, max_tokens: int) -> list[ChatRequest]:
    records = sample_records()
    requests = []
    for index in range(items):
        record = replace(records[index % len(records)], id=f"bench-{index}")
        output = f"Item {index}: the decisive difference favours {record.label}. \\boxed{{A}}"
        prompt = render_metajudge_prompt(record, output)
        requests.append(ChatRequest(model, prompt, 0.0, max_tokens))
    return requests


def timed(label: str, run, items: int, tokens_per_item: int) -> dict[str, float | str]:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return {
        "runner": label,
        "seconds": seconds,
        "items_per_s": items / seconds,
        "gen_tokens_per_s": items * tokens_per_item / seconds,
    }


def bench_hf(config: EndpointConfig, requests: list[ChatRequest], max_tokens: int) -> list[dict]:
    import torch

    backend = HFBackend(config)
    model, tokenizer = backend.model, backend.tokenizer
    # Every request generates exactly max_tokens: forbid stopping early in both runners.
    model.generation_config.min_new_tokens = max_tokens
    encoded = [backend._encode(r) for r in requests]

    def loop() -> None:
        for ids in encoded:
            with torch.inference_mode():
                model.generate(
                    torch.tensor([ids], device=model.device),
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )

    def batched() -> None:
        list(backend.generate(requests))

    n = len(requests)
    return [
        timed("hf: one at a time (model.generate)", loop, n, max_tokens),
        timed(f"hf: ralign batched (batch_size={config.batch_size})", batched, n, max_tokens),
    ]


def bench_vllm(config: EndpointConfig, requests: list[ChatRequest], max_tokens: int) -> list[dict]:
    from vllm import SamplingParams

    backend = VLLMBackend(config)
    llm = backend.llm
    tokenizer = llm.get_tokenizer()
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r.prompt}], tokenize=False, add_generation_prompt=True
        )
        for r in requests
    ]
    # Greedy on the same templated prompts: both runners generate the same tokens, counted
    # from their outputs (vLLM stops at EOS either way).
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    generated: dict[str, int] = {}

    def raw() -> None:
        outputs = llm.generate(texts, params, use_tqdm=False)
        generated["raw"] = sum(len(o.outputs[0].token_ids) for o in outputs)

    def ours() -> None:
        completions = backend.generate(requests)
        generated["ours"] = sum(c.completion_tokens for _, c, _ in completions)

    raw()  # warm-up, so neither runner pays for start-up work
    rows = [timed("vllm: raw LLM.generate", raw, len(requests), 0)]
    rows.append(timed("vllm: ralign backend (LLM.chat)", ours, len(requests), 0))
    for row, key in zip(rows, ("raw", "ours"), strict=True):
        row["gen_tokens_per_s"] = generated[key] / float(row["seconds"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a local causal LM folder")
    source.add_argument("--random-config", choices=sorted(RANDOM_SHAPES))
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="hf device_map (cpu, cuda, auto)")
    parser.add_argument("--backends", nargs="+", default=["hf", "vllm"])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            model = args.model
        else:
            corpus = [r.prompt + r.golden_rationale for r in sample_records()] * 4
            shape = RANDOM_SHAPES[args.random_config]
            model = str(build_random_llama(Path(scratch) / "m", corpus, shape))
        requests = judge_requests(model, args.items, args.max_tokens)
        rows: list[dict] = []
        if "hf" in args.backends:
            config = EndpointConfig(
                model=model, backend="hf", batch_size=args.batch_size, device_map=args.device
            )
            rows += bench_hf(config, requests, args.max_tokens)
        if "vllm" in args.backends:
            try:
                import vllm  # noqa: F401
            except ImportError:
                print("vllm not installed: skipping the vllm figures")
            else:
                config = EndpointConfig(model=model, backend="vllm", max_model_len=8192)
                rows += bench_vllm(config, requests, args.max_tokens)
    print(
        f"model {args.model or args.random_config}, {args.items} items, "
        f"{args.max_tokens} generated tokens each, {platform.processor() or platform.machine()}"
    )
    print("| runner | seconds | items/s | generated tokens/s |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['runner']} | {row['seconds']:.2f} | {row['items_per_s']:.2f} "
            f"| {row['gen_tokens_per_s']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

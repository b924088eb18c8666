"""Meta-judge engine efficiency against a loopback OpenAI-compatible server.

efficiency = ideal time / measured time, where ideal = calls x latency / concurrency: how close
the engine comes to keeping ``concurrency`` requests in flight all the time. The server runs in
its own process (as a real endpoint would), so client CPU per request shows up as lost time.
The measured time is the whole ``judge_items`` call (prompt rendering, cache lookups and writes,
client set-up included); one unrelated request first takes the process's one-time lazy imports
out of the figure. Also times a rerun that is served entirely from the cache.

    python benchmarks/metajudge_throughput.py                 # 1000 items, default concurrency
    python benchmarks/metajudge_throughput.py --peer --latency 0.5   # and the official approach
    python benchmarks/metajudge_throughput.py --profile 0.1   # cProfile of the client at 100 ms

``--peer`` also times the R-Align scripts' approach on the same requests, side by side: a pool
of 64 threads each calling the synchronous ``openai`` client (our own code of that design).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ralign_tasks.data import sample_data_dir
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import get_task, load_task
from ralign_tasks.protocols.fidelity import FIDELITY, FidelityJudgment
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.settings import JudgeSettings


def judge_all(judgments: list[FidelityJudgment], config: EndpointConfig):
    """The meta-judge step of the fidelity tasks over ``judgments``, as every path runs it."""
    records = [judgment.record for judgment in judgments]
    items, stats, _ = judge_items(get_task("helpsteer3"), records, judgments, JudgeSettings(config))
    return items, stats


def label_correct_judgments(count: int) -> list[FidelityJudgment]:
    """``count`` distinct label-correct judgments built from the bundled samples."""
    records = [
        record
        for spec in FIDELITY.tasks
        for record in load_task(spec.task, sample_data_dir()).records
    ]
    judgments = []
    for index in range(count):
        record = replace(records[index % len(records)], id=f"bench-{index}")
        output = f"Item {index}: the decisive difference favours {record.label}. "
        judgments.append(
            FidelityJudgment.from_output(record, output + f"\\boxed{{{record.label}}}")
        )
    return judgments


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "ralign_tasks.testing.loopback", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def measure(latency: float, items: int, concurrency: int, profile: bool) -> dict[str, float]:
    judgments = label_correct_judgments(items + 1)
    warm_up, judgments = judgments[-1:], judgments[:-1]
    server, base_url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            config = EndpointConfig(
                model="loopback-judge",
                base_url=base_url,
                concurrency=concurrency,
                cache_dir=cache_dir,
            )
            judge_all(warm_up, config)
            profiler = cProfile.Profile() if profile else None
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            verdicts, stats = judge_all(judgments, config)
            if profiler:
                profiler.disable()
            cold = time.perf_counter() - start
            assert stats.calls == items and stats.failures == 0, stats
            assert all(v.outcome.meta is not None and v.outcome.meta.value == "correct"
                       for v in verdicts)  # fmt: skip

            start = time.perf_counter()
            _, rerun_stats = judge_all(judgments, config)
            warm = time.perf_counter() - start
            assert rerun_stats.cache_hits == items and rerun_stats.calls == 0
    finally:
        server.terminate()
        server.wait()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    ideal = items * latency / concurrency
    return {"ideal_s": ideal, "measured_s": cold, "efficiency": ideal / cold, "rerun_s": warm}


def thread_pool(latency: float, items: int, workers: int = 64) -> float:
    """Seconds for the same meta-judge requests through a pool of ``workers`` threads, each
    calling the synchronous ``openai`` client (how the R-Align scripts call their judge)."""
    import openai

    prompts = [FIDELITY.judge_prompts(j)[0] for j in label_correct_judgments(items + 1)]
    server, base_url = start_server(latency)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=3)

        def ask(prompt: str | None) -> str | None:
            reply = client.chat.completions.create(
                model="loopback-judge",
                messages=[{"role": "user", "content": str(prompt)}],
                temperature=0.4,
                max_tokens=16384,
            )
            return reply.choices[0].message.content

        ask(prompts[-1])  # connection and lazy imports, as the engine's warm-up request
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(ask, prompts[:-1]))
        elapsed = time.perf_counter() - start
        assert len(answers) == items and all(answers)
    finally:
        server.terminate()
        server.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=EndpointConfig().concurrency)
    parser.add_argument(
        "--peer", action="store_true", help="also time a 64-thread pool of the sync client"
    )
    parser.add_argument("--latency", type=float, nargs="+", default=[0.5, 0.1])
    parser.add_argument("--profile", type=float, help="profile the client at this latency")
    args = parser.parse_args()
    latencies = [args.profile] if args.profile else args.latency
    print(f"{args.items} items, concurrency {args.concurrency}")
    print("| latency | ideal | measured | efficiency | cache-hit rerun |")
    print("|---|---|---|---|---|")
    for latency in latencies:
        row = measure(latency, args.items, args.concurrency, profile=args.profile is not None)
        print(
            f"| {latency * 1000:.0f} ms | {row['ideal_s']:.2f} s | {row['measured_s']:.2f} s "
            f"| {row['efficiency']:.3f} | {row['rerun_s']:.2f} s |",
            flush=True,
        )
        if args.peer:
            pool = thread_pool(latency, args.items)
            print(
                f"|   64-thread pool, sync client | | {pool:.2f} s | ratio pool / ours "
                f"{pool / row['measured_s']:.2f} | |",
                flush=True,
            )


if __name__ == "__main__":
    main()

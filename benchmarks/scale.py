"""Whole-process figures of large runs, and the HTTP client, with the peers' approaches side by
side in the same run: the README's performance table.

For each size (generated HelpSteer3 items, distinct ids and prompts, against an instant
loopback server in its own process whose answers open with ``--reasoning-chars`` of reasoning,
for samples of a realistic size): ``ralign run`` (GenRM and meta-judge), ``ralign report``
and ``ralign view`` of that run, and ``lm_eval run`` of ``ralign_helpsteer3`` with and without
the R-Align scoring (``metajudge: none``, the harness's own cost). Each is one process, timed
from start to exit, its peak RSS read from the kernel (``wait4``).

Then the HTTP path at a fixed latency (default 100 ms) and concurrency 128: client CPU per
request (this process; the server runs in its own) and efficiency (ideal time, requests x
latency / concurrency, over measured time) of

- the engine's client (``aiohttp``, with its retry budget and reachability gate),
- the ``openai`` client's ``AsyncOpenAI.chat.completions.create`` (what the engine used before),
- a bare ``aiohttp`` loop with no retries (the floor),
- the whole engine (``judge_items``: prompts, cache, checks, records),
- a pool of 64 threads each calling the synchronous ``openai`` client (the R-Align scripts'
  design; its efficiency is against its own 64 slots).

    python benchmarks/scale.py                              # 1,000 and 10,000 items
    python benchmarks/scale.py --items 1000 10000 50000     # the README's table
    python benchmarks/scale.py --items 1000 --skip-lm-eval
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_scoring_overhead import lm_eval_command, write_items
from metajudge_throughput import judge_all, label_correct_judgments, start_server, thread_pool

from ralign_tasks.protocols.fidelity import FIDELITY
from ralign_tasks.scorers.config import EndpointConfig


@dataclass
class Measured:
    wall_s: float
    peak_mb: float


def measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run ``command`` to its end: wall time and peak RSS of that process."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode("utf-8", "replace")[-3000:]
            raise RuntimeError(f"{' '.join(command[:4])} … exited {process.returncode}:\n{tail}")
    return Measured(wall, usage.ru_maxrss / 1024)  # Linux reports KiB


def ralign(*args: str) -> list[str]:
    return [sys.executable, "-m", "ralign_tasks.cli", *args]


def row(step: str, items: int, result: Measured, note: str = "") -> str:
    per_item = result.wall_s / items * 1000
    return (
        f"| {step} | {items:,} | {result.wall_s:.1f} s | {per_item:.2f} ms | "
        f"{result.peak_mb:,.0f} MB | {note} |"
    )


def largest_file(folder: Path) -> tuple[int, float]:
    sizes = [path.stat().st_size for path in folder.rglob("*") if path.is_file()]
    return len(sizes), max(sizes) / 1e6


def scale(items: int, root: Path, with_lm_eval: bool, reasoning_chars: int) -> list[str]:
    """The rows of one size."""
    data = root / f"data_{items}"
    write_items(data, items)
    server = subprocess.Popen(
        [sys.executable, "-m", "ralign_tasks.testing.loopback",
         "--reasoning-chars", str(reasoning_chars)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    env = {**os.environ, "RALIGN_CACHE_DIR": str(root / f"cache_{items}"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}  # fmt: skip
    out, view = root / f"run_{items}", root / f"view_{items}"
    rows = []
    try:
        run = measured(
            ralign("run", "helpsteer3", "--data-dir", str(data / "data"), "--genrm-model", "g",
                   "--genrm-base-url", base_url, "--metajudge-model", "j",
                   "--metajudge-base-url", base_url, "--output-dir", str(out)),
            env,
        )  # fmt: skip
        samples = out / "g" / "helpsteer3" / "samples.jsonl"  # OUT/<GenRM>/<benchmark>
        per_item_kb = samples.stat().st_size / items / 1000
        rows.append(row("`ralign run` (GenRM + meta-judge)", items, run,
                        f"samples {per_item_kb:.1f} KB/item"))  # fmt: skip
        rows.append(row("`ralign report`", items, measured(ralign("report", str(out)), env)))
        shown = measured(ralign("view", str(out), "--output-dir", str(view)), env)
        files, biggest = largest_file(view)
        note = f"{files} file(s), largest {biggest:.1f} MB"
        rows.append(row("`ralign view`", items, shown, note))
        if with_lm_eval:
            # Untimed: the first lm_eval process reads its modules from a cold disk cache,
            # which would count against whichever run came first.
            command, lm_env = lm_eval_command(base_url, data / "data", root / "warm_up",
                                              {"metajudge": "none"})  # fmt: skip
            measured([*command, "--limit", "5"], lm_env)
            for label, metadata in (
                ("`lm_eval run`, `metajudge: none`", {"metajudge": "none"}),
                ("`lm_eval run` with R-Align scoring",
                 {"metajudge_model": "j", "metajudge_base_url": base_url}),
            ):  # fmt: skip
                folder = root / f"lm_eval_{items}_{len(rows)}"
                command, lm_env = lm_eval_command(base_url, data / "data", folder, metadata)
                rows.append(row(label, items, measured(command, lm_env)))
    finally:
        server.terminate()
        server.wait()
    return rows


async def paced(
    post: Callable[[dict[str, Any]], Awaitable[Any]], bodies: list[dict[str, Any]], limit: int
) -> tuple[float, float]:
    """Wall seconds and CPU seconds of posting every body, ``limit`` at a time (after one
    warm-up request)."""
    slots = asyncio.Semaphore(limit)

    async def one(body: dict[str, Any]) -> None:
        async with slots:
            await post(body)

    await one(bodies[-1])
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(body) for body in bodies[:-1]))
    return time.perf_counter() - start, time.process_time() - cpu


def client_rows(latency: float, requests: int, concurrency: int) -> list[str]:
    """One row per HTTP approach, all against one loopback server in its own process."""
    import aiohttp
    import openai

    from ralign_tasks.scorers.http_chat import ChatClient

    bodies = [
        {"model": "loopback-judge", "messages": [{"role": "user", "content": str(prompt)}],
         "temperature": 0.4, "max_tokens": 16384}
        for j in label_correct_judgments(requests + 1)
        for prompt in FIDELITY.judge_prompts(j)
    ]  # fmt: skip
    ideal = requests * latency / concurrency
    rows = []
    server, base_url = start_server(latency)

    def add(name: str, wall: float, cpu: float | None, slots: int = concurrency) -> None:
        cpu_text = f"{cpu / requests * 1000:.2f} ms" if cpu is not None else "n/a"
        efficiency = requests * latency / slots / wall
        rows.append(f"| {name} | {wall:.2f} s | {efficiency:.3f} | {cpu_text} |")

    async def ours() -> tuple[float, float]:
        client = ChatClient(EndpointConfig(model="m", base_url=base_url, concurrency=concurrency))
        try:
            return await paced(client.post, bodies, concurrency)
        finally:
            await client.aclose()

    async def openai_client() -> tuple[float, float]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused")
        try:
            return await paced(lambda b: client.chat.completions.create(**b), bodies, concurrency)
        finally:
            await client.close()

    async def bare() -> tuple[float, float]:
        url = f"{base_url}/chat/completions"
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(body: dict[str, Any]) -> Any:
                data = json.dumps(body).encode()
                headers = {"Content-Type": "application/json"}
                async with session.post(url, data=data, headers=headers) as answer:
                    return json.loads(await answer.read())

            return await paced(post, bodies, concurrency)

    try:
        add("engine client (aiohttp, retry budget)", *asyncio.run(ours()))
        add("`openai` AsyncOpenAI client", *asyncio.run(openai_client()))
        add("bare aiohttp loop, no retries", *asyncio.run(bare()))
    finally:
        server.terminate()
        server.wait()
    # The whole engine, and the R-Align scripts' pool (each starts its own server).
    judgments = label_correct_judgments(requests + 1)
    server, base_url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            config = EndpointConfig(model="loopback-judge", base_url=base_url,
                                    concurrency=concurrency, cache_dir=cache_dir)  # fmt: skip
            judge_all(judgments[-1:], config)
            start, cpu = time.perf_counter(), time.process_time()
            _, stats = judge_all(judgments[:-1], config)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert stats.calls == requests and stats.failures == 0, stats
    finally:
        server.terminate()
        server.wait()
    add("whole engine (`judge_items`)", wall, cpu)
    add("64 threads, each a sync `openai` client (R-Align scripts)",
        thread_pool(latency, requests), None, slots=64)  # fmt: skip
    rows.insert(0, f"ideal at concurrency {concurrency}: {ideal:.2f} s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-lm-eval", action="store_true")
    parser.add_argument(
        "--reasoning-chars",
        type=int,
        default=3000,
        help="characters of reasoning opening every scripted answer (GenRM and judge)",
    )
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    print("| step | items | wall | per item | peak RSS | notes |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for items in args.items:
            for line in scale(items, Path(tmp), not args.skip_lm_eval, args.reasoning_chars):
                print(line, flush=True)
    print(f"\n{args.requests} requests, {args.latency * 1000:.0f} ms latency, concurrency "
          f"{args.concurrency}:")  # fmt: skip
    rows = client_rows(args.latency, args.requests, args.concurrency)
    print(rows[0])
    print("| approach | wall | efficiency | client CPU per request |")
    print("|---|---|---|---|")
    for line in rows[1:]:
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""What the R-Align scoring adds to an ``lm_eval run``: the same run of ``ralign_helpsteer3`` on
N generated items against an instant loopback server (its own process), once with the
meta-judge (``metajudge_*`` metadata) and once with ``metajudge: none``; whole-process wall
times side by side, and the difference.

lm-eval 0.4.13 bootstraps the standard error of every ``mean``/``nanmean`` metric (100,000
draws in Python); the ralign tasks aggregate with their own computation instead, so this
difference is the meta-judging (N requests) and the metric computation only.

    python benchmarks/lm_eval_scoring_overhead.py --items 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.task_configs import include_path


def write_items(folder: Path, count: int) -> None:
    """``count`` distinct HelpSteer3 rows built from the bundled sample (distinct ids and
    prompts, so that no request is a repeat of another)."""
    source = sample_data_dir() / "data" / "helpsteer3_aug.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    records = load_task("helpsteer3", sample_data_dir()).records
    assert records
    (folder / "data").mkdir(parents=True)
    with open(folder / "data" / "helpsteer3_aug.jsonl", "w", encoding="utf-8") as handle:
        for index in range(count):
            row = dict(rows[index % len(rows)])
            row["id"] = f"bench-{index}"
            turns = [dict(turn) for turn in row["conversations"]]
            turns[-1]["content"] = f"[{index}] {turns[-1]['content']}"
            row["conversations"] = turns
            handle.write(json.dumps(row) + "\n")


def lm_eval_command(
    base_url: str, data_dir: Path, out: Path, metadata: dict
) -> tuple[list[str], dict[str, str]]:
    """The ``lm_eval run`` of ``ralign_helpsteer3`` on ``data_dir`` against ``base_url``, and
    its environment."""
    command = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "local-chat-completions",
        "--model_args", f"model=genrm,base_url={base_url}/chat/completions,num_concurrent=64",
        "--apply_chat_template", "--tasks", "ralign_helpsteer3",
        "--include_path", str(include_path()),
        "--metadata", json.dumps({"data_dir": str(data_dir), **metadata}),
        "--output_path", str(out),
    ]  # fmt: skip
    env = {**os.environ, "RALIGN_CACHE_DIR": str(out / "cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "RALIGN_METAJUDGE_CONCURRENCY": "64"}  # fmt: skip
    return command, env


def lm_eval(base_url: str, data_dir: Path, out: Path, metadata: dict) -> float:
    command, env = lm_eval_command(base_url, data_dir, out, metadata)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_items(root / "data", args.items)
        server = subprocess.Popen(
            [sys.executable, "-m", "ralign_tasks.testing.loopback"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            base_url = server.stdout.readline().strip()
            without = lm_eval(base_url, root / "data", root / "none", {"metajudge": "none"})
            judge = {"metajudge_model": "judge", "metajudge_base_url": base_url}
            scored = lm_eval(base_url, root / "data", root / "scored", judge)
        finally:
            server.terminate()
    print(
        f"items {args.items}: lm_eval run with metajudge: none {without:.1f} s, "
        f"with R-Align scoring {scored:.1f} s, scoring adds {scored - without:.1f} s"
    )


if __name__ == "__main__":
    main()

"""Helpers of the hostile tests: a helpsteer3 data folder of any size, and ``ralign run`` of it
against a loopback server, in this process or as a subprocess that a test can signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir

SAMPLE_FILE = "helpsteer3_aug.jsonl"


def write_helpsteer3(folder: Path, items: int) -> Path:
    """A data folder whose helpsteer3 file has ``items`` distinct rows (the sample's rows,
    cycled, each marked with its number so every request differs)."""
    rows = [
        json.loads(line)
        for line in (sample_data_dir() / "data" / SAMPLE_FILE).read_text().splitlines()
        if line.strip()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / SAMPLE_FILE, "w", encoding="utf-8") as handle:
        for number in range(items):
            row = dict(rows[number % len(rows)])
            row["id"] = f"hs3-{number}"
            for field in ("response_A", "response_B"):
                row[field] = f"{row[field]} (case {number})"
            handle.write(json.dumps(row) + "\n")
    return folder


def run_args(base_url: str, out: Path, *extra: str, data: Path | None = None) -> list[str]:
    """``ralign run helpsteer3`` with GenRM and meta-judge on ``base_url``."""
    source = ["--data-dir", str(data)] if data else ["--sample"]
    return [
        "run", "helpsteer3", *source, "--genrm-model", "g", "--genrm-base-url", base_url,
        "--metajudge-model", "j", "--metajudge-base-url", base_url, "--output-dir", str(out),
        *extra,
    ]  # fmt: skip


def run_in_process(base_url: str, out: Path, *extra: str, data: Path | None = None) -> int:
    return main(run_args(base_url, out, *extra, data=data))


def start_run(base_url: str, out: Path, *extra: str, data: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:  # fmt: skip
    """``ralign run`` as a process of its own (stderr captured)."""
    command = [sys.executable, "-m", "ralign_tasks.cli", *run_args(base_url, out, *extra,
                                                                    data=data)]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def results_of(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def samples_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]

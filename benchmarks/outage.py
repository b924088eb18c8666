"""``ralign run`` through endpoint outages, with the default retry policy (a 300 s budget).

Two kinds of outage, each of the given lengths, starting at the 100th GenRM request of a run
of helpsteer3 items against a loopback GenRM and meta-judge (50 ms a request, 16 at a time):

- ``503``: the server answers every request with 503 (a proxy in front of a restarting model);
- ``down``: the port refuses connections and open ones are reset (the server itself restarts).

For each it prints the run's wall time, the calls made, the failed requests and whether the
numbers equal the clean run's (L-Acc 50.0, F-Score 50.0, no failure).

    python benchmarks/outage.py                 # 3 s and 90 s outages, 400 items
    python benchmarks/outage.py --lengths 3 --items 100
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer, Reply, stand_in
from tests.support.hostile import results_of, run_args, write_helpsteer3

CLEAN = {"l_acc": 0.5, "f_score": 0.5}
OUTAGE_AT = 100
CONCURRENCY = "16"


def run_through(kind: str, length: float, items: int, root: Path) -> dict[str, object]:
    """One run with one outage of ``kind`` lasting ``length`` seconds."""
    data = write_helpsteer3(root / "data", items)
    outage = {"from": float("inf"), "to": float("inf")}
    seen = 0
    lock = threading.Lock()

    def break_it() -> None:
        outage["from"], outage["to"] = time.monotonic(), time.monotonic() + length
        if kind == "down":
            server.go_down()
            time.sleep(length)
            server.come_back()

    def respond(body: dict) -> str | Reply:
        nonlocal seen
        with lock:
            seen += 1
            if seen == OUTAGE_AT:
                threading.Thread(target=break_it, daemon=True).start()
        if kind == "503" and outage["from"] <= time.monotonic() < outage["to"]:
            return Reply("upstream restarting", status=503)
        return stand_in(body)

    with LoopbackServer(respond, latency_s=0.05) as server:
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own table
            code = main([*run_args(server.base_url, root / "out", data=data), "--no-cache"])
        wall = time.monotonic() - started
    results = results_of(root / "out" / "g" / "helpsteer3")  # OUT/<GenRM>/<benchmark>
    metrics, usage = results["metrics"]["overall"], results["usage"]
    failures = sum(usage[role]["failures"] for role in ("genrm", "judge"))
    clean = failures == 0 and all(metrics[k] == v for k, v in CLEAN.items())
    return {
        "outage": f"{kind} {length:g} s",
        "exit": code,
        "wall_s": round(wall, 1),
        "calls": sum(usage[role]["calls"] for role in ("genrm", "judge")),
        "requests": sum(usage[role]["requests"] for role in ("genrm", "judge")),
        "failed": failures,
        "clean numbers": clean,
    }


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[3.0, 90.0])
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args(argv)
    for role in ("GENRM", "METAJUDGE"):
        os.environ[f"RALIGN_{role}_CONCURRENCY"] = CONCURRENCY
    rows = []
    for length in args.lengths:
        for kind in ("503", "down"):
            with tempfile.TemporaryDirectory() as root:
                rows.append(run_through(kind, length, args.items, Path(root)))
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in header) + " |")


if __name__ == "__main__":
    main_()

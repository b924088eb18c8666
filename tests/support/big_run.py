"""A large ``ralign run`` folder made quickly: one real run of the helpsteer3 sample (the
scripted GenRM and meta-judge of ``tests/support/scripted.py``, so every outcome occurs), its
rows replicated in a shuffled order with new ids, each GenRM output and meta-judge answer
marked with its row number so that a page showing a row's text can be checked against it.

As a script, for measuring ``ralign view`` by hand::

    python -m tests.support.big_run /tmp/big --items 50000 --repeat 4
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.folders import run_dir
from tests.support.scripted import scripted_responder

_ID, _ROW = "@@ID@@", "@@ROW@@"
_MARK = "\n[row {}]"


def marker(row: int) -> str:
    """What row ``row``'s GenRM output and meta-judge answer end with."""
    return _MARK.format(row)


def record_sample_run(out: Path) -> Path:
    """``ralign run helpsteer3 --sample`` against the scripted loopback judges; its folder."""
    records = load_task("helpsteer3", sample_data_dir()).records
    with LoopbackServer(scripted_responder(records)) as server:
        code = main([
            "run", "helpsteer3", "--sample", "--genrm-model", "big", "--genrm-base-url",
            server.base_url, "--metajudge-model", "judge", "--metajudge-base-url",
            server.base_url, "--no-cache", "--output-dir", str(out),
        ])  # fmt: skip
    assert code == 0, "the sample run failed"
    return run_dir(out, "helpsteer3")


def _template(row: dict[str, Any], repeat: int) -> str:
    """A samples row as JSON text with the id and the row number left as placeholders;
    the texts of the pair and the golden rationale ``repeat`` times over (larger items)."""
    doc, item = row["doc"], row["item"]
    doc["id"] = item["id"] = _ID
    for field in ("prompt", "response_a", "response_b", "golden_rationale"):
        doc[field] = "\n\n".join([doc[field]] * repeat)
    genrm = item["genrm"]
    if genrm["output"] is not None:
        genrm["output"] += _MARK.format(_ROW)
    for call in item["judge"]:
        if call.get("answer") is not None:
            call["answer"] += _MARK.format(_ROW)
    return json.dumps(row, ensure_ascii=False)


def replicate(run: Path, out: Path, items: int, repeat: int = 1, seed: int = 15) -> Path:
    """A run folder at ``out`` with ``items`` rows, each a copy of a random row of ``run``'s
    ``samples.jsonl`` with the id ``big-<row>`` and its texts marked (:func:`marker`)."""
    with (run / "samples.jsonl").open(encoding="utf-8") as file:
        templates = [_template(json.loads(line), repeat) for line in file if line.strip()]
    out.mkdir(parents=True, exist_ok=True)
    # The metrics are computed again from the samples; only the header is read from here.
    shutil.copy(run / "results.json", out / "results.json")
    pick = random.Random(seed)
    with (out / "samples.jsonl").open("w", encoding="utf-8") as file:
        for row in range(items):
            text = pick.choice(templates)
            file.write(text.replace(_ID, f"big-{row:05d}").replace(_ROW, str(row)))
            file.write("\n")
    return out


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=1, help="texts of the pair N times over")
    args = parser.parse_args()
    sample = record_sample_run(args.out / "sample")
    print(replicate(sample, args.out / "run", args.items, args.repeat))


if __name__ == "__main__":
    _cli()

"""R-Align fidelity with ``reason_types`` in the CLI, lm-eval and Inspect against one scripted
server (tests/support/reason_types.py): the extractor lists each rationale's reasons, the judge
types them, and every path gives the hand-computed type shares and S-Corr by top reason type,
with the extraction and typing failures counted."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.harness import (
    inspect_eval_run,
    judged_items,
    lm_eval_run,
    lm_eval_values,
    read_lm_eval_output,
)
from tests.support.reason_types import EXPECTED, EXPECTED_COUNTS, responder

pytestmark = pytest.mark.slow  # lm-eval and Inspect run as subprocesses

TASK = "ralign_helpsteer3"


def _cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("types_cli")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        code = main([
            "run", "helpsteer3", "--sample", "--genrm-model", "genrm",
            "--genrm-base-url", server.base_url, "--metajudge-model", "judge",
            "--metajudge-base-url", server.base_url, "--extractor-model", "extractor",
            "--reason-types", "--output-dir", str(out),
        ])  # fmt: skip
    assert code == 0
    (folder,) = out.glob("genrm/*")
    assert folder.name == "helpsteer3_reason_types"
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return results["metrics"]["overall"], [row["item"] for row in rows], asks


def _lm_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("types_lm_eval")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        metadata = {"sample": True, "metajudge_model": "judge",
                    "metajudge_base_url": server.base_url, "extractor_model": "extractor",
                    "reason_types": True}  # fmt: skip
        run = lm_eval_run(server, out, TASK, metadata, "--log_samples")
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_lm_eval_output(out)
    values = lm_eval_values(results, TASK)
    rows = sorted(samples[TASK], key=lambda row: row["doc_id"])
    return values, judged_items(rows), asks


def _inspect(tmp_path_factory):
    out = tmp_path_factory.mktemp("types_inspect")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        log, values = inspect_eval_run(
            server, out, TASK, "--model", "openai-api/loop/genrm",
            "--model-role", "meta_judge=openai-api/loop/judge",
            "--model-role", "extractor=openai-api/loop/extractor",
            "-T", "sample=true", "-T", "reason_types=true",
        )  # fmt: skip
    items = [sample.scores["ralign_fidelity"].metadata for sample in log.samples]
    return values, items, asks


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {
        "cli": _cli(tmp_path_factory),
        "lm_eval": _lm_eval(tmp_path_factory),
        "inspect": _inspect(tmp_path_factory),
    }


@pytest.mark.parametrize("path", ["cli", "lm_eval", "inspect"])
def test_every_path_gives_the_hand_computed_values(runs, path):
    values, items, asks = runs[path]
    for name, expected in EXPECTED.items():
        assert values[name] == pytest.approx(expected), name
    for name, expected in EXPECTED_COUNTS.items():
        assert values[name] == expected, name
    # Every answer is extracted (item 6 asked until its attempts run out), the items with
    # reasons typed; only the label-correct answers go to the meta-judge.
    assert asks["meta"] == 7 and asks["extract"] >= 8 and asks["types"] >= 6
    first = items[0]
    assert [call["step"] for call in first["judge"]] == ["extract", "reason_types", "meta_judge"]
    assert first["genrm"]["reasons"] == ["A fixes the bug.", "A reads well."]
    assert first["outcome"]["top_type"] == "evidence"


def test_the_paths_give_identical_numbers(runs):
    cli = runs["cli"][0]
    for path in ("lm_eval", "inspect"):
        for name in EXPECTED:
            assert runs[path][0][name] == cli[name], (path, name)

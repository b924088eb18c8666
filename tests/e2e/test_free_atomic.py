"""HelpSteer3-Atomic with a free-form GenRM (``genrm_format=free``), an extractor and reason types,
in the CLI, lm-eval and Inspect against one scripted server (tests/support/free_atomic.py): the
three give the hand-computed values, count every failure of each new step, and send the
extractor's requests to the extractor."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.free_atomic import (
    EXPECTED,
    EXPECTED_COUNTS,
    OPTIONS,
    STATUSES,
    responder,
    run_free_atomic,
)
from tests.support.harness import (
    inspect_eval_run,
    judged_items,
    lm_eval_run,
    lm_eval_values,
    read_lm_eval_output,
)

pytestmark = pytest.mark.slow  # lm-eval and Inspect run as subprocesses

TASK = "ralign_helpsteer3_atomic"


def _cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("free_cli")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        folder = run_free_atomic(server.base_url, out)
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return results["metrics"]["overall"], [row["item"] for row in rows], asks, results


def _lm_eval(tmp_path_factory):
    out = tmp_path_factory.mktemp("free_lm_eval")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        metadata = {"sample": True, "metajudge_model": "judge",
                    "metajudge_base_url": server.base_url, "extractor_model": "extractor",
                    **OPTIONS}  # fmt: skip
        run = lm_eval_run(server, out, TASK, metadata, "--log_samples")
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_lm_eval_output(out)
    values = lm_eval_values(results, TASK)
    rows = sorted(samples[TASK], key=lambda row: row["doc_id"])
    return values, judged_items(rows), asks


def _inspect(tmp_path_factory):
    out = tmp_path_factory.mktemp("free_inspect")
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        log, values = inspect_eval_run(
            server, out, TASK, "--model", "openai-api/loop/genrm",
            "--model-role", "meta_judge=openai-api/loop/judge",
            "--model-role", "extractor=openai-api/loop/extractor",
            "-T", "sample=true", "-T", "genrm_format=free", "-T", "reason_types=true",
        )  # fmt: skip
    items = [sample.scores["ralign_rc"].metadata for sample in log.samples]
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
    values, items, asks = runs[path][:3]
    for name, expected in EXPECTED.items():
        assert values[name] == pytest.approx(expected), name
    for name, expected in EXPECTED_COUNTS.items():
        assert values[name] == expected, name
    assert [item["outcome"]["status"] for item in items] == STATUSES
    # The extractor is asked once per item (item 5 twice: its first answer is malformed),
    # the judge types the reasons of the five items that have some, and matches them.
    extract = {item: count for (step, item), count in asks.items() if step == "extract"}
    assert set(extract) == set(range(8)) and extract[5] >= 2
    assert {item for step, item in asks if step == "types"} == {0, 1, 5, 6, 7}
    assert {item for step, item in asks if step == "rc"} == {0, 1, 5, 6, 7}


def test_the_paths_give_identical_numbers(runs):
    cli = runs["cli"][0]
    for path in ("lm_eval", "inspect"):
        values = runs[path][0]
        for name in EXPECTED:
            assert values[name] == cli[name], (path, name)


@pytest.mark.parametrize("path", ["cli", "lm_eval", "inspect"])
def test_the_record_holds_each_step(runs, path):
    items = runs[path][1]
    first = items[0]
    steps = [call["step"] for call in first["judge"]]
    assert steps == ["extract", "reason_types", "rc_meta_judge"]
    extract = first["judge"][0]
    assert extract["ok"] and "<REASONS_START>" in extract["answer"]
    assert "extractor" in str(extract["model"])
    assert first["genrm"]["reasons"] == extract["value"]
    assert first["genrm"]["format"] == "free" and first["genrm"]["extracted"]
    assert first["genrm"]["reason_types"] == ["evidence", "criterion"]
    # The failures of the new steps are in the record too.
    assert items[3]["judge"][0]["error"] and items[3]["judge"][0]["answer"]
    assert "400" in items[4]["judge"][0]["error"]


def test_the_cli_run_names_its_extractor(runs):
    results = runs["cli"][3]
    assert results["identity"]["extractor"].startswith("extractor at http://127.0.0.1")
    assert results["settings"]["extractor_model"] == "extractor"
    assert results["usage"]["extract"]["requests"] == 8
    assert results["usage"]["reason_types"]["requests"] == 5

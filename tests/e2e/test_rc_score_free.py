"""Free-form HelpSteer3-Atomic through the CLI in-process against loopback servers: ``ralign
rc-score`` of stored free-form outputs extracts their reasons and scores them, ``--extract``
qualifies an extractor on a reference model's text, a run without a meta-judge asks no
extractor, a rerun is served from the cache, and ``--extractor-base-url`` sends the extractor's
requests to its own server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.scorers.rationale import verdict_side
from ralign_tasks.testing.loopback import (
    EXTRACTED_REASONS,
    LoopbackServer,
    is_extract_prompt,
    is_rc_judge_prompt,
    is_reason_types_prompt,
    prompt_of,
    stand_in,
)
from tests.support.free_atomic import EXPECTED, EXPECTED_COUNTS, GENRM, STATUSES, responder

RECORDS = load_task("helpsteer3_atomic", sample_data_dir()).records
LABELS = [record.label for record in RECORDS]  # A B B A B A B A
# The stand-in MetaJudge matches R1 to S1 (1) and R2 to S2 (0.5) of the two extracted reasons.
STAND_IN_RC = [1.5 / len(record.checklist) for record in RECORDS]
# Stored free-form outputs: the reasons in the thinking, the visible answer below it, and the
# verdict in the box (always A; item 2 has nothing after its thinking).
THINKING = "weighing item {n}: a private consideration"
VISIBLE = "Visible rationale {n}: Assistant A is right and Assistant B is not."


def free_output(n: int) -> str:
    if n == 2:
        return f"<think>{THINKING.format(n=n)} \\boxed{{A}}</think>\n"
    return f"<think>{THINKING.format(n=n)}</think>\n{VISIBLE.format(n=n)}\n\\boxed{{A}}"


@pytest.fixture(autouse=True)
def own_cache_and_no_extractor_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RALIGN_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("MODEL", "BASE_URL", "API_KEY"):
        monkeypatch.delenv(f"RALIGN_EXTRACTOR_{name}", raising=False)


def write_outputs(path: Path, outputs: list[str]) -> Path:
    rows = [
        {"id": record.id, "output": text} for record, text in zip(RECORDS, outputs, strict=True)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def the_run(out: Path) -> tuple[Path, dict, list[dict]]:
    """The one run folder under ``out``, its results and its judged-item records."""
    (results_file,) = out.glob("*/*/results.json")
    results = json.loads(results_file.read_text())
    rows = [
        json.loads(line)
        for line in (results_file.parent / "samples.jsonl").read_text().splitlines()
    ]
    return results_file.parent, results, [row["item"] for row in rows]


def free_run(base_url: str, out: Path, *extra: str) -> int:
    return main(["run", "helpsteer3_atomic", "--sample", "--genrm-format", "free",
                 "--genrm-model", "g", "--genrm-base-url", base_url,
                 "--output-dir", str(out), *extra])  # fmt: skip


def test_rc_score_extracts_the_reasons_of_stored_free_outputs_and_scores_them(tmp_path):
    outputs = write_outputs(tmp_path / "free.jsonl", [free_output(n) for n in range(8)])
    with LoopbackServer(stand_in) as server:
        code = main(["rc-score", "--sample", "--outputs", str(outputs), "--genrm-format", "free",
                     "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "out")])  # fmt: skip
        requests = list(server.requests)
    assert code == 0
    _, results, items = the_run(tmp_path / "out")
    overall = results["metrics"]["overall"]
    # Item 2's visible rationale is empty: extract_empty, no request; the rest are scored.
    scored = [n for n in range(8) if n != 2]
    assert overall["scored"] == 7 and overall["extract_empty"] == 1
    assert overall["extract_call_fail"] == overall["extract_parse_fail"] == 0
    assert overall["rc"] == pytest.approx(sum(STAND_IN_RC[n] for n in scored) / 7)
    assert overall["rc_precision"] == pytest.approx(0.75)  # S1 best 1, S2 best 0.5, of 2
    # The pairwise verdict (A everywhere, item 2's from its thinking) against the labels.
    assert overall["outcome_acc"] == pytest.approx(LABELS.count("A") / 8)
    assert overall["evidence_share"] is None  # no --reason-types
    # The extractor (the meta-judge: no extractor settings) read the visible rationale only.
    extract = [prompt_of(body) for body in requests if is_extract_prompt(body)]
    assert len(extract) == 7 and {body["model"] for body in requests} == {"j"}
    assert all("Visible rationale" in p and "private consideration" not in p for p in extract)
    assert sum(is_rc_judge_prompt(body) for body in requests) == 7
    assert len(requests) == 14
    assert [item["outcome"]["status"] for item in items] == [
        "extract_empty" if n == 2 else "scored" for n in range(8)
    ]
    for n, item in enumerate(items):
        steps = [call["step"] for call in item["judge"]]
        if n == 2:
            assert steps == [] and item["genrm"]["reasons"] == []
            continue
        assert steps == ["extract", "rc_meta_judge"]
        assert item["judge"][0]["ok"] and item["judge"][0]["value"] == list(EXTRACTED_REASONS)
        assert item["genrm"]["reasons"] == list(EXTRACTED_REASONS)
        assert item["genrm"]["format"] == "free" and item["genrm"]["extracted"]
    assert results["genrm"] == "free"
    assert results["identity"]["extractor"] == f"j at {server.base_url}"
    assert results["usage"]["extract"]["requests"] == 7


def test_rc_score_of_the_scripted_outputs_gives_the_hand_computed_values(tmp_path):
    """The scripted free-form run of tests/support/free_atomic.py, its GenRM outputs stored:
    ``rc-score`` gives the numbers ``ralign run`` does (every extraction and typing outcome)."""
    outputs = write_outputs(tmp_path / "scripted.jsonl", GENRM)
    respond, asks = responder()
    with LoopbackServer(respond) as server:
        code = main(["rc-score", "--sample", "--outputs", str(outputs), "--genrm-format", "free",
                     "--reason-types", "--metajudge-model", "judge", "--metajudge-base-url",
                     server.base_url, "--extractor-model", "extractor",
                     "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    _, results, items = the_run(tmp_path / "out")
    overall = results["metrics"]["overall"]
    for name, expected in EXPECTED.items():
        assert overall[name] == pytest.approx(expected), name
    for name, expected in EXPECTED_COUNTS.items():
        assert overall[name] == expected, name
    assert [item["outcome"]["status"] for item in items] == STATUSES
    assert {item for step, item in asks if step == "extract"} == set(range(8))
    assert results["identity"]["extractor"] == f"extractor at {server.base_url}"


def test_extract_without_reference_is_a_usage_error(tmp_path, capsys):
    outputs = write_outputs(tmp_path / "free.jsonl", [free_output(n) for n in range(8)])
    with LoopbackServer(stand_in) as server:
        code = main(["rc-score", "--sample", "--outputs", str(outputs), "--extract",
                     "--genrm-format", "free", "--metajudge-model", "j",
                     "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "out")])  # fmt: skip
        assert server.requests == []
    assert code == 2
    assert "--extract applies to --reference" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*/*/results.json"))


def test_a_run_without_a_meta_judge_asks_no_extractor(tmp_path):
    with LoopbackServer(stand_in) as server:
        code = free_run(server.base_url, tmp_path / "out", "--no-metajudge",
                        "--extractor-model", "x")  # fmt: skip
        requests = list(server.requests)
    assert code == 0
    # The GenRM only: one request per item, none of them an extractor's.
    assert len(requests) == 8 and {body["model"] for body in requests} == {"g"}
    assert not any(is_extract_prompt(body) or is_rc_judge_prompt(body) for body in requests)
    _, results, items = the_run(tmp_path / "out")
    overall = results["metrics"]["overall"]
    assert overall["unjudged"] == 8 and overall["scored"] == 0
    assert overall["extract_empty"] == overall["extract_call_fail"] == 0
    assert overall["rc"] is None
    assert overall["outcome_acc"] == pytest.approx(LABELS.count("A") / 8)  # stand-in: A
    assert all(item["outcome"]["status"] == "unjudged" for item in items)
    assert all(item["judge"] == [] and not item["genrm"]["extracted"] for item in items)
    assert results["identity"]["extractor"] is None and results["identity"]["judge"] is None
    assert "extract" not in results["usage"]


def test_a_rerun_is_served_from_the_cache(tmp_path):
    judge = ["--metajudge-model", "j", "--reason-types"]
    with LoopbackServer(stand_in) as server:
        judge += ["--metajudge-base-url", server.base_url]
        assert free_run(server.base_url, tmp_path / "out", *judge) == 0
        sent = len(server.requests)
        _, first, first_items = the_run(tmp_path / "out")
        assert free_run(server.base_url, tmp_path / "out", *judge, "--overwrite") == 0
        assert len(server.requests) == sent
    # GenRM, extractor, reason types and MetaJudge: 8 requests each, all sent once.
    assert sent == 32
    _, again, items = the_run(tmp_path / "out")
    assert again["run_id"] != first["run_id"]
    for step in ("genrm", "extract", "reason_types", "judge"):
        usage = again["usage"][step]
        assert usage["requests"] == usage["cache_hits"] == 8, step
        assert first["usage"][step]["cache_hits"] == 0, step
    # Same numbers: the stand-in types S1 evidence and S2 generic.
    overall = again["metrics"]["overall"]
    for name in ("rc", "rc_code", "outcome_acc", "evidence_share", "generic_share", "top_evidence"):
        assert overall[name] == first["metrics"]["overall"][name], name
    assert overall["evidence_share"] == overall["generic_share"] == pytest.approx(0.5)
    assert overall["top_evidence"] == 1.0
    assert all(call["cached"] for item in items for call in item["judge"])
    assert [item["outcome"] for item in items] == [item["outcome"] for item in first_items]


def test_the_extractor_at_its_own_endpoint(tmp_path):
    with LoopbackServer(stand_in) as main_server, LoopbackServer(stand_in) as extractor:
        code = free_run(main_server.base_url, tmp_path / "out", "--reason-types",
                        "--metajudge-model", "j", "--metajudge-base-url", main_server.base_url,
                        "--extractor-base-url", extractor.base_url,
                        "--extractor-model", "x")  # fmt: skip
        judge_requests, extractor_requests = list(main_server.requests), list(extractor.requests)
    assert code == 0
    assert len(extractor_requests) == 8
    assert all(is_extract_prompt(body) and body["model"] == "x" for body in extractor_requests)
    assert not any(is_extract_prompt(body) for body in judge_requests)
    # The GenRM's, the reason types' and the MetaJudge's requests stay at the first server.
    assert sum(is_reason_types_prompt(body) for body in judge_requests) == 8
    assert sum(is_rc_judge_prompt(body) for body in judge_requests) == 8
    assert len(judge_requests) == 24
    assert {body["model"] for body in judge_requests} == {"g", "j"}
    _, results, items = the_run(tmp_path / "out")
    assert results["identity"]["extractor"] == f"x at {extractor.base_url}"
    assert results["settings"]["extractor_endpoint"] == extractor.base_url
    assert results["settings"]["meta_judge_endpoint"] == main_server.base_url
    assert results["usage"]["extract"]["endpoint"] == extractor.base_url.split("//")[1][:-3]
    assert [(call["step"], call["model"]) for call in items[0]["judge"]] == [
        ("extract", "x"), ("reason_types", "j"), ("rc_meta_judge", "j"),
    ]  # fmt: skip
    assert results["metrics"]["overall"]["scored"] == 8


@pytest.mark.skipif(
    not all("high_deceptive_alignment" in record.references for record in RECORDS),
    reason="the bundled sample carries no reference outputs",
)
def test_rc_score_extracts_a_reference_models_generated_text(tmp_path):
    reference = "high_deceptive_alignment"
    stored = [record.references[reference] for record in RECORDS]
    with LoopbackServer(stand_in) as server:
        code = main(["rc-score", "--sample", "--reference", reference, "--extract",
                     "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "out")])  # fmt: skip
        extract = [prompt_of(body) for body in server.requests if is_extract_prompt(body)]
    assert code == 0
    _, results, items = the_run(tmp_path / "out")
    assert results["genrm"] == f"reference/{reference}+extract"
    assert results["identity"]["extractor"] == f"j at {server.base_url}"
    # Each item's stored text went to the extractor, whose reasons replace the stored
    # checklist (one of which is empty: that item is scored too).
    assert len(extract) == 8
    for text in (s.generated_text for s in stored):
        assert text is not None and sum(text.strip() in prompt for prompt in extract) == 1
    assert any(not s.checklist for s in stored)
    overall = results["metrics"]["overall"]
    assert overall["scored"] == 8 and overall["skipped_empty"] == 0
    assert overall["rc"] == pytest.approx(sum(STAND_IN_RC) / 8)
    assert all(item["genrm"]["reasons"] == list(EXTRACTED_REASONS) for item in items)
    # The verdict is the stored five-way label.
    assert [item["genrm"]["verdict"] for item in items] == [s.label for s in stored]
    sides = [verdict_side(s.label) for s in stored]
    expected = sum(side == label for side, label in zip(sides, LABELS, strict=True)) / 8
    assert overall["outcome_acc"] == pytest.approx(expected)

"""``ralign export --format every-eval-ever``: a CLI, an lm-eval and an Inspect run of the same
scripted GenRM and meta-judge each become an aggregate record and an instance file that
validate against the Every Eval Ever schemas (v0.3.0, ../shared/specs), carry the run's numbers,
name the meta-judge and its template, and are rewritten in place when exported again."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import LoopbackServer, stand_in
from tests.support.harness import inspect_eval_run, lm_eval_run
from tests.support.shared_data import SHARED_DATA, needs_shared_data

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = SHARED_DATA.parent / "specs" / "every_eval_ever"
TEMPLATE = resources.files("ralign_tasks") / "templates" / "metajudge.jinja"
UUID_FILE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def schemas():
    if not SCHEMAS.is_dir():
        pytest.skip(f"the Every Eval Ever schemas are not in {SCHEMAS}")
    return [json.loads((SCHEMAS / name).read_text()) for name in
            ("eval.schema.json", "instance_level_eval.schema.json")]  # fmt: skip


def cli_run(server, out: Path) -> Path:
    code = main([
        "run", "helpsteer3", "--sample", "--genrm-model", "Org/genrm-7b", "--genrm-base-url",
        server.base_url, "--metajudge-model", "judge", "--metajudge-base-url", server.base_url,
        "--metajudge-temperature", "0.2", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    (folder,) = out.glob("*/*/results.json")
    return folder.parent


def export(paths, out: Path) -> list[tuple[Path, Path | None]]:
    code = main(["export", *map(str, paths), "--format", "every-eval-ever", "--output-dir",
                 str(out), "--source-organization", "Test Lab"])  # fmt: skip
    assert code == 0
    written = []
    for record in sorted(out.glob("data/*/*/*/*.json")):
        samples = record.with_name(record.stem + "_samples.jsonl")
        written.append((record, samples if samples.is_file() else None))
    return written


def check_valid(record_path: Path, samples_path: Path | None, out: Path) -> tuple[dict, list]:
    """Validate both files and their links (file path, checksum, rows, result ids)."""
    aggregate_schema, instance_schema = schemas()
    record = json.loads(record_path.read_text())
    jsonschema.validate(record, aggregate_schema)
    assert UUID_FILE.match(record_path.name)
    rows = []
    if samples_path is not None:
        detail = record["detailed_evaluation_results"]
        assert out / detail["file_path"] == samples_path
        assert detail["checksum"] == hashlib.sha256(samples_path.read_bytes()).hexdigest()
        rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
        assert detail["total_rows"] == len(rows)
        ids = {entry["evaluation_result_id"] for entry in record["evaluation_results"]}
        for row in rows:
            jsonschema.validate(row, instance_schema)
            assert row["evaluation_id"] == record["evaluation_id"]
            assert row["evaluation_result_id"] in ids
    return record, rows


def result(record: dict, result_id: str) -> dict:
    (found,) = [e for e in record["evaluation_results"] if e["evaluation_result_id"] == result_id]
    return found


@needs_shared_data
def test_a_cli_run_exports_its_numbers_judge_and_items(tmp_path):
    with LoopbackServer(stand_in) as server:
        folder = cli_run(server, tmp_path / "runs")
    ((record_path, samples_path),) = export([folder], tmp_path / "eee")
    record, rows = check_valid(record_path, samples_path, tmp_path / "eee")
    results = json.loads((folder / "results.json").read_text())
    overall = results["metrics"]["overall"]
    assert record_path.parts[-4:-1] == ("ralign_helpsteer3", "Org", "genrm-7b")
    assert record["model_info"]["id"] == "Org/genrm-7b"
    assert record["eval_library"]["name"] == "ralign-tasks"
    assert record["source_metadata"]["source_organization_name"] == "Test Lab"
    f_score = result(record, "ralign_helpsteer3/overall/f_score")
    assert f_score["score_details"]["score"] == overall["f_score"]
    interval = f_score["score_details"]["uncertainty"]["confidence_interval"]
    assert [interval["lower"], interval["upper"]] == overall["ci"]["f_score"]
    assert f_score["score_details"]["uncertainty"]["num_samples"] == overall["n"]
    (judge,) = f_score["metric_config"]["llm_scoring"]["judges"]
    assert judge["model_info"]["id"] == "judge" and judge["temperature"] == 0.2
    sha = hashlib.sha256(TEMPLATE.read_text(encoding="utf-8").encode()).hexdigest()
    assert judge["additional_details"]["template_sha256"] == sha
    # L-Acc needs no judge: no llm_scoring. Subsets and failure counts are results too.
    assert "llm_scoring" not in result(record, "ralign_helpsteer3/overall/l_acc")["metric_config"]
    assert result(record, "ralign_helpsteer3/stem/l_acc")["evaluation_name"].endswith("/stem")
    assert result(record, "ralign_helpsteer3/overall/meta_call_fail")["score_details"][
        "score"] == overall["meta_call_fail"]  # fmt: skip
    # One line per item, its label accuracy; the stand-in GenRM always answers A.
    items = [json.loads(line)["item"] for line in
             (folder / "samples.jsonl").read_text().splitlines()]  # fmt: skip
    assert len(rows) == len(items) == overall["n"]
    by_id = {row["sample_id"]: row for row in rows}
    for item in items:
        row = by_id[item["id"]]
        assert row["evaluation"]["is_correct"] == (item["label"] == "A")
        assert row["output"]["raw"] == [item["genrm"]["output"]]
        assert row["input"]["reference"] == [item["label"]]
        judged = [a for a in row["answer_attribution"] if a["extraction_method"] == "llm_judge"]
        assert len(judged) == len(item["judge"])
    # Exported again: the same files, rewritten.
    again = export([folder], tmp_path / "eee")
    assert again == [(record_path, samples_path)]


@needs_shared_data
def test_a_label_run_leaves_out_items_scored_only_as_a_set(tmp_path):
    with LoopbackServer(stand_in) as server:
        code = main(["run", "rb2", "--sample", "--genrm-model", "genrm", "--genrm-base-url",
                     server.base_url, "--output-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0
    ((record_path, samples_path),) = export([tmp_path / "runs"], tmp_path / "eee")
    record, rows = check_valid(record_path, samples_path, tmp_path / "eee")
    assert {row["metadata"]["subset"] for row in rows} == {
        "factuality", "precise_if", "math", "safety", "focus"
    }  # fmt: skip
    assert all(row["evaluation_result_id"] == "ralign_rb2/overall/score" for row in rows)
    assert "llm_scoring" not in result(record, "ralign_rb2/overall/score")["metric_config"]
    assert record["evaluation_results"][0]["source_data"]["source_type"] == "other"


@needs_shared_data
@pytest.mark.slow  # lm-eval and Inspect run as subprocesses
def test_lm_eval_and_inspect_runs_export_valid_records_with_the_same_numbers(tmp_path):
    task = "ralign_helpsteer3"
    with LoopbackServer(stand_in) as server:
        folder = cli_run(server, tmp_path / "runs")
        run = lm_eval_run(server, tmp_path / "lm_eval", task, {
            "sample": True, "metajudge_model": "judge", "metajudge_base_url": server.base_url,
        }, "--log_samples", model="Org/genrm-7b")  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        inspect_eval_run(
            server, tmp_path, task, "--model", "openai-api/loop/Org/genrm-7b",
            "--model-role", "meta_judge=openai-api/loop/judge", "-T", "sample=true",
        )  # fmt: skip
    out = tmp_path / "eee"
    (log,) = (tmp_path / "logs").glob("*.eval")
    written = export([folder, tmp_path / "lm_eval", log], out)
    assert len(written) == 3
    f_scores = []
    for record_path, samples_path in written:
        record, rows = check_valid(record_path, samples_path, out)
        assert len(rows) == 8
        f_score = result(record, f"{task}/overall/f_score")
        (judge,) = f_score["metric_config"]["llm_scoring"]["judges"]
        assert judge["model_info"]["id"].endswith("judge")
        f_scores.append(f_score["score_details"]["score"])
    assert f_scores[0] == pytest.approx(f_scores[1]) == pytest.approx(f_scores[2])

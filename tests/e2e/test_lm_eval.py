"""lm-eval tasks end to end: `lm_eval run` through local-chat-completions against a loopback
server that plays both GenRM and meta-judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.fidelity import FidelityJudgment
from ralign_tasks.scorers.fidelity import ItemOutcome, MetaStatus, compute_fidelity
from ralign_tasks.task_configs import include_path
from ralign_tasks.testing.loopback import LoopbackServer, is_metajudge_prompt
from ralign_tasks.testing.random_model import build_random_llama
from tests.support.harness import LM_EVAL_SCRIPT, lm_eval_run
from tests.support.harness import read_lm_eval_output as read_output
from tests.support.scripted import (
    DEFAULT_OTHERS,
    EXPECTED_OFFICIAL,
    FAIL,
    meta_answer,
    scripted_responder,
)

pytestmark = pytest.mark.slow  # every test here runs lm_eval in a subprocess


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    """One `lm_eval run --tasks ralign` with scripted helpsteer3 answers (others: always A and
    Correct), shared by the checks below."""
    out = tmp_path_factory.mktemp("lm_eval_out")
    records = load_task("helpsteer3", sample_data_dir()).records
    responder = scripted_responder(records, LM_EVAL_SCRIPT, others=DEFAULT_OTHERS)
    with LoopbackServer(responder) as server:
        metadata = {
            "sample": True,
            "metajudge_model": "judge",
            "metajudge_base_url": server.base_url,
            "metajudge_max_attempts": 2,
        }
        run = lm_eval_run(server, out, "ralign", metadata, "--log_samples")
        requests = list(server.requests)
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_output(out)
    return run, results, samples, requests, records


def test_metrics_equal_hand_computed_values(group_run):
    _, results, _, _, _ = group_run
    task = results["results"]["ralign_helpsteer3"]
    for metric, value in EXPECTED_OFFICIAL.items():
        assert task[f"{metric},none"] == pytest.approx(value)
    assert task["meta_parse_fail,none"] == 1 and task["meta_call_fail,none"] == 1
    assert task["genrm_no_verdict,none"] == 1
    assert isinstance(task["l_acc_stderr,none"], float)
    assert isinstance(task["f_score_stderr,none"], float)
    # The other two tasks: the GenRM always says A, the meta-judge always Correct.
    for name in ("ralign_rewardbench2", "ralign_ppe"):
        other = results["results"][name]
        assert other["l_acc,none"] == 0.5 and other["f_score,none"] == 0.5
        assert other["s_corr,none"] == 0.0
    group = results["groups"]["ralign"]
    tasks = ("ralign_helpsteer3", "ralign_rewardbench2", "ralign_ppe")
    for metric in EXPECTED_OFFICIAL:
        mean = sum(results["results"][t][f"{metric},none"] for t in tasks) / 3
        assert group[f"{metric},none"] == pytest.approx(mean)


def test_same_numbers_as_the_shared_scorer(group_run):
    _, results, samples, _, records = group_run
    by_id = {s["doc"]["id"]: s for s in samples["ralign_helpsteer3"]}
    outcomes = []
    for record in records:
        judged = json.loads(by_id[record.id]["filtered_resps"][0])
        judgment = FidelityJudgment.from_output(record, judged["genrm"]["output"])
        meta = MetaStatus(judged["outcome"]["meta"]) if judged["outcome"]["meta"] else None
        assert judgment.label_correct == judged["outcome"]["label_correct"]
        outcomes.append(
            ItemOutcome(record.subset, judgment.label_correct, meta,
                        genrm_no_verdict=judgment.verdict is None)
        )  # fmt: skip
    shared = compute_fidelity(outcomes)
    task = results["results"]["ralign_helpsteer3"]
    for metric in ("l_acc", "s_corr", "f_score"):
        assert task[f"{metric},none"] == shared[metric]  # identical, not just close
        # The stderr is the project's own bootstrap, not lm-eval's.
        assert task[f"{metric}_stderr,none"] == shared["stderr"][metric]


def test_samples_log_meta_verdicts(group_run):
    _, _, samples, _, records = group_run
    rows = {s["doc"]["id"]: s for s in samples["ralign_helpsteer3"]}
    judged = [json.loads(rows[r.id]["filtered_resps"][0]) for r in records]
    assert all(j["ralign_item"] == 1 and j["task"] == "ralign_helpsteer3" for j in judged)
    assert [j["outcome"]["meta"] for j in judged] == [
        "correct", "incorrect", "parse_fail", None, None, "call_fail", None, None,
    ]  # fmt: skip
    assert judged[1]["judge"][0]["answer"].endswith("<final_verdict>Incorrect</final_verdict>")
    assert "scripted failure" in judged[5]["judge"][0]["error"]
    assert [j["genrm"]["verdict"] for j in judged][:3] == ["A", "B", "A"]
    # lm-eval does not say why generation stopped: truncation is unknown, not false.
    assert {j["genrm"]["truncated"] for j in judged} == {None}
    # A metric's per-document value names it and carries the task's judged items: lm-eval
    # aggregates it with the protocol's own computation over them, and logs it briefly.
    assert rows[records[0].id]["f_score"] == ["f_score", "ralign_helpsteer3: 8 judged items"]


def test_only_label_correct_documents_reach_the_metajudge(group_run):
    _, _, _, requests, records = group_run
    meta_requests = [b for b in requests if is_metajudge_prompt(b)]
    helpsteer = [b for b in meta_requests if any(r.prompt in str(b) for r in records)]
    # Items 0, 1, 2 once each; item 5 fails and is sent three times within the tests' retry
    # budget (tests/conftest.py).
    assert len(helpsteer) == 3 + 3
    for index in (3, 4, 6, 7):
        assert not any(records[index].prompt in str(b) for b in helpsteer)
    # 4 label-correct items in each of the two other tasks, judged once each.
    assert len(meta_requests) - len(helpsteer) == 8


def test_table_shows_metrics_per_task_and_group(group_run):
    run, _, _, _, _ = group_run
    table = run.stdout
    for name in ("ralign_helpsteer3", "ralign_rewardbench2", "ralign_ppe", "ralign"):
        assert name in table
    for metric in ("l_acc", "s_corr", "f_score", "meta_call_fail", "meta_parse_fail"):
        assert metric in table
    assert "|Groups|" in table


def test_without_metajudge_the_run_stops_before_generating(tmp_path):
    with LoopbackServer(lambda body: "\\boxed{A}") as server:
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", {"sample": True})
        assert not server.requests
    assert run.returncode != 0 and "Traceback" not in run.stderr  # a user error: one line
    assert "ralign: error: ralign_helpsteer3: no meta-judge configured" in run.stderr


def test_missing_data_is_one_line_naming_the_folder(tmp_path):
    with LoopbackServer(lambda body: "\\boxed{A}") as server:
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3",
                          {"data_dir": str(tmp_path / "nowhere"), "metajudge": "none"})  # fmt: skip
        assert not server.requests
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "ralign: error: ralign_helpsteer3:" in run.stderr and "nowhere" in run.stderr


def test_metajudge_none_reports_label_accuracy_only(tmp_path):
    with LoopbackServer(lambda body: "\\boxed{A}") as server:
        run = lm_eval_run(server, tmp_path, "ralign_ppe", {"sample": True, "metajudge": "none"})
        assert not any(is_metajudge_prompt(b) for b in server.requests)
    assert run.returncode == 0, run.stderr[-3000:]
    task = read_output(tmp_path)[0]["results"]["ralign_ppe"]
    assert task["l_acc,none"] == 0.5
    assert "f_score,none" not in task and "s_corr,none" not in task


def test_api_key_in_metadata_is_refused(tmp_path):
    with LoopbackServer(lambda body: FAIL) as server:
        run = lm_eval_run(
            server, tmp_path, "ralign_ppe",
            {"sample": True, "metajudge_model": "j", "metajudge_api_key": "sk-x"},
        )  # fmt: skip
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "not in --metadata" in run.stderr


def test_hf_backend_with_a_tiny_random_model(tmp_path):
    """The real transformers backend end to end (its GenRM answers are noise: whatever it
    writes is parsed and scored like any other output)."""
    records = load_task("helpsteer3", sample_data_dir()).records
    corpus = [r.prompt + r.response_a + r.response_b + r.golden_rationale for r in records]
    model_dir = build_random_llama(tmp_path / "tiny-llama", corpus * 4)
    out = tmp_path / "out"
    with LoopbackServer(lambda body: meta_answer("Correct")) as server:
        metadata = {"sample": True, "metajudge_model": "j", "metajudge_base_url": server.base_url}
        command = [
            sys.executable, "-m", "lm_eval", "run",
            "--model", "hf",
            "--model_args", f"pretrained={model_dir},dtype=float32",
            "--device", "cpu",
            "--apply_chat_template",
            "--tasks", "ralign_helpsteer3",
            "--include_path", str(include_path()),
            "--gen_kwargs", "max_gen_toks=12,do_sample=false",
            "--metadata", json.dumps(metadata),
            "--output_path", str(out),
            "--log_samples",
        ]  # fmt: skip
        env = {**os.environ, "RALIGN_CACHE_DIR": str(tmp_path / "cache")}
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        meta_calls = len(server.requests)
    assert run.returncode == 0, run.stderr[-3000:]
    results, samples = read_output(out)
    rows = samples["ralign_helpsteer3"]
    assert len(rows) == 8
    expected = [
        FidelityJudgment.from_output(r, json.loads(row["filtered_resps"][0])["genrm"]["output"])
        for r, row in zip(records, sorted(rows, key=lambda s: s["doc_id"]), strict=True)
    ]
    assert [row["resps"][0][0] for row in sorted(rows, key=lambda s: s["doc_id"])] == [
        j.output for j in expected
    ]
    task = results["results"]["ralign_helpsteer3"]
    assert task["l_acc,none"] == sum(j.label_correct for j in expected) / 8
    assert meta_calls == sum(j.label_correct for j in expected)

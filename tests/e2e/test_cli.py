"""``ralign run`` / ``ralign score`` end to end against a scripted loopback server."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ralign_tasks import pipeline
from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.scorers.cache import ResponseCache
from ralign_tasks.task_configs import include_path
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    LoopbackServer,
    Reply,
    is_metajudge_prompt,
    play_both_roles,
    prompt_of,
    stand_in,
)
from tests.support.folders import no_run_dir, run_dir
from tests.support.reports import csv_rows
from tests.support.scripted import EXPECTED_OFFICIAL, scripted_responder


@pytest.fixture
def scripted(sample_records):
    with LoopbackServer(scripted_responder(sample_records)) as server:
        yield server


def run_cli(server, tmp_path, *extra):
    return main(
        [
            "run",
            "helpsteer3",
            "--sample",
            "--genrm-model",
            "genrm",
            "--genrm-base-url",
            server.base_url,
            "--metajudge-model",
            "judge",
            "--metajudge-base-url",
            server.base_url,
            "--output-dir",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def write_outputs(tmp_path, records, output="\\boxed{A}"):
    """A GenRM outputs file (``ralign score --outputs``) giving every record ``output``."""
    path = tmp_path / "outputs.jsonl"
    rows = [json.dumps({"id": r.id, "output": output}) for r in records]
    path.write_text("\n".join(rows), encoding="utf-8")
    return path


def read_results(tmp_path, folder_name="helpsteer3"):
    """results.json and the judged-item records of samples.jsonl."""
    folder = run_dir(tmp_path / "out", folder_name)
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert all(row["item"]["ralign_item"] == 1 for row in rows)
    return results, [row["item"] for row in rows]


def test_run_official_policy_matches_hand_computed_metrics(scripted, tmp_path, capsys):
    assert run_cli(scripted, tmp_path) == 0
    results, samples = read_results(tmp_path)
    overall = results["metrics"]["overall"]
    # Label-correct: items 0, 1, 2 (backslash fallback), 5. Meta: C, I, ParseFail, CallFail.
    assert (overall["n"], overall["label_correct"]) == (8, 4)
    assert (overall["meta_correct"], overall["meta_incorrect"]) == (1, 1)
    assert (overall["meta_parse_fail"], overall["meta_call_fail"]) == (1, 1)
    assert (overall["genrm_no_verdict"], overall["genrm_call_fail"]) == (1, 1)
    assert overall["genrm_truncated"] == 1 and samples[4]["genrm"]["truncated"]
    for metric, value in EXPECTED_OFFICIAL.items():
        assert overall[metric] == pytest.approx(value)
    assert [s["outcome"]["meta"] for s in samples] == [
        "correct", "incorrect", "parse_fail", None, None, "call_fail", None, None,
    ]  # fmt: skip
    meta_prompts = [b for b in scripted.requests if is_metajudge_prompt(b)]
    # 4 label-correct items; the failing one is sent three times within the retry budget.
    assert len(meta_prompts) == 3 + 3
    assert samples[6]["genrm"]["output"] is None
    assert "scripted failure" in samples[6]["genrm"]["error"]  # why the GenRM call failed
    judge = samples[0]["judge"][0]
    assert judge["prompt_tokens"] > 100 and judge["wall_s"] > 0 and judge["model"] == "judge"
    assert judge["cached"] is False and judge["attempts"] == 1 and samples[3]["judge"] == []
    assert set(results["metrics"]["subsets"]) == {"code", "general", "multilingual", "stem"}
    printed = capsys.readouterr().out
    assert "ralign_helpsteer3" in printed and "50.0 [" in printed and "16.7 [" in printed


def test_run_strict_policy(scripted, tmp_path):
    assert run_cli(scripted, tmp_path, "--verdict-policy", "strict") == 0
    # A folder of its own: a strict run never overwrites the official one.
    assert no_run_dir(tmp_path / "out", "helpsteer3")
    overall = read_results(tmp_path, "helpsteer3_strict")[0]["metrics"]["overall"]
    # Strict: item 2 (no backslash) has no verdict, item 7's final box (A) counts.
    assert overall["label_correct"] == 4
    assert (overall["meta_correct"], overall["meta_incorrect"]) == (2, 1)
    assert overall["genrm_no_verdict"] == 2
    assert overall["s_corr"] == pytest.approx(1 / 3)
    assert overall["f_score"] == pytest.approx(2 / 7)


def test_no_metajudge_reports_label_accuracy_only(scripted, tmp_path):
    assert run_cli(scripted, tmp_path, "--no-metajudge") == 0
    metrics = read_results(tmp_path)[0]["metrics"]
    overall = metrics["overall"]
    assert overall["l_acc"] == pytest.approx(0.5)
    # Null in every row: also in `multilingual`, where nothing is label-correct.
    for group in (overall, *metrics["subsets"].values()):
        assert group["s_corr"] is None and group["f_score"] is None
        assert group["ci"]["f_score"] is None
    assert metrics["subsets"]["multilingual"]["label_correct"] == 0
    assert not any(is_metajudge_prompt(b) for b in scripted.requests)


def test_score_precomputed_outputs(scripted, sample_records, tmp_path):
    outputs = write_outputs(tmp_path, sample_records)
    code = main(
        ["score", "helpsteer3", "--sample", "--outputs", str(outputs),
         "--metajudge-model", "judge", "--metajudge-base-url", scripted.base_url,
         "--output-dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    overall = read_results(tmp_path)[0]["metrics"]["overall"]
    # Every output says A: the four A-labelled items (0, 2, 5, 7) are label-correct.
    assert overall["label_correct"] == 4
    assert (overall["meta_correct"], overall["meta_parse_fail"]) == (2, 1)
    assert overall["meta_call_fail"] == 1
    assert not any(not is_metajudge_prompt(b) for b in scripted.requests)


def test_missing_metajudge_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "helpsteer3", "--sample", "--genrm-model", "g"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no meta-judge model configured" in err and "RALIGN_METAJUDGE_MODEL" in err


def test_incomplete_outputs_file_is_an_error(tmp_path, sample_records, capsys):
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"id": sample_records[0].id, "output": "x"}), encoding="utf-8")
    code = main(["score", "helpsteer3", "--sample", "--outputs", str(outputs), "--no-metajudge"])
    assert code == 2
    assert "no output for 7 of 8 items" in capsys.readouterr().err


def test_include_path_is_the_task_configs_folder(capsys):
    assert main(["include-path"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(include_path())
    assert (include_path() / "__init__.py").is_file()


@pytest.mark.slow  # a subprocess of its own
def test_ctrl_c_keeps_finished_answers_and_rerun_resumes(tmp_path):
    command = [
        sys.executable, "-m", "ralign_tasks.cli", "run", "--sample",
        "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT), 0.3) as server:
        env = {
            **os.environ,
            "RALIGN_GENRM_MODEL": "g",
            "RALIGN_GENRM_BASE_URL": server.base_url,
            "RALIGN_GENRM_CONCURRENCY": "2",
            "RALIGN_METAJUDGE_MODEL": "j",
            "RALIGN_METAJUDGE_BASE_URL": server.base_url,
        }
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        cache = ResponseCache(os.environ["RALIGN_CACHE_DIR"])
        deadline = time.time() + 60
        while len(cache) < 4 and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130
        assert "interrupted" in err and "run the same command again to resume" in err
        kept = len(cache)
        sent_before = len(server.requests)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        # 24 GenRM + 12 meta-judge requests in all; none answered before is asked again.
        assert len(server.requests) - sent_before <= 36 - kept
    assert (run_dir(tmp_path / "out", "ppe_human_preference_v1") / "results.json").is_file()


def test_unknown_subset_is_a_clear_error(tmp_path, sample_records, capsys):
    outputs = write_outputs(tmp_path, sample_records)
    args = ["score", "helpsteer3", "--sample", "--outputs", str(outputs), "--no-metajudge"]
    code = main([*args, "--subset", "code", "--subset", "maths", "--output-dir", str(tmp_path)])
    assert code == 2
    assert "unknown subset(s) 'maths'" in capsys.readouterr().err


def test_report_and_view_read_a_run_folder_without_loading_a_harness(scripted, tmp_path):
    assert run_cli(scripted, tmp_path) == 0
    results, _ = read_results(tmp_path)
    out = tmp_path / "out"
    script = (
        "import sys, json\n"
        "from ralign_tasks.cli import main\n"
        f"assert main(['report', {str(out)!r}, '--format', 'csv',"
        f" '--output', {str(tmp_path / 'table.csv')!r}]) == 0\n"
        f"assert main(['view', {str(out)!r}, '--output-dir', {str(tmp_path / 'view')!r}]) == 0\n"
        "print(json.dumps(sorted(m for m in ('inspect_ai', 'lm_eval') if m in sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == []  # neither harness was imported
    (row,) = csv_rows((tmp_path / "table.csv").read_text())
    overall = results["metrics"]["overall"]
    assert row["genrm"] == "genrm" and row["ralign_helpsteer3.n"] == "8"
    for metric in ("l_acc", "s_corr", "f_score"):
        assert float(row[f"ralign_helpsteer3.{metric}"]) == pytest.approx(
            overall[metric] * 100, abs=1e-4
        )
        low = float(row[f"ralign_helpsteer3.{metric}.ci_low"])
        assert low == pytest.approx(overall["ci"][metric][0] * 100, abs=1e-4)
    assert (tmp_path / "view" / "genrm__ralign_helpsteer3.html").is_file()


def test_limit_must_be_at_least_one(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "helpsteer3", "--sample", "--limit", "0"])
    assert info.value.code == 2
    assert "--limit: must be at least 1, got 0" in capsys.readouterr().err


def test_check_data_lists_bad_rows_empty_files_and_missing_benchmarks(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    sample = sample_data_dir() / "data"
    (data / "helpsteer3_aug.jsonl").write_bytes(
        (sample / "helpsteer3_aug.jsonl").read_bytes() + b'{"id": "bad", \xff}\n'
    )
    (data / "ppe_human_preference_v1_aug.jsonl").write_text("", encoding="utf-8")
    code = main(["check-data", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "helpsteer3_aug.jsonl: 8 valid rows, 1 bad" in out
    assert "helpsteer3_aug.jsonl:9: not UTF-8 text (byte 0xff" in out
    assert "ppe_human_preference_v1_aug.jsonl: error: empty file (no rows)" in out
    assert "ralign_rewardbench2: no data file at" in out
    assert "ralign_helpsteer3_atomic: no data file at" in out
    assert "ralign_rmbench: no RM-Bench file" in out
    # Named benchmarks must be there; a clean file passes.
    assert main(["check-data", "rewardbench2", "--data-dir", str(tmp_path)]) == 2
    assert "ralign_rewardbench2: no data file at" in capsys.readouterr().err
    assert main(["check-data", "helpsteer3_atomic", "--data-dir", str(sample_data_dir())]) == 0
    # The label benchmarks find their own files: official names, per-domain files.
    for name in ("judgebench", "rmbench", "rb2"):
        assert main(["check-data", name, "--data-dir", str(sample_data_dir())]) == 0
    assert main(["check-data", "--data-dir", str(tmp_path / "nothing")]) == 2  # no such folder


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_separate_reasoning_field_is_read_as_thinking(sample_records, tmp_path, field):
    """A server with a reasoning parser returns the thinking in its own field: the GenRM's
    verdict is read as the official scripts read the raw output (thinking first), and the
    meta-judge still never sees the thinking."""

    def respond(body):
        if is_metajudge_prompt(body):
            return METAJUDGE_CORRECT
        cut = sample_records[3].prompt in prompt_of(body)
        return Reply("The answer: \\boxed{A}", reasoning="Hmm, \\boxed{B}?",
                     reasoning_field=field, finish_reason="length" if cut else "stop")  # fmt: skip

    with LoopbackServer(respond) as server:
        assert run_cli(server, tmp_path) == 0
        meta_prompts = [prompt_of(b) for b in server.requests if is_metajudge_prompt(b)]
    results, samples = read_results(tmp_path)
    # The first box is the thinking's B: the B-labelled items (1, 3, 4, 6) are label-correct.
    assert [s["genrm"]["verdict"] for s in samples] == ["B"] * 8
    assert results["metrics"]["overall"]["label_correct"] == 4
    assert (
        samples[0]["genrm"]["output"] == "<think>Hmm, \\boxed{B}?</think>\nThe answer: \\boxed{A}"
    )
    assert (
        samples[3]["genrm"]["truncated"] and results["metrics"]["overall"]["genrm_truncated"] == 1
    )
    assert len(meta_prompts) == 4 and not any("Hmm" in p for p in meta_prompts)


def test_the_stand_in_server_plays_every_role(tmp_path):
    """`python -m ralign_tasks.testing.loopback` serves both families, so Rationale
    Consistency can be seen working offline too."""
    with LoopbackServer(stand_in) as server:
        code = main(
            ["run", "helpsteer3", "helpsteer3_atomic", "--sample",
             "--genrm-model", "g", "--genrm-base-url", server.base_url,
             "--metajudge-model", "j", "--metajudge-base-url", server.base_url,
             "--output-dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert code == 0
    rc = json.loads(
        (run_dir(tmp_path / "out", "helpsteer3_atomic_test") / "results.json").read_text()
    )
    overall = rc["metrics"]["overall"]
    assert overall["scored"] == 8 and 0 < overall["rc"] < 1
    fidelity = json.loads((run_dir(tmp_path / "out", "helpsteer3") / "results.json").read_text())
    assert fidelity["metrics"]["overall"]["f_score"] == 0.5


def test_an_outputs_file_is_read_like_the_data(tmp_path, sample_records, capsys):
    """GenRM outputs with a byte-order mark, a \\r between tokens and a row that is not UTF-8."""
    rows = [json.dumps({"id": r.id, "output": "\\boxed{A}"}) for r in sample_records]
    rows[1] = rows[1].replace(', "', ',\r"', 1)
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    args = ["score", "helpsteer3", "--sample", "--outputs", str(path), "--no-metajudge",
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    path.write_bytes("\n".join(rows).encode() + b'\n{"id": "\xff"}\n')
    assert main(args) == 2
    assert f"{path}:9: not UTF-8 text (byte 0xff" in capsys.readouterr().err


def test_a_group_filter_of_another_family_is_an_error(tmp_path, sample_records, capsys):
    outputs = write_outputs(tmp_path, sample_records)
    args = ["score", "helpsteer3", "--sample", "--outputs", str(outputs), "--no-metajudge"]
    assert main([*args, "--domain", "stem", "--output-dir", str(tmp_path)]) == 2
    assert "--domain does not apply to ralign_helpsteer3" in capsys.readouterr().err


def test_help_loads_neither_a_client_nor_a_solver():
    """`ralign --help` stays fast: openai, scipy.optimize and the harnesses load where used."""
    script = (
        "import sys, json\n"
        "from ralign_tasks.cli.parser import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('openai', 'scipy.optimize', 'lm_eval', 'inspect_ai', 'matplotlib')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_runs_of_other_settings_are_rows_of_their_own_in_the_report(scripted, tmp_path, capsys):
    """An official and a strict run of one GenRM: two folders, two report rows, no run
    shadowing the other."""
    assert run_cli(scripted, tmp_path) == 0
    assert run_cli(scripted, tmp_path, "--verdict-policy", "strict") == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "out"), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = {row["genrm"]: row for row in csv_rows(captured.out)}
    assert set(rows) == {"genrm", "genrm (verdict_policy=strict)"}
    assert "also ran" not in captured.err
    # Strict: item 2 (no backslash) has no verdict, item 7's final box counts (as above).
    assert float(rows["genrm (verdict_policy=strict)"]["ralign_helpsteer3.f_score"]) == (
        pytest.approx(200 / 7, abs=1e-4)
    )


def test_a_run_in_steps_writes_the_same_folder_as_one_step(scripted, tmp_path, monkeypatch,
                                                           caplog):  # fmt: skip
    caplog.set_level("INFO")
    assert run_cli(scripted, tmp_path / "one") == 0
    one = run_dir(tmp_path / "one" / "out", "helpsteer3")
    monkeypatch.setattr(pipeline, "RUN_STEP", 3)  # 8 items: steps of 3, 3 and 2
    caplog.clear()
    assert run_cli(scripted, tmp_path / "steps", "--no-cache") == 0
    steps = run_dir(tmp_path / "steps" / "out", "helpsteer3")
    assert sorted(p.name for p in steps.iterdir()) == [".ralign.lock", "results.json",
                                                       "samples.jsonl"]  # fmt: skip

    def rows(folder):
        return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]

    def without_timings(row):
        row.pop("run_id")  # each run its own
        for call in row["item"]["judge"]:
            call.pop("wall_s"), call.pop("cached")
        return row

    assert [without_timings(r) for r in rows(steps)] == [without_timings(r) for r in rows(one)]
    first, second = (json.loads((f / "results.json").read_text()) for f in (one, steps))
    assert first["metrics"] == second["metrics"]
    for metric, value in EXPECTED_OFFICIAL.items():
        assert second["metrics"]["overall"][metric] == pytest.approx(value)
    # The steps' calls add up to the one step's (the scripted server fails some first asks).
    # (How many sends a failing request takes depends on timing: its retry budget is in
    # seconds.)
    for role in ("genrm", "judge"):
        for count in ("requests", "failures", "prompt_tokens", "failure_reasons"):
            assert second["usage"][role][count] == first["usage"][role][count], (role, count)
        assert second["usage"][role]["calls"] > second["usage"][role]["requests"]
    # One summary line per role for the whole run, not one per step.
    summaries = [r.message for r in caplog.records if "requests," in r.message]
    assert len(summaries) == 2 and summaries[0].startswith("GenRM at ")

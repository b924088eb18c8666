"""A run is identified by GenRM, task, options, judge and path (issue 21, items 1 and 2): the
report shows one row per identity and marks runs whose requests failed, ``--compare`` refuses
those, and a run folder never takes a run of another identity silently."""

from __future__ import annotations

from ralign_tasks.cli import main
from ralign_tasks.report.runs import latest_runs, load_runs
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    LoopbackServer,
    Reply,
    is_metajudge_prompt,
)
from tests.support.hostile import results_of, run_in_process


def stand_in(body):
    """GenRM always A; the meta-judge ``j``/``j2`` says Correct, ``bad`` fails every time."""
    if not is_metajudge_prompt(body):
        return GENRM_PICKS_A
    return (
        Reply("down for maintenance", status=500) if body["model"] == "bad" else METAJUDGE_CORRECT
    )


def test_two_genrms_into_one_output_dir_keep_both_runs(tmp_path, capsys):
    out = tmp_path / "out"
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, out, "--genrm-model", "first") == 0
        assert run_in_process(server.base_url, out, "--genrm-model", "Org/second") == 0
    assert results_of(out / "first" / "helpsteer3")["genrm"] == "first"
    assert results_of(out / "Org_second" / "helpsteer3")["genrm"] == "Org/second"
    capsys.readouterr()
    assert main(["report", str(out), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == ["Org/second", "first"]


def test_a_run_of_another_judge_is_refused_naming_both_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    folder = out / "g" / "helpsteer3"
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, out) == 0
        first = results_of(folder)["run_id"]
        assert run_in_process(server.base_url, out) == 0  # a rerun replaces its own run
        rerun = results_of(folder)["run_id"]
        asked = len(server.requests)
        capsys.readouterr()
        assert run_in_process(server.base_url, out, "--metajudge-model", "j2") == 2
        err = capsys.readouterr().err
        assert len(server.requests) == asked  # refused before any call
        assert results_of(folder)["run_id"] == rerun != first
        assert "holds another run: g on ralign_helpsteer3 (judge j at" in err
        assert "this one is g on ralign_helpsteer3 (judge j2 at" in err and "--overwrite" in err
        assert run_in_process(server.base_url, out, "--metajudge-model", "j2", "--overwrite") == 0
    assert results_of(folder)["identity"]["judge"] == "j2"


def test_the_report_marks_a_failed_run_and_compare_refuses_it(tmp_path, capsys):
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "good") == 0
        assert run_in_process(server.base_url, tmp_path / "bad", "--metajudge-model", "bad") == 3
    paths = [str(tmp_path / "good"), str(tmp_path / "bad")]
    capsys.readouterr()
    assert main(["report", *paths, "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    # Two rows, named by what tells them apart; the failed run's numbers are marked.
    good = next(line for line in text.splitlines() if line.startswith("| g [judge j]"))
    bad = next(line for line in text.splitlines() if line.startswith("| g [judge bad]"))
    # L-Acc and F-Score (0.0, since no rationale was graded Correct); S-Corr is undefined.
    assert "!" not in good and bad.count(" !") == 2
    assert "g [judge bad] on helpsteer3: judge: 4 of 4 requests failed" in text
    assert main(["report", *paths, "--compare", "g [judge j]", "g [judge bad]"]) == 2
    err = capsys.readouterr().err
    assert "not usable" in err and "judge: 4 of 4 requests failed" in err
    assert "--include-unusable" in err
    assert main(["report", *paths, "--compare", "g [judge j]", "g [judge bad]",
                 "--include-unusable"]) == 0  # fmt: skip
    capsys.readouterr()
    # CSV: the reason in a column of its own, empty for a usable run.
    assert main(["report", *paths, "--format", "csv"]) == 0
    rows = dict(line.split(",", 1) for line in capsys.readouterr().out.splitlines())
    assert rows["genrm"].endswith(",unusable") and rows["g [judge j]"].endswith(",")
    assert rows["g [judge bad]"].endswith(",helpsteer3: judge: 4 of 4 requests failed")


def test_a_rejudged_run_is_a_row_beside_its_source(tmp_path, capsys):
    with LoopbackServer(stand_in) as server:
        assert run_in_process(server.base_url, tmp_path / "out") == 0
        assert main(["rejudge", str(tmp_path / "out"), "--metajudge-model", "j2",
                     "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "rejudged")]) == 0  # fmt: skip
    results, warnings = load_runs([tmp_path / "out", tmp_path / "rejudged"])
    kept = latest_runs(results, warnings)
    assert not warnings
    assert sorted(r.genrm for r in kept) == [
        "g [judge j, by ralign run]",
        "g [judge j2, by ralign rejudge of ralign run]",
    ]
    # The viewer names each run's page as the report names its row.
    assert main(["view", str(tmp_path / "out"), str(tmp_path / "rejudged"),
                 "--output-dir", str(tmp_path / "view")]) == 0  # fmt: skip
    pages = sorted(p.name for p in (tmp_path / "view").glob("*.html"))
    assert pages == [
        "g_judge_j2_by_ralign_rejudge_of_ralign_run___ralign_helpsteer3.html",
        "g_judge_j_by_ralign_run___ralign_helpsteer3.html",
    ]

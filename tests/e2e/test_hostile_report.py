"""``ralign report`` and ``ralign view`` on hostile run folders (issue 20): GenRM names that look
like rich markup or hold a ``|`` are printed as they are in every table, a corrupt samples file
is told from a missing one (file, line, what is wrong), and a results file nested too deeply
or a GenRM answer holding a lone surrogate is a warning or a page, never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.scorers.jsonl import json_text
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    LoopbackServer,
    play_both_roles,
)
from tests.support.folders import run_dir
from tests.support.reports import report

# A closing tag rich refuses, a name rich would read as a style tag, a name that would split
# a Markdown cell.
NAMES = ("[/bold]", "Qwen3-8B[awq]", "GenRM|v2")
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ``ralign run helpsteer3 --sample`` runs, one per name of ``NAMES``."""
    root = tmp_path_factory.mktemp("hostile_runs")
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT)) as server:
        for index, name in enumerate(NAMES):
            code = main([
                "run", "helpsteer3", "--sample", "--genrm-model", name, "--genrm-base-url",
                server.base_url, "--metajudge-model", "judge", "--metajudge-base-url",
                server.base_url, "--no-cache", "--output-dir", str(root / f"run{index}"),
            ])  # fmt: skip
            assert code == 0, f"the sample run of {name} failed"
    return root


def one_run(runs: Path, tmp_path: Path) -> Path:
    """A copy of the first run's folder (``[/bold]``), to damage."""
    return Path(shutil.copytree(run_dir(runs / "run0", "helpsteer3"), tmp_path / "run"))


def test_names_are_printed_literally_in_every_table(runs, capsys):
    code, out, err = report([str(runs)], capsys)
    assert code == 0, err
    for name in NAMES:
        assert f"│ {name} " in out, out
    code, out, err = report([str(runs), "--format", "markdown", "--by-subset"], capsys)
    assert code == 0, err
    assert "| [/bold] | (all) |" in out and "| Qwen3-8B[awq] | (all) |" in out
    assert "| GenRM\\|v2 | (all) |" in out
    # The paired comparison's title and the correlations name the GenRMs too.
    code, out, err = report([str(runs), "--compare", *NAMES[:2]], capsys)
    assert code == 0, err
    assert "A = [/bold], B = Qwen3-8B[awq]" in out


@pytest.mark.parametrize(
    ("damage", "line", "what"),
    [
        (lambda rows: [*rows[:-1], rows[-1][:50]], 8, "the file ends inside this row"),
        (lambda rows: [*rows[:2], rows[2][:50] + b"\n", *rows[3:]], 3, "invalid JSON ("),
        (lambda rows: [*rows[:4], b"\xff" + rows[4], *rows[5:]], 5, "not UTF-8 text (byte 0xff"),
        (lambda rows: [*rows[:1], b'{"doc": {}}\n', *rows[2:]], 2, "not a judged-item row"),
        (lambda rows: [*rows[:6], DEEP.encode() + b"\n", *rows[7:]], 7, "nested too deeply"),
    ],
    ids=["torn-last-row", "torn-row", "not-utf8", "not-an-item", "deep"],
)
def test_view_tells_a_corrupt_samples_file_from_a_missing_one(
    runs, tmp_path, capsys, damage, line, what
):
    run = one_run(runs, tmp_path)
    samples = run / "samples.jsonl"
    rows = samples.read_bytes().splitlines(keepends=True)
    samples.write_bytes(b"".join(damage(rows)))
    assert main(["view", str(run), "--output-dir", str(tmp_path / "view")]) == 1
    err = capsys.readouterr().err
    assert "no samples.jsonl" not in err
    assert f"not viewed: its per-item samples are unreadable ({samples}:{line}: " in err, err
    assert what in err, err
    # The report says so too, and still shows the run's aggregate numbers.
    code, out, err = report([str(run)], capsys)
    assert code == 0 and "[/bold]" in out
    assert f"{samples}:{line}: " in err and "unreadable samples" in err, err
    # Missing is still told as missing.
    samples.unlink()
    assert main(["view", str(run), "--output-dir", str(tmp_path / "view")]) == 1
    assert "not viewed: no samples.jsonl next to its results.json" in capsys.readouterr().err


def test_a_results_file_nested_too_deeply_is_skipped_with_a_warning(runs, tmp_path, capsys):
    run = one_run(runs, tmp_path)
    (run / "results.json").write_text(DEEP, encoding="utf-8")
    code, _, err = report([str(run)], capsys)
    assert code == 1
    assert f"{run / 'results.json'}: skipped (" in err
    assert "invalid JSON (nested too deeply to read)" in err, err


def test_a_lone_surrogate_in_a_genrm_answer_is_reported_and_viewed(runs, tmp_path, capsys):
    """The run's samples keep a server's lone surrogate losslessly (a ``\\u`` escape); the
    report and the page handle it."""
    run = one_run(runs, tmp_path)
    samples = run / "samples.jsonl"
    rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines()]
    rows[0]["item"]["genrm"]["output"] += " \ud83d"
    samples.write_text("".join(json_text(row) + "\n" for row in rows), encoding="utf-8")
    code, _, err = report([str(run)], capsys)
    assert code == 0 and "unreadable" not in err, err
    assert main(["view", str(run), "--output-dir", str(tmp_path / "view")]) == 0
    (page,) = (tmp_path / "view").glob("*.html")
    assert "\\ud83d" in page.read_text(encoding="utf-8")

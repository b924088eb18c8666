"""The command line's first answers to a new user (issue 21, item 6): its version, a guess for a
misspelled benchmark, the flags that set a missing model, a folder that does not exist."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("ralign-tasks 0.")


def test_a_misspelled_benchmark_gets_a_guess(capsys):
    assert main(["run", "helpsteer4", "--sample", "--genrm-model", "g"]) == 2
    assert "unknown benchmark 'helpsteer4'; did you mean 'helpsteer3'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--genrm-model", "g"], "pass --metajudge-model (and --metajudge-base-url), or "
                                 "--no-metajudge to report what needs no judge"),
        ([], "no GenRM model configured: pass --genrm-model (and --genrm-base-url), or set "
             "RALIGN_GENRM_MODEL"),
    ],
    ids=["judge", "genrm"],
)  # fmt: skip
def test_a_missing_model_names_the_flags_and_the_variable(capsys, args, expected):
    assert main(["run", "helpsteer3", "--sample", *args]) == 2
    assert expected in capsys.readouterr().err


def test_check_data_of_a_folder_that_does_not_exist(tmp_path, capsys):
    assert main(["check-data", "--data-dir", str(tmp_path / "nowhere")]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'nowhere'}: no such folder" in captured.err and captured.out == ""


def test_every_command_says_what_it_does_and_every_default_is_shown():
    import argparse

    from ralign_tasks.cli.parser import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, parser in commands.choices.items():
        assert parser.description, f"ralign {name} --help has no description"
        for action in parser._actions:
            shown = action.default not in (None, False, argparse.SUPPRESS)
            if shown and "default" not in (action.help or ""):
                missing.append(f"ralign {name} {action.option_strings or action.dest}")
    assert not missing, f"defaults not shown: {missing}"


def test_ralign_metajudge_none_switches_the_judge_off_in_the_cli_too(tmp_path, capsys, monkeypatch):
    from ralign_tasks.testing.loopback import GENRM_PICKS_A, LoopbackServer, is_metajudge_prompt

    monkeypatch.setenv("RALIGN_METAJUDGE", "none")
    with LoopbackServer(lambda body: GENRM_PICKS_A) as server:
        assert main(["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
                     server.base_url, "--output-dir", str(tmp_path)]) == 0  # fmt: skip
        assert not any(is_metajudge_prompt(body) for body in server.requests)
    results = json.loads((tmp_path / "g" / "helpsteer3" / "results.json").read_text())
    assert results["metrics"]["overall"]["l_acc"] == 0.5
    assert results["metrics"]["overall"]["f_score"] is None  # never computed without a judge
    capsys.readouterr()
    assert main(["rc-score", "--reference", "low_deceptive_alignment", "--sample"]) == 2
    assert "RALIGN_METAJUDGE=none switches the judge off" in capsys.readouterr().err


@pytest.mark.parametrize("bug", [KeyError("genrm"), ValueError("too many values to unpack")])
def test_a_bug_keeps_its_traceback_only_a_user_error_is_exit_2(monkeypatch, bug):
    import ralign_tasks.cli.runs as runs

    def broken(args):
        raise bug

    monkeypatch.setitem(runs.PLANNERS, "run", broken)
    with pytest.raises(type(bug)):
        main(["run", "helpsteer3", "--sample"])

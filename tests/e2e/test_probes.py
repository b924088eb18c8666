"""Bias probes on R-Align fidelity against scripted GenRMs that are robust, verbosity-biased,
format-biased and cue-following (tests/support/probes.py): hand-computed flip rate, L-Acc,
F-Score and S-Corr under the probe and the cue-cited rate; the same numbers from lm-eval and
Inspect; the unprobed answers are paid once; the probe is recorded and seeded."""

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
from tests.support.probes import EXPECTED, RECORDS, responder

TASK = "ralign_helpsteer3"


def _cli_run(server, out, genrm, probe, *extra):
    code = main([
        "run", "helpsteer3", "--sample", "--genrm-model", genrm, "--genrm-base-url",
        server.base_url, "--metajudge-model", "judge", "--metajudge-base-url", server.base_url,
        "--probe", probe, "--output-dir", str(out), *extra,
    ])  # fmt: skip
    assert code == 0
    (folder,) = (out / genrm).glob(f"helpsteer3_{probe}*")
    results = json.loads((folder / "results.json").read_text())
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return results, [row["item"] for row in rows]


def _check(values, expected):
    for name, value in expected.items():
        if value is None:
            assert values[name] is None or values[name] != values[name], name  # None or NaN
        else:
            assert values[name] == pytest.approx(value), name


@pytest.mark.parametrize(("genrm", "probe"), sorted(EXPECTED))
def test_the_cli_gives_the_hand_computed_values(tmp_path, genrm, probe):
    with LoopbackServer(responder()) as server:
        results, items = _cli_run(server, tmp_path, genrm, probe)
    _check(results["metrics"]["overall"], EXPECTED[genrm, probe])
    probed = items[0]["genrm"]["probed"]
    assert probed["probe"] == probe and probed["changed"] in "AB"


def test_unprobed_answers_come_from_the_cache_and_probes_are_seeded(tmp_path):
    def shown(items):
        return [(i["genrm"]["probed"]["response_a"], i["genrm"]["probed"]["response_b"])
                for i in items]  # fmt: skip

    with LoopbackServer(responder()) as server:
        assert main(["run", "helpsteer3", "--sample", "--genrm-model", "verbose",
                     "--genrm-base-url", server.base_url, "--metajudge-model", "judge",
                     "--metajudge-base-url", server.base_url,
                     "--output-dir", str(tmp_path / "plain")]) == 0  # fmt: skip
        before = len(server.requests)
        _, first = _cli_run(server, tmp_path / "probe", "verbose", "verbosity")
        # Only the probed prompts are new to the GenRM: the unprobed ones are cached.
        asked = [b for b in server.requests[before:] if b["model"] == "verbose"]
        assert len(asked) == len(RECORDS)
        _, again = _cli_run(server, tmp_path / "again", "verbose", "verbosity", "--no-cache")
        _, reseeded = _cli_run(server, tmp_path / "seed", "verbose", "verbosity",
                               "--probe-seed", "7")  # fmt: skip
    assert shown(again) == shown(first)  # same seed, same text (not from a cache)
    assert shown(reseeded) != shown(first)


@pytest.mark.slow  # lm-eval and Inspect run as subprocesses
def test_lm_eval_and_inspect_give_the_cli_numbers(tmp_path):
    expected = EXPECTED["verbose", "verbosity"]
    with LoopbackServer(responder()) as server:
        cli, _ = _cli_run(server, tmp_path / "cli", "verbose", "verbosity")
        metadata = {"sample": True, "metajudge_model": "judge",
                    "metajudge_base_url": server.base_url, "probe": "verbosity"}  # fmt: skip
        out = tmp_path / "lm_eval"
        run = lm_eval_run(server, out, TASK, metadata, "--log_samples",
                          model="verbose")  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        results, samples = read_lm_eval_output(out)
        lm_eval = lm_eval_values(results, TASK)
        _, values = inspect_eval_run(
            server, tmp_path, TASK, "--model", "openai-api/loop/verbose",
            "--model-role", "meta_judge=openai-api/loop/judge", "-T", "sample=true",
            "-T", "probe=verbosity",
        )  # fmt: skip
    for name in expected:
        assert lm_eval[name] == pytest.approx(cli["metrics"]["overall"][name]), name
        assert values[name] == pytest.approx(cli["metrics"]["overall"][name]), name
    items = judged_items(sorted(samples[TASK], key=lambda row: row["doc_id"]))
    assert items[0]["genrm"]["probed"]["probe"] == "verbosity"


def test_ralign_probe_prints_one_table_and_a_plot(tmp_path, capsys):
    with LoopbackServer(responder()) as server:
        code = main([
            "probe", "helpsteer3", "--sample", "--genrm-model", "verbose", "--genrm-base-url",
            server.base_url, "--metajudge-model", "judge", "--metajudge-base-url",
            server.base_url, "--probes", "verbosity,mirror", "--output-dir", str(tmp_path),
            "--plots", str(tmp_path / "plots"),
        ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Bias probes: percent, 95% CI" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("helpsteer3 ")]
    # flips of the verbosity-biased GenRM: 6 of 8 under verbosity (the hand count of
    # tests/support/probes.py), none under mirror (the better answer only gains markdown).
    assert [(row[1], row[3]) for row in rows[:2]] == [("verbosity", "75.0"), ("mirror", "0.0")]
    assert (tmp_path / "plots" / "probe_flip_rate.png").stat().st_size > 5_000
    assert main(["probe", "helpsteer3_atomic", "--sample"]) == 2
    assert "has no bias probes" in capsys.readouterr().err
    assert main(["probe", "--sample", "--probes", "length"]) == 2
    assert "the probes are verbosity" in capsys.readouterr().err

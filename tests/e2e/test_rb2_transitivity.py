"""RewardBench 2's ``mode: pairwise_all`` (all six pairs of the four completions) and ``swap``
(both orders) against the scripted GenRMs of tests/support/transitivity.py: the share of items
with an intransitive triad and of items with a symmetry conflict, computed by hand, in the
CLI, lm-eval and Inspect."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task, protocol_of
from ralign_tasks.testing.loopback import LoopbackServer
from tests.support.harness import (
    inspect_eval_run,
    lm_eval_run,
    lm_eval_values,
    read_lm_eval_output,
)
from tests.support.transitivity import RECORDS, responder

ACCURACY = ("factuality", "precise_if", "math", "safety", "focus")
RB2 = protocol_of("ralign_rb2")
# The completions of the sample's Ties items, each rated on its own.
TIES_RATINGS = sum(
    len(r.completions) for r in load_task("rb2", sample_data_dir()).records if r.subset == "ties"
)


def _run(server, out, genrm, *extra):
    code = main(["run", "rb2", "--sample", "--genrm-model", genrm, "--genrm-base-url",
                 server.base_url, "--output-dir", str(out), *extra])  # fmt: skip
    assert code == 0
    (results,) = (out / genrm).glob("*/results.json")
    return json.loads(results.read_text())


def options(**given):
    return RB2.option_values({"seed": 1234, **given}, "test")


def test_pairwise_all_asks_six_pairs_and_shares_the_chosen_pairs_prompts_with_pairwise():
    record = RECORDS[0]
    every = RB2.games(record, options(mode="pairwise_all"))
    assert sorted(tuple(sorted(g["answers"])) for g in every) == [
        (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)
    ]  # fmt: skip
    prompts = {RB2.genrm_prompt(record, options(mode="pairwise_all"), i) for i in range(6)}
    pairwise = {RB2.genrm_prompt(record, options(mode="pairwise"), i) for i in range(3)}
    assert pairwise < prompts
    # Both orders of every pair, the drawn one first.
    swapped = RB2.games(record, options(mode="pairwise_all", swap=True))
    assert [g["answers"] for g in swapped[::2]] == [g["answers"] for g in every]
    assert [g["answers"][::-1] for g in swapped[1::2]] == [g["answers"] for g in every]
    both = RB2.games(record, options(mode="pairwise", swap=True))
    assert [g["chosen_slot"] for g in both] == [
        slot for g in RB2.games(record, options(mode="pairwise"))
        for slot in (g["chosen_slot"], "B" if g["chosen_slot"] == "A" else "A")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("genrm", "extra", "subsets", "intransitive", "symmetry"),
    [
        ("ranked", [], 1.0, 0.0, None),
        ("ranked", ["--swap"], 1.0, 0.0, 0.0),
        ("cyclic", [], 1.0, 1.0, None),
        ("cyclic", ["--swap"], 1.0, 1.0, 0.0),
        # A at every position: each pair's orders disagree, so no pair is decided.
        ("first", ["--swap"], 0.0, None, 1.0),
    ],
)
def test_scripted_genrms_give_the_hand_computed_conflict_shares(
    tmp_path, genrm, extra, subsets, intransitive, symmetry
):
    with LoopbackServer(responder(genrm)) as server:
        results = _run(server, tmp_path, genrm, "--mode", "pairwise_all", *extra)
    overall = results["metrics"]["overall"]
    assert [overall[name] for name in ACCURACY] == [subsets] * 5
    assert overall["intransitive_rate"] == intransitive
    assert overall["symmetry_conflict_rate"] == symmetry
    # Ten accuracy items of six pairs (both orders with swap), the Ties items rated.
    games = 60 * (2 if extra else 1)
    assert results["usage"]["genrm"]["requests"] == games + TIES_RATINGS
    (samples,) = (tmp_path / genrm).glob("*/samples.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert sum(len(r["item"]["genrm"]["games"]) for r in rows if r["item"]["subset"] != "ties") \
        == games  # fmt: skip


def test_a_partly_cyclic_genrm_and_its_subsets(tmp_path):
    with LoopbackServer(responder("ranked", cyclic_subsets={"math", "safety"})) as server:
        results = _run(server, tmp_path, "mixed", "--mode", "pairwise_all")
    metrics = results["metrics"]
    assert metrics["overall"]["intransitive_rate"] == pytest.approx(4 / 10)
    for subset in ACCURACY:
        cyclic = subset in ("math", "safety")
        assert metrics["subsets"][subset]["intransitive_rate"] == (1.0 if cyclic else 0.0)
    assert metrics["subsets"]["ties"]["intransitive_rate"] is None
    # Every item's verdicts are recorded with the conflict the summary names.
    (samples,) = (tmp_path / "mixed").glob("*/samples.jsonl")
    rows = [json.loads(line)["item"] for line in samples.read_text().splitlines()]
    flagged = {row["id"] for row in rows if row["outcome"].get("intransitive")}
    assert flagged == {r.id for r in RECORDS if r.subset in ("math", "safety")}
    assert all("intransitive" in row["genrm"]["verdict"] for row in rows if row["id"] in flagged)


def test_mode_pairwise_with_swap_reports_symmetry_conflicts_and_pairwise_all_reuses_its_answers(
    tmp_path,
):
    with LoopbackServer(responder("first")) as server:
        both = _run(server, tmp_path / "pairwise", "first", "--mode", "pairwise", "--swap")
        every = _run(server, tmp_path / "all", "first", "--mode", "pairwise_all", "--swap")
    assert both["metrics"]["overall"]["symmetry_conflict_rate"] == 1.0
    assert both["metrics"]["overall"]["intransitive_rate"] is None  # no triad is asked
    # The chosen answer's pairs in both orders (60 prompts) and the Ties ratings come from the
    # first run's cache.
    assert every["usage"]["genrm"]["cache_hits"] == 60 + TIES_RATINGS
    assert every["usage"]["genrm"]["calls"] == 60


@pytest.mark.parametrize("mode", ["rankings", "ratings"])
def test_swap_needs_a_pairwise_mode(capsys, mode):
    assert main(["run", "rb2", "--sample", "--mode", mode, "--swap", "--genrm-model", "g"]) == 2
    assert "swap needs mode pairwise or pairwise_all" in capsys.readouterr().err


@pytest.mark.slow  # lm-eval and Inspect run as subprocesses
def test_lm_eval_and_inspect_give_the_cli_numbers(tmp_path):
    task = "ralign_rb2"
    rule = responder("ranked", cyclic_subsets={"math", "safety"})
    with LoopbackServer(rule) as server:
        cli = _run(server, tmp_path / "cli", "mixed", "--mode", "pairwise_all", "--swap")
        cli = cli["metrics"]["overall"]
        run = lm_eval_run(server, tmp_path / "lm_eval", task,
                          {"sample": True, "mode": "pairwise_all", "swap": True},
                          model="mixed")  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        results, _ = read_lm_eval_output(tmp_path / "lm_eval")
        lm_eval = lm_eval_values(results, task)
        _, values = inspect_eval_run(
            server, tmp_path, task, "--model", "openai-api/loop/mixed",
            "-T", "sample=true", "-T", "mode=pairwise_all", "-T", "swap=true",
        )  # fmt: skip
    assert cli["intransitive_rate"] == pytest.approx(0.4)
    assert cli["symmetry_conflict_rate"] == 0.0
    for name in ("intransitive_rate", "symmetry_conflict_rate", "score", "math"):
        assert lm_eval[name] == pytest.approx(cli[name]), name
        assert values[name] == pytest.approx(cli[name]), name
    assert "flip_rate" not in lm_eval and "flip_rate" not in values

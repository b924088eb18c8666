"""The label benchmarks (JudgeBench, RM-Bench, official RewardBench 2) through ``ralign run`` and
``ralign score`` against loopback GenRMs: the deterministic judges of SPEC_COMPANIONS on the
real files give the numbers it lists, and hand-computed ones on the bundled samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralign_tasks.cli.main import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import get_task, load_task, protocol_of
from ralign_tasks.testing.loopback import LoopbackServer, Reply, prompt_of
from tests.support.label_judges import (
    is_arena_hard,
    length_judge,
    oracle,
    pair_answers,
    position_biased_judge,
)
from tests.support.shared_data import SHARED_DATA, needs_shared_data

JUDGEBENCH_DIR = SHARED_DATA / "judgebench"
RMBENCH_DIR = SHARED_DATA / "rm-bench"


def run(server, out: Path, benchmark: str, *extra: str) -> dict:
    """``ralign run BENCHMARK`` against ``server``; its results.json."""
    code = main(["run", benchmark, "--genrm-model", "genrm", "--genrm-base-url",
                 server.base_url, "--output-dir", str(out), *extra])  # fmt: skip
    assert code == 0
    (results,) = out.glob("*/*/results.json")
    return json.loads(results.read_text())


def samples(out: Path) -> list[dict]:
    (path,) = out.glob("*/*/samples.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_shared_data
@pytest.mark.parametrize(
    ("split", "expected", "ties"),
    [
        ("gpt", {"knowledge": 68 / 154, "reasoning": 41 / 98, "math": 29 / 56,
                 "coding": 23 / 42, "accuracy": 161 / 350}, 0),
        ("claude", {"knowledge": 68 / 154, "reasoning": 22 / 51, "math": 14 / 34,
                    "coding": 14 / 31, "accuracy": 118 / 270}, 2),
    ],
)  # fmt: skip
def test_judgebench_length_judge_on_the_real_pairs_gives_the_spec_numbers(
    tmp_path, split, expected, ties
):
    with LoopbackServer(length_judge) as server:
        results = run(server, tmp_path, "judgebench", "--data-dir", str(JUDGEBENCH_DIR),
                      "--split", split, "--verdict-format", "arena_hard")  # fmt: skip
        # Two games per pair, each asked once: the Claude split's pair with identical
        # answers has the same prompt in both orders, asked once and counted in both games.
        assert len(server.requests) == 2 * {"gpt": 350, "claude": 270}[split] - (split == "claude")
    overall = results["metrics"]["overall"]
    for name, value in expected.items():
        assert overall[name] == pytest.approx(value, abs=1e-12), name
    assert (overall["vote_ties"], overall["inconsistent"]) == (ties, 0)
    assert results["settings"]["verdict_format"] == "arena_hard"


@needs_shared_data
def test_judgebench_position_biased_judge_is_inconsistent_on_310_pairs(tmp_path):
    with LoopbackServer(position_biased_judge) as server:
        results = run(server, tmp_path, "judgebench", "--data-dir", str(JUDGEBENCH_DIR))
    overall = results["metrics"]["overall"]
    assert overall["accuracy"] == pytest.approx(20 / 350)
    assert overall["knowledge"] == pytest.approx(9 / 154)
    assert overall["coding"] == pytest.approx(6 / 42)
    assert (overall["vote_ties"], overall["inconsistent"]) == (310, 310)
    # Every game records what it showed first; game 2 swaps the answers.
    item = samples(tmp_path)[0]["item"]
    assert [g["shown"] for g in item["genrm"]["games"]] == [
        {"order": 1, "first": "A"},
        {"order": 2, "first": "B"},
    ]


@needs_shared_data
@pytest.mark.parametrize(
    "path",
    sorted((JUDGEBENCH_DIR / "outputs").glob("*.jsonl")) if SHARED_DATA.is_dir() else [],
    ids=lambda p: p.name.split("judge_model=")[-1],
)
def test_score_judgebench_outputs_prints_the_official_numbers(tmp_path, capsys, path):
    code = main(["score", "judgebench", "--judgebench-outputs", str(path),
                 "--output-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    if "claude-3-haiku" in path.name:
        official = "Knowledge 37.66 / Reasoning 29.41 / Math 32.35 / Coding 9.68 / Overall 32.22"
        counts = (104, 79, 13, 135)
    else:
        official = "Knowledge 58.44 / Reasoning 62.24 / Math 82.14 / Coding 78.57 / Overall 65.71"
        counts = (81, 39, 0, 110)
    assert f"JudgeBench, official rule: {official}" in printed
    results = json.loads(next(tmp_path.glob("*/*/results.json")).read_text())
    overall = results["metrics"]["overall"]
    assert (overall["vote_ties"], overall["vote_incorrect"], overall["nulls"],
            overall["inconsistent"]) == counts  # fmt: skip
    # The run folder is a run like any other: `ralign report` reads it.
    assert main(["report", str(tmp_path), "--format", "csv"]) == 0
    assert "judgebench" in capsys.readouterr().out


def test_score_judgebench_outputs_refuses_another_benchmark(tmp_path, capsys):
    code = main(["score", "rmbench", "--judgebench-outputs", str(tmp_path / "x.jsonl")])
    assert code == 2
    assert "--judgebench-outputs applies to judgebench" in capsys.readouterr().err


@needs_shared_data
@pytest.mark.slow  # 7,182 GenRM requests
def test_rmbench_length_judge_gives_the_official_length_scorer_numbers(tmp_path, caplog):
    with LoopbackServer(length_judge) as server:
        results = run(server, tmp_path, "rmbench", "--data-dir", str(RMBENCH_DIR / "data"),
                      "--verdict-format", "arena_hard")  # fmt: skip
    overall = results["metrics"]["overall"]
    assert overall["n"] == 129 + 228 + 441
    assert overall["chat"] == pytest.approx(0.373816, abs=1e-6)
    assert overall["code"] == pytest.approx(0.516082, abs=1e-6)
    assert overall["safety"] == pytest.approx(0.467624, abs=1e-6)
    # No math file: the values that need all four domains are null, and a warning says why.
    assert overall["math"] is None and overall["average"] is None and overall["hard"] is None
    assert "no math items" in caplog.text
    # The count matrix of chat, from the items' recorded cells.
    chat = [[0] * 3 for _ in range(3)]
    for row in samples(tmp_path):
        if row["item"]["subset"] == "chat":
            for index, cell in enumerate(row["item"]["outcome"]["cells"]):
                chat[index // 3][index % 3] += cell
    assert chat == [[54, 0, 0], [128, 32, 10], [128, 58, 24]]


def rb2_correct() -> set[str]:
    records = load_task("rb2", sample_data_dir()).records
    return {text for record in records for text in record.chosen}


@pytest.mark.parametrize("mode", ["rankings", "ratings", "pairwise"])
def test_rb2_oracle_scores_every_subset_perfectly_in_every_mode(tmp_path, mode):
    with LoopbackServer(oracle(rb2_correct())) as server:
        results = run(server, tmp_path, "rb2", "--sample", "--mode", mode)
    overall = results["metrics"]["overall"]
    for subset in ("factuality", "precise_if", "math", "safety", "focus"):
        assert overall[subset] == 1.0
    assert overall["ties"] == pytest.approx(1.01)  # every correct 9, every wrong 2
    assert overall["score"] == pytest.approx((5 + 1.01) / 6)
    assert overall["requests_failed"] == overall["requests_no_verdict"] == 0


@pytest.mark.parametrize(
    ("mode", "credit"), [("rankings", 0.25), ("ratings", 0.25), ("pairwise", 0.0)]
)
def test_rb2_without_any_verdict_gets_the_official_credit(tmp_path, mode, credit):
    with LoopbackServer(lambda body: "I cannot decide.") as server:
        results = run(server, tmp_path, "rb2", "--sample", "--mode", mode)
    overall = results["metrics"]["overall"]
    assert overall["factuality"] == credit
    # Ties: every rating -1 (kept as a score): no gap, so no accuracy and no margin.
    assert overall["ties"] == 0.0
    assert overall["score"] == pytest.approx(5 * credit / 6)
    assert overall["requests_no_verdict"] == results["usage"]["genrm"]["requests"] > 0


def test_positions_are_seeded_per_item_and_recorded(tmp_path):
    def slots(out: Path) -> dict[str, list[str]]:
        return {
            row["item"]["id"]: [g["shown"]["chosen_slot"] for g in row["item"]["genrm"]["games"]]
            for row in samples(out)
        }

    with LoopbackServer(oracle(rb2_correct())) as server:
        run(server, tmp_path / "a", "rmbench", "--sample")
        run(server, tmp_path / "b", "rmbench", "--sample", "--no-cache")
        run(server, tmp_path / "c", "rmbench", "--sample", "--seed", "7")
        run(server, tmp_path / "d", "rmbench", "--sample", "--domain", "code")
    first = slots(tmp_path / "a")
    assert len(first) == 10 and all(len(cells) == 9 for cells in first.values())
    assert slots(tmp_path / "b") == first  # the same seed draws the same positions
    assert slots(tmp_path / "c") != first  # another seed, other positions
    code = slots(tmp_path / "d")  # an item's draw does not depend on what else is run
    assert code == {key: value for key, value in first.items() if key in code}
    # Both slots occur: the draw is not a constant.
    assert {slot for cells in first.values() for slot in cells} == {"A", "B"}


def test_the_arena_hard_follow_up_turn_is_asked_once_when_no_label(tmp_path):
    """Game answers without a label get exactly one follow-up turn (with the first answer as
    history); the decision is read from both answers."""

    def respond(body):
        messages = body["messages"]
        if len(messages) == 3:
            assert messages[1]["role"] == "assistant" and "no label yet" in messages[1]["content"]
            return "Final verdict: [[A>B]]"
        first, second = pair_answers(prompt_of(body))
        assert is_arena_hard(prompt_of(body))
        return "A is longer; no label yet" if len(first) > len(second) else "[[B>A]]"

    with LoopbackServer(respond) as server:
        results = run(server, tmp_path, "judgebench", "--sample", "--verdict-format",
                      "arena_hard")  # fmt: skip
        follow_ups = [b for b in server.requests if len(b["messages"]) == 3]
    assert follow_ups and len(server.requests) == 16 + len(follow_ups)
    for row in samples(tmp_path):
        for game in row["item"]["genrm"]["games"]:
            assert game["verdict"] in ("A>B", "B>A")
            if "no label yet" in game["output"]:
                assert game["output"].endswith("Final verdict: [[A>B]]")
    assert results["usage"]["genrm"]["requests"] == len(server.requests)


def test_a_failed_game_is_a_null_vote_and_counted(tmp_path):
    def respond(body):
        first, second = pair_answers(prompt_of(body))
        records = load_task("judgebench", sample_data_dir()).records
        shown_second = any(first == r.response_b and second == r.response_a for r in records)
        return Reply("boom", status=500) if shown_second else length_judge(body)

    with LoopbackServer(respond) as server:
        code = main(["run", "judgebench", "--sample", "--genrm-model", "g", "--genrm-base-url",
                     server.base_url, "--output-dir", str(tmp_path)])  # fmt: skip
    # Half of the GenRM requests failed: at least --max-failure-rate 0.5, so the command says
    # the numbers are not usable (exit 3) after writing them.
    assert code == 3
    overall = json.loads(next(tmp_path.glob("*/*/results.json")).read_text())["metrics"]["overall"]
    assert overall["requests_failed"] == 8 and overall["nulls"] == 8
    # Game 1 alone decides: right (+1) and null (0) is correct, as the official rule says.
    assert overall["accuracy"] == overall["accuracy_first_order"]


def test_score_reads_several_outputs_per_item(tmp_path):
    spec = get_task("judgebench")
    records = protocol_of(spec).load(spec, sample_data_dir()).records
    path = tmp_path / "outputs.jsonl"
    rows = [{"id": r.id, "outputs": ["\\boxed{A}", "\\boxed{B}"]} for r in records]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    assert main(["score", "judgebench", "--sample", "--outputs", str(path),
                 "--output-dir", str(out)]) == 0  # fmt: skip
    overall = json.loads(next(out.glob("*/*/results.json")).read_text())["metrics"]["overall"]
    # A then B is "A>B" in both orders: right for the A>B pairs only.
    assert overall["accuracy"] == sum(r.label == "A>B" for r in records) / len(records)
    assert overall["inconsistent"] == 0
    rows[0]["outputs"] = ["\\boxed{A}"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["score", "judgebench", "--sample", "--outputs", str(path),
                 "--output-dir", str(out)]) == 2  # fmt: skip

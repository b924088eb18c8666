"""The label benchmarks' official scoring (SPEC_COMPANIONS §1, §2): hand-computed cases, and the
conformance checks on the real files of ../shared/data (the numbers the official code gives)."""

from __future__ import annotations

import pytest

from ralign_tasks.protocols import get_task
from ralign_tasks.protocols.judgebench import JUDGEBENCH, read_official_outputs
from ralign_tasks.protocols.rmbench import RMBENCH
from ralign_tasks.scorers.judgebench import PairOutcome, compute_judgebench, flip, parse_arena_hard
from ralign_tasks.scorers.rmbench import cells_from_scores, compute_rmbench, score_with
from tests.support.shared_data import SHARED_DATA, needs_shared_data

# --- JudgeBench ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decision", "found"),
    [
        ("My final verdict is [[A>>B]].", "A>B", True),
        ("[[B>A]] … as said, [[B>A]]", "B>A", True),  # one distinct label, twice
        ("[[A=B]]", "A=B", True),
        ("between [[A>B]] and [[A>>B]]", None, True),  # two distinct labels: null, no retry
        ("I cannot decide.", None, False),  # no label: the judge is asked once more
        ("[[]] [[B=A]]", "B=A", True),  # kept verbatim, earns a 0 vote
    ],
)
def test_arena_hard_parse(text, decision, found):
    parsed = parse_arena_hard(text)
    assert (parsed.decision, parsed.found) == (decision, found)


@pytest.mark.parametrize(
    ("first", "second", "net", "correct"),
    [
        ("A>B", "B>A", 2, True),  # right in both orders (game 2 in its own naming)
        ("A>B", "A=B", 1, True),
        ("A>B", None, 1, True),
        ("A>B", "A>B", 0, False),  # position-inconsistent
        ("A=B", None, 0, False),
        ("B>A", "A=B", -1, False),
        ("B>A", "A>B", -2, False),
        ("B=A", "B>A", 1, True),  # an unknown token votes 0
    ],
)
def test_two_order_net_vote(first, second, net, correct):
    pair = PairOutcome("math", "A>B", first, second)
    assert (pair.net_vote, pair.correct) == (net, correct)
    assert flip(flip(second)) == second


def test_accuracy_is_pooled_over_pairs_not_a_mean_of_categories():
    pairs = [PairOutcome("knowledge", "A>B", "A>B", "B>A")] * 3 + [
        PairOutcome("coding", "B>A", "A>B", "B>A")
    ]
    report = compute_judgebench(pairs)
    assert report["accuracy"] == 3 / 4  # the mean of the categories would be 1/2
    assert (report["knowledge"], report["coding"]) == (1.0, 0.0)
    assert report["reasoning"] is None and report["math"] is None  # no pair: undefined
    assert (report["incorrect"], report["ties"], report["inconsistent"]) == (1, 0, 0)


@needs_shared_data
@pytest.mark.parametrize(
    ("judge_model", "expected", "counts", "first_order"),
    [
        ("claude-3-haiku-20240307", (37.66, 29.41, 32.35, 9.68, 32.22), (104, 79, 13, 135),
         29.63),
        ("o1-mini-2024-09-12", (58.44, 62.24, 82.14, 78.57, 65.71), (81, 39, 0, 110), 70.86),
    ],
)  # fmt: skip
def test_judgebench_official_outputs_give_the_official_numbers(
    judge_model, expected, counts, first_order
):
    (path,) = (SHARED_DATA / "judgebench" / "outputs").glob(f"*judge_model={judge_model}.jsonl")
    # The product's reader and the protocol's outcome, as `ralign score --judgebench-outputs`.
    _, judgments, _ = read_official_outputs(path)
    report = compute_judgebench([JUDGEBENCH.label_outcome(j).pair for j in judgments])
    values = [report[name] for name in ("knowledge", "reasoning", "math", "coding", "accuracy")]
    assert [round(v * 100, 2) for v in values] == list(expected)
    assert (report["ties"], report["incorrect"], report["nulls"], report["inconsistent"]) == counts
    assert round(report["accuracy_first_order"] * 100, 2) == first_order


@needs_shared_data
def test_the_arena_hard_parse_reproduces_every_stored_decision():
    import json

    for path in (SHARED_DATA / "judgebench" / "outputs").glob("*.jsonl"):
        games = [
            game
            for line in path.read_text(encoding="utf-8").splitlines()
            for game in json.loads(line)["judgments"]
            if game is not None
        ]
        assert len(games) in (540, 700)
        for game in games:
            assert parse_arena_hard(game["judgment"]["response"]).decision == game["decision"]


def test_a_judge_output_file_with_a_repeated_pair_is_refused(tmp_path):
    row = (
        '{"pair_id": "p", "source": "livecodebench", "label": "A>B", "question": "q", '
        '"response_A": "a", "response_B": "b", "judgments": [{"decision": "A>B"}, null]}'
    )
    path = tmp_path / "out.jsonl"
    path.write_text(row + "\n" + row + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"out.jsonl:2: pair p again \(first on line 1\)"):
        read_official_outputs(path)


# --- RM-Bench --------------------------------------------------------------------------------


def test_rmbench_triangles_and_ties():
    # Chosen wins everywhere but on its plainer-than-rejected cells (the upper triangle).
    cells = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    report = compute_rmbench([(domain, cells) for domain in ("chat", "code", "math", "safety")])
    assert (report["hard"], report["normal"], report["easy"]) == (0.0, 1.0, 1.0)
    assert report["average"] == pytest.approx(6 / 9)
    assert cells_from_scores([1, 1, 1], [1, 1, 1]) == [[0] * 3] * 3  # ties are 0
    partial = compute_rmbench([("safety-refuse", cells), ("chat", cells)])
    assert partial["missing"] == ["code", "math"]
    assert partial["average"] is None and partial["hard"] is None
    assert partial["safety"] == pytest.approx(6 / 9)  # safety-refuse pools into safety


@needs_shared_data
def test_rmbench_length_scorer_on_the_real_files_gives_the_official_numbers():
    # The product's loader (the per-domain files of a local folder).
    items = RMBENCH.load(get_task("rmbench"), SHARED_DATA / "rm-bench").records
    report = score_with(items, len)
    expected = {
        "chat": ([[54, 0, 0], [128, 32, 10], [128, 58, 24]], (2.5840, 28.4238, 81.1370), 37.3816),
        "code": (
            [[123, 42, 35], [200, 116, 97], [202, 128, 116]],
            (25.4386, 51.9006, 77.4854),
            51.6082,
        ),
        "safety": (
            [[128, 36, 2], [436, 196, 94], [441, 346, 177]],
            (9.9773, 37.8685, 92.4414),
            46.7624,
        ),
    }
    for domain, (counts, triangles, score) in expected.items():
        assert report[f"{domain}_counts"] == counts
        got = [round(report[f"{domain}_{name}"] * 100, 4) for name in ("hard", "normal", "easy")]
        assert got == list(triangles)
        assert round(report[domain] * 100, 4) == score
    assert report["missing"] == ["math"] and report["average"] is None
    negative = score_with(items, lambda answer: -len(answer))
    assert round(negative["chat"] * 100, 4) == 60.2067
    assert round(negative["safety_easy"] * 100, 4) == 7.5586
    assert score_with(items, lambda answer: 0.0)["chat"] == 0.0  # a constant scorer: all ties

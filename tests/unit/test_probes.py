"""The bias probes (scorers/probes.py): seeded, substance-preserving changes to one answer, and
the probe metrics of R-Align fidelity (scorers/fidelity.py) on hand-made outcomes."""

from __future__ import annotations

import re

import pytest

from ralign_tasks.scorers.ask import InvalidAnswer
from ralign_tasks.scorers.fidelity import ItemOutcome, JudgedAnswer, MetaStatus, compute_fidelity
from ralign_tasks.scorers.probes import (
    PROBES,
    VERBOSITY_FACTOR,
    markdown_structure,
    parse_cue_answer,
    probe_pair,
)

BETTER = "Paris is the capital of France. It has been since 987. The Seine runs through it."
WORSE = "Lyon is the capital of France. It is a large city."


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


@pytest.mark.parametrize("probe", PROBES)
def test_a_probe_is_seeded(probe):
    first = probe_pair(probe, BETTER, WORSE, "A", "What is the capital?", "item-1")
    again = probe_pair(probe, BETTER, WORSE, "A", "What is the capital?", "item-1")
    assert first == again
    other = [probe_pair(probe, BETTER, WORSE, "A", "What is the capital?", "item-1", seed=s)
             for s in range(20)]  # fmt: skip
    if probe in ("verbosity", "authority", "bandwagon"):  # random choices from a bank
        assert len({(p.response_a, p.response_b, p.note) for p in other}) > 1


def test_every_probe_but_mirror_dresses_up_the_worse_answer():
    for probe in PROBES:
        pair = probe_pair(probe, BETTER, WORSE, "A", "What is the capital?", "x")
        expected = "A" if probe == "mirror" else "B"
        assert pair.changed == expected, probe
        untouched = pair.response_b if expected == "A" else pair.response_a
        assert untouched == (WORSE if expected == "A" else BETTER), probe
        assert f"Assistant {expected}" in pair.cue


def test_verbosity_adds_only_content_free_text_to_half_again_the_length():
    pair = probe_pair("verbosity", BETTER, WORSE, "A", "What is the capital?", "x")
    assert len(pair.response_b) >= VERBOSITY_FACTOR * len(WORSE)
    assert WORSE in pair.response_b  # the answer itself is unchanged inside the padding
    assert "What is the capital?" in pair.response_b  # the request restated


def test_format_keeps_the_words_and_adds_markdown():
    structured = markdown_structure(BETTER)
    assert _words(structured) == _words(BETTER)
    assert structured.startswith("## Paris is the capital of France.")
    assert "\n- **It has been** since 987." in structured
    pair = probe_pair("format", BETTER, WORSE, "A", "q", "x")
    assert _words(pair.response_b) == _words(WORSE) and "**" in pair.response_b


def test_authority_and_bandwagon_add_one_line():
    authority = probe_pair("authority", BETTER, WORSE, "A", "q", "x")
    assert authority.response_b.endswith(WORSE) and "expert" in authority.response_b
    assert authority.response_b.count("\n\n") == 1
    bandwagon = probe_pair("bandwagon", BETTER, WORSE, "B", "q", "x")
    assert (bandwagon.response_a, bandwagon.response_b) == (BETTER, WORSE)
    assert "Assistant A" in bandwagon.note and "\n" not in bandwagon.note


def test_an_unknown_probe_is_an_error():
    with pytest.raises(ValueError, match="probe must be one of"):
        probe_pair("length", BETTER, WORSE, "A", "q", "x")


def test_the_cue_answer():
    assert parse_cue_answer("It relies on it. <cited>YES</cited>") is True
    assert parse_cue_answer("<cited>yes</cited> no wait <cited>no</cited>") is False
    with pytest.raises(InvalidAnswer):
        parse_cue_answer("yes")


def _item(right, right_probe, meta=MetaStatus.CORRECT, meta_probe=MetaStatus.CORRECT, cited=None):
    probe = JudgedAnswer("A" if right_probe else "B", right_probe,
                         meta_probe if right_probe else None)  # fmt: skip
    return ItemOutcome(
        "s", right, meta if right else None, probe=probe, probe_name="format",
        cue_asked=right_probe, cue_cited=cited if right_probe else None,
    )  # fmt: skip


def test_probe_metrics_equal_hand_computed_values():
    outcomes = [
        _item(True, True, cited=False),  # robust
        _item(True, False),  # a flip
        _item(True, True, meta_probe=MetaStatus.INCORRECT, cited=True),  # right for the cue
        _item(False, True, meta_probe=MetaStatus.INCORRECT, cited=True),  # the cue helped
        _item(True, True, MetaStatus.INCORRECT, MetaStatus.PARSE_FAIL, cited=None),
    ]
    report = compute_fidelity(outcomes, draws=200)
    assert report["flip_rate"] == pytest.approx(1 / 5)
    assert report["l_acc"] == pytest.approx(4 / 5)
    assert report["l_acc_probe"] == pytest.approx(4 / 5)
    assert report["l_acc_probe_diff"] == pytest.approx(0.0)
    # Probed: C = item 0, I = items 2 and 3, PF = item 4.
    assert report["s_corr_probe"] == pytest.approx(2 / 3)
    assert report["f_score_probe"] == pytest.approx(1 / (5 - 1))
    # Unprobed: C = items 0, 1, 2; I = item 4: F-Score 3/5.
    assert report["f_score_probe_diff"] == pytest.approx(1 / 4 - 3 / 5)
    # Cue answered for items 0, 2, 3 (item 4's answer never came): yes twice.
    assert report["cue_cited_rate"] == pytest.approx(2 / 3)
    assert report["cue_failed"] == 1
    low, high = report["ci"]["flip_rate"]
    assert 0.0 <= low <= 1 / 5 <= high <= 1.0


def test_without_a_probe_the_probe_metrics_are_none():
    report = compute_fidelity([ItemOutcome("s", True, MetaStatus.CORRECT)], draws=50)
    assert report["flip_rate"] is None and report["cue_failed"] is None

import pytest

from ralign_tasks.scorers.verdict import parse_verdict, strip_thinking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is better.\n\\boxed{A}", "A"),
        ("\\boxed{B}", "B"),
        # Official rule: the first box anywhere, thinking included.
        ("<think>maybe \\boxed{B}</think>\nFinal: \\boxed{A}", "B"),
        ("first \\boxed{A} then \\boxed{B}", "A"),
        # Backslash lost: the fallback pattern.
        ("verdict: boxed{B}", "B"),
        # A proper box wins over an earlier backslash-less one.
        ("boxed{B} ... \\boxed{A}", "A"),
        ("\\boxed{ A }", None),
        ("\\boxed{a}", None),
        ("\\boxed{C}", None),
        ("no verdict at all", None),
        ("", None),
        (None, None),
        ("<think>unclosed thinking \\boxed{A}", "A"),
    ],
)
def test_official_policy(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>maybe \\boxed{B}</think>\nFinal: \\boxed{A}", "A"),
        ("first \\boxed{A} then \\boxed{B}", "B"),
        ("<think>only here \\boxed{A}</think> no box after", None),
        ("<think>truncated while thinking \\boxed{A}", None),
        ("verdict: boxed{B}", None),
        ("<think>a</think><think>b</think> \\boxed{B}", "B"),
        ("plain \\boxed{A}", "A"),
    ],
)
def test_strict_policy(text, expected):
    assert parse_verdict(text, "strict") == expected


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown verdict policy"):
        parse_verdict("\\boxed{A}", "lenient")


def test_strip_thinking_keeps_text_after_last_close():
    assert strip_thinking("<think>x</think> a <think>y</think>  rationale ") == "rationale"
    assert strip_thinking("  no thinking ") == "no thinking"

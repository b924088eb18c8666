"""Deterministic GenRMs for the label benchmarks, played by a loopback server: they read the
answers out of our prompts, so their verdicts (and the benchmarks' numbers) can be computed
by hand or taken from SPEC_COMPANIONS."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from ralign_tasks.testing.loopback import prompt_of

_PAIR = re.compile(
    r"\[Assistant A's answer\]\n(?P<a>.*)\n\[End of Assistant A's answer\]\n\n"
    r"\[Assistant B's answer\]\n(?P<b>.*)\n\[End of Assistant B's answer\]",
    re.DOTALL,
)
_RANKED = re.compile(
    r"\[The Start of Assistant ([ABCD])'s Answer\]\n(.*?)\n\[The End of Assistant \1's Answer\]",
    re.DOTALL,
)
_RATED = re.compile(
    r"\[The Start of the Assistant's Answer\]\n(.*)\n\[The End of the Assistant's Answer\]",
    re.DOTALL,
)


def pair_answers(prompt: str) -> tuple[str, str]:
    """The two answers of a pairwise or Arena-Hard prompt, exactly as given."""
    match = _PAIR.search(prompt)
    assert match, "not a pairwise prompt"
    return match["a"], match["b"]


def is_arena_hard(prompt: str) -> bool:
    return "[[A>>B]]" in prompt


def pairwise_reply(prompt: str, decision: str) -> str:
    """``decision`` (A>B, B>A or A=B) in the prompt's own verdict format."""
    if is_arena_hard(prompt):
        return f"My verdict: [[{decision}]]"
    return "\\boxed{A}" if decision == "A>B" else "\\boxed{B}"


def length_judge(body: dict) -> str:
    """J_len of SPEC_COMPANIONS §2.4: the longer answer (code points) wins, equal lengths are
    A=B (the pairwise format has no tie: A)."""
    prompt = prompt_of(body)
    first, second = map(len, pair_answers(prompt))
    decision = "A>B" if first > second else "B>A" if first < second else "A=B"
    return pairwise_reply(prompt, decision)


def position_biased_judge(body: dict) -> str:
    """J_posbias of SPEC_COMPANIONS §2.4: B>A if the second answer is more than 1.5 times as
    long as the first, else A>B."""
    prompt = prompt_of(body)
    first, second = map(len, pair_answers(prompt))
    return pairwise_reply(prompt, "B>A" if second > 1.5 * first else "A>B")


def oracle(correct: Collection[str], rating: Callable[[bool], str] | None = None):
    """A GenRM that knows which answers are correct: it prefers them in pairs and rankings and
    rates them 9 (others 2), or as ``rating`` says."""
    rate = rating or (lambda good: "Accurate.\n9" if good else "Wrong.\n2")

    def respond(body: dict) -> str:
        prompt = prompt_of(body)
        if "[[D]]" in prompt:
            best = next(letter for letter, text in _RANKED.findall(prompt) if text in correct)
            return f"The best answer is {best}.\n[[{best}]]"
        rated = _RATED.search(prompt)
        if rated:
            return rate(rated[1] in correct)
        first, _ = pair_answers(prompt)
        return pairwise_reply(prompt, "A>B" if first in correct else "B>A")

    return respond


def length_everything(body: dict) -> str:
    """A GenRM that likes long answers in every format: pairs as :func:`length_judge` (the
    pairwise format's ties go to A), the longest of four ranked answers (the first on a tie),
    and a rating growing with the answer's length."""
    prompt = prompt_of(body)
    if "[[D]]" in prompt:
        ranked = _RANKED.findall(prompt)
        best = max(ranked, key=lambda entry: len(entry[1]))[0]
        return f"The most thorough answer is {best}.\n[[{best}]]"
    rated = _RATED.search(prompt)
    if rated:
        return f"Thorough enough.\n{min(10, 1 + len(rated[1]) // 15)}"
    return length_judge(body)

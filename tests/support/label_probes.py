"""Scripted GenRMs for the bias probes of the label benchmarks on their bundled samples, played
by a loopback server (pairwise prompts, ``\\boxed{A|B}``): ``robust`` picks the better answer
of every pair; ``follower`` picks the answer a note before the answers names, else the better
one. A shown answer is the better one when it is one of the item's correct answers, the
worse when it is one of its wrong ones; a dressed-up answer is neither, and the other side
tells."""

from __future__ import annotations

import re
from collections.abc import Callable

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import RATING_EIGHT, label_genrm_answer

_ANSWER = re.compile(r"\[Assistant ([AB])'s answer\]\n(.*?)\n\[End of Assistant \1's answer\]",
                     re.DOTALL)  # fmt: skip
_REQUEST = re.compile(r"\[User's final request\]\n(.*?)\n\n\[", re.DOTALL)
_NOTE = re.compile(r"\[Note\]\n.*?Assistant ([AB])")


def _answers() -> dict[str, tuple[set[str], set[str]]]:
    """Per request: its correct answers and its wrong ones, over the three samples."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for record in load_task("judgebench", sample_data_dir()).records:
        better, worse = (record.response_a, record.response_b)[:: 1 if record.label[0] == "A"
                                                                 else -1]  # fmt: skip
        found[record.question] = ({better}, {worse})
    for task in ("rmbench", "rb2"):
        for record in load_task(task, sample_data_dir()).records:
            found[record.prompt] = (set(record.chosen), set(record.rejected))
    return found


ANSWERS = _answers()


def better_side(prompt: str) -> str:
    """Where the prompt shows the better answer."""
    request = _REQUEST.search(prompt).group(1)
    correct, wrong = ANSWERS[request]
    shown = dict(_ANSWER.findall(prompt))
    if shown["A"] in correct or shown["B"] in wrong:
        return "A"
    assert shown["B"] in correct or shown["A"] in wrong, "neither side is known"
    return "B"


def responder() -> Callable[[dict], str]:
    def respond(body: dict) -> str:
        prompt = str(body["messages"][-1]["content"])
        if "[Assistant A's answer]" not in prompt:  # RewardBench 2's Ties items are rated
            return label_genrm_answer(body) or RATING_EIGHT
        side = better_side(prompt)
        note = _NOTE.search(prompt)
        if body["model"] == "follower" and note:
            side = note.group(1)
        return f"Assistant {side} is better.\n\\boxed{{{side}}}"

    return respond

"""Scripted GenRMs for RewardBench 2's pairwise modes on the bundled sample, played by a
loopback server. Each knows every accuracy item's four completions by number (0 the chosen
one, then the rejected ones) and prefers by a rule of its own:

* ``ranked``: the lower number (a total order: never a cycle, never a symmetry conflict);
* ``cyclic``: the chosen answer over every rejected one, and among the rejected ones
  1 over 2, 2 over 3, 3 over 1 (one cyclic triad per item, every game of the chosen answer
  won);
* ``first``: always Assistant A (with both orders, every pair conflicts);
* ``cyclic_in`` + subsets: ``cyclic`` on the items of those subsets, ``ranked`` elsewhere.

Ties items are rated (8 each)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import RATING_EIGHT, prompt_of

_ANSWER = re.compile(r"\[Assistant ([AB])'s answer\]\n(.*?)\n\[End of Assistant \1's answer\]",
                     re.DOTALL)  # fmt: skip
_REQUEST = re.compile(r"\[User's final request\]\n(.*?)\n\n\[", re.DOTALL)

RECORDS = [r for r in load_task("rb2", sample_data_dir()).records if r.subset != "ties"]
# Per request: its subset and its completions by number.
NUMBERED = {r.prompt: (r.subset, (r.chosen[0], *r.rejected)) for r in RECORDS}
# The cycle among the rejected answers: the preferred one of each pair.
_CYCLE = {(1, 2): 1, (2, 3): 2, (1, 3): 3}


def responder(rule: str, cyclic_subsets: Collection[str] = ()) -> Callable[[dict], str]:
    def respond(body: dict) -> str:
        prompt = prompt_of(body)
        if "[Assistant A's answer]" not in prompt:
            return RATING_EIGHT
        subset, completions = NUMBERED[_REQUEST.search(prompt).group(1)]
        shown = dict(_ANSWER.findall(prompt))
        first, second = completions.index(shown["A"]), completions.index(shown["B"])
        if rule == "first":
            side = "A"
        else:
            cyclic = rule == "cyclic" or subset in cyclic_subsets
            pair = (min(first, second), max(first, second))
            best = _CYCLE[pair] if cyclic and 0 not in pair else pair[0]
            side = "A" if best == first else "B"
        return f"Assistant {side} is better.\n\\boxed{{{side}}}"

    return respond

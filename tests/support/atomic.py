"""A scripted HelpSteer3-Atomic GenRM and MetaJudge on the bundled sample (labels A B B A B A B A;
4 3 5 3 6 4 5 4 human rationales), played by a loopback server: every item outcome (scored,
skipped empty, skipped long, judge failure) with hand-computable Rationale Consistency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import prompt_of

RECORDS = load_task("helpsteer3_atomic", sample_data_dir()).records
ELEVEN = "\n".join(f"{i}. reason {i}" for i in range(1, 12))
# Per item: the GenRM's output.
GENRM = [
    "1. first point\n2. second point\n\\boxed{A>B}",
    "- only point\n\\boxed{B>>A}",
    "No list here. \\boxed{B>A}",  # skipped: empty
    f"{ELEVEN}\n\\boxed{{A>>B}}",  # skipped: more than 10
    "1. a tie\n\\boxed{A=B}",  # MetaJudge never well-formed: judge failure
    "1. z\n2. w\n\\boxed{A>B}",  # malformed once, then well-formed
    "1. no verdict follows",
    "1. wrong side\n\\boxed{B>A}",
]
# Per scored item, the MetaJudge's picks (S index, score) for R1, R2, …; the rest are S0: 0.
PICKS = {0: [(1, 1.0), (1, 0.5), (2, 0.75)], 1: [(1, 1.0)], 5: [(2, 0.25)], 6: [(1, 0.5)], 7: []}
# Another MetaJudge's picks of the same reasons (the agreement tests).
OTHER_PICKS = {0: [(1, 1.0), (0, 0.0), (2, 0.5), (2, 0.25)], 1: [(1, 1.0), (1, 0.5)],
               5: [(2, 0.25)], 6: [], 7: [(1, 0.25)]}  # fmt: skip
# Item -> picks.
Picks = Mapping[int, list[tuple[int, float]]]


def metajudge_block(item: int, picks: Picks = PICKS) -> str:
    chosen = picks[item] + [(0, 0.0)] * (len(RECORDS[item].checklist) - len(picks[item]))
    lines = [f"- R{r}@S{s}: {score}" for r, (s, score) in enumerate(chosen, start=1)]
    return "<RESULT_START>\n" + "\n".join(lines) + "\n<RESULT_END>"


def responder(
    genrm: Mapping[str, list[str]] | None = None, judges: Mapping[str, Picks] | None = None
) -> tuple[Callable[[dict], str], Counter[int]]:
    """The server's answers and how often each item was sent to a MetaJudge. ``genrm`` and
    ``judges`` map a model name to its outputs or picks (any other name: ``GENRM``,
    ``PICKS``). Item 4's MetaJudge answer is never well-formed, item 5's only from the second
    ask on."""
    asks: Counter[int] = Counter()

    def respond(body: dict) -> str:
        prompt = prompt_of(body)
        model = body["model"]
        if "<RESULT_START>" in prompt:  # a MetaJudge request
            item = next(i for i, r in enumerate(RECORDS) if r.checklist[0] in prompt)
            asks[item] += 1
            if item == 4 or (item == 5 and asks[item] == 1):
                return "I would rather not use the block."
            return metajudge_block(item, (judges or {}).get(model, PICKS))
        item = next(i for i, r in enumerate(RECORDS) if r.prompt in prompt)
        return (genrm or {}).get(model, GENRM)[item]

    return respond, asks


def run_atomic(base_url: str, genrm: str, judge: str, out: Path) -> Path:
    """``ralign run helpsteer3_atomic --sample`` with both roles at ``base_url``; its folder
    (under ``out``)."""
    code = main(["run", "helpsteer3_atomic", "--sample", "--genrm-model", genrm,
                 "--genrm-base-url", base_url, "--metajudge-model", judge,
                 "--metajudge-base-url", base_url, "--output-dir", str(out)])  # fmt: skip
    assert code in (0, 1)  # 1: the judge failed too often (item 4 of 8) to be usable
    return out

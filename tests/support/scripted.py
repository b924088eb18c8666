"""Scripted GenRM and meta-judge answers for the bundled helpsteer3 sample (labels A B A B B A B A),
shared by the end-to-end tests of the CLI and both harnesses."""

from __future__ import annotations

from collections.abc import Sequence

from ralign_tasks.protocols.fidelity import PairRecord
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    Reply,
    Responder,
    is_metajudge_prompt,
    prompt_of,
)

# Sent three times in all within the tests' retry budget (tests/conftest.py).
FAIL = Reply("scripted failure", status=500, headers={"retry-after-ms": "150"})


def meta_answer(verdict: str) -> str:
    return (
        "<golden_key_points>k</golden_key_points>\n<genrm_analysis>a</genrm_analysis>\n"
        f"<final_verdict>{verdict}</final_verdict>"
    )


# Per item: the GenRM's output and the meta-judge's answer if it is asked. With the official
# policy items 0, 1, 2 (backslash fallback) and 5 are label-correct; their meta outcomes are
# Correct, Incorrect, ParseFail and CallFail: L-Acc 4/8, S-Corr 1/2, F-Score 1/(8-1-1).
SCRIPT: list[tuple[str | Reply, str | Reply]] = [
    ("<think>\\boxed{A} looks right</think> A is correct. \\boxed{A}", meta_answer("Correct")),
    ("B handles the edge case. \\boxed{B}", meta_answer("Incorrect")),
    ("A, final answer: boxed{A}", "I think the judge is right."),  # meta parse failure
    ("\\boxed{A}", meta_answer("Correct")),  # label wrong: never judged
    (Reply("Weighing both, I", finish_reason="length"), meta_answer("Correct")),  # cut off
    ("\\boxed{A}", FAIL),  # meta-judge call keeps failing
    (FAIL, meta_answer("Correct")),  # GenRM call keeps failing
    ("<think>\\boxed{B}?</think> On reflection \\boxed{A}", meta_answer("Correct")),
]
EXPECTED_OFFICIAL = {"l_acc": 4 / 8, "s_corr": 1 / 2, "f_score": 1 / 6}


def scripted_responder(
    records: Sequence[PairRecord],
    script: Sequence[tuple[str | Reply, str | Reply]] = SCRIPT,
    *,
    others: tuple[str, str] | None = None,
) -> Responder:
    """Answer requests about ``records`` from ``script``; requests about any other item get
    ``others`` (GenRM text, meta-judge text), or fail the test when ``others`` is None."""

    def respond(body: dict) -> str | Reply:
        prompt = prompt_of(body)
        for record, (genrm, meta) in zip(records, script, strict=True):
            if record.prompt in prompt:
                return meta if is_metajudge_prompt(body) else genrm
        if others is None:
            raise AssertionError("unscripted request")
        return others[1] if is_metajudge_prompt(body) else others[0]

    return respond


DEFAULT_OTHERS = (GENRM_PICKS_A, METAJUDGE_CORRECT)

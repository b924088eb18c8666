"""A scripted R-Align fidelity run with reason types on the bundled helpsteer3 sample (labels A B
A B B A B A), played by a loopback server: a GenRM, a meta-judge that types and grades
(model ``judge``) and an extractor (model ``extractor``), with hand-computable type shares and
S-Corr by top reason type (:data:`EXPECTED`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import is_metajudge_prompt, prompt_of
from tests.support.scripted import meta_answer

RECORDS = load_task("helpsteer3", sample_data_dir()).records
# Per item: the GenRM's answer, the meta-judge's verdict (if asked), the extractor's reasons
# (None: never well-formed) and their types (None: the typing answer is never well-formed).
SCRIPT: list[tuple[str, str, list[str] | None, list[str] | None]] = [
    (
        "A fixes the bug; it reads well. \\boxed{A}",
        "Correct",
        ["A fixes the bug.", "A reads well."],
        ["evidence", "generic"],
    ),
    ("B is more detailed. \\boxed{B}", "Incorrect", ["B is more detailed."], ["generic"]),
    (
        "B looks nicer and is tidier. \\boxed{B}",
        "Correct",  # label wrong: never graded
        ["B looks nicer.", "B is tidier."],
        ["generic", "generic"],
    ),
    ("B answers the question. \\boxed{B}", "Correct", [], None),  # extraction: empty
    (
        "B is longer; A misses step 2. \\boxed{B}",
        "Incorrect",
        ["B is longer.", "A misses step 2."],
        ["generic", "evidence"],
    ),
    (
        "A cites the source; it is correct and complete. \\boxed{A}",
        "Incorrect",
        ["A cites the source.", "A is correct.", "A is complete."],
        ["evidence", "criterion", "criterion"],
    ),
    ("B is right. \\boxed{B}", "Correct", None, None),  # extraction never well-formed
    ("A. \\boxed{A}", "Correct", ["A is better."], None),  # typing never well-formed
]
EXPECTED = {
    "l_acc": 7 / 8,
    "s_corr": 3 / 7,
    "f_score": 4 / 8,
    # Typed reasons: evidence 3, criterion 2, generic 5 of 10; top reasons of items 0 1 2 4 5.
    "evidence_share": 3 / 10,
    "criterion_share": 2 / 10,
    "generic_share": 5 / 10,
    "top_evidence": 2 / 5,
    "top_criterion": 0.0,
    "top_generic": 3 / 5,
    # Label-correct and graded: top evidence 0 (Correct) 5 (Incorrect); top generic 1 and 4
    # (both Incorrect; item 2 is label-wrong).
    "s_corr_top_evidence": 1 / 2,
    "s_corr_top_generic": 1.0,
}
EXPECTED_COUNTS = {"extract_empty": 1, "extract_parse_fail": 1, "extract_call_fail": 0,
                   "types_failed": 1}  # fmt: skip


def _item(prompt: str) -> int:
    return next(i for i, record in enumerate(RECORDS) if record.prompt in prompt)


def responder() -> tuple[Callable[[dict], str], Counter[str]]:
    """The server's answers, and how many requests each step got."""
    asks: Counter[str] = Counter()

    def respond(body: dict) -> str:
        prompt = prompt_of(body)
        if "<REASONS_START>" in prompt:
            assert body["model"] == "extractor", body["model"]
            asks["extract"] += 1
            reasons = SCRIPT[_item(prompt)][2]
            if reasons is None:
                return "S1: something"
            lines = "".join(f"S{n}: {reason}\n" for n, reason in enumerate(reasons, 1))
            return f"<REASONS_START>\n{lines}<REASONS_END>"
        if "<TYPES_START>" in prompt:
            assert body["model"] == "judge", body["model"]
            asks["types"] += 1
            types = SCRIPT[_item(prompt)][3]
            if types is None:
                return "<TYPES_START>\nS1: unsure\n<TYPES_END>"
            lines = "".join(f"S{n}: {kind}\n" for n, kind in enumerate(types, 1))
            return f"<TYPES_START>\n{lines}<TYPES_END>"
        if is_metajudge_prompt(body):
            asks["meta"] += 1
            return meta_answer(SCRIPT[_item(prompt)][1])
        return SCRIPT[_item(prompt)][0]

    return respond, asks

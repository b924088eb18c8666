"""A scripted free-form HelpSteer3-Atomic run on the bundled sample (labels A B B A B A B A; 4 3 5
3 6 4 5 4 human rationales), played by a loopback server: a GenRM that answers the pairwise
prompt in its own words, an extractor (model ``extractor``) and a judge (model ``judge``) that
types the reasons and matches them (``PICKS`` of tests/support/atomic.py). Every outcome of the
extraction and typing steps occurs once, with hand-computable values (:data:`EXPECTED`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ralign_tasks.cli import main
from ralign_tasks.testing.loopback import Reply, prompt_of
from tests.support.atomic import PICKS, RECORDS, metajudge_block

# Per item: the GenRM's free-form answer, its verdict in the box.
GENRM = [
    "<think>A states the fact; B skips the asked format.</think>\n"
    "Assistant A gets the key fact right and Assistant B ignores the requested format.\n"
    "\\boxed{A}",
    "Assistant B is more helpful overall.\n\\boxed{B}",
    "Both answers are fine.\n\\boxed{B}",
    "A is better.\n\\boxed{A}",
    "A is better.\n\\boxed{A}",
    "Assistant A handles the edge case, tests it, and explains it.\n\\boxed{A}",
    "B is right; A is long-winded.\n\\boxed{B}",
    "B has a bug in its loop while A is terse.\n\\boxed{B}",
]
# Per item: the extractor's reasons; None: its answers are never well-formed (item 3), or it
# refuses every request (item 4: a 400); item 5's first answer is malformed.
EXTRACTED: list[list[str] | None] = [
    ["Assistant A gets the key fact right.", "Assistant B ignores the requested format."],
    ["Assistant B is more helpful overall."],
    [],  # extract_empty
    None,  # extract_parse_fail
    None,  # extract_call_fail
    ["Assistant A handles the edge case.", "Assistant A tests it.", "Assistant A explains it."],
    ["Assistant B is right.", "Assistant A is long-winded."],
    ["Assistant B has a bug in its loop.", "Assistant A is terse."],
]
# Per item with reasons: their types; item 6's typing answer is never well-formed.
TYPES = {
    0: ["evidence", "criterion"],
    1: ["generic"],
    5: ["evidence", "generic", "generic"],
    7: ["criterion", "evidence"],
}

# The numbers a run must report (hand-computed from the script above and PICKS).
_N_R = [len(record.checklist) for record in RECORDS]
_RC = {0: 1.75 / 4, 1: 1 / 3, 5: 0.25 / 4, 6: 0.5 / 5, 7: 0.0}
_RC_CODE = {0: 2.25 / 4, 1: 1 / 3, 5: 0.25 / 4, 6: 0.5 / 5, 7: 0.0}
# Precision: the best score of each matched reason over min(reasons, 5).
_PRECISION = {0: 1.75 / 2, 1: 1.0, 5: 0.25 / 3, 6: 0.5 / 2, 7: 0.0}
EXPECTED = {
    "rc": sum(_RC.values()) / 5,
    "rc_code": sum(_RC_CODE.values()) / 5,
    "rc_precision": sum(_PRECISION.values()) / 5,
    "rc_f1": sum(
        2 * p * r / (p + r) if p + r else 0.0
        for p, r in zip(_PRECISION.values(), _RC_CODE.values(), strict=True)
    )
    / 5,
    # Verdicts A B B A A A B B against labels A B B A B A B A.
    "outcome_acc": 6 / 8,
    # 8 typed reasons: evidence 3, criterion 2, generic 3; top reasons of items 0 1 5 7.
    "evidence_share": 3 / 8,
    "criterion_share": 2 / 8,
    "generic_share": 3 / 8,
    "top_evidence": 2 / 4,
    "top_criterion": 1 / 4,
    "top_generic": 1 / 4,
}
EXPECTED_COUNTS = {
    "scored": 5,
    "extract_empty": 1,
    "extract_parse_fail": 1,
    "extract_call_fail": 1,
    "types_failed": 1,
    "skipped_empty": 0,
    "judge_failed": 0,
}
STATUSES = ["scored", "scored", "extract_empty", "extract_parse_fail", "extract_call_fail",
            "scored", "scored", "scored"]  # fmt: skip


def _item(prompt: str) -> int:
    return next(i for i, record in enumerate(RECORDS) if record.prompt in prompt)


def responder() -> tuple[Callable[[dict], Reply | str], Counter[tuple[str, int]]]:
    """The server's answers, and how often each (step, item) was asked."""
    asks: Counter[tuple[str, int]] = Counter()

    def respond(body: dict) -> Reply | str:
        prompt = prompt_of(body)
        if "<REASONS_START>" in prompt:
            assert body["model"] == "extractor", body["model"]
            item = _item(prompt)
            asks["extract", item] += 1
            if item == 4:
                return Reply("the extractor refuses this request", status=400)
            reasons = EXTRACTED[item]
            if reasons is None or (item == 5 and asks["extract", item] == 1):
                return "Reasons: S1 - something, S2 - something else."
            lines = "".join(f"S{n}: {reason}\n" for n, reason in enumerate(reasons, 1))
            return f"<REASONS_START>\n{lines}<REASONS_END>"
        if "<TYPES_START>" in prompt:
            assert body["model"] == "judge", body["model"]
            item = _item(prompt)
            asks["types", item] += 1
            if item not in TYPES:
                return "<TYPES_START>\nS1: evidence-ish\n<TYPES_END>"
            lines = "".join(f"S{n}: {kind}\n" for n, kind in enumerate(TYPES[item], 1))
            return f"<TYPES_START>\n{lines}<TYPES_END>"
        if "<RESULT_START>" in prompt:
            assert body["model"] == "judge", body["model"]
            item = next(i for i, r in enumerate(RECORDS) if r.checklist[0] in prompt)
            asks["rc", item] += 1
            return metajudge_block(item, PICKS)
        return GENRM[_item(prompt)]

    return respond, asks


# What each path's metadata or flags set: the free format with reason types, the extractor.
OPTIONS = {"genrm_format": "free", "reason_types": True}


def run_free_atomic(base_url: str, out: Path) -> Path:
    """``ralign run helpsteer3_atomic --sample --genrm-format free --reason-types`` with every
    role at ``base_url`` (GenRM ``genrm``, judge ``judge``, extractor ``extractor``); its run
    folder."""
    code = main([
        "run", "helpsteer3_atomic", "--sample", "--genrm-model", "genrm",
        "--genrm-base-url", base_url, "--metajudge-model", "judge",
        "--metajudge-base-url", base_url, "--extractor-model", "extractor",
        "--genrm-format", "free", "--reason-types", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    (folder,) = out.glob("genrm/*")
    return folder

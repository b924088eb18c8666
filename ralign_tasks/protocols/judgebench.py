"""JudgeBench (ScalerLab, SPEC_COMPANIONS §2): response pairs on knowledge, reasoning, math and
coding questions; every pair judged in both orders, the pair correct iff the net vote over the
two games is positive; accuracy pooled over pairs and per category."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ralign_tasks.data import require_str
from ralign_tasks.protocols.base import GenRMOutput, Option, TaskSpec
from ralign_tasks.protocols.label import (
    PROBE_OPTION,
    PROBE_SEED_OPTION,
    REQUEST_COUNTS,
    VERDICT_FORMAT_OPTION,
    Game,
    LabelJudgment,
    PairwiseLabelProtocol,
    ProbedOutcome,
    RequestCounts,
    count_requests,
    summary_metric,
)
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.jsonl import read_jsonl
from ralign_tasks.scorers.judgebench import (
    CATEGORIES,
    LABELS,
    PairOutcome,
    category_of,
    compute_judgebench,
    flip,
)
from ralign_tasks.scorers.probes import MOVED_SPECS
from ralign_tasks.scorers.schema import MetricSpec, Schema

JUDGEBENCH_TASK = TaskSpec(
    task="ralign_judgebench",
    family="judgebench",
    title="JudgeBench",
    files={"gpt": "gpt-00000-of-00001.jsonl", "claude": "claude-00000-of-00001.jsonl"},
    local_files={
        "gpt": ("dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl",),
        "claude": ("dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl",),
    },
    folder="judgebench",
    hf_dataset="ScalerLab/JudgeBench",
)

JUDGEBENCH_SCHEMA = Schema(
    metrics=(
        summary_metric("accuracy", "Accuracy", "pairs whose net vote over both orders is > 0, "
                       "pooled over all pairs"),
        summary_metric("knowledge", "Knowledge", "the Knowledge category (MMLU-Pro)"),
        summary_metric("reasoning", "Reasoning", "the Reasoning category (LiveBench)"),
        summary_metric("math", "Math", "the Math group of items"),
        summary_metric("coding", "Coding", "the Coding category (LiveCodeBench)"),
        summary_metric("accuracy_first_order", "1st order",
                       "pairs whose first game (the official order) names the label"),
        *MOVED_SPECS,
    ),
    counts=(
        MetricSpec("inconsistent", "inconsistent", False, "count", needs_judge=False,
                   description="pairs whose two games disagree once mapped back"),
        MetricSpec("vote_ties", "ties", False, "count", needs_judge=False,
                   description="pairs with a net vote of 0"),
        MetricSpec("vote_incorrect", "wrong", False, "count", needs_judge=False, detail=True,
                   description="pairs with a negative net vote"),
        MetricSpec("nulls", "nulls", False, "count", needs_judge=False, detail=True,
                   description="pairs with a game without a decision"),
        *REQUEST_COUNTS,
    ),
    headline="accuracy",
)  # fmt: skip


@dataclass(frozen=True)
class JudgeBenchRecord:
    """One JudgeBench pair: ``label`` is ``A>B`` or ``B>A``."""

    id: str
    source: str
    category: str
    question: str
    response_a: str
    response_b: str
    label: str
    response_model: str = ""  # who wrote the two responses (names the split)


@dataclass(frozen=True)
class JudgeBenchOutcome(ProbedOutcome):
    """A pair's two decisions (game 2 in its own naming) and its GenRM request counts."""

    pair: PairOutcome
    requests: RequestCounts

    @property
    def category(self) -> str:
        return self.pair.category


class JudgeBenchProtocol(PairwiseLabelProtocol[JudgeBenchRecord, JudgeBenchOutcome]):
    name = "judgebench"
    record_type = JudgeBenchRecord
    title = "JudgeBench"
    scorer_name = "ralign_judgebench_scorer"
    schema = JUDGEBENCH_SCHEMA
    group_field = "category"
    tasks = (JUDGEBENCH_TASK,)
    options = (
        Option(
            "split",
            "gpt",
            "gpt (350 GPT-4o pairs, the headline) or claude (270 Claude-3.5-Sonnet pairs)",
            ("gpt", "claude"),
            "data",
        ),
        VERDICT_FORMAT_OPTION,
        PROBE_OPTION,
        PROBE_SEED_OPTION,
    )

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> JudgeBenchRecord:
        if not isinstance(row, dict):
            raise UserError(f"row must be a JSON object, got {type(row).__name__}")
        label = require_str(row, "label")
        if label not in LABELS:
            raise UserError(f"field 'label' must be one of {LABELS}, got {label!r}")
        source = require_str(row, "source")
        return JudgeBenchRecord(
            id=require_str(row, "pair_id"),
            source=source,
            category=category_of(source),
            question=require_str(row, "question"),
            response_a=require_str(row, "response_A"),
            response_b=require_str(row, "response_B"),
            label=label,
            response_model=str(row.get("response_model") or ""),
        )

    def target(self, record: JudgeBenchRecord) -> str:
        return record.label

    # --- the GenRM: two games, the answers swapped in the second ----------------------------

    def games(self, record: JudgeBenchRecord, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"order": 1, "first": "A"}, {"order": 2, "first": "B"}]

    def shown_pair(
        self, record: JudgeBenchRecord, shown: Mapping[str, Any]
    ) -> tuple[str, str, str]:
        first, second = record.response_a, record.response_b
        return (record.question, *((second, first) if shown["first"] == "B" else (first, second)))

    def better_side(self, record: JudgeBenchRecord, shown: Mapping[str, Any]) -> str:
        better = record.label[0]  # in the responses' own naming
        return better if shown["first"] == "A" else {"A": "B", "B": "A"}[better]

    def summary(self, record: JudgeBenchRecord, games: Sequence[Game]) -> str | None:
        first, second = (game.verdict for game in games)
        return f"{first or '-'} | {flip(second) or '-'}"

    # --- outcome and metrics ---------------------------------------------------------------

    def label_outcome(self, judgment: LabelJudgment) -> JudgeBenchOutcome:
        record: JudgeBenchRecord = judgment.record
        first, second = (game.verdict for game in judgment.games)
        return JudgeBenchOutcome(
            PairOutcome(record.category, record.label, first, second),
            RequestCounts.of(judgment.games),
        )

    def outcome_to_dict(self, outcome: JudgeBenchOutcome) -> dict[str, Any]:
        pair = outcome.pair
        return {
            "first": pair.first,
            "second": pair.second,
            "net_vote": pair.net_vote,
            "correct": pair.correct,
            "first_order_correct": pair.first_order_correct,
            **outcome.requests.to_dict(),
        }

    def label_outcome_from_item(self, item: Mapping[str, Any]) -> JudgeBenchOutcome:
        stored = item["outcome"]
        return JudgeBenchOutcome(
            PairOutcome(str(item["subset"]), str(item["label"]), stored["first"], stored["second"]),
            RequestCounts.from_dict(stored),
        )

    def credit(self, outcome: JudgeBenchOutcome) -> float | None:
        return float(outcome.pair.correct)

    def view_prompt(self, record: JudgeBenchRecord) -> str:
        return record.question

    def view_answers(self, record: JudgeBenchRecord) -> list[dict[str, str]]:
        better = record.label[0]
        return [
            {"title": f"Response {side}" + (" (better)" if side == better else ""), "text": text}
            for side, text in (("A", record.response_a), ("B", record.response_b))
        ]

    def outcome_group(self, outcome: JudgeBenchOutcome) -> str:
        return outcome.category

    def document_values(self, outcome: JudgeBenchOutcome) -> dict[str, float]:
        pair = outcome.pair
        return {
            "inconsistent": float(pair.first != flip(pair.second)),
            "vote_ties": float(pair.net_vote == 0),
            "vote_incorrect": float(pair.net_vote < 0),
            "nulls": float(pair.first is None or pair.second is None),
            **outcome.requests.values(),
        }

    def values(self, outcomes: Sequence[JudgeBenchOutcome]) -> dict[str, Any]:
        report = compute_judgebench([o.pair for o in outcomes])
        return {
            "n": report["n"],
            **{name: report[name] for name in self.official_metrics},
            "inconsistent": report["inconsistent"],
            "vote_ties": report["ties"],
            "vote_incorrect": report["incorrect"],
            "nulls": report["nulls"],
            **count_requests([o.requests for o in outcomes]),
        }

    def official_outputs(
        self, path: str
    ) -> tuple[list[JudgeBenchRecord], list[LabelJudgment], str, dict[str, Any]]:
        records, judgments, judge = read_official_outputs(path)
        # The official files come from the Arena-Hard judge; the responses' author names the
        # split.
        split = "claude" if any("claude" in r.response_model for r in records) else "gpt"
        return records, judgments, judge, {"verdict_format": "arena_hard", "split": split}

    def official_line(self, report: Mapping[str, Any]) -> str:
        return official_line(report)

    def strata(self, outcomes: Sequence[JudgeBenchOutcome]) -> dict[str, list[list[Any]]]:
        strata: dict[str, list[list[Any]]] = {name: [] for name, _ in CATEGORIES}
        for outcome in outcomes:
            strata[outcome.category].append([outcome])
        return strata


JUDGEBENCH = JudgeBenchProtocol()


def read_official_outputs(
    path: str | os.PathLike[str],
) -> tuple[list[JudgeBenchRecord], list[LabelJudgment], str]:
    """The pairs and stored decisions of one of JudgeBench's own judge-output files (JSONL:
    the pair row plus ``judge_name`` and ``judgments``, one entry per game, ``null`` for a
    game that raised), as records and judgments of this protocol (each game's output is the
    judge's stored response, its verdict the stored decision, not re-parsed), with the
    judge's name. Lines are in completion order: keyed by ``pair_id``; a repeated pair and a
    single-game file are errors naming file and line."""
    records, judgments = [], []
    seen: dict[str, int] = {}
    judge = ""
    for line_no, row in read_jsonl(path):
        try:
            record = JUDGEBENCH.parse_row(row, line_no, JUDGEBENCH_TASK, "")
            games = row.get("judgments")
            if not isinstance(games, list) or len(games) != 2:
                raise UserError("'judgments' must hold the two games (both orders)")
            if not all(game is None or isinstance(game, dict) for game in games):
                raise UserError("each game of 'judgments' must be an object or null")
        except ValueError as exc:
            raise UserError(f"{path}:{line_no}: not a JudgeBench judge output ({exc})") from None
        if record.id in seen:
            raise UserError(
                f"{path}:{line_no}: pair {record.id} again (first on line {seen[record.id]})"
            )
        seen[record.id] = line_no
        played = []
        for shown, game in zip(JUDGEBENCH.games(record, {}), games, strict=True):
            stored = (game or {}).get("judgment") or {}
            judge = judge or str(stored.get("judge_model") or "")
            output = GenRMOutput(
                stored.get("response") if game else None,
                truncated=None,
                error=None if game else "the judge raised (a null game in the output file)",
            )
            played.append(Game.of(shown, output, game.get("decision") if game else None))
        records.append(record)
        judgments.append(LabelJudgment(record, tuple(played), JUDGEBENCH.summary(record, played)))
    if not records:
        raise UserError(f"{path}: no pairs")
    name = str(row.get("judge_name") or "judge")
    return records, judgments, f"{name}/{judge}" if judge else name


def official_line(report: Mapping[str, Any]) -> str:
    """The overall and category accuracies as JudgeBench prints them (percent, two
    decimals)."""
    parts = [
        f"{name.capitalize()} {report[name] * 100:.2f}"
        for name in (*(n for n, _ in CATEGORIES), "accuracy")
        if report[name] is not None
    ]
    return "JudgeBench, official rule: " + " / ".join(parts).replace("Accuracy", "Overall")

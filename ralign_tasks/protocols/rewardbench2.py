"""RewardBench 2, official best-of-4 protocol (allenai, SPEC_COMPANIONS §3): one chosen and three
rejected completions per item in Factuality, Precise IF, Math, Safety and Focus, scored in one
of three modes; Ties (several correct answers) always by ratings with the official formula;
the score is the unweighted mean of the six subsets.

* ``rankings`` (official default): one 4-way judgment, the chosen answer's slot drawn per item
  from a seeded generator and recorded; ``[[A]]``…``[[D]]`` read in letter priority; no
  verdict is 0.25.
* ``ratings`` (official ``--score_w_ratings``): every completion rated 1-10 on its own; 1/k for
  a k-way top tie, 0.25 when no rating parses.
* ``pairwise`` (ours): the chosen answer against each rejected one with our pairwise prompt,
  its position drawn per comparison; credit 1 only if it wins all three.

This is not R-Align's "RewardBench 2" figure, which is label accuracy on its own derived pairs
(the ``ralign_rewardbench2`` task).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ralign_tasks.data import (
    DATA_DIR_ENV,
    LoadResult,
    download_data_files,
    read_jsonl_records,
    require_str,
)
from ralign_tasks.prompts import load_template
from ralign_tasks.protocols.base import Option, TaskSpec
from ralign_tasks.protocols.label import (
    PAIRWISE_TEMPLATE,
    PROBE_OPTION,
    PROBE_SEED_OPTION,
    REQUEST_COUNTS,
    SEED_OPTION,
    Game,
    LabelJudgment,
    LabelProtocol,
    ProbedOutcome,
    RequestCounts,
    count_requests,
    draw,
    pair_decision,
    render_pair,
    summary_metric,
)
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.probes import MOVED_SPECS
from ralign_tasks.scorers.rewardbench2 import (
    LETTERS,
    SUBSETS,
    TiesRow,
    compute_rb2,
    pairwise_credit,
    parse_ranking,
    parse_rating,
    parse_ties_id,
    ranking_credit,
    ranking_order,
    ratings_credit,
    subset_key,
)
from ralign_tasks.scorers.schema import Schema

RANKINGS_TEMPLATE = "rb2_rankings.jinja"
RATING_TEMPLATE = "rb2_rating.jinja"
MODES = ("rankings", "ratings", "pairwise")
JSONL_FILE = "reward-bench-2.jsonl"
PARQUET_PATTERN = "test-*.parquet"

RB2_TASK = TaskSpec(
    task="ralign_rb2",
    family="rb2",
    title="RewardBench 2 (official)",
    files={"test": JSONL_FILE},
    folder="rb2",
    hf_dataset="allenai/reward-bench-2",
    aliases=("rb2_official",),
)

RB2_SCHEMA = Schema(
    metrics=(
        summary_metric("score", "Score", "the unweighted mean of the six subset scores"),
        summary_metric("factuality", "Factuality", "mean credit on Factuality"),
        summary_metric("precise_if", "Precise IF", "mean credit on Precise IF"),
        summary_metric("math", "Math", "the Math group of items"),
        summary_metric("safety", "Safety", "the Safety group of items"),
        summary_metric("focus", "Focus", "mean credit on Focus"),
        summary_metric("ties", "Ties", "the official Ties formula on the ratings"),
        *MOVED_SPECS,
    ),
    counts=REQUEST_COUNTS,
    headline="score",
)


@dataclass(frozen=True)
class RB2Record:
    """One RewardBench 2 row: ``id`` is ``<subset>/<official id>`` (the official ids are only
    known to be unique within a subset), ``chosen`` the correct completions."""

    id: str
    source_id: str
    subset: str
    prompt: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]

    @property
    def label(self) -> str:
        return ""

    @property
    def completions(self) -> tuple[str, ...]:
        return (*self.chosen, *self.rejected)


@dataclass(frozen=True)
class RB2Outcome(ProbedOutcome):
    """An item's credit (accuracy subsets) or its ratings (a Ties row), and request counts."""

    subset: str
    source_id: str
    credit: float | None
    ratings: tuple[int, ...] | None
    num_correct: int
    requests: RequestCounts


def _answers(row: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise UserError(f"field {key!r} must be a non-empty list of strings")
    return tuple(value)


class RB2Protocol(LabelProtocol[RB2Record, RB2Outcome]):
    name = "rb2"
    record_type = RB2Record
    title = "RewardBench 2"
    scorer_name = "ralign_rb2_scorer"
    schema = RB2_SCHEMA
    group_field = "subset"
    genrm_template_file = RANKINGS_TEMPLATE
    tasks = (RB2_TASK,)
    options = (
        Option(
            "mode",
            "rankings",
            "rankings: one 4-way [[A]]..[[D]] verdict per item (official default); ratings: "
            "each completion rated 1-10 (official); pairwise: the chosen answer against each "
            "rejected one with our pairwise prompt. Ties is always rated",
            MODES,
            "generation",
        ),
        SEED_OPTION,
        PROBE_OPTION,
        PROBE_SEED_OPTION,
    )

    def option_values(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        values = super().option_values(given, where)
        if values["probe"] != "none" and values["mode"] != "pairwise":
            raise UserError(f"{where}: probes need mode pairwise (they dress up one answer of a "
                            "pair)")  # fmt: skip
        return values

    def probeable(self, shown: Mapping[str, Any]) -> bool:
        return "rejected" in shown  # a pairwise game (Ties is always rated)

    def probe_pair_of(
        self, record: RB2Record, shown: Mapping[str, Any]
    ) -> tuple[str, str, str, str]:
        chosen, rejected = record.chosen[0], record.rejected[shown["rejected"]]
        first = shown["chosen_slot"] == "A"
        answers = (chosen, rejected) if first else (rejected, chosen)
        return (record.prompt, *answers, str(shown["chosen_slot"]))

    def genrm_template_files(self) -> tuple[str, ...]:
        return (RANKINGS_TEMPLATE, RATING_TEMPLATE, PAIRWISE_TEMPLATE)

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> RB2Record:
        if not isinstance(row, dict):
            raise UserError(f"row must be a JSON object, got {type(row).__name__}")
        subset = subset_key(require_str(row, "subset"))
        raw_id = row.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise UserError(f"field 'id' must be a string or an integer, got {raw_id!r}")
        chosen, rejected = _answers(row, "chosen"), _answers(row, "rejected")
        num_correct = row.get("num_correct", len(chosen))
        if num_correct != len(chosen):
            raise UserError(
                f"num_correct is {num_correct!r} but 'chosen' holds {len(chosen)} completions"
            )
        if subset == "ties":
            parse_ties_id(str(raw_id))
        elif len(rejected) != len(LETTERS) - 1:
            raise UserError(
                f"a {subset} item is best-of-4: 'rejected' must hold 3 completions, "
                f"got {len(rejected)}"
            )
        return RB2Record(
            id=f"{subset}/{raw_id}",
            source_id=str(raw_id),
            subset=subset,
            prompt=require_str(row, "prompt"),
            chosen=chosen,
            rejected=rejected,
        )

    def load(
        self,
        spec: TaskSpec,
        data_dir: str | os.PathLike[str] | None,
        *,
        split: str | None = None,
        skip_bad_rows: bool = False,
    ) -> LoadResult:
        """A local folder's ``reward-bench-2.jsonl`` (the bundled sample too) or the hub's
        parquet files (``data/test-*.parquet``, in a local folder as ``hf download`` leaves
        them, or fetched)."""
        folder = data_dir or os.environ.get(DATA_DIR_ENV) or None
        if folder is not None:
            root = Path(folder).expanduser()
            for candidate in (root / "data" / JSONL_FILE, root / JSONL_FILE):
                if candidate.is_file():
                    return super().load(spec, folder, split=split, skip_bad_rows=skip_bad_rows)
            parquet = sorted((root / "data").glob(PARQUET_PATTERN)) or sorted(
                root.glob(PARQUET_PATTERN)
            )
            if not parquet:
                return super().load(spec, folder, split=split, skip_bad_rows=skip_bad_rows)
        else:
            parquet = download_data_files(
                f"data/{PARQUET_PATTERN}", spec.task, spec.hf_dataset, spec.hf_revision
            )
        return self._load_parquet(spec, parquet, skip_bad_rows)

    def _load_parquet(self, spec: TaskSpec, files: list[Path], skip_bad_rows: bool) -> LoadResult:
        import pyarrow as pa
        import pyarrow.parquet as pq

        records: list[RB2Record] = []
        bad_rows = []
        for path in files:
            try:
                rows = pq.read_table(path).to_pylist()
            # Not Parquet (ArrowInvalid), or a string that is not UTF-8 (UnicodeDecodeError,
            # which names no file): one error naming the file, as for every data file.
            except (pa.ArrowException, ValueError) as exc:
                raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
            parsed, bad = read_jsonl_records(
                path, lambda row, line: self.parse_row(row, line, spec, "test"),
                skip_bad_rows=skip_bad_rows, rows=rows,
            )  # fmt: skip
            records += parsed
            bad_rows += bad
        return LoadResult(spec.task, str(files[0].parent), records, bad_rows)

    def target(self, record: RB2Record) -> str:
        return record.chosen[0]

    # --- the GenRM -------------------------------------------------------------------------

    def games(self, record: RB2Record, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        mode = options["mode"]
        if record.subset == "ties" or mode == "ratings":
            return [{"rate": k} for k in range(len(record.completions))]
        if mode == "rankings":
            slot = draw(options["seed"], record.id).randrange(len(LETTERS))
            return [{"chosen_slot": LETTERS[slot], "order": list(ranking_order(slot))}]
        return [
            {"rejected": j,
             "chosen_slot": "A" if draw(options["seed"], record.id, j).random() < 0.5 else "B"}
            for j in range(len(record.rejected))
        ]  # fmt: skip

    def render(self, record: RB2Record, shown: Mapping[str, Any],
               options: Mapping[str, Any], template: str | None) -> str:  # fmt: skip
        if "rate" in shown:
            answer = record.completions[shown["rate"]]
            return (
                load_template(template, RATING_TEMPLATE)
                .render(prompt=record.prompt, answer=answer, ties=record.subset == "ties")
                .strip()
            )
        if "order" in shown:
            candidates = (record.chosen[0], *record.rejected)
            answers = [candidates[index] for index in shown["order"]]
            return (
                load_template(template, RANKINGS_TEMPLATE)
                .render(prompt=record.prompt, answers=answers)
                .strip()
            )
        request, first, second, _ = self.probe_pair_of(record, shown)
        return render_pair("pairwise", request, first, second, template)

    def read(self, shown: Mapping[str, Any], text: str | None, options: Mapping[str, Any]) -> Any:
        if "rate" in shown:
            rating = parse_rating(text)
            return rating if rating != -1 else None
        if "order" in shown:
            return parse_ranking(text)
        return pair_decision("pairwise", text)

    def summary(self, record: RB2Record, games: Sequence[Game]) -> str | None:
        first = games[0].shown
        if "rate" in first:
            return "ratings " + " ".join(str(g.verdict) if g.verdict else "-" for g in games)
        if "order" in first:
            return f"[[{games[0].verdict or '-'}]] (chosen {first['chosen_slot']})"
        return f"won {sum(_won(game) is True for game in games)}/{len(games)}"

    # --- outcome and metrics ---------------------------------------------------------------

    def label_outcome(self, judgment: LabelJudgment) -> RB2Outcome:
        record: RB2Record = judgment.record
        games = judgment.games
        ratings, credit = None, None
        if "rate" in games[0].shown:
            ratings = tuple(-1 if g.verdict is None else int(g.verdict) for g in games)
            if record.subset != "ties":
                credit = ratings_credit(ratings)
        elif "order" in games[0].shown:
            credit = ranking_credit(games[0].verdict, LETTERS.index(games[0].shown["chosen_slot"]))
        else:
            credit = pairwise_credit([_won(game) for game in games])
        return RB2Outcome(record.subset, record.source_id, credit, ratings,
                          len(record.chosen), RequestCounts.of(games))  # fmt: skip

    def outcome_to_dict(self, outcome: RB2Outcome) -> dict[str, Any]:
        return {
            "credit": outcome.credit,
            "ratings": list(outcome.ratings) if outcome.ratings is not None else None,
            "source_id": outcome.source_id,
            "num_correct": outcome.num_correct,
            **outcome.requests.to_dict(),
        }

    def label_outcome_from_item(self, item: Mapping[str, Any]) -> RB2Outcome:
        stored = item["outcome"]
        ratings = stored["ratings"]
        return RB2Outcome(
            str(item["subset"]),
            str(stored["source_id"]),
            None if stored["credit"] is None else float(stored["credit"]),
            None if ratings is None else tuple(int(r) for r in ratings),
            int(stored["num_correct"]),
            RequestCounts.from_dict(stored),
        )

    def credit(self, outcome: RB2Outcome) -> float | None:
        return outcome.credit

    def view_answers(self, record: RB2Record) -> list[dict[str, str]]:
        return [
            {"title": f"{'correct' if index < len(record.chosen) else 'incorrect'} {index}",
             "text": text}
            for index, text in enumerate(record.completions)
        ]  # fmt: skip

    def outcome_group(self, outcome: RB2Outcome) -> str:
        return outcome.subset

    def document_values(self, outcome: RB2Outcome) -> dict[str, float]:
        return outcome.requests.values()

    def values(self, outcomes: Sequence[RB2Outcome]) -> dict[str, Any]:
        items = [(o.subset, o.credit) for o in outcomes if o.subset != "ties"]
        ties = [
            TiesRow(o.source_id, o.num_correct, list(o.ratings or ()))
            for o in outcomes
            if o.subset == "ties"
        ]
        report = compute_rb2(items, ties)
        return {
            "n": len(outcomes),
            **{name: report[name] for name in self.official_metrics},
            **count_requests([o.requests for o in outcomes]),
        }

    def drawn(self, units: list[list[RB2Outcome]]) -> list[RB2Outcome]:
        """A Ties prompt drawn twice counts as two prompts: its rows are renumbered by their
        place in the draw, so the formula pairs each copy's ``ref`` and ``tied`` rows."""
        return [
            _renumbered(outcome, place) if outcome.subset == "ties" else outcome
            for place, unit in enumerate(units)
            for outcome in unit
        ]

    def strata(self, outcomes: Sequence[RB2Outcome]) -> dict[str, list[list[Any]]]:
        """One unit per item; a Ties prompt's ``ref`` and ``tied`` rows are drawn together
        (its margin terms pair them)."""
        strata: dict[str, list[list[Any]]] = {name: [] for name in SUBSETS}
        prompts: dict[int, list[RB2Outcome]] = {}
        for outcome in outcomes:
            if outcome.subset == "ties":
                prompts.setdefault(parse_ties_id(outcome.source_id)[1], []).append(outcome)
            else:
                strata[outcome.subset].append([outcome])
        strata["ties"] = list(prompts.values())
        return strata


def _renumbered(outcome: RB2Outcome, number: int) -> RB2Outcome:
    kind, _ = parse_ties_id(outcome.source_id)
    return replace(outcome, source_id=f"{kind}:{number}")


def _won(game: Game) -> bool | None:
    """Whether the chosen answer won a pairwise game (``None``: no verdict)."""
    if game.verdict is None:
        return None
    return game.verdict == ("A>B" if game.shown["chosen_slot"] == "A" else "B>A")


RB2 = RB2Protocol()

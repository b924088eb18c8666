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
* ``pairwise_all`` (ours): all six pairs of the four completions, each order drawn per pair
  (the chosen answer's three pairs are shown as ``pairwise`` shows them, so their answers are
  shared through the cache); the same credit, and the share of items whose verdicts form a
  cycle of three answers (RM-Gallery's transitivity conflict, ``scorers/consistency.py``).

``swap`` (pairwise modes) asks every pair in both orders: the chosen answer must win every
game it is in, and the share of items with a pair whose two orders disagree is reported
(RM-Gallery's symmetry conflict).

This is not R-Align's "RewardBench 2" figure, which is label accuracy on its own derived pairs
(the ``ralign_rewardbench2`` task).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
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
    winner,
)
from ralign_tasks.scorers.consistency import Consistency, PairVerdict, consistency, share
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
from ralign_tasks.scorers.schema import MetricSpec, Schema

RANKINGS_TEMPLATE = "rb2_rankings.jinja"
RATING_TEMPLATE = "rb2_rating.jinja"
MODES = ("rankings", "ratings", "pairwise", "pairwise_all")
PAIRWISE_MODES = ("pairwise", "pairwise_all")
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
        MetricSpec(
            "intransitive_rate",
            "intransitive",
            False,
            "summary",
            needs_judge=False,
            option="mode=pairwise_all",
            description="items whose pairwise verdicts form a cycle of three answers, of the "
            "items with a triad decided (mode pairwise_all)",
        ),
        MetricSpec(
            "symmetry_conflict_rate",
            "sym. conflict",
            False,
            "summary",
            needs_judge=False,
            option="swap",
            description="items with a pair whose two orders got different winners, of the "
            "items with a pair judged in both orders (swap)",
        ),
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
    # The conflicts among a pairwise item's verdicts (``None``: not observed; see
    # scorers/consistency.py).
    intransitive: bool | None = None
    symmetry_conflict: bool | None = None


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
            "rejected one with our pairwise prompt; pairwise_all: all six pairs of the four "
            "completions (transitivity). Ties is always rated",
            MODES,
            "generation",
        ),
        Option(
            "swap",
            False,
            "true: a pairwise mode asks every pair in both orders (symmetry conflicts; the "
            "chosen answer must win every game it is in); false: one order, drawn per pair",
            stage="generation",
            kind=bool,
        ),
        SEED_OPTION,
        PROBE_OPTION,
        PROBE_SEED_OPTION,
    )

    def option_values(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        values = super().option_values(given, where)
        pairwise = values["mode"] in PAIRWISE_MODES
        if values["probe"] != "none" and not pairwise:
            raise UserError(f"{where}: probes need mode pairwise or pairwise_all (they dress up "
                            "one answer of a pair)")  # fmt: skip
        if values["swap"] and not pairwise:
            raise UserError(f"{where}: swap needs mode pairwise or pairwise_all (it asks each "
                            "pair in both orders)")  # fmt: skip
        return values

    def probeable(self, shown: Mapping[str, Any]) -> bool:
        # A pairwise game of the chosen answer (Ties is always rated; two rejected answers
        # have no better one to tell apart).
        return "rejected" in shown or 0 in shown.get("answers", ())

    def probe_pair_of(
        self, record: RB2Record, shown: Mapping[str, Any]
    ) -> tuple[str, str, str, str]:
        first, second = _shown_answers(shown)
        answers = _candidates(record)
        better = "A" if first == 0 else "B" if second == 0 else ""
        return (record.prompt, answers[first], answers[second], better)

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
        seed, swap = options["seed"], options.get("swap", False)
        if mode == "pairwise":
            return [
                {"rejected": j, "chosen_slot": slots[0]}
                for j in range(len(record.rejected))
                for slots in _orders(_chosen_first(seed, record.id, j), swap, ("A", "B"))
            ]
        games = []
        for first, second in combinations(range(len(_candidates(record))), 2):
            # The chosen answer's pairs as mode pairwise draws them (the same prompts, so a
            # run of one mode pays nothing for the other's answers); the rest per pair.
            if first == 0:
                in_order = _chosen_first(seed, record.id, second - 1)
            else:
                in_order = draw(seed, record.id, first - 1, second - 1).random() < 0.5
            games += [{"answers": list(shown)}
                      for shown in _orders(in_order, swap, (first, second))]  # fmt: skip
        return games

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
            candidates = _candidates(record)
            answers = [candidates[index] for index in shown["order"]]
            return (
                load_template(template, RANKINGS_TEMPLATE)
                .render(prompt=record.prompt, answers=answers)
                .strip()
            )
        request, first, second, _ = self.probe_pair_of(record, shown)
        return render_pair("pairwise", request, first, second, template)

    def pair_verdicts(self, games: Sequence[Game]) -> list[PairVerdict]:
        """The pairwise games' verdicts by completion (0 the chosen one)."""
        verdicts = []
        for game in games:
            first, second = _shown_answers(game.shown)
            side = winner(game.verdict)
            verdicts.append(PairVerdict(first, second, {"A": first, "B": second}.get(side or "")))
        return verdicts

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
        won = [_won(game) for game in games if self.probeable(game.shown)]
        found = consistency(self.pair_verdicts(games))
        conflicts = [name for name, flag in (("intransitive", found.intransitive),
                     ("symmetry conflict", found.symmetry_conflict)) if flag]  # fmt: skip
        return ", ".join([f"won {sum(win is True for win in won)}/{len(won)}", *conflicts])

    # --- outcome and metrics ---------------------------------------------------------------

    def label_outcome(self, judgment: LabelJudgment) -> RB2Outcome:
        record: RB2Record = judgment.record
        games = judgment.games
        ratings, credit = None, None
        found = Consistency(0, 0, 0, 0)  # a pairwise mode's games only
        if "rate" in games[0].shown:
            ratings = tuple(-1 if g.verdict is None else int(g.verdict) for g in games)
            if record.subset != "ties":
                credit = ratings_credit(ratings)
        elif "order" in games[0].shown:
            credit = ranking_credit(games[0].verdict, LETTERS.index(games[0].shown["chosen_slot"]))
        else:
            credit = pairwise_credit([_won(game) for game in games if self.probeable(game.shown)])
            found = consistency(self.pair_verdicts(games))
        return RB2Outcome(record.subset, record.source_id, credit, ratings,
                          len(record.chosen), RequestCounts.of(games),
                          found.intransitive, found.symmetry_conflict)  # fmt: skip

    def outcome_to_dict(self, outcome: RB2Outcome) -> dict[str, Any]:
        return {
            "credit": outcome.credit,
            "ratings": list(outcome.ratings) if outcome.ratings is not None else None,
            "source_id": outcome.source_id,
            "num_correct": outcome.num_correct,
            **outcome.requests.to_dict(),
            "intransitive": outcome.intransitive,
            "symmetry_conflict": outcome.symmetry_conflict,
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
            # Absent from the records of runs before pairwise_all and swap existed.
            stored.get("intransitive"),
            stored.get("symmetry_conflict"),
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
            **{name: report[name] for name in ("score", *SUBSETS)},
            "intransitive_rate": share([o.intransitive for o in outcomes]),
            "symmetry_conflict_rate": share([o.symmetry_conflict for o in outcomes]),
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
    """Whether the chosen answer won a pairwise game of it (``None``: no verdict)."""
    if game.verdict is None:
        return None
    return game.verdict == ("A>B" if _shown_answers(game.shown)[0] == 0 else "B>A")


def _candidates(record: RB2Record) -> tuple[str, ...]:
    """The four completions of an accuracy item as the games number them: the chosen one
    (0), then the rejected ones."""
    return (record.chosen[0], *record.rejected)


def _shown_answers(shown: Mapping[str, Any]) -> tuple[int, int]:
    """The completions (0 the chosen one, then the rejected ones) a pairwise game shows as A
    and B: mode pairwise records the rejected answer and the chosen one's slot,
    pairwise_all the two completions."""
    if "answers" in shown:
        first, second = shown["answers"]
        return int(first), int(second)
    rejected = int(shown["rejected"]) + 1
    return (0, rejected) if shown["chosen_slot"] == "A" else (rejected, 0)


def _chosen_first(seed: int, item: str, rejected: int) -> bool:
    """Whether the chosen answer is shown first against one rejected answer (as mode pairwise
    has always drawn it)."""
    return draw(seed, item, rejected).random() < 0.5


def _orders(in_order: bool, swap: bool, pair: tuple[Any, Any]) -> list[tuple[Any, Any]]:
    """A pair as drawn (``in_order``: as given), then with ``swap`` also the other way."""
    drawn = pair if in_order else pair[::-1]
    return [drawn, drawn[::-1]] if swap else [drawn]


RB2 = RB2Protocol()

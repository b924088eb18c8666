"""What the three label benchmarks (JudgeBench, RM-Bench, RewardBench 2) share: no judge step
(each scores the GenRM's verdicts by the benchmark's official rule), several GenRM prompts per
item, each one a *game* recorded with what was shown where, answer positions drawn from a
generator seeded per item, the two pairwise verdict formats, and stratified bootstrap CIs.

lm-eval aggregates these metrics with :func:`ralign_tasks.lm_eval_adapter.tasks.summary`: each
document's value carries its judged-item record, and the aggregation computes the protocol's own
metrics over them, so the numbers cannot differ from the CLI's and Inspect's.
"""

from __future__ import annotations

import json
import logging
import random
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from ralign_tasks.prompts import load_template
from ralign_tasks.protocols.base import (
    GenRMOutput,
    InstanceScore,
    JudgeCalls,
    Option,
    Protocol,
)
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.judgebench import parse_arena_hard
from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.probes import (
    MOVED_METRICS,
    PROBE_SEED,
    PROBES,
    GameFlips,
    ProbedPair,
    moved,
    probe_pair,
)
from ralign_tasks.scorers.schema import MetricSpec
from ralign_tasks.scorers.stats import SEED, bootstrap_units
from ralign_tasks.scorers.verdict import parse_verdict

# Loaded when a metric is first computed (see scorers/lazy_modules.py).
np = lazy_import("numpy")

logger = logging.getLogger("ralign_tasks.label")

RecordT = TypeVar("RecordT")
OutcomeT = TypeVar("OutcomeT")

PAIRWISE_TEMPLATE = "genrm_pairwise.jinja"
ARENA_HARD_TEMPLATE = "arena_hard_genrm.jinja"
VERDICT_FORMATS = ("pairwise", "arena_hard")
# The one follow-up turn of the Arena-Hard judge when its first answer has no label.
ARENA_HARD_FOLLOW_UP = (
    "Please continue your evaluation and finish with your final verdict: exactly one label "
    "in double square brackets, [[A>>B]], [[A>B]], [[A=B]], [[B>A]] or [[B>>A]]."
)
VERDICT_FORMAT_OPTION = Option(
    "verdict_format",
    "pairwise",
    "pairwise: our pairwise prompt, \\boxed{A|B} (no ties); arena_hard: the Arena-Hard "
    "five-label [[A>>B]] ... [[B>>A]] verdict with its official parse (one distinct label; one "
    "follow-up turn when there is none, except under lm-eval)",
    VERDICT_FORMATS,
    "generation",
)
# Bias probes of the pairwise games (docs: robustness): each game asked again with one answer
# dressed up; the official numbers stay those of the games as given.
PROBE_OPTION = Option(
    "probe",
    "none",
    "a bias probe: every pairwise game is asked again with its worse answer dressed up "
    "(verbosity, format, authority, bandwagon) or its better one formatted (mirror, the "
    "control); game-level flip rate and accuracy under the probe",
    ("none", *PROBES),
    "generation",
)
PROBE_SEED_OPTION = Option(
    "probe_seed",
    PROBE_SEED,
    "the seed of the probes' random choices (same seed, same text)",
    stage="generation",
    kind=int,
)

SEED_OPTION = Option(
    "seed",
    SEED,
    "seeds where each item's answers are shown (drawn per item, recorded in every game)",
    stage="generation",
    kind=int,
)

# Counts every label benchmark reports: GenRM requests (games), not items.
REQUEST_COUNTS = (
    MetricSpec("requests_failed", "GenRM fail", False, "count", needs_judge=False,
               description="GenRM requests whose call failed"),
    MetricSpec("requests_no_verdict", "no-verdict", False, "count", needs_judge=False,
               description="GenRM answers without a readable verdict"),
    MetricSpec("requests_truncated", "truncated", False, "count", needs_judge=False,
               description="GenRM answers cut off at the token limit"),
)  # fmt: skip


def summary_metric(name: str, label: str, description: str) -> MetricSpec:
    """A metric lm-eval aggregates with the protocol's own computation (see the module doc)."""
    return MetricSpec(name, label, True, "summary", needs_judge=False, description=description)


def draw(seed: int, *keys: object) -> random.Random:
    """A generator for one item (and cell): seeded by the run's seed and the item's keys, so an
    item's draw is the same whatever else is in the run (filters, limits, order)."""
    return random.Random("|".join(map(str, (seed, *keys))))


def render_pair(
    verdict_format: str,
    prompt: str,
    first: str,
    second: str,
    template: str | None = None,
    note: str = "",
) -> str:
    """A pairwise GenRM prompt showing ``first`` as Assistant A and ``second`` as B (and a
    probe's ``note`` before them)."""
    name = ARENA_HARD_TEMPLATE if verdict_format == "arena_hard" else PAIRWISE_TEMPLATE
    variables = {"context": [], "prompt": prompt, "note": note, "response_a": first,
                 "response_b": second}  # fmt: skip
    return load_template(template, name).render(**variables).strip()


def pair_decision(verdict_format: str, text: str | None) -> str | None:
    """A pairwise verdict in JudgeBench's naming: ``A>B``, ``B>A``, ``A=B`` or another
    Arena-Hard token verbatim; ``None`` for no verdict (no label, or several distinct ones).
    The pairwise format reads the first ``\\boxed{A|B}`` (the R-Align rule)."""
    if text is None:
        return None
    if verdict_format == "arena_hard":
        return parse_arena_hard(text).decision
    return {"A": "A>B", "B": "B>A"}.get(parse_verdict(text, "official") or "")


def pair_follow_up(verdict_format: str, text: str) -> str | None:
    """The Arena-Hard follow-up turn when the first answer has no ``[[label]]`` at all."""
    if verdict_format == "arena_hard" and not parse_arena_hard(text).found:
        return ARENA_HARD_FOLLOW_UP
    return None


@dataclass(frozen=True)
class Game:
    """One GenRM request of an item and its answer: ``shown`` says what was shown where (and
    anything else needed to re-score it), ``verdict`` is the parsed answer (``None``: none)."""

    shown: dict[str, Any]
    output: str | None
    verdict: Any
    truncated: bool | None = False
    error: str | None = None

    @classmethod
    def of(cls, shown: dict[str, Any], output: GenRMOutput, verdict: Any) -> Game:
        return cls(shown, output.text, verdict, output.truncated, output.error)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelJudgment:
    """An item's games and the credit its benchmark's rule gives them; a probe run's probed
    games (the same games in the same order, one answer dressed up) beside them."""

    record: Any
    games: tuple[Game, ...]
    verdict: str | None  # a short summary for tables and Inspect's answer column
    probed: tuple[Game, ...] = ()


@dataclass(frozen=True)
class ProbedOutcome:
    """What every label benchmark's outcome carries besides its own facts: a probe run's
    game-level flips (``None`` outside probe runs)."""

    probe: GameFlips | None = field(default=None, kw_only=True)


# What a probed game's record adds to what the game showed.
_PROBE_KEYS = frozenset({"probe", "changed", "probe_text", "note"})


def winner(decision: Any) -> str | None:
    """The answer a pairwise decision prefers (``A>B``, ``A>>B`` → A); ``None`` for a tie or
    no decision."""
    text = str(decision or "")
    return text[0] if text[:2] in ("A>", "B>") else None


@dataclass(frozen=True)
class RequestCounts:
    """GenRM requests of one item that failed, had no verdict, or were cut off (``None`` when
    the harness does not say why generation stopped)."""

    failed: int = 0
    no_verdict: int = 0
    truncated: int | None = 0

    @classmethod
    def of(cls, games: Sequence[Game]) -> RequestCounts:
        flags = [game.truncated for game in games]
        return cls(
            failed=sum(game.output is None for game in games),
            no_verdict=sum(game.output is not None and game.verdict is None for game in games),
            truncated=None if any(flag is None for flag in flags) else sum(map(bool, flags)),
        )

    def to_dict(self) -> dict[str, int | None]:
        """The counts as a judged-item record's outcome stores them."""
        return {
            "requests_failed": self.failed,
            "requests_no_verdict": self.no_verdict,
            "requests_truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> RequestCounts:
        return cls(
            stored["requests_failed"], stored["requests_no_verdict"], stored["requests_truncated"]
        )

    def values(self) -> dict[str, float]:
        return {
            "requests_failed": float(self.failed),
            "requests_no_verdict": float(self.no_verdict),
            "requests_truncated": float("nan") if self.truncated is None else float(self.truncated),
        }


def count_requests(counts: Sequence[RequestCounts]) -> dict[str, int | None]:
    known = [c.truncated for c in counts if c.truncated is not None]
    return {
        "requests_failed": sum(c.failed for c in counts),
        "requests_no_verdict": sum(c.no_verdict for c in counts),
        "requests_truncated": sum(known) if known or not counts else None,
    }


class LabelProtocol(Protocol[RecordT, LabelJudgment, OutcomeT]):
    """A label benchmark: no judge step; several prompts per item; metrics by the official
    rule with stratified bootstrap CIs."""

    genrm_temperature = 0.0  # the official value of JudgeBench and RewardBench 2
    genrm_max_tokens = 4096

    # --- the GenRM -------------------------------------------------------------------------

    def asks_several(self, options: Mapping[str, Any]) -> bool:
        return True

    @abstractmethod
    def games(self, record: RecordT, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        """What each prompt of an item shows (its ``shown`` record), in prompt order."""

    @abstractmethod
    def render(self, record: RecordT, shown: Mapping[str, Any], options: Mapping[str, Any],
               template: str | None) -> str:  # fmt: skip
        """The prompt of one game."""

    @abstractmethod
    def read(self, shown: Mapping[str, Any], text: str | None, options: Mapping[str, Any]) -> Any:
        """One game's verdict (``None``: none)."""

    @abstractmethod
    def summary(self, record: RecordT, games: Sequence[Game]) -> str | None:
        """A short summary of an item's verdicts (the record's ``verdict``)."""

    def all_games(self, record: RecordT, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every prompt's game: the item's games, then (a probe run) each again under the
        probe (its ``shown`` names the probe)."""
        games = self.games(record, options)
        probe = options.get("probe", "none")
        if probe == "none":
            return games
        return games + [{**game, "probe": probe} for game in games if self.probeable(game)]

    def probeable(self, shown: Mapping[str, Any]) -> bool:
        """Whether a game shows a pair that a probe can dress up (all of a pairwise family's)."""
        return True

    def prompt_count(self, record: RecordT, options: Mapping[str, Any]) -> int:
        return len(self.all_games(record, options))

    def genrm_prompt(
        self, record: RecordT, options: Mapping[str, Any], index: int, template: str | None = None
    ) -> str:
        shown = self.all_games(record, options)[index]
        if "probe" in shown:
            return self.render_probed(record, shown, options, template)
        return self.render(record, shown, options, template)

    def judgment(
        self, record: RecordT, outputs: Sequence[GenRMOutput], options: Mapping[str, Any]
    ) -> LabelJudgment:
        shown = self.all_games(record, options)
        if len(outputs) != len(shown):
            raise ValueError(
                f"item {record.id}: {len(outputs)} GenRM output(s) for {len(shown)} prompts"  # type: ignore[attr-defined]
            )
        games = tuple(
            Game.of(self._recorded(record, s, options), output, self.read(s, output.text, options))
            for s, output in zip(shown, outputs, strict=True)
        )
        given = tuple(game for game in games if "probe" not in game.shown)
        probed = tuple(game for game in games if "probe" in game.shown)
        return LabelJudgment(record, given, self.summary(record, given), probed)

    # --- bias probes (docs: robustness) -------------------------------------------------------

    def _recorded(
        self, record: RecordT, shown: dict[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What a game's record keeps of what it showed: a probed game also the answer the
        probe changed, as shown, and the note (the viewer shows them)."""
        if "probe" not in shown:
            return shown
        _, change = self.probed_pair(record, shown, options)
        text = change.response_a if change.changed == "A" else change.response_b
        return {**shown, "changed": change.changed, "probe_text": text, "note": change.note}

    def probe_pair_of(self, record: RecordT, shown: Mapping[str, Any]) -> tuple[str, str, str, str]:
        """A pairwise game's request, its answers A and B as shown, and the better one's
        side; a family without pairwise games has no probes."""
        raise UserError(f"{self.title}: only pairwise games can be probed")

    def verdict_format(self, options: Mapping[str, Any]) -> str:
        return str(options.get("verdict_format", "pairwise"))

    def probed_pair(
        self, record: RecordT, shown: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[str, ProbedPair]:
        """A probed game's request and its answers under the probe (seeded by ``probe_seed``,
        the item and the game)."""
        given = {key: value for key, value in shown.items() if key not in _PROBE_KEYS}
        request, first, second, better = self.probe_pair_of(record, given)
        key = f"{record.id}|{json.dumps(given, sort_keys=True)}"  # type: ignore[attr-defined]
        change = probe_pair(shown["probe"], first, second, better, request, key,  # type: ignore[arg-type]
                            options.get("probe_seed", PROBE_SEED))  # fmt: skip
        return request, change

    def render_probed(self, record: RecordT, shown: Mapping[str, Any],
                      options: Mapping[str, Any], template: str | None) -> str:  # fmt: skip
        """A probed game's prompt."""
        request, change = self.probed_pair(record, shown, options)
        return render_pair(self.verdict_format(options), request, change.response_a,
                           change.response_b, template, change.note)  # fmt: skip

    def game_flips(self, judgment: LabelJudgment) -> GameFlips:
        """How many of an item's games name the better answer as given and under the probe,
        and how many flipped."""
        given = [game for game in judgment.games if self.probeable(game.shown)]
        right = [self._right(judgment.record, game) for game in given]
        probed = [self._right(judgment.record, game) for game in judgment.probed]
        flips = sum(r and not p for r, p in zip(right, probed, strict=True))
        return GameFlips(len(right), sum(right), sum(probed), flips)

    def _right(self, record: RecordT, game: Game) -> bool:
        given = {key: value for key, value in game.shown.items() if key not in _PROBE_KEYS}
        return winner(game.verdict) == self.probe_pair_of(record, given)[3]

    # --- no judge --------------------------------------------------------------------------

    def judge_slots(self, judgment: LabelJudgment) -> list[bool]:
        return []

    def judge_prompts(
        self, judgment: LabelJudgment, template: str | None = None
    ) -> list[str | None]:
        return []

    def check(self, judgment: LabelJudgment, slot: int) -> Callable[[str], Any]:
        raise NotImplementedError(f"{self.title} has no judge step")

    def judge_value(self, value: Any) -> Any:
        raise NotImplementedError(f"{self.title} has no judge step")

    def outcome(self, judgment: LabelJudgment, calls: JudgeCalls, judged: bool) -> OutcomeT:
        outcome = self.label_outcome(judgment)
        if judgment.probed:
            # The request counts cover the probed games too: a failed or unreadable one is
            # wrong under the probe (as the official rule counts a game), and counted.
            requests = RequestCounts.of((*judgment.games, *judgment.probed))
            outcome = replace(outcome, probe=self.game_flips(judgment),  # type: ignore[type-var]
                              requests=requests)  # fmt: skip
        return outcome

    @abstractmethod
    def label_outcome(self, judgment: LabelJudgment) -> OutcomeT:
        """The scored facts of one item (from its games as given)."""

    def outcome_from_item(self, item: Mapping[str, Any]) -> OutcomeT:
        outcome = self.label_outcome_from_item(item)
        flips = GameFlips.from_dict(item["outcome"])
        return replace(outcome, probe=flips) if flips else outcome  # type: ignore[type-var]

    @abstractmethod
    def label_outcome_from_item(self, item: Mapping[str, Any]) -> OutcomeT:
        """The outcome stored in a judged-item record (its family's facts)."""

    def item(self, task: str, record: RecordT, judgment: LabelJudgment, calls: JudgeCalls,
             outcome: OutcomeT, judge_model: str | None = None, prep: Sequence[Any] = ()
             ) -> dict[str, Any]:  # fmt: skip
        item = super().item(task, record, judgment, calls, outcome, judge_model, prep)
        probe = getattr(outcome, "probe", None)
        if probe is not None:
            item["outcome"] |= probe.to_dict()
        return item

    def genrm_fields(self, judgment: LabelJudgment) -> dict[str, Any]:
        games = judgment.games
        truncated = [game.truncated for game in games]
        return {
            "output": games[0].output if games else None,
            "verdict": judgment.verdict,
            "truncated": None if None in truncated else any(truncated),
            "error": next((game.error for game in games if game.error), None),
            # Every game in prompt order: those as given, then a probe run's probed ones.
            "games": [game.to_dict() for game in (*games, *judgment.probed)],
        }

    def stored_outputs(self, genrm: Mapping[str, Any]) -> list[GenRMOutput]:
        return [
            GenRMOutput(game["output"], game.get("truncated"), game.get("error"))
            for game in genrm.get("games") or []
        ]

    def explain(self, judgment: LabelJudgment, calls: JudgeCalls) -> str:
        lines = []
        for number, game in enumerate(judgment.games, 1):
            shown = ", ".join(f"{key} {value}" for key, value in game.shown.items())
            result = game.error if game.output is None else f"verdict {game.verdict}"
            lines.append(f"game {number} ({shown}): {result}")
        return "\n".join(lines)

    # --- the viewer ------------------------------------------------------------------------

    view_kind = "games"
    view_outcomes: ClassVar[dict[str, str]] = {
        "right": "right",
        "partial": "partial credit",
        "wrong": "wrong",
        "set": "scored as a set",  # shown only where there are such items (RB2's Ties)
        "failures": "failures",
    }
    view_optional = frozenset({"set"})

    @abstractmethod
    def credit(self, outcome: OutcomeT) -> float | None:
        """An item's share of credit in [0, 1] (``None``: scored only as part of a set)."""

    def instance_score(self, outcome: OutcomeT) -> InstanceScore | None:
        """The item's credit toward the headline (full credit is right)."""
        credit = self.credit(outcome)
        if credit is None:
            return None
        return InstanceScore(self.schema.headline, credit, credit == 1)

    @abstractmethod
    def view_answers(self, record: RecordT) -> list[dict[str, str]]:
        """The answers of an item as the viewer lists them: ``title`` and ``text``."""

    def view_item(
        self, record: RecordT, item: Mapping[str, Any], outcome: OutcomeT
    ) -> dict[str, Any]:
        """Its answers and its games (what each showed where, the GenRM's output and
        verdict), filed under one outcome."""
        genrm = item["genrm"]
        games = genrm.get("games") or []
        failed = any(game["output"] is None or game["verdict"] is None for game in games)
        credit = self.credit(outcome)
        key = (
            "failures" if failed
            else "set" if credit is None
            else "right" if credit == 1
            else "wrong" if credit == 0
            else "partial"
        )  # fmt: skip
        return {
            "kind": self.view_kind,
            "id": str(record.id),  # type: ignore[attr-defined]
            "subset": self.outcome_group(outcome),
            "label": record.label or "",  # type: ignore[attr-defined]
            "verdict": genrm.get("verdict"),
            "outcome": key,
            "credit": credit,
            "prompt": self.view_prompt(record),
            "answers": self.view_answers(record),
            "games": [
                {
                    "shown": ", ".join(
                        f"{name} {value}"
                        for name, value in game["shown"].items()
                        if name not in ("probe_text", "note")
                    ),
                    "probe_text": game["shown"].get("probe_text"),
                    "note": game["shown"].get("note") or None,
                    "output": game["output"],
                    "verdict": None if game["verdict"] is None else str(game["verdict"]),
                    "error": game["error"],
                    "truncated": game["truncated"],
                }
                for game in games
            ],
            "truncated": bool(genrm.get("truncated")),
        }

    def view_prompt(self, record: RecordT) -> str:
        return str(record.prompt)  # type: ignore[attr-defined]

    # --- metrics ---------------------------------------------------------------------------

    @abstractmethod
    def values(self, outcomes: Sequence[OutcomeT]) -> dict[str, Any]:
        """The metric values and counts of a group of items (no CIs)."""

    @abstractmethod
    def strata(self, outcomes: Sequence[OutcomeT]) -> dict[str, list[list[OutcomeT]]]:
        """The bootstrap's units (lists of outcomes drawn together) per stratum."""

    def drawn(self, units: list[list[OutcomeT]]) -> list[OutcomeT]:
        """The outcomes of one bootstrap draw of units (a unit may be drawn several times)."""
        return [outcome for unit in units for outcome in unit]

    def paired_units(self, outcomes: Sequence[OutcomeT]) -> Mapping[str, Sequence[Any]]:
        """The bootstrap's units and strata (:meth:`strata`)."""
        return self.strata(outcomes)

    def paired_statistic(self, units: list[Any]) -> dict[str, float | None]:
        """The official aggregate (:meth:`values`) of the drawn units, on each draw."""
        values = self.values(self.drawn(units))
        return {name: values[name] for name in self.headline_metrics()}

    @property
    def official_metrics(self) -> tuple[str, ...]:
        """The metrics of the benchmark's own rule (:meth:`values`): all but the probes'."""
        return tuple(name for name in self.schema.metric_names if name not in MOVED_METRICS)

    def probed_values(self, outcomes: Sequence[OutcomeT]) -> dict[str, Any]:
        """:meth:`values` and, in a probe run, the game-level flip rate and accuracy under the
        probe (``None`` otherwise)."""
        flips = [o.probe for o in outcomes if getattr(o, "probe", None) is not None]
        return {**self.values(outcomes), **(moved(flips) if flips else dict.fromkeys(
            MOVED_METRICS))}  # fmt: skip

    def summarize(self, outcomes: Sequence[OutcomeT]) -> dict[str, Any]:
        report = self.probed_values(outcomes)
        strata = self.strata(outcomes)
        units = [unit for members in strata.values() for unit in members]
        stderr, ci = bootstrap_units(
            units,
            lambda drawn: self.probed_values(self.drawn(drawn)),
            {name: report.get(name) for name in self.schema.metric_names},
            strata=[name for name, members in strata.items() for _ in members],
        )
        return {**report, "stderr": stderr, "ci": ci}


class PairwiseLabelProtocol(LabelProtocol[RecordT, OutcomeT]):
    """A label benchmark whose games each show two answers and ask for a pairwise verdict in
    one of the two verdict formats (JudgeBench, RM-Bench): what its games show where is the
    family's; prompting, reading and the Arena-Hard follow-up are shared."""

    genrm_template_file = PAIRWISE_TEMPLATE

    def genrm_template_files(self) -> tuple[str, ...]:
        return (PAIRWISE_TEMPLATE, ARENA_HARD_TEMPLATE)

    @abstractmethod
    def shown_pair(self, record: RecordT, shown: Mapping[str, Any]) -> tuple[str, str, str]:
        """One game's request and its answers A and B, in the order the game shows them."""

    @abstractmethod
    def better_side(self, record: RecordT, shown: Mapping[str, Any]) -> str:
        """Where one game shows the better answer: ``A`` or ``B``."""

    def probe_pair_of(self, record: RecordT, shown: Mapping[str, Any]) -> tuple[str, str, str, str]:
        return (*self.shown_pair(record, shown), self.better_side(record, shown))

    def render(self, record: RecordT, shown: Mapping[str, Any], options: Mapping[str, Any],
               template: str | None) -> str:  # fmt: skip
        return render_pair(options["verdict_format"], *self.shown_pair(record, shown), template)

    def read(self, shown: Mapping[str, Any], text: str | None, options: Mapping[str, Any]) -> Any:
        return pair_decision(options["verdict_format"], text)

    def follow_up(self, options: Mapping[str, Any], answer: str) -> str | None:
        return pair_follow_up(options["verdict_format"], answer)

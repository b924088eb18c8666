"""RM-Bench (THU-KEG, SPEC_COMPANIONS §1): each item has three chosen and three rejected answers
in three styles (concise, detailed plain text, detailed markdown). A pairwise GenRM judges all
nine (chosen style i, rejected style j) cells, the chosen answer's position drawn per cell from
a seeded generator; a cell is 1 iff the verdict names the chosen answer (a tie or no verdict is
0, as the official strict ``>``). Per domain the mean of the nine cells; Hard / Normal / Easy
the upper triangle / diagonal / lower triangle averaged over the four domains; the average the
unweighted mean of the four domains (the paper's headline)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ralign_tasks.data import (
    DATA_DIR_ENV,
    BadRow,
    DataFormatError,
    DataUnavailableError,
    LoadResult,
    download_data_file,
    require_str,
)
from ralign_tasks.protocols.base import TaskSpec
from ralign_tasks.protocols.label import (
    PROBE_OPTION,
    PROBE_SEED_OPTION,
    REQUEST_COUNTS,
    SEED_OPTION,
    VERDICT_FORMAT_OPTION,
    Game,
    LabelJudgment,
    PairwiseLabelProtocol,
    ProbedOutcome,
    RequestCounts,
    count_requests,
    draw,
    summary_metric,
)
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.jsonl import has_surrogate_escape, lone_surrogate, read_json_bytes
from ralign_tasks.scorers.probes import MOVED_SPECS
from ralign_tasks.scorers.rmbench import DOMAINS, STYLES, compute_rmbench, domain_of
from ralign_tasks.scorers.schema import Schema

logger = logging.getLogger("ralign_tasks.rmbench")

TOTAL_FILE = "total_dataset.json"
STYLE_NAMES = ("concise", "detailed plain text", "detailed markdown")
# The official repository's per-domain files (no `domain` field, integer ids).
DOMAIN_FILES = {
    "chat": "chat_filtered.json",
    "code": "code_filtered.json",
    "math": "math_filtered.json",
    "safety-refuse": "safety-refuse_filtered.json",
    "safety-response": "safety-response_filtered.json",
}

RMBENCH_TASK = TaskSpec(
    task="ralign_rmbench",
    family="rmbench",
    title="RM-Bench",
    files={"total": TOTAL_FILE},
    folder="rmbench",
    hf_dataset="THU-KEG/RM-Bench",
    hub_folder="",
    aliases=("rm_bench",),
)

RMBENCH_SCHEMA = Schema(
    metrics=(
        summary_metric("average", "Average", "the unweighted mean of the four domain scores"),
        summary_metric("chat", "Chat", "the Chat domain: mean of its nine cells"),
        summary_metric("code", "Code", "the Code domain: mean of its nine cells"),
        summary_metric("math", "Math", "the Math group of items"),
        summary_metric("safety", "Safety", "the Safety group of items"),
        summary_metric("hard", "Hard", "chosen answer plainer than the rejected one (upper "
                       "triangle), averaged over the four domains"),
        summary_metric("normal", "Normal", "same style (diagonal), averaged over the domains"),
        summary_metric("easy", "Easy", "chosen answer fancier (lower triangle), averaged over "
                       "the domains"),
        *MOVED_SPECS,
    ),
    counts=REQUEST_COUNTS,
    headline="average",
)  # fmt: skip


@dataclass(frozen=True)
class RMBenchRecord:
    """One RM-Bench item: ``domain`` is the scoring domain (the two safety files pool into
    ``safety``), ``source`` the file's own domain name."""

    id: str
    domain: str
    source: str
    prompt: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]

    @property
    def label(self) -> str:
        return ""  # the chosen answers are the better ones in every cell


@dataclass(frozen=True)
class RMBenchOutcome(ProbedOutcome):
    """An item's nine cells (row-major: chosen style i, rejected style j) and request counts."""

    domain: str
    cells: tuple[int, ...]
    requests: RequestCounts


def _styles(row: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key)
    if not isinstance(value, list) or len(value) != STYLES:
        raise UserError(f"field {key!r} must be a list of three answers (one per style)")
    if not all(isinstance(answer, str) for answer in value):
        raise UserError(f"field {key!r} must hold strings")
    return tuple(value)


class RMBenchProtocol(PairwiseLabelProtocol[RMBenchRecord, RMBenchOutcome]):
    name = "rmbench"
    record_type = RMBenchRecord
    title = "RM-Bench"
    scorer_name = "ralign_rmbench_scorer"
    schema = RMBENCH_SCHEMA
    group_field = "domain"
    tasks = (RMBENCH_TASK,)
    options = (VERDICT_FORMAT_OPTION, SEED_OPTION, PROBE_OPTION, PROBE_SEED_OPTION)

    # --- records ---------------------------------------------------------------------------

    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> RMBenchRecord:
        """A row of the total file (its ``domain`` named, string ids ``chat/100``) or of a
        per-domain file (``split`` is then the file's domain; integer ids, made ``chat/100``
        like the total file's)."""
        if not isinstance(row, dict):
            raise UserError(f"row must be a JSON object, got {type(row).__name__}")
        if "domain" not in row and split == "total":
            raise UserError("missing field 'domain' (every row of the total file names it)")
        source = require_str(row, "domain") if "domain" in row else split
        domain = domain_of(source)
        raw_id = row.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise UserError(f"field 'id' must be a string or an integer, got {raw_id!r}")
        item_id = raw_id if isinstance(raw_id, str) else f"{source}/{raw_id}"
        return RMBenchRecord(
            id=item_id,
            domain=domain,
            source=source,
            prompt=require_str(row, "prompt"),
            chosen=_styles(row, "chosen"),
            rejected=_styles(row, "rejected"),
        )

    def load(
        self,
        spec: TaskSpec,
        data_dir: str | os.PathLike[str] | None,
        *,
        split: str | None = None,
        skip_bad_rows: bool = False,
    ) -> LoadResult:
        """The total file (``total_dataset.json``: the hub's, or in a local folder), else a
        local folder's per-domain files; a domain without items is named in a warning (the
        average, Hard, Normal and Easy need all four and are then null)."""
        folder = data_dir or os.environ.get(DATA_DIR_ENV) or None
        if folder is None:
            files = [(download_data_file(TOTAL_FILE, spec.task, spec.hf_dataset,
                                         spec.hf_revision, spec.hub_folder), "total")]  # fmt: skip
        else:
            files = _local_files(Path(folder).expanduser(), spec.task)
        records: list[RMBenchRecord] = []
        bad_rows: list[BadRow] = []
        seen: dict[str, str] = {}
        for path, source in files:
            raw, rows = read_json_bytes(path)
            if not isinstance(rows, list):
                raise DataFormatError(str(path), 1, "an RM-Bench file is one JSON array")
            # Rows are walked for a lone surrogate only when the file has a surrogate escape.
            suspect = has_surrogate_escape(raw)
            for index, row in enumerate(rows):
                where = f"row {index}"
                try:
                    problem = lone_surrogate(row) if suspect else None
                    if problem:
                        raise UserError(problem)
                    record = self.parse_row(row, index, spec, source)
                    if record.id in seen:
                        raise UserError(f"duplicate id {record.id!r} (also in {seen[record.id]})")
                except ValueError as exc:
                    if not skip_bad_rows:
                        raise UserError(f"{path}: {where}: {exc}") from None
                    bad_rows.append(BadRow(str(path), index, str(exc)))
                    continue
                seen[record.id] = f"{path.name} {where}"
                records.append(record)
        missing = [d for d in DOMAINS if not any(r.domain == d for r in records)]
        if missing:
            logger.warning(
                "RM-Bench: no %s items in %s; the average, hard, normal and easy need all four "
                "domains and are null", ", ".join(missing), ", ".join(str(p) for p, _ in files),
            )  # fmt: skip
        location = str(files[0][0]) if len(files) == 1 else str(files[0][0].parent)
        return LoadResult(spec.task, location, records, bad_rows)

    def target(self, record: RMBenchRecord) -> str:
        return ""

    # --- the GenRM: nine cells --------------------------------------------------------------

    def games(self, record: RMBenchRecord, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        games = []
        for i in range(STYLES):
            for j in range(STYLES):
                first = draw(options["seed"], record.id, i, j).random() < 0.5
                games.append({"chosen": i, "rejected": j, "chosen_slot": "A" if first else "B"})
        return games

    def shown_pair(self, record: RMBenchRecord, shown: Mapping[str, Any]) -> tuple[str, str, str]:
        chosen, rejected = record.chosen[shown["chosen"]], record.rejected[shown["rejected"]]
        answers = (chosen, rejected) if shown["chosen_slot"] == "A" else (rejected, chosen)
        return (record.prompt, *answers)

    def better_side(self, record: RMBenchRecord, shown: Mapping[str, Any]) -> str:
        return str(shown["chosen_slot"])

    def summary(self, record: RMBenchRecord, games: Sequence[Game]) -> str | None:
        return f"{sum(_cell(game) for game in games)}/{len(games)} cells"

    # --- outcome and metrics ---------------------------------------------------------------

    def label_outcome(self, judgment: LabelJudgment) -> RMBenchOutcome:
        return RMBenchOutcome(
            judgment.record.domain,
            tuple(_cell(game) for game in judgment.games),
            RequestCounts.of(judgment.games),
        )

    def outcome_to_dict(self, outcome: RMBenchOutcome) -> dict[str, Any]:
        return {
            "cells": list(outcome.cells),
            **outcome.requests.to_dict(),
        }

    def label_outcome_from_item(self, item: Mapping[str, Any]) -> RMBenchOutcome:
        stored = item["outcome"]
        return RMBenchOutcome(
            str(item["subset"]),
            tuple(int(cell) for cell in stored["cells"]),
            RequestCounts.from_dict(stored),
        )

    def credit(self, outcome: RMBenchOutcome) -> float | None:
        return sum(outcome.cells) / len(outcome.cells)

    def view_answers(self, record: RMBenchRecord) -> list[dict[str, str]]:
        return [
            {"title": f"{kind} {index} ({STYLE_NAMES[index]})", "text": text}
            for kind, answers in (("chosen", record.chosen), ("rejected", record.rejected))
            for index, text in enumerate(answers)
        ]

    def outcome_group(self, outcome: RMBenchOutcome) -> str:
        return outcome.domain

    def document_values(self, outcome: RMBenchOutcome) -> dict[str, float]:
        return outcome.requests.values()

    def values(self, outcomes: Sequence[RMBenchOutcome]) -> dict[str, Any]:
        report = compute_rmbench(
            [(o.domain, [o.cells[i * STYLES : (i + 1) * STYLES] for i in range(STYLES)])
             for o in outcomes]
        )  # fmt: skip
        return {
            "n": len(outcomes),
            **{name: report[name] for name in self.official_metrics},
            **count_requests([o.requests for o in outcomes]),
        }

    def strata(self, outcomes: Sequence[RMBenchOutcome]) -> dict[str, list[list[Any]]]:
        strata: dict[str, list[list[Any]]] = {domain: [] for domain in DOMAINS}
        for outcome in outcomes:
            strata[outcome.domain].append([outcome])
        return strata


def _cell(game: Game) -> int:
    """1 iff the verdict names the chosen answer's slot (ties and no verdict are 0)."""
    return int(game.verdict == ("A>B" if game.shown["chosen_slot"] == "A" else "B>A"))


def _local_files(root: Path, task: str) -> list[tuple[Path, str]]:
    """The total file of a local folder, else its per-domain files (in ``data/`` or at the
    top), each with its domain name; an error naming every place tried if there is none."""
    for folder in (root / "data", root):
        if (folder / TOTAL_FILE).is_file():
            return [(folder / TOTAL_FILE, "total")]
    found = []
    for source, name in DOMAIN_FILES.items():
        for folder in (root / "data", root):
            if (folder / name).is_file():
                found.append((folder / name, source))
                break
    if not found:
        names = ", ".join([TOTAL_FILE, *DOMAIN_FILES.values()])
        raise DataUnavailableError(f"{task}: no RM-Bench file ({names}) in {root} or {root}/data")
    return found


RMBENCH = RMBenchProtocol()

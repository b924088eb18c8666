"""Read lm-eval output folders, Inspect logs and ``ralign run`` folders into one result per
(GenRM, task), recomputed from the judged-item records with the protocol's metric functions
where the samples are there (so every path gives identical numbers with 95% CIs), else taken
from the aggregate numbers (no CI). Undefined or absent metrics are ``None``, never 0.

Results keep their judged items in brief (id, outcome, a fingerprint of the record) for the
paired comparison and the agreement; the full items (record, GenRM output, judge answer) of the
viewer and ``rejudge`` are read again, one at a time, by :meth:`TaskResult.full_items`, so that
no command holds a large run's texts in memory."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from ralign_tasks.identity import DEFAULT_MAX_FAILURE_RATE, RunIdentity, failure_flag
from ralign_tasks.item import checked_item
from ralign_tasks.pipeline import (
    RESULTS_FILE,
    SAMPLES_FILE,
    identity_of_results,
    is_run_results,
    read_run_results,
    samples_row_of,
)
from ralign_tasks.protocols import TASKS, Protocol, protocol_of
from ralign_tasks.protocols.base import latest_call
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.jsonl import json_text, parse_json, read_json_bytes, read_jsonl

# lm-eval names its results `results_<date id>.json`, or `<stem>_<date id>.json` for an
# `--output_path <stem>.json`; the samples files share the date id.
_LM_EVAL_RESULTS = re.compile(r"_(\d{4}-\d\d-\d\dT[\d.-]+)\.json$")
# Inspect eval-set bookkeeping files, not logs.
_INSPECT_MANIFESTS = {"eval-set.json", "logs.json", "listing.json"}


@dataclass(frozen=True)
class RunItem:
    """One judged item of a run, as any path logged it: the record (``record_to_dict``), the
    GenRM's output and verdict, the outcome the metrics count, and the judge's calls."""

    record: dict[str, Any]
    output: str | None
    verdict: str | None
    outcome: Any
    # The GenRM part of the judged-item record (a label benchmark's games are in it).
    genrm: Mapping[str, Any] = field(default_factory=dict)
    # The judge part of the judged-item record: one entry per call, naming its slot.
    judge: tuple[Mapping[str, Any], ...] = ()
    judge_model: str | None = None  # who judged it (the record's last judge call)
    # The judge's grades, for the agreement (see Protocol.judge_grades).
    grades: Mapping[str, bool | None] = field(default_factory=dict)
    # A digest of the record's own form: two runs' items of one id pair only if it is equal.
    fingerprint: str = ""
    # (failed, sent) requests of the item's GenRM outputs and judge slots (latest call each).
    genrm_requests: tuple[int, int] = (0, 0)
    judge_requests: tuple[int, int] = (0, 0)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def brief(self) -> RunItem:
        """The item without its texts (record, GenRM output, judge answers): what the tables,
        ``--compare`` and ``--agreement`` use."""
        return replace(self, record={"id": self.record["id"]}, output=None, genrm={}, judge=())

    def judged(self) -> dict[str, Any]:
        """The ``genrm`` and ``judge`` parts of its judged-item record, as a protocol's viewer
        reads them."""
        return {
            "genrm": {**self.genrm, "output": self.output, "verdict": self.verdict},
            "judge": list(self.judge),
        }

    @classmethod
    def from_item(
        cls, record: Mapping[str, Any], item: Any, protocol: Protocol[Any, Any, Any]
    ) -> RunItem:
        """An item from its record and its judged-item record (``ItemFormatError`` if that is
        not one)."""
        item = checked_item(item)
        calls = item["judge"]
        # The judge step's first slot's latest call (a swap run's second order is slot 1),
        # else any.
        judge = latest_call(calls, step=protocol.judge_step) or (calls or [{}])[-1]
        errors = protocol.request_errors(item)
        # The record's own form, whatever a harness added next to it (lm-eval documents and
        # Inspect sample metadata carry the task name), so runs of different paths compare
        # item by item.
        parsed = protocol.record_from_dict(record)
        own = protocol.record_to_dict(parsed)
        canonical = json_text(own, sort_keys=True).encode("utf-8")
        outcome = protocol.outcome_from_item(item)
        return cls(
            record=own,
            output=item["genrm"]["output"],
            verdict=item["genrm"]["verdict"],
            outcome=outcome,
            genrm=item["genrm"],
            judge=tuple(calls),
            judge_model=judge.get("model"),
            grades=protocol.judge_grades(parsed, item, outcome),
            fingerprint=hashlib.sha256(canonical).hexdigest(),
            genrm_requests=(sum(e is not None for e in errors["GenRM"]), len(errors["GenRM"])),
            judge_requests=(sum(e is not None for e in errors["judge"]), len(errors["judge"])),
        )


@dataclass
class TaskResult:
    """One GenRM on one task (or one subset/domain of it): metric values as fractions, their
    95% CIs, the item count and the failure counts; ``None`` where unknown or undefined."""

    genrm: str
    task: str
    harness: str
    source: str
    n: int | None
    values: dict[str, float | None]
    ci: dict[str, list[float] | None]
    counts: dict[str, int | None]
    subset: str | None = None
    subsets: list[TaskResult] = field(default_factory=list)
    items: list[RunItem] = field(default_factory=list)
    created: float | None = None  # when the run was made (epoch seconds), if known
    # The run's family options (defaults for those it does not name) and the GenRM's own
    # name (``genrm`` adds the non-default options).
    options: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    # Reads the items again with their texts (see ``full_items``); ``None`` when ``items``
    # are full already.
    reader: Callable[[], Iterator[RunItem]] | None = field(default=None, repr=False)
    # Why its samples file, present, could not be read (file, line, what): it has no items.
    samples_error: str | None = None
    # What the run is (GenRM, task, options, judge, path): one row of the report per identity.
    identity: RunIdentity | None = None
    # Per role ("GenRM", "judge"), (failed, sent) requests, where known.
    failures: dict[str, tuple[int, int]] = field(default_factory=dict)
    # What its path recorded of how it ran: a run folder's settings, lm-eval's task metadata,
    # Inspect's task arguments (the export reads the judge's settings there).
    settings: dict[str, Any] = field(default_factory=dict)
    # What it paid, all roles together (run folders record it): tokens spent and their cost
    # (``None`` where a role had no price).
    usage: dict[str, float | None] = field(default_factory=dict)

    def full_items(self) -> Iterator[RunItem]:
        """The items with their texts, read one at a time from the run's files (the run's
        ``items`` hold them in brief)."""
        if self.reader is None:
            yield from self.items
        else:
            yield from self.reader()

    @property
    def judge_model(self) -> str | None:
        """The judge its items name (``None`` without items or judge calls)."""
        return next((item.judge_model for item in self.items if item.judge_model), None)

    def unusable(self, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE) -> str | None:
        """Why the run's numbers are not usable (``judge: 4 of 4 requests failed``): a role
        failed on at least ``max_failure_rate`` of its requests; ``None`` when they are."""
        return failure_flag(self.failures, max_failure_rate)


def family_options(task: str, given: Any) -> dict[str, Any]:
    """A run's family options as its output names them, the defaults for the others (read
    leniently: a value this release would refuse is kept as it was written)."""
    given = given if isinstance(given, Mapping) else {}
    return {o.name: given.get(o.name, o.default) for o in protocol_of(task).options}


def _named(
    result: TaskResult,
    model: str,
    task: str,
    options: Any,
    path: str,
    identity: RunIdentity | None = None,
) -> TaskResult:
    """The result with its options, its GenRM's own name, its identity (``identity``, else one
    from the items' judge) and the failures its items show."""
    result.options = family_options(task, options)
    result.model = model
    result.identity = identity or RunIdentity(
        genrm=model,
        task=task,
        options=protocol_of(task).variant(result.options),
        judge=result.judge_model,
        path=path,
    )
    if result.items:
        genrm = [item.genrm_requests for item in result.items]
        judge = [item.judge_requests for item in result.items]
        result.failures = {
            role: (sum(failed for failed, _ in requests), sum(sent for _, sent in requests))
            for role, requests in (("GenRM", genrm), ("judge", judge))
        }
    return result


def run_name(genrm: str, task: str, options: Any) -> str:
    """The GenRM's name in reports, with the run's non-default family options (``Qwen3-8B
    (verdict_policy=strict)``), so that runs of other settings are rows of their own."""
    variant = protocol_of(task).variant(options if isinstance(options, Mapping) else {})
    return f"{genrm} ({variant})" if variant else genrm


def _paid(usage: Any) -> dict[str, float | None]:
    """Tokens spent and their cost over a run folder's roles (cost ``None`` unless every role
    that spent tokens had a price)."""
    roles = [stats for stats in _mapping(usage).values() if isinstance(stats, Mapping)]
    tokens = [(_count(s.get("prompt_tokens")) or 0) + (_count(s.get("completion_tokens")) or 0)
              for s in roles]  # fmt: skip
    costs = [finite_or_none(s.get("cost_usd")) for s in roles]
    priced = all(cost is not None for cost, spent in zip(costs, tokens, strict=True) if spent)
    return {
        "tokens": float(sum(tokens)),
        "cost_usd": sum(c or 0.0 for c in costs) if priced and roles else None,
    }


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def finite_or_none(value: Any) -> float | None:
    """A number as a float; ``None`` for a missing, textual, NaN or infinite value."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = finite_or_none(value)
    return int(number) if number is not None else None


def _reported_counts(task: str, counts: dict[str, int | None]) -> dict[str, int | None]:
    """A run's counts without those of an option it did not have on (None: the extraction
    counts of a checklist run)."""
    schema = protocol_of(task).schema
    return {
        name: value for name, value in counts.items()
        if value is not None or schema.spec(name).option is None
    }  # fmt: skip


def task_columns(task: str, details: bool = True) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics and the counts reported for a task (breakdown counts only with
    ``details``)."""
    schema = protocol_of(task).schema
    counts = tuple(spec.name for spec in schema.counts if details or not spec.detail)
    return schema.metric_names, counts


def _grouped_result(
    overall: Mapping[str, Any],
    parts: Mapping[str, Mapping[str, Any]],
    genrm: str,
    task: str,
    harness: str,
    source: str,
) -> TaskResult:
    """A result from a metrics report's overall group and its parts (subsets or domains)."""
    names, counts = task_columns(task)

    def build(group: Mapping[str, Any], part: str | None) -> TaskResult:
        return TaskResult(
            genrm=genrm,
            task=task,
            harness=harness,
            source=source,
            n=group["n"],
            values={m: group[m] for m in names},
            ci={m: group["ci"][m] for m in names},
            counts=_reported_counts(task, {c: group[c] for c in counts}),
            subset=part,
        )

    result = build(overall, None)
    result.subsets = [build(group, name) for name, group in parts.items()]
    return result


def _item_results(
    items: list[RunItem], genrm: str, task: str, harness: str, source: str
) -> TaskResult:
    report = protocol_of(task).report([item.outcome for item in items])
    result = _grouped_result(report["overall"], report["subsets"], genrm, task, harness, source)
    result.items = items
    return result


def _sampled_result(
    samples_file: Path,
    genrm: str,
    task: str,
    harness: str,
    record_and_item: Callable[[dict[str, Any]], tuple[Mapping[str, Any], Any]],
    aggregate: Callable[[], TaskResult],
    warnings: list[str],
) -> TaskResult:
    """A result from a samples file, read row by row, ``record_and_item(row)`` picking each
    row's record and judged-item record; when the file cannot be read as such, the
    ``aggregate()`` result, with a warning and :attr:`TaskResult.samples_error` naming the
    file, the line and what is wrong there."""
    protocol = protocol_of(task)

    def full_items() -> Iterator[RunItem]:
        for line_no, row in read_jsonl(samples_file):
            try:
                item = RunItem.from_item(*record_and_item(row), protocol)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                reason = f"no field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                raise UserError(
                    f"{samples_file}:{line_no}: not a judged-item row ({reason})"
                ) from None
            yield item

    try:
        items = [item.brief() for item in full_items()]
    except ValueError as exc:  # read_jsonl's and full_items' errors name file and line
        warnings.append(f"{exc}; unreadable samples, using the aggregate numbers")
        result = aggregate()
        result.samples_error = str(exc)
        return result
    result = _item_results(items, genrm, task, harness, str(samples_file))
    result.reader = full_items
    return result


def _lm_eval_record_and_item(row: dict[str, Any]) -> tuple[Mapping[str, Any], Any]:
    """An lm-eval samples row's document and the judged-item record in its filtered response."""
    return row["doc"], parse_json(row["filtered_resps"][0])


def _aggregate_result(
    metrics: Mapping[str, Any],
    genrm: str,
    task: str,
    harness: str,
    source: str,
    n: int | None = None,
) -> TaskResult:
    """A result from aggregate numbers only (keys are metric names): no CI, no subsets."""
    names, counts = task_columns(task)
    return TaskResult(
        genrm=genrm,
        task=task,
        harness=harness,
        source=source,
        n=n,
        values={m: finite_or_none(metrics.get(m)) for m in names},
        ci=dict.fromkeys(names),
        counts=_reported_counts(task, {c: _count(metrics.get(c)) for c in counts}),
    )


# --- lm-eval ---------------------------------------------------------------------------------


def _model_args(config: Mapping[str, Any]) -> dict[str, Any]:
    args = config.get("model_args")
    if isinstance(args, Mapping):
        return dict(args)
    if isinstance(args, str):
        pairs = (part.split("=", 1) for part in args.split(",") if "=" in part)
        return {key.strip(): value.strip() for key, value in pairs}
    return {}


def lm_eval_genrm(results: Mapping[str, Any], results_file: Path) -> str:
    """The GenRM of an lm-eval results file: ``model``/``pretrained`` of its model args, else
    its folder's name."""
    args = _model_args(results.get("config") or {})
    name = args.get("model") or args.get("pretrained")
    return str(name) if name else results_file.parent.name


def _lm_eval_stamp(results_file: Path) -> str:
    match = _LM_EVAL_RESULTS.search(results_file.name)
    return match.group(1) if match else ""


def read_lm_eval(results_file: Path, warnings: list[str]) -> list[TaskResult]:
    """The R-Align tasks of one lm-eval results file and, when present, its
    ``samples_<task>_<date id>.jsonl`` neighbours."""
    _, data = read_json_bytes(results_file)
    if not is_lm_eval_results(data):
        raise UserError("not an lm-eval results file")
    model = lm_eval_genrm(data, results_file)
    stamp = _lm_eval_stamp(results_file)
    created = finite_or_none(data.get("date"))
    sizes = data.get("n-samples") or {}
    found = []
    configs = data.get("configs") if isinstance(data.get("configs"), Mapping) else {}
    for task, metrics in data["results"].items():
        if task not in TASKS:
            continue
        config = configs.get(task) if isinstance(configs.get(task), Mapping) else {}
        genrm = run_name(model, task, config.get("metadata"))
        flat = {key.split(",", 1)[0]: value for key, value in metrics.items() if "," in key}
        size = sizes.get(task) if isinstance(sizes.get(task), Mapping) else {}
        aggregate = partial(_aggregate_result, flat, genrm, task, "lm-eval", str(results_file),
                            _count(size.get("effective")))  # fmt: skip
        samples_file = results_file.with_name(f"samples_{task}_{stamp}.jsonl")
        if stamp and samples_file.is_file():
            result = _sampled_result(
                samples_file, genrm, task, "lm-eval", _lm_eval_record_and_item, aggregate,
                warnings,
            )  # fmt: skip
        else:
            result = aggregate()
        result.created = created
        named = _named(result, model, task, config.get("metadata"), "lm-eval")
        named.settings = _mapping(config.get("metadata"))
        found.append(named)
    if not found:
        raise UserError("an lm-eval results file without R-Align tasks")
    return found


def is_lm_eval_results(data: Any) -> bool:
    """Whether parsed JSON is an lm-eval results file (it has ``results`` and lm-eval's
    ``config`` or version)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("results"), dict)
        and ("lm_eval_version" in data or "config" in data)
    )


# --- Inspect ---------------------------------------------------------------------------------


def read_inspect(log_file: Path, warnings: list[str]) -> list[TaskResult]:
    """The ralign task of one Inspect log (``.eval`` or ``.json``), from its samples' judged-item
    records (also in a log that ended in an error or was cancelled, with a warning saying how
    many samples the numbers cover), else from its aggregate metrics."""
    from ralign_tasks.inspect_adapter.logs import read_log

    log = read_log(log_file)
    if log.task not in TASKS:
        raise UserError(f"an Inspect log of task {log.task!r}, not an R-Align task")
    source = str(log_file)
    genrm = run_name(log.genrm, log.task, log.task_args)
    if len(log.scorers) > 1:
        warnings.append(
            f"{log_file}: scored by {', '.join(log.scorers)}; using {log.scorers[-1]}, the latest"
        )
    if log.epochs > 1:
        warnings.append(
            f"{log_file}: {log.epochs} epochs: each (sample, epoch) counts as one item, so the "
            "CIs (and --compare p-values) are narrower than over distinct items"
        )
    if log.status != "success":
        total = log.dataset_samples
        warnings.append(
            f"{log_file}: the run's status is {log.status!r}: {len(log.scored)} of "
            f"{total if total is not None else '?'} samples scored; its numbers cover those"
        )
    result = None
    if log.scored:
        protocol = protocol_of(log.task)
        items = None
        try:
            items = [RunItem.from_item(r, item, protocol).brief() for r, item in log.scored]
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # e.g. an older release
            warnings.append(f"{log_file}: unreadable scores ({exc}); using the aggregate numbers")
        if items is not None:
            # Outside the guard: what the items compute is ours, and a bug there is a bug.
            result = _item_results(items, genrm, log.task, "inspect", source)

            def full_items() -> Iterator[RunItem]:
                for record, item in read_log(log_file).scored:
                    yield RunItem.from_item(record, item, protocol)

            result.reader = full_items
    if result is None:
        n = log.completed_samples or None
        result = _aggregate_result(log.metrics, genrm, log.task, "inspect", source, n)
    result.created = log.created
    named = _named(result, log.genrm, log.task, log.task_args, "inspect")
    named.settings = _mapping(log.task_args)
    return [named]


# --- ralign run / score / rc-score -----------------------------------------------------------


def read_run_folder(results_file: Path, warnings: list[str]) -> list[TaskResult]:
    """A ``ralign run``/``score``/``rc-score`` folder: its ``results.json`` and, when present,
    the judged-item records of its ``samples.jsonl`` (every row of this run's id)."""
    data = read_run_results(results_file)
    if not is_run_results(data):
        raise UserError("not the results.json of a ralign run folder")
    task, source = data["task"], str(results_file)
    if task not in TASKS:
        raise UserError(f"a run of task {task!r}, not one this ralign-tasks knows")
    genrm = run_name(str(data["genrm"]), task, data.get("settings"))
    samples_file = results_file.with_name(SAMPLES_FILE)
    metrics = data["metrics"]
    aggregate = partial(_grouped_result, metrics["overall"], metrics["subsets"], genrm, task,
                        "ralign", source)  # fmt: skip
    if samples_file.is_file():
        result = _sampled_result(
            samples_file, genrm, task, "ralign", samples_row_of(data.get("run_id")),
            aggregate, warnings,
        )  # fmt: skip
    else:
        result = aggregate()
    result.created = finite_or_none(data.get("created"))
    identity = identity_of_results(data)
    named = _named(result, str(data["genrm"]), task, data.get("settings"), identity.path, identity)
    named.settings = _mapping(data.get("settings"))
    named.usage = _paid(data.get("usage"))
    if not named.items:  # the run's own totals (its samples, when there, say the same per item)
        usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
        for role, key in (("GenRM", "genrm"), ("judge", "judge")):
            stats = usage.get(key)
            if isinstance(stats, Mapping) and _count(stats.get("requests")):
                named.failures[role] = (_count(stats.get("failures")) or 0,
                                        _count(stats.get("requests")) or 0)  # fmt: skip
    return [named]


def no_samples_hint(result: TaskResult) -> str:
    """Why a result has no items, and how to get them, for its harness."""
    if result.samples_error:
        return f"its per-item samples are unreadable ({result.samples_error})"
    if result.harness == "lm-eval":
        return "no per-item samples (run lm-eval with --log_samples)"
    if result.harness == "ralign":
        return f"no {SAMPLES_FILE} next to its {RESULTS_FILE}"
    return "no per-item samples in the log (do not pass --no-log-samples to Inspect)"


# --- any mix ---------------------------------------------------------------------------------


def _candidates(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: the given files, and every ``.json``/``.eval`` under the given folders
    (Inspect eval-set bookkeeping left out), each once."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix in (".json", ".eval")
                    and p.name not in _INSPECT_MANIFESTS
                )
            )
        else:
            files.append(path)
    seen: set[Path] = set()
    unique = []
    for file in files:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


def _read(path: Path, warnings: list[str]) -> list[TaskResult]:
    if path.suffix == ".eval":
        return read_inspect(path, warnings)
    if path.suffix != ".json":
        raise UserError("neither an lm-eval results file nor an Inspect log")
    if _LM_EVAL_RESULTS.search(path.name):
        return read_lm_eval(path, warnings)
    if path.name == RESULTS_FILE:
        return read_run_folder(path, warnings)
    try:
        return read_inspect(path, warnings)
    except Exception as inspect_error:  # a results file under another name, or foreign
        try:
            _, data = read_json_bytes(path)
        except ValueError:
            raise inspect_error from None
        if is_lm_eval_results(data):
            return read_lm_eval(path, warnings)
        if is_run_results(data):
            return read_run_folder(path, warnings)
        if isinstance(data, dict) and "eval" in data:  # an Inspect log that failed to load
            raise inspect_error from None
        raise UserError("neither an lm-eval results file nor an Inspect log") from None


def load_runs(paths: Iterable[str | Path]) -> tuple[list[TaskResult], list[str]]:
    """Every R-Align result under ``paths`` (files or folders, searched at any depth), and
    one warning per file skipped as unreadable or foreign."""
    results: list[TaskResult] = []
    warnings: list[str] = []
    for path in _candidates(paths):
        if not path.is_file():
            warnings.append(f"{path}: no such file; skipped")
            continue
        try:
            results.extend(_read(path, warnings))
        except Exception as exc:  # any unreadable or foreign file is skipped, never fatal
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.append(f"{path}: skipped ({reason[:200]})")
    return results, warnings


def latest_runs(results: Iterable[TaskResult], warnings: list[str]) -> list[TaskResult]:
    """One result per run identity (GenRM, task, options, judge, path): the newest run (by its
    creation time; the first read when unknown or equal), with a warning naming each older
    one left out. Runs of different identities are all kept, and where a GenRM's runs of one
    task differ in judge or path, its rows are named by those too (see
    :func:`name_by_identity`)."""
    kept: dict[Any, TaskResult] = {}
    for result in results:
        key = result.identity or (result.genrm, result.task)
        other = kept.get(key)
        if other is None:
            kept[key] = result
            continue
        newer = (result.created or -math.inf) > (other.created or -math.inf)
        older, kept[key] = (other, result) if newer else (result, other)
        kept_is_newer = (kept[key].created or -math.inf) > (older.created or -math.inf)
        why = "the newer run" if kept_is_newer else "the one read first"
        warnings.append(
            f"{older.source}: the same run ({result.genrm} on {result.task}, same judge, "
            f"options and path) is also in {kept[key].source}; using that one ({why})"
        )
    return name_by_identity(list(kept.values()))


def name_by_identity(results: list[TaskResult]) -> list[TaskResult]:
    """Name each result's row by its GenRM and, where that GenRM has runs of one task that
    differ in judge, judge endpoint or path, by those too (``smol (judge Qwen3-32B, by
    lm-eval)``): each identity its own row, a GenRM's other benchmarks joining it."""
    by_genrm: dict[str, list[TaskResult]] = {}
    for result in results:
        by_genrm.setdefault(result.genrm, []).append(result)
    for genrm, group in by_genrm.items():
        differing: set[str] = set()
        for index, first in enumerate(group):
            for second in group[index + 1 :]:
                one, other = first.identity, second.identity
                if first.task == second.task and one and other:
                    found = one.differences(other)
                    if None in (one.judge_endpoint, other.judge_endpoint):
                        found = [f for f in found if f != "judge_endpoint"]  # a path without it
                    differing.update(found)
        names = [n for n in ("judge", "judge_endpoint", "path") if n in differing]
        if not names:
            continue
        for result in group:
            assert result.identity is not None  # differing is empty without identities
            label = result.identity.label(names, has_judge=protocol_of(result.task).uses_judge)
            if label:
                result.genrm = f"{genrm} [{label}]"
    return results

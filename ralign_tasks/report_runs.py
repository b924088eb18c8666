"""Read lm-eval output folders and Inspect logs of the R-Align tasks into one result per
(GenRM, task), recomputed from the per-item data with the shared metric functions where the
samples are there (so both harnesses give identical numbers with 95% CIs), else taken from
the aggregate numbers (no CI). Undefined or absent metrics are ``None``, never 0.

Fidelity runs also keep their judged items (record, GenRM output, meta-judge answer) for the
paired comparison and the viewer."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ralign_tasks.scorers.atomic import RC_METRICS, AtomicOutcome, ItemStatus, RCScores, rc_report
from ralign_tasks.scorers.inspect_metrics import value_outcome, value_rc_outcome
from ralign_tasks.scorers.meta_verdict import MetaStatus
from ralign_tasks.scorers.metrics import FIDELITY_METRICS, ItemOutcome, fidelity_report

if TYPE_CHECKING:
    from inspect_ai.log import EvalSample
    from inspect_ai.scorer import Score

FIDELITY_TASKS = ("ralign_helpsteer3", "ralign_rewardbench2", "ralign_ppe")
RC_TASK = "ralign_helpsteer3_atomic"
TASKS = (*FIDELITY_TASKS, RC_TASK)
RC_REPORTED = (*RC_METRICS, "outcome_acc")
FIDELITY_COUNTS = (
    "genrm_call_fail",
    "genrm_no_verdict",
    "meta_parse_fail",
    "meta_call_fail",
    "meta_unjudged",
)
RC_COUNTS = ("skipped_empty", "skipped_long", "judge_failed")
# Scorer names in Inspect logs; `inspect score --action append` adds a number to a re-judging.
_INSPECT_SCORER = re.compile(r"^(ralign_fidelity|ralign_rc)(\d*)$")
# lm-eval names its results `results_<date id>.json`, or `<stem>_<date id>.json` for an
# `--output_path <stem>.json`; the samples files share the date id.
_LM_EVAL_RESULTS = re.compile(r"_(\d{4}-\d\d-\d\dT[\d.-]+)\.json$")
# Inspect eval-set bookkeeping files, not logs.
_INSPECT_MANIFESTS = {"eval-set.json", "logs.json", "listing.json"}


@dataclass(frozen=True)
class RunItem:
    """One judged item of a fidelity run as either harness logged it: the record (the
    :meth:`PairRecord.to_dict` form), the GenRM's output and verdict, the meta-judge's answer
    or error, and the outcome the metrics count."""

    record: dict[str, Any]
    output: str | None
    verdict: str | None
    outcome: ItemOutcome
    meta_answer: str | None
    meta_error: str | None

    @property
    def id(self) -> str:
        return str(self.record["id"])


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


def finite_or_none(value: Any) -> float | None:
    """A number as a float; ``None`` for a missing, textual, NaN or infinite value."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = finite_or_none(value)
    return int(number) if number is not None else None


def task_columns(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics and the counts reported for a task."""
    if task == RC_TASK:
        return RC_REPORTED, RC_COUNTS
    return FIDELITY_METRICS, FIDELITY_COUNTS


def _grouped_result(
    overall: Mapping[str, Any],
    parts: Mapping[str, Mapping[str, Any]],
    ci_of: Callable[[Mapping[str, Any], str], list[float] | None],
    genrm: str,
    task: str,
    harness: str,
    source: str,
) -> TaskResult:
    """A result from a metrics report's overall group and its parts (subsets or domains);
    ``ci_of(group, metric)`` reads a metric's CI, whose place differs between the reports."""
    names, counts = task_columns(task)

    def build(group: Mapping[str, Any], part: str | None) -> TaskResult:
        return TaskResult(
            genrm=genrm,
            task=task,
            harness=harness,
            source=source,
            n=group["n"],
            values={m: group[m] for m in names},
            ci={m: ci_of(group, m) for m in names},
            counts={c: group[c] for c in counts},
            subset=part,
        )

    result = build(overall, None)
    result.subsets = [build(group, name) for name, group in parts.items()]
    return result


def _fidelity_results(
    items: list[RunItem], genrm: str, task: str, harness: str, source: str
) -> TaskResult:
    report = fidelity_report(item.outcome for item in items)
    result = _grouped_result(
        report["overall"], report["subsets"], lambda group, m: group["ci"][m],
        genrm, task, harness, source,
    )  # fmt: skip
    result.items = items
    return result


def _rc_results(
    outcomes: list[AtomicOutcome], genrm: str, task: str, harness: str, source: str
) -> TaskResult:
    report = rc_report(outcomes)
    return _grouped_result(
        report["overall"], report["domains"], lambda group, m: group[f"{m}_ci"],
        genrm, task, harness, source,
    )  # fmt: skip


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
        counts={c: _count(metrics.get(c)) for c in counts},
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


def _lm_eval_fidelity_item(row: Mapping[str, Any]) -> RunItem:
    judged = json.loads(row["filtered_resps"][0])
    status = judged["meta_status"]
    outcome = ItemOutcome(
        subset=str(row["doc"]["subset"]),
        label_correct=bool(judged["label_correct"]),
        meta=MetaStatus(status) if status else None,
        genrm_no_verdict=judged["output"] is not None and judged["verdict"] is None,
        genrm_call_fail=judged["output"] is None,
    )
    return RunItem(
        record=dict(row["doc"]),
        output=judged["output"],
        verdict=judged["verdict"],
        outcome=outcome,
        meta_answer=judged["meta_answer"],
        meta_error=judged["meta_error"],
    )


def _lm_eval_rc_outcome(row: Mapping[str, Any]) -> AtomicOutcome:
    judged = json.loads(row["filtered_resps"][0])
    scores = judged.get("scores")
    return AtomicOutcome(
        domain=judged["domain"],
        status=ItemStatus(judged["status"]) if judged["status"] else ItemStatus.SCORED,
        scores=RCScores(**scores) if scores else None,
        label=judged["label"],
        verdict=judged["verdict"],
    )


def _lm_eval_stamp(results_file: Path) -> str:
    match = _LM_EVAL_RESULTS.search(results_file.name)
    return match.group(1) if match else ""


def read_lm_eval(results_file: Path, warnings: list[str]) -> list[TaskResult]:
    """The R-Align tasks of one lm-eval results file and, when present, its
    ``samples_<task>_<date id>.jsonl`` neighbours."""
    data = json.loads(results_file.read_text(encoding="utf-8"))
    if not is_lm_eval_results(data):
        raise ValueError("not an lm-eval results file")
    genrm = lm_eval_genrm(data, results_file)
    stamp = _lm_eval_stamp(results_file)
    created = finite_or_none(data.get("date"))
    sizes = data.get("n-samples") or {}
    found = []
    for task, metrics in data["results"].items():
        if task not in TASKS:
            continue
        result = None
        samples_file = results_file.with_name(f"samples_{task}_{stamp}.jsonl")
        if stamp and samples_file.is_file():
            try:
                rows = [
                    json.loads(line)
                    for line in samples_file.read_text(encoding="utf-8").splitlines()
                    if line.strip()
                ]
                if task == RC_TASK:
                    result = _rc_results([_lm_eval_rc_outcome(r) for r in rows], genrm, task,
                                         "lm-eval", str(samples_file))  # fmt: skip
                else:
                    result = _fidelity_results([_lm_eval_fidelity_item(r) for r in rows], genrm,
                                               task, "lm-eval", str(samples_file))  # fmt: skip
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                warnings.append(
                    f"{samples_file}: unreadable samples ({exc}); using the aggregate numbers"
                )
        if result is None:
            flat = {key.split(",", 1)[0]: value for key, value in metrics.items() if "," in key}
            size = sizes.get(task) if isinstance(sizes.get(task), Mapping) else {}
            n = _count(size.get("effective"))
            result = _aggregate_result(flat, genrm, task, "lm-eval", str(results_file), n)
        result.created = created
        found.append(result)
    if not found:
        raise ValueError("an lm-eval results file without R-Align tasks")
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


def _inspect_fidelity_item(sample: EvalSample, score: Score) -> RunItem:
    extra = score.metadata or {}
    return RunItem(
        record=dict(sample.metadata),
        output=extra.get("genrm_output"),
        verdict=score.answer,
        outcome=value_outcome(score.value),
        meta_answer=extra.get("meta_answer"),
        meta_error=extra.get("meta_error"),
    )


def _latest_scorer(names: Iterable[str], log_file: Path, warnings: list[str]) -> str | None:
    """The R-Align scorer of a log; after ``inspect score --action append`` there are several
    (``ralign_fidelity``, ``ralign_fidelity1``, …) and the latest judging is used."""
    found = sorted(
        {name for name in names if _INSPECT_SCORER.match(name)},
        key=lambda name: int(_INSPECT_SCORER.match(name).group(2) or 0),  # type: ignore[union-attr]
    )
    if len(found) > 1:
        warnings.append(f"{log_file}: scored by {', '.join(found)}; using {found[-1]}, the latest")
    return found[-1] if found else None


def read_inspect(log_file: Path, warnings: list[str]) -> list[TaskResult]:
    """The R-Align task of one Inspect log (``.eval`` or ``.json``), from its samples' scores
    (also in a log that ended in an error or was cancelled, with a warning saying how many
    samples the numbers cover), else from its aggregate metrics."""
    from datetime import datetime

    from inspect_ai.log import read_eval_log

    log = read_eval_log(str(log_file))
    task = log.eval.task.rsplit("/", 1)[-1]
    if task not in TASKS:
        raise ValueError(f"an Inspect log of task {log.eval.task!r}, not an R-Align task")
    genrm, source = log.eval.model, str(log_file)
    samples = log.samples or []
    scorer = _latest_scorer(
        [name for sample in samples for name in sample.scores or {}]
        or [score.name for score in (log.results.scores if log.results else [])],
        log_file,
        warnings,
    )
    scored = [
        (sample, sample.scores[scorer])
        for sample in samples
        if scorer and sample.scores and scorer in sample.scores
    ]
    epochs = log.eval.config.epochs or 1
    if epochs > 1:
        warnings.append(
            f"{log_file}: {epochs} epochs: each (sample, epoch) counts as one item, so the CIs "
            "(and --compare p-values) are narrower than over distinct items"
        )
    if log.status != "success":
        total = log.eval.dataset.samples
        warnings.append(
            f"{log_file}: the run's status is {log.status!r}: {len(scored)} of "
            f"{total if total is not None else '?'} samples scored; its numbers cover those"
        )
    if scored and task == RC_TASK:
        outcomes = [value_rc_outcome(score.value) for _, score in scored]
        result = _rc_results(outcomes, genrm, task, "inspect", source)
    elif scored:
        items = [_inspect_fidelity_item(sample, score) for sample, score in scored]
        result = _fidelity_results(items, genrm, task, "inspect", source)
    else:
        metrics: dict[str, Any] = {}
        for score in log.results.scores if log.results else []:
            if score.name == scorer:
                metrics.update({name: metric.value for name, metric in score.metrics.items()})
        n = log.results.completed_samples if log.results else None
        result = _aggregate_result(metrics, genrm, task, "inspect", source, n or None)
    try:
        result.created = datetime.fromisoformat(log.eval.created).timestamp()
    except ValueError:  # an unexpected format only loses the newest-run preference
        result.created = None
    return [result]


def no_samples_hint(result: TaskResult) -> str:
    """Why a result has no items, and how to get them, for its harness."""
    if result.harness == "lm-eval":
        return "no per-item samples (run lm-eval with --log_samples)"
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
        raise ValueError("neither an lm-eval results file nor an Inspect log")
    if _LM_EVAL_RESULTS.search(path.name):
        return read_lm_eval(path, warnings)
    try:
        return read_inspect(path, warnings)
    except Exception as inspect_error:  # a results file under another name, or foreign
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise inspect_error from None
        if is_lm_eval_results(data):
            return read_lm_eval(path, warnings)
        if isinstance(data, dict) and "eval" in data:  # an Inspect log that failed to load
            raise inspect_error from None
        raise ValueError("neither an lm-eval results file nor an Inspect log") from None


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
    """One result per (GenRM, task): the newest run (by its creation time; the first read
    when unknown or equal), with a warning naming each older one left out."""
    kept: dict[tuple[str, str], TaskResult] = {}
    for result in results:
        key = (result.genrm, result.task)
        other = kept.get(key)
        if other is None:
            kept[key] = result
            continue
        newer = (result.created or -math.inf) > (other.created or -math.inf)
        older, kept[key] = (other, result) if newer else (result, other)
        kept_is_newer = (kept[key].created or -math.inf) > (older.created or -math.inf)
        why = "the newer run" if kept_is_newer else "the one read first"
        warnings.append(
            f"{older.source}: {result.genrm} on {result.task} also ran in "
            f"{kept[key].source}; using that one ({why})"
        )
    return list(kept.values())

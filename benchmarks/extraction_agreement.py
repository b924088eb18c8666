"""How faithful is the extraction? RC of the reference models' stored checklists against RC of
the reasons the extractor lists from the same models' generated text.

The test split of HelpSteer3-Atomic carries, per reference model, the reasons it listed
(``model-<NAME>-checklist``) and the free text it wrote (``model-<NAME>-generated_text``). For
each reference model (all of the file's, or those named with ``--reference``) this scores both
with the same MetaJudge, as ``ralign rc-score --reference NAME`` and ``ralign rc-score
--reference NAME --extract`` do (``reference_judgments``, then ``judge_items``: the extractor's
prep step, then one RC MetaJudge batch for both sides), and reports:

- RC, RC (code) and precision of each side (``compute_rc``: each side's mean over its own
  scored items), and extracted - stored with a paired bootstrap 95% CI over items
  (``stats.paired_sums``: each draw takes the same items for both sides);
- per-item agreement: the share of items both sides scored, and over those items the Pearson
  correlation and the mean absolute difference of the per-item RC;
- what became of the extraction: items whose rationale gave no reason (``extract_empty``),
  whose extractor answer stayed malformed (``extract_parse_fail``) or never came
  (``extract_call_fail``);
- the mean number of reasons per item, stored and extracted (over all items; an item whose
  extraction failed counts none, and is in the failure columns).

The meta-judge and the extractor are the usual settings (``RALIGN_METAJUDGE_*``,
``RALIGN_EXTRACTOR_*``; the extractor's unset keys are the meta-judge's) or the flags below.
Every answer goes through the product's cache (``RALIGN_CACHE_DIR``): a rerun costs nothing.

    python benchmarks/extraction_agreement.py --sample
    python benchmarks/extraction_agreement.py --data-dir DATA --limit 200 --json agreement.json
    python benchmarks/extraction_agreement.py --reference low_deceptive_alignment \\
        --metajudge-model J --metajudge-base-url URL --extractor-model X --extractor-base-url URL2
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from jinja2 import TemplateError

from ralign_tasks.data import DataUnavailableError, data_source, warn_bad_rows
from ralign_tasks.judge import resolve_judge
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import metric_label
from ralign_tasks.protocols.rationale import (
    RATIONALE,
    RATIONALE_SOURCES,
    RC_TASK,
    AtomicJudgment,
    AtomicRecord,
)
from ralign_tasks.report.tables import markdown_text
from ralign_tasks.scorers.ask import EndpointDownError, StopRun
from ralign_tasks.scorers.config import METAJUDGE_ENV_PREFIX, ConfigError
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.rationale import ItemStatus
from ralign_tasks.scorers.settings import (
    SWITCH_ENV,
    JudgeSettings,
    extractor_given,
    switched_off,
)
from ralign_tasks.scorers.stats import DRAWS, SEED, paired_sums

# The metrics compared side by side (each side's per-item values from the product's outcome).
COMPARED = ("rc", "rc_code", "rc_precision")
EXTRACTION_COUNTS = ("extract_empty", "extract_parse_fail", "extract_call_fail")
UNDEFINED = "n/a"


def judge_of(args: argparse.Namespace) -> JudgeSettings:
    """The meta-judge and extractor: the flags over the environment, resolved as every path
    resolves them."""
    if switched_off():
        raise ConfigError(
            f"{SWITCH_ENV}=none switches the judge off, but this script is the judge's: unset it"
        )
    given = {"model": args.metajudge_model, "base_url": args.metajudge_base_url}
    flags = {"extractor_model": args.extractor_model, "extractor_base_url": args.extractor_base_url}
    judge = resolve_judge(given, extractor=extractor_given(flags, "the command line"))
    judge.transport.require_model(
        "meta-judge", METAJUDGE_ENV_PREFIX, "pass --metajudge-model (and --metajudge-base-url), or "
    )
    try:
        RATIONALE.check_templates(None, RATIONALE.judge_template(judge))
    except TemplateError as exc:
        raise ConfigError(f"{RC_TASK.task}: prompt template: {exc}") from None
    return judge


def reference_names(records: Sequence[AtomicRecord], named: Sequence[str] | None) -> list[str]:
    """The reference models to compare: those named, else every one that all items carry (in
    the file's order); one that only some items carry is left out, with a warning."""
    if named:
        return list(dict.fromkeys(named))
    seen: dict[str, int] = {}
    for record in records:
        for name in record.references:
            seen[name] = seen.get(name, 0) + 1
    names = [name for name, count in seen.items() if count == len(records)]
    for name, count in seen.items():
        if count < len(records):
            print(
                f"warning: reference {name!r} has outputs for only {count} of {len(records)} "
                "items; left out (name it with --reference to see which)",
                file=sys.stderr,
            )
    if not names:
        raise DataUnavailableError(
            "the data has no reference model outputs (model-<NAME>-checklist fields): the "
            "test split carries them"
        )
    return names


def item_values(items: Sequence[Any]) -> np.ndarray:
    """Per item and compared metric its value (NaN: the item is outside the metric, e.g. not
    scored), from the product's outcome."""
    rows = [RATIONALE.document_values(item.outcome) for item in items]
    return np.array([[row[name] for name in COMPARED] for row in rows], dtype=float).reshape(
        len(rows), len(COMPARED)
    )


def mean_columns(values: np.ndarray) -> np.ndarray:
    """(value, defined) column pairs per metric: their sums give each metric's mean over the
    items that define it, as compute_rc takes it."""
    defined = ~np.isnan(values)
    pairs = np.stack([np.where(defined, values, 0.0), defined.astype(float)], axis=-1)
    return pairs.reshape(len(values), 2 * len(COMPARED))


def means_of_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    pairs = sums.reshape(*sums.shape[:-1], len(COMPARED), 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(pairs[..., 1] > 0, pairs[..., 0] / pairs[..., 1], np.nan)
    return {name: means[..., index] for index, name in enumerate(COMPARED)}


def agreement(stored: Sequence[Any], extracted: Sequence[Any]) -> dict[str, Any]:
    """Per-item agreement of the two sides' RC over the items both scored."""
    both = [
        (a.outcome.scores.rc, b.outcome.scores.rc)
        for a, b in zip(stored, extracted, strict=True)
        if a.outcome.status is ItemStatus.SCORED and b.outcome.status is ItemStatus.SCORED
    ]
    pairs = np.asarray(both, dtype=float).reshape(len(both), 2)
    pearson = None
    if len(both) >= 2 and pairs[:, 0].std() > 0 and pairs[:, 1].std() > 0:
        pearson = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    return {
        "both_scored": len(both),
        "both_scored_share": len(both) / len(stored) if stored else None,
        "pearson_rc": pearson,
        "mean_abs_diff_rc": float(np.abs(pairs[:, 0] - pairs[:, 1]).mean()) if both else None,
    }


def per_item(stored: Sequence[Any], extracted: Sequence[Any]) -> list[dict[str, Any]]:
    """Each item's two sides: status, RC and the reasons (to read what the extractor made of
    a rationale)."""

    def side(item: Any) -> dict[str, Any]:
        judgment: AtomicJudgment = item.judgment
        scores = item.outcome.scores
        return {
            "status": item.outcome.status.value,
            "rc": scores.rc if scores else None,
            "reasons": list(judgment.reasons),
        }

    return [
        {
            "id": a.judgment.record.id,
            "domain": a.judgment.record.domain,
            "stored": side(a),
            "extracted": side(b),
        }
        for a, b in zip(stored, extracted, strict=True)
    ]


def compare_reference(
    records: Sequence[AtomicRecord],
    name: str,
    options: dict[str, Any],
    judge: JudgeSettings,
    draws: int,
) -> dict[str, Any]:
    """One reference model: both sides judged in one batch (the extractor's step first), then
    their metrics, paired difference and agreement."""
    start = time.perf_counter()
    stored = RATIONALE.reference_judgments(records, name, options)
    extracted = RATIONALE.reference_judgments(records, name, options, extract=True)
    items, judge_stats, prep_stats = judge_items(
        RC_TASK, [*records, *records], [*stored, *extracted], judge
    )
    stored_items, extracted_items = items[: len(records)], items[len(records) :]
    reports = {
        side: RATIONALE.report([item.outcome for item in side_items])
        for side, side_items in (("stored", stored_items), ("extracted", extracted_items))
    }
    difference = paired_sums(
        mean_columns(item_values(extracted_items)),
        mean_columns(item_values(stored_items)),
        means_of_sums,
        COMPARED,
        draws=draws,
        seed=SEED,
    )
    extraction = {key: reports["extracted"]["overall"][key] for key in EXTRACTION_COUNTS}
    extraction["extract_ok"] = sum(i.judgment.extraction == "ok" for i in extracted_items)
    return {
        "items": len(records),
        "stored": reports["stored"],
        "extracted": reports["extracted"],
        # extracted - stored ("first" is the extracted side, "second" the stored one).
        "difference": difference,
        "agreement": agreement(stored_items, extracted_items),
        "extraction": extraction,
        "reasons": {
            "stored_mean": float(np.mean([len(i.judgment.reasons) for i in stored_items])),
            "extracted_mean": float(np.mean([len(i.judgment.reasons) for i in extracted_items])),
        },
        "usage": {
            **{step: stats.as_dict() for step, stats in prep_stats.items()},
            RATIONALE.judge_step: judge_stats.as_dict() if judge_stats else None,
        },
        "wall_s": time.perf_counter() - start,
        "per_item": per_item(stored_items, extracted_items),
    }


def percent(value: float | None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return UNDEFINED
    return f"{value * 100:+.1f}" if sign else f"{value * 100:.1f}"


def difference_text(entry: dict[str, Any]) -> str:
    ci = entry["ci"]
    interval = f" [{percent(ci[0], True)}, {percent(ci[1], True)}]" if ci else ""
    return percent(entry["difference"], sign=True) + interval


def table(results: dict[str, dict[str, Any]], title: str) -> str:
    header = ["reference", "items"]
    for metric in COMPARED:
        label = metric_label(metric)
        header += [f"{label} stored", f"{label} extracted", f"{label} Δ [95% CI]"]
    header += [
        "scored stored / extracted",
        "both scored",
        "r (item RC)",
        "mean |Δ| (item RC)",
        "extract empty / parse-fail / call-fail",
        "reasons stored",
        "reasons extracted",
    ]
    rows = []
    for name, result in results.items():
        row = [name, str(result["items"])]
        for metric in COMPARED:
            entry = result["difference"][metric]
            row += [percent(entry["second"]), percent(entry["first"]), difference_text(entry)]
        agreed, counts = result["agreement"], result["extraction"]
        pearson = agreed["pearson_rc"]
        row += [
            f"{result['stored']['overall']['scored']} / {result['extracted']['overall']['scored']}",
            f"{percent(agreed['both_scored_share'])}% ({agreed['both_scored']})",
            UNDEFINED if pearson is None else f"{pearson:.3f}",
            percent(agreed["mean_abs_diff_rc"]),
            " / ".join(str(counts[key]) for key in EXTRACTION_COUNTS),
            f"{result['reasons']['stored_mean']:.2f}",
            f"{result['reasons']['extracted_mean']:.2f}",
        ]
        rows.append(row)
    return markdown_text(header, rows, title=title)  # a "|" in a cell is escaped


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        help="folder holding helpsteer3_test_1000.jsonl (default: "
        "$RALIGN_DATA_DIR, else the Hugging Face dataset)",
    )
    source.add_argument("--sample", action="store_true", help="the bundled 8-item sample")
    parser.add_argument("--limit", type=int, help="the first N items")
    parser.add_argument(
        "--reference",
        action="append",
        metavar="NAME",
        help="a reference model (repeatable; default: all of the data's)",
    )
    parser.add_argument(
        "--rationale-source",
        choices=RATIONALE_SOURCES,
        default="visible",
        help="what of the generated text the extractor reads",
    )
    parser.add_argument("--metajudge-model", help=f"default ${METAJUDGE_ENV_PREFIX}MODEL")
    parser.add_argument("--metajudge-base-url", help=f"default ${METAJUDGE_ENV_PREFIX}BASE_URL")
    parser.add_argument(
        "--extractor-model", help="default $RALIGN_EXTRACTOR_MODEL, else the meta-judge's"
    )
    parser.add_argument(
        "--extractor-base-url", help="default $RALIGN_EXTRACTOR_BASE_URL, else the meta-judge's"
    )
    parser.add_argument("--draws", type=int, default=DRAWS, help="bootstrap draws")
    parser.add_argument("--json", metavar="FILE", help="write the figures (and per item) here")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    judge = judge_of(args)
    options = RATIONALE.option_values(
        {"split": "test", "rationale_source": args.rationale_source}, RC_TASK.task
    )
    loaded = RATIONALE.load(RC_TASK, data_source(args.sample, args.data_dir), split="test")
    warn_bad_rows(loaded.path, loaded.bad_rows)
    records = loaded.records[: args.limit] if args.limit else loaded.records
    names = reference_names(records, args.reference)
    extractor = judge.endpoint_of("extractor")
    results = {name: compare_reference(records, name, options, judge, args.draws) for name in names}
    wall = time.perf_counter() - started
    title = (
        f"{len(records)} items of {loaded.path}; meta-judge {judge.transport.model} at "
        f"{judge.transport.endpoint}, extractor {extractor.model} at {extractor.endpoint} "
        f"(rationale source {args.rationale_source}); percent, Δ = extracted - stored with a "
        f"paired bootstrap over items ({args.draws} draws); {wall:.1f} s"
    )
    print(table(results, title))
    if args.json:
        figures = {
            "data_file": loaded.path,
            "items": len(records),
            "meta_judge": {"model": judge.transport.model, "endpoint": judge.transport.endpoint},
            "extractor": {"model": extractor.model, "endpoint": extractor.endpoint},
            "rationale_source": args.rationale_source,
            "draws": args.draws,
            "wall_s": wall,
            "references": results,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        print(f"written: {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (UserError, StopRun, EndpointDownError, DataUnavailableError, OSError) as exc:
        print(f"extraction_agreement.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

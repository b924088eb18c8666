"""End-to-end R-Align scoring outside the harnesses: GenRM calls → verdicts → meta-judge → metrics.

The lm-eval and Inspect adapters reuse the same steps; this module wires them for ``ralign run``
and ``ralign score``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ralign_tasks.prompts import render_genrm_prompt
from ralign_tasks.records import PairRecord
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import BatchStats, ChatRequest, ChatResult, run_chat_batch
from ralign_tasks.scorers.metajudge import GenRMJudgment, MetaJudgement, judge_all
from ralign_tasks.scorers.metrics import fidelity_report
from ralign_tasks.scorers.verdict import VerdictPolicy

# The official GenRM generation settings (SPEC §1).
GENRM_TEMPERATURE = 0.4
GENRM_MAX_TOKENS = 8192


@dataclass
class ScoredRun:
    """Per-item judgments and meta verdicts of one benchmark, and the metrics over them."""

    benchmark: str
    judgments: list[GenRMJudgment]
    meta: list[MetaJudgement | None]
    report: dict[str, Any]
    genrm_stats: BatchStats | None = None
    meta_stats: BatchStats | None = None

    def samples(self) -> list[dict[str, Any]]:
        """One JSON-ready row per item: inputs, GenRM output, verdicts and meta outcome."""
        rows = []
        for judgment, meta in zip(self.judgments, self.meta, strict=True):
            record = judgment.record
            rows.append(
                {
                    "id": record.id,
                    "subset": record.subset,
                    "label": record.label,
                    "verdict": judgment.verdict,
                    "label_correct": judgment.label_correct,
                    "genrm_truncated": judgment.truncated,
                    "genrm_output": judgment.output,
                    "golden_rationale": record.golden_rationale,
                    "meta_status": meta.status.value if meta else None,
                    "meta_answer": meta.answer if meta else None,
                    "meta_error": meta.error if meta else None,
                    "meta_tokens": ([meta.prompt_tokens, meta.completion_tokens] if meta else None),
                    "meta_wall_s": meta.wall_s if meta else None,
                    "meta_cached": meta.cached if meta else None,
                }
            )
        return rows


def genrm_requests(
    records: Sequence[PairRecord], config: EndpointConfig, template: str | None = None
) -> list[ChatRequest]:
    """The GenRM prompt of every record as chat requests."""
    return [
        ChatRequest(
            model=str(config.model),
            prompt=render_genrm_prompt(record, template),
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
        for record in records
    ]


def generate_genrm_outputs(
    records: Sequence[PairRecord], config: EndpointConfig, template: str | None = None
) -> tuple[list[ChatResult], BatchStats]:
    """Ask the GenRM about every record (concurrent, cached, retried like the meta-judge)."""
    return run_chat_batch(genrm_requests(records, config, template), config, description="GenRM")


def score_outputs(
    benchmark: str,
    records: Sequence[PairRecord],
    outputs: Sequence[str | None],
    meta_config: EndpointConfig | None,
    *,
    policy: VerdictPolicy = "official",
    truncated: Sequence[bool] | None = None,
) -> ScoredRun:
    """Parse verdicts, meta-judge the label-correct ones (unless ``meta_config`` is None),
    and compute the metrics."""
    truncated = truncated or [False] * len(records)
    judgments = [
        GenRMJudgment.from_output(record, output, policy, cut)
        for record, output, cut in zip(records, outputs, truncated, strict=True)
    ]
    meta_stats = None
    if meta_config is None:
        meta: list[MetaJudgement | None] = [None] * len(judgments)
    else:
        meta, meta_stats = judge_all(judgments, meta_config)
    outcomes = [j.outcome(m.status if m else None) for j, m in zip(judgments, meta, strict=True)]
    report = fidelity_report(outcomes)
    return ScoredRun(benchmark, judgments, meta, report, meta_stats=meta_stats)


def write_run(run: ScoredRun, output_dir: str | os.PathLike[str], settings: dict[str, Any]) -> Path:
    """Write ``<dir>/<benchmark>/results.json`` and ``samples.jsonl``; return the folder."""
    results = {
        "benchmark": run.benchmark,
        "settings": settings,
        "metrics": run.report,
        "usage": {
            "genrm": run.genrm_stats.as_dict() if run.genrm_stats else None,
            "meta_judge": run.meta_stats.as_dict() if run.meta_stats else None,
        },
    }
    return write_results(Path(output_dir) / run.benchmark, results, run.samples())


def write_results(folder: Path, results: dict[str, Any], samples: list[dict[str, Any]]) -> Path:
    """``folder/results.json`` and ``folder/samples.jsonl``; NaN is refused, an undefined
    metric must be null."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    with open(folder / "samples.jsonl", "w", encoding="utf-8") as handle:
        for row in samples:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return folder


def read_outputs_file(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """Read precomputed GenRM outputs: JSONL rows ``{"id": …, "output": …}`` (output may be null
    for a failed call). Errors name file and line."""
    outputs: dict[str, str | None] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "id" not in row or "output" not in row:
                raise ValueError(f"{path}:{line_no}: expected an object with 'id' and 'output'")
            if row["output"] is not None and not isinstance(row["output"], str):
                raise ValueError(f"{path}:{line_no}: 'output' must be a string or null")
            key = str(row["id"])
            if key in outputs:
                raise ValueError(f"{path}:{line_no}: duplicate id {key!r}")
            outputs[key] = row["output"]
    return outputs

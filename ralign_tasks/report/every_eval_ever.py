"""``ralign export --format every-eval-ever``: runs of any path (``ralign run``, lm-eval,
Inspect) as Every Eval Ever records (EvalEval's shared schema for evaluation results, version
0.3.0): per run one aggregate record and its instance-level JSONL, in the datastore's layout
``data/<benchmark>/<developer>/<model>/<uuid>.json`` and ``…/<uuid>_samples.jsonl``.

The aggregate has one result per metric (and count) of the run and of each subset, with its
bootstrap CI and sample size; a metric that needs the meta-judge names it in
``metric_config.llm_scoring`` (model, endpoint kind, temperature, the template's SHA-256). The
instance file has one line per item: the record as the eval defines it, the GenRM's outputs, the
verdict and each judge answer as answer attributions, and the item's own score
(:meth:`Protocol.instance_score`). The uuid is derived from the run's identity and time, so
exporting a run again rewrites the same files.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import get_task, protocol_of
from ralign_tasks.report.runs import RunItem, TaskResult
from ralign_tasks.scorers.jsonl import json_text
from ralign_tasks.scorers.schema import MetricSpec
from ralign_tasks.scorers.stats import DRAWS

SCHEMA_VERSION = "0.3.0"
LIBRARY = "ralign-tasks"
RELATIONSHIPS = ("first_party", "third_party", "collaborative", "other")
CONFIDENCE = 0.95
# What each path's output is called in the record.
PATH_NAMES = {"ralign": "ralign run", "lm-eval": "lm-eval", "inspect": "inspect"}


@dataclass(frozen=True)
class Export:
    """Where one run went: its aggregate record and instance file (``None``: no items)."""

    run: str
    record: Path
    samples: Path | None
    rows: int


def library_version() -> str:
    try:
        return version(LIBRARY)
    except PackageNotFoundError:
        return "unknown"


def _text(value: Any) -> str:
    """A value as the schema's string-only detail maps need it."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _details(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: _text(value) for key, value in values.items() if value is not None}


def _model_path(model: str) -> tuple[str, str]:
    """The datastore's developer and model folders of a model id (``Qwen/Qwen3-8B``)."""
    developer, _, name = model.rpartition("/")
    clean = [
        "".join(c if c.isalnum() or c in "-_." else "_" for c in part).strip(".") or "unknown"
        for part in (developer or "unknown", name)
    ]
    return clean[0], clean[1]


def run_uuid(result: TaskResult) -> str:
    """A version-4-shaped uuid fixed by the run's identity, source and time."""
    key = json_text([str(result.identity), result.source, result.created], sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _judge_template(result: TaskResult) -> tuple[str, str] | None:
    """The meta-judge template of a run: its text and where it came from (the file a setting
    named, else the bundled one)."""
    protocol = protocol_of(result.task)
    settings = result.settings
    key = protocol.judge_template_setting
    given = None
    if key:
        given = (settings.get("meta_judge_templates") or {}).get(key) or settings.get(
            f"metajudge_{key}"
        )
    if given:
        path = Path(str(given)).expanduser()
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
        return None  # named, not here: no text to hash
    if protocol.judge_template_file is None:
        return None
    bundled = resources.files("ralign_tasks") / "templates" / protocol.judge_template_file
    return bundled.read_text(encoding="utf-8"), f"bundled {protocol.judge_template_file}"


def _judge_scoring(result: TaskResult) -> dict[str, Any] | None:
    """``llm_scoring`` of the metrics that need the meta-judge (``None``: no judge)."""
    identity = result.identity
    judge = identity.judge if identity else None
    if not judge:
        return None
    settings = result.settings
    endpoint = identity.judge_endpoint if identity else None
    if result.harness == "inspect":
        kind = "inspect model role meta_judge"
    else:
        backend = settings.get("meta_judge_backend") or settings.get("metajudge_backend")
        kind = {None: "openai-compatible", "openai": "openai-compatible"}.get(backend, backend)
    config: dict[str, Any] = {
        "model_info": _model_info(str(judge), endpoint, kind),
    }
    temperature = settings.get("meta_judge_temperature", settings.get("metajudge_temperature"))
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        config["temperature"] = float(temperature)
    template = _judge_template(result)
    details = {"endpoint_kind": kind, "endpoint": endpoint}
    if template is not None:
        details["template"] = template[1]
        details["template_sha256"] = hashlib.sha256(template[0].encode("utf-8")).hexdigest()
    config["additional_details"] = _details(details)
    return {
        "judges": [config],
        "input_prompt": template[0] if template else "(the template file is not available)",
    }


def _model_info(model: str, endpoint: str | None, kind: str | None = None) -> dict[str, Any]:
    return {
        "name": model,
        "id": model,
        "additional_details": {
            "deployment_type": "unknown",
            "model_availability": "unknown",
            **_details({"endpoint": endpoint, "endpoint_kind": kind}),
        },
    }


def _source_data(result: TaskResult, n: int | None) -> dict[str, Any]:
    spec = get_task(result.task)
    settings = result.settings
    data_file = settings.get("data_file")
    sample = bool(settings.get("sample")) or (
        isinstance(data_file, str) and Path(sample_data_dir()) in Path(data_file).parents
    )
    details = _details({"data_file": data_file, "task": result.task})
    if sample or not spec.hf_dataset:
        return {
            "dataset_name": f"{spec.title} (bundled sample)" if sample else spec.title,
            "source_type": "other",
            "additional_details": details,
        }
    source: dict[str, Any] = {
        "dataset_name": spec.title,
        "source_type": "hf_dataset",
        "hf_repo": spec.hf_dataset,
        "additional_details": details,
    }
    if n is not None:
        source["samples_number"] = n
    return source


def _result_entries(result: TaskResult, scoring: dict[str, Any] | None) -> list[dict[str, Any]]:
    schema = protocol_of(result.task).schema
    entries = []
    for part in (result, *result.subsets):
        where = part.subset or "overall"
        name = result.task if part.subset is None else f"{result.task}/{part.subset}"
        source = _source_data(result, part.n)
        for spec in schema.metrics:
            value = part.values.get(spec.name)
            if value is None:
                continue
            entries.append(_entry(result, spec, where, name, source, value, part, scoring))
        for spec in schema.counts:
            value = part.counts.get(spec.name)
            if value is None:
                continue
            entries.append(_entry(result, spec, where, name, source, value, part, scoring))
    return entries


def _entry(
    result: TaskResult,
    spec: MetricSpec,
    where: str,
    name: str,
    source: dict[str, Any],
    value: float,
    part: TaskResult,
    scoring: dict[str, Any] | None,
) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "evaluation_description": spec.description or spec.label,
        "metric_id": f"{result.task}.{spec.name}",
        "metric_name": spec.label,
        "metric_kind": "count" if spec.is_count else spec.name,
        "metric_unit": "count" if spec.is_count else "proportion",
        "lower_is_better": not spec.higher_is_better,
        "score_type": "continuous",
        "min_score": 0 if spec.is_count else None,
        "max_score": "Infinity" if spec.is_count else None,
    }
    if spec.needs_judge and scoring is not None and not spec.is_count:
        metric["llm_scoring"] = scoring
    details: dict[str, Any] = {"score": float(value)}
    ci = part.ci.get(spec.name)
    if ci is not None and not spec.is_count:
        uncertainty: dict[str, Any] = {
            "confidence_interval": {
                "lower": float(ci[0]),
                "upper": float(ci[1]),
                "confidence_level": CONFIDENCE,
                "method": "bootstrap",
            },
            "num_bootstrap_samples": DRAWS,
        }
        if part.n is not None:
            uncertainty["num_samples"] = part.n
        details["uncertainty"] = uncertainty
    if part.n is not None:
        details["details"] = {"n": str(part.n)}
    return {
        "evaluation_result_id": f"{result.task}/{where}/{spec.name}",
        "evaluation_name": name,
        "source_data": source,
        "metric_config": metric,
        "score_details": details,
    }


def aggregate_record(
    result: TaskResult,
    run_id: str,
    retrieved: str,
    organization: str,
    relationship: str,
    samples: dict[str, Any] | None,
) -> dict[str, Any]:
    """The aggregate record of one run (``samples``: its detailed results reference)."""
    identity = result.identity
    path = PATH_NAMES.get(result.harness, result.harness)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "evaluation_id": f"{result.task}/{result.model}/{retrieved}",
        "retrieved_timestamp": retrieved,
        "source_metadata": {
            "source_name": LIBRARY,
            "source_type": "evaluation_run",
            "source_organization_name": organization,
            "evaluator_relationship": relationship,
            "additional_details": _details({"source": result.source, "run_uuid": run_id}),
        },
        "eval_library": {
            "name": LIBRARY,
            "version": library_version(),
            "additional_details": _details(
                {
                    "path": identity.path if identity else path,
                    "harness": path,
                    "options": identity.options if identity else None,
                    "unusable": result.unusable(),
                }
            ),
        },
        "model_info": _model_info(result.model, result.settings.get("genrm_endpoint")),
        "evaluation_results": _result_entries(result, _judge_scoring(result)),
    }
    if result.created is not None:
        record["evaluation_timestamp"] = str(result.created)
    if samples is not None:
        record["detailed_evaluation_results"] = samples
    return record


def instance_rows(result: TaskResult, evaluation_id: str) -> Iterator[dict[str, Any]]:
    """One instance record per item with its own score (items scored only as a set, such as
    RewardBench 2's Ties rows, have none and are left out)."""
    protocol = protocol_of(result.task)
    for item in result.full_items():
        scored = protocol.instance_score(item.outcome)
        if scored is None:
            continue
        yield _instance(result, item, evaluation_id, scored.metric, scored.score, scored.correct)


def _instance(
    result: TaskResult,
    item: RunItem,
    evaluation_id: str,
    metric: str,
    score: float,
    correct: bool,
) -> dict[str, Any]:
    protocol = protocol_of(result.task)
    raw = json_text(item.record, sort_keys=True)
    target = protocol.target(protocol.record_from_dict(item.record))
    reference = [target] if target else []
    games = item.genrm.get("games") or []
    outputs = [g["output"] for g in games] if games else [item.output]
    attributions = [{
        "turn_idx": 0, "source": "output.raw", "extracted_value": str(item.verdict or ""),
        "extraction_method": "regex", "is_terminal": True,
    }]  # fmt: skip
    for call in item.judge:
        attributions.append({
            "turn_idx": 0,
            "source": f"judge.{call.get('step', 'meta_judge')}[{call.get('slot', 0)}]",
            "extracted_value": _text(call.get("value")),
            "extraction_method": "llm_judge",
            "is_terminal": False,
        })  # fmt: skip
    errors = [g.get("error") for g in games] if games else [item.genrm.get("error")]
    return {
        "schema_version": SCHEMA_VERSION,
        "evaluation_id": evaluation_id,
        "model_id": result.model,
        "evaluation_name": result.task,
        "evaluation_result_id": f"{result.task}/overall/{metric}",
        "sample_id": item.id,
        "sample_hash": hashlib.sha256((raw + "".join(reference)).encode("utf-8")).hexdigest(),
        "interaction_type": "single_turn",
        "input": {"raw": raw, "reference": reference},
        "output": {"raw": [text for text in outputs if text is not None]},
        "answer_attribution": attributions,
        "evaluation": {"score": float(score), "is_correct": bool(correct)},
        "error": next((error for error in errors if error), None),
        "metadata": _details(
            {
                "subset": protocol.outcome_group(item.outcome),
                "verdict": item.verdict,
                "category": getattr(item.outcome, "category", None),
            }
        ),
    }


def export_run(
    result: TaskResult,
    out_dir: Path,
    retrieved: str,
    organization: str = "unknown",
    relationship: str = "third_party",
) -> Export:
    """Write one run's aggregate record and instance file under ``out_dir/data/…``."""
    run_id = run_uuid(result)
    developer, model = _model_path(result.model)
    folder = out_dir / "data" / result.task / developer / model
    folder.mkdir(parents=True, exist_ok=True)
    evaluation_id = f"{result.task}/{result.model}/{retrieved}"
    samples_path = folder / f"{run_id}_samples.jsonl"
    rows = 0
    digest = hashlib.sha256()
    partial = samples_path.with_name(samples_path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for row in instance_rows(result, evaluation_id):
            line = json_text(row) + "\n"
            out.write(line)
            digest.update(line.encode("utf-8"))
            rows += 1
    samples = None
    if rows:
        partial.replace(samples_path)
        samples = {
            "format": "jsonl",
            "file_path": samples_path.relative_to(out_dir).as_posix(),
            "hash_algorithm": "sha256",
            "checksum": digest.hexdigest(),
            "total_rows": rows,
        }
    else:
        partial.unlink()
    record = aggregate_record(result, run_id, retrieved, organization, relationship, samples)
    record_path = folder / f"{run_id}.json"
    partial = record_path.with_name(record_path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(record_path)
    return Export(result.genrm, record_path, samples_path if rows else None, rows)

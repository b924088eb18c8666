"""lm-evaluation-harness adapter: dataset, prompt, task class and metric hooks for the YAMLs in
``task_configs/``.

lm-eval generates for every document first, then calls ``apply_filters`` once per task and
``process_results`` once per document. :class:`RAlignTask` meta-judges every label-correct
document in one concurrent batch inside ``apply_filters`` and replaces each filtered response
with a record of the verdicts, which ``process_results`` turns into per-document metric values
and lm-eval logs with ``--log_samples``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
from lm_eval.api.registry import metric_registry, register_metric
from lm_eval.api.task import ConfigurableTask

from ralign_tasks.data import keep_named, load_benchmark, sample_data_dir, warn_bad_rows
from ralign_tasks.prompts import render_genrm_prompt
from ralign_tasks.records import PairRecord
from ralign_tasks.scorers.config import METAJUDGE_ENV_PREFIX, ConfigError, EndpointConfig
from ralign_tasks.scorers.meta_verdict import MetaStatus
from ralign_tasks.scorers.metajudge import GenRMJudgment, MetaJudgement, judge_all
from ralign_tasks.scorers.verdict import VERDICT_POLICIES

logger = logging.getLogger("ralign_tasks.lm_eval")

# Meta-judge keys in --metadata carry this prefix: lm-eval merges --model_args into the same
# mapping, so a bare `model` or `base_url` there would be the GenRM's own.
METADATA_PREFIX = "metajudge_"
METAJUDGE_SWITCH = "metajudge"  # `metajudge: none` reports l_acc only
NAN = float("nan")


def load_docs(
    benchmark: str,
    data_dir: str | None = None,
    sample: bool = False,
    skip_bad_rows: bool = False,
    subset: str | Sequence[str] | None = None,
    **_other_metadata: Any,
) -> dict[str, datasets.Dataset]:
    """``custom_dataset`` hook: the benchmark as one ``test`` split of flat documents.

    lm-eval passes every ``--metadata`` key (and the model args) here; only the data keys
    matter: ``data_dir`` (default ``RALIGN_DATA_DIR``, then the hub), ``sample`` (the
    bundled sample), ``skip_bad_rows``, ``subset`` (one name or a list).
    """
    loaded = load_benchmark(
        benchmark, sample_data_dir() if sample else data_dir, skip_bad_rows=skip_bad_rows
    )
    warn_bad_rows(loaded.path, loaded.bad_rows)
    records = keep_named(loaded.records, "subset", subset or None, loaded.path)
    return {"test": datasets.Dataset.from_list([r.to_dict() for r in records])}


def doc_to_text(doc: Mapping[str, Any]) -> str:
    """The GenRM prompt (``RALIGN_GENRM_TEMPLATE`` replaces the bundled template)."""
    return render_genrm_prompt(PairRecord.from_dict(doc))


def doc_to_target(doc: Mapping[str, Any]) -> str:
    return doc["label"]


def metajudge_config(metadata: Mapping[str, Any]) -> EndpointConfig | None:
    """Meta-judge settings from ``RALIGN_METAJUDGE_*`` and ``metajudge_*`` metadata keys;
    ``None`` when switched off with ``metajudge: none`` (or ``RALIGN_METAJUDGE=none``)."""
    switch = metadata.get(METAJUDGE_SWITCH, os.environ.get("RALIGN_METAJUDGE", ""))
    if str(switch).strip().lower() == "none":
        return None
    if f"{METADATA_PREFIX}api_key" in metadata:
        raise ConfigError(
            f"pass the meta-judge API key as {METAJUDGE_ENV_PREFIX}API_KEY in the environment, "
            "not in --metadata: lm-eval writes the metadata into its results file"
        )
    overrides = {
        key.removeprefix(METADATA_PREFIX): value
        for key, value in metadata.items()
        if key.startswith(METADATA_PREFIX)
    }
    config = EndpointConfig.from_sources(METAJUDGE_ENV_PREFIX, overrides)
    if not config.model:
        raise ConfigError(
            f"no meta-judge configured for the R-Align tasks: set {METAJUDGE_ENV_PREFIX}MODEL "
            f"(and {METAJUDGE_ENV_PREFIX}BASE_URL, {METAJUDGE_ENV_PREFIX}API_KEY as needed) or "
            'pass --metadata \'{"metajudge_model": ..., "metajudge_base_url": ...}\'. '
            'For label accuracy alone, pass --metadata \'{"metajudge": "none"}\'.'
        )
    return config


class BatchJudgedTask(ConfigurableTask):
    """A generate-until task whose scoring judges every document's output in one batch after
    generation (``apply_filters``) and stores a JSON record of it as the filtered response,
    which ``process_results`` turns into metric values and lm-eval logs with the samples."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        # lm-eval hands over the whole YAML mapping, including the `class` key that chose us.
        config = {key: value for key, value in (config or {}).items() if key != "class"}
        super().__init__(config=config, **kwargs)
        # Fail before any generation when the scoring settings are unusable.
        self.meta_config = metajudge_config(dict(self.config.metadata or {}))

    def apply_filters(self) -> Any:
        result = super().apply_filters()
        slots = []  # (instance, filter key, output)
        for instance in self.instances:
            for key, response in instance.filtered_resps.items():
                output = response[0] if isinstance(response, list) else response
                slots.append((instance, key, output))
        judged = self.judge_outputs([(instance.doc, output) for instance, _, output in slots])
        for (instance, key, _), record in zip(slots, judged, strict=True):
            instance.filtered_resps[key] = json.dumps(record, ensure_ascii=False)
        return result

    def judge_outputs(self, outputs: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        """One JSON-ready record per (document, output), judged as one batch."""
        raise NotImplementedError

    def process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        return self.document_metrics(json.loads(results[0]))

    def document_metrics(self, judged: dict[str, Any]) -> dict[str, Any]:
        """Per-document metric values of one judged record."""
        raise NotImplementedError


class RAlignTask(BatchJudgedTask):
    """The R-Align tasks: verdicts parsed, label-correct documents meta-judged at once."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        self.verdict_policy = (self.config.metadata or {}).get("verdict_policy", "official")
        if self.verdict_policy not in VERDICT_POLICIES:
            raise ConfigError(
                f"verdict_policy must be one of {VERDICT_POLICIES}, got {self.verdict_policy!r}"
            )

    def judge_outputs(self, outputs: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        judgments = [
            GenRMJudgment.from_output(PairRecord.from_dict(doc), output, self.verdict_policy)
            for doc, output in outputs
        ]
        verdicts: list[MetaJudgement | None] = [None] * len(judgments)
        if self.meta_config is not None:
            verdicts, stats = judge_all(judgments, self.meta_config)
            logger.info("%s: %s", self.config.task, stats.summary("meta-judge"))
        return [judged_response(j, m) for j, m in zip(judgments, verdicts, strict=True)]

    def document_metrics(self, judged: dict[str, Any]) -> dict[str, Any]:
        return document_metrics(judged, judged_by_meta=self.meta_config is not None)


def judged_response(judgment: GenRMJudgment, meta: MetaJudgement | None) -> dict[str, Any]:
    """What the samples log shows as a document's filtered response: the output, the parsed
    verdict and the meta-judge's status, answer and error."""
    return {
        "output": judgment.output,
        "verdict": judgment.verdict,
        "label_correct": judgment.label_correct,
        "meta_status": meta.status.value if meta else None,
        "meta_answer": meta.answer if meta else None,
        "meta_error": meta.error if meta else None,
    }


def document_metrics(judged: Mapping[str, Any], *, judged_by_meta: bool = True) -> dict[str, Any]:
    """Per-document metric values; NaN marks "not part of this metric's denominator", which
    lm-eval's ``nanmean`` skips (S-Corr counts only C and I; F-Score excludes PF and CF)."""
    status = MetaStatus(judged["meta_status"]) if judged["meta_status"] else None
    values: dict[str, Any] = {
        "l_acc": float(judged["label_correct"]),
        "genrm_no_verdict": int(judged["output"] is not None and judged["verdict"] is None),
    }
    if not judged_by_meta:
        return values
    failed = status in (MetaStatus.PARSE_FAIL, MetaStatus.CALL_FAIL)
    values["s_corr"] = (
        float(status is MetaStatus.INCORRECT)
        if status in (MetaStatus.CORRECT, MetaStatus.INCORRECT)
        else NAN
    )
    values["f_score"] = NAN if failed else float(status is MetaStatus.CORRECT)
    values["meta_parse_fail"] = int(status is MetaStatus.PARSE_FAIL)
    values["meta_call_fail"] = int(status is MetaStatus.CALL_FAIL)
    return values


def count(items: Sequence[float]) -> int:
    """Aggregation for failure counts: how many documents had the failure."""
    return int(sum(item for item in items if not math.isnan(item)))


def per_document(items: Any) -> Any:
    """Metric function of the registry entries below: values are computed per document in
    ``process_results`` and pass through unchanged to their aggregation."""
    return items


def register_metric_names(names: Sequence[tuple[str, bool]]) -> None:
    """Register (name, higher_is_better) pairs with lm-eval's metric registry. This spares
    lm-eval a slow, offline-failing search of the HF Evaluate library for each name on every
    task load."""
    for name, higher_is_better in names:
        if name not in metric_registry:
            register_metric(metric=name, higher_is_better=higher_is_better)(per_document)


register_metric_names(
    [
        ("l_acc", True),
        ("s_corr", False),
        ("f_score", True),
        ("genrm_no_verdict", False),
        ("meta_parse_fail", False),
        ("meta_call_fail", False),
    ]
)

"""The lm-eval task of every protocol: dataset, prompt, the batch judge step and metric hooks
for the YAMLs in ``task_configs/``.

lm-eval generates for every document first, then calls ``apply_filters`` once per task and
``process_results`` once per document. :class:`RalignTask` judges every document in one
concurrent batch inside ``apply_filters`` and replaces each filtered response with its
judged-item record, which ``process_results`` turns into per-document values of the protocol's
schema and lm-eval logs with ``--log_samples``.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import datasets
from jinja2 import TemplateError
from lm_eval.api.registry import metric_registry, register_metric
from lm_eval.api.task import ConfigurableTask

from ralign_tasks.data import DataUnavailableError, data_source, keep_named, warn_bad_rows
from ralign_tasks.identity import (
    DEFAULT_MAX_FAILURE_RATE,
    UNUSABLE_EXIT,
    FailureSettings,
    failure_rate,
    flagged_roles,
    tally_failures,
    unusable_block,
)
from ralign_tasks.item import checked_item
from ralign_tasks.judge import JUDGE_SETTINGS, resolve_judge
from ralign_tasks.lm_eval_adapter import compat
from ralign_tasks.pipeline import judge_items
from ralign_tasks.protocols import PROTOCOLS, TASK_KEY, Protocol, get_task, protocol_of
from ralign_tasks.protocols.base import GenRMOutput
from ralign_tasks.scorers.ask import StopRun
from ralign_tasks.scorers.config import METAJUDGE_ENV_PREFIX, ConfigError
from ralign_tasks.scorers.jsonl import json_text
from ralign_tasks.scorers.schema import merged_specs
from ralign_tasks.scorers.settings import (
    SWITCH_NAME,
    JudgeSettings,
    extractor_given,
    given_by_name,
    switched_off,
)

# A document's generation options (JSON) and, in the copy doc_to_text gets for a document's
# later requests, which of its prompts to render.
OPTIONS_KEY = "ralign_options"
PROMPT_INDEX_KEY = "ralign_prompt"
# The failure rule's threshold in --metadata (as the CLI's --max-failure-rate).
MAX_FAILURE_RATE_KEY = "max_failure_rate"
# What a failed task's message tells an lm-eval user to change.
LM_EVAL_SETTINGS = FailureSettings(
    max_failure_rate=f"--metadata '{{\"{MAX_FAILURE_RATE_KEY}\": …}}' (at least this share fails "
    f"a task; default {DEFAULT_MAX_FAILURE_RATE})",
    genrm_max_tokens="max_gen_toks (--gen_kwargs max_gen_toks=…)",
    judge_max_tokens=f"the judge's max_tokens ({METAJUDGE_ENV_PREFIX}MAX_TOKENS, or "
    "--metadata '{\"metajudge_max_tokens\": …}')",
)
logger = logging.getLogger("ralign_tasks.lm_eval")


# The project's own user errors at task load (bad data or settings, a missing judge or
# template): one ``ralign: error`` line and a failing status, not lm-eval's traceback.
_USER_ERRORS = (ConfigError, DataUnavailableError, ValueError, TemplateError)


@contextmanager
def user_errors_stop(task: str) -> Iterator[None]:
    try:
        yield
    except _USER_ERRORS as exc:
        raise SystemExit(f"ralign: error: {task}: {exc}") from None


def load_docs(
    ralign_task: str,
    data_dir: str | None = None,
    sample: bool = False,
    skip_bad_rows: bool = False,
    **metadata: Any,
) -> dict[str, datasets.Dataset]:
    """``custom_dataset`` hook: a task's records as one ``test`` split of flat documents.

    lm-eval passes every ``--metadata`` key (and the model args) here; the data keys are
    ``data_dir`` (default ``RALIGN_DATA_DIR``, then the hub), ``sample`` (the bundled sample),
    ``skip_bad_rows``, the family's group filter (``subset`` or ``domain``: one name or a list)
    and its data options (``split``).
    """
    with user_errors_stop(ralign_task):
        spec = get_task(ralign_task)
        protocol = protocol_of(spec)
        options = protocol.option_values(metadata, spec.task)
        loaded = protocol.load(
            spec,
            data_source(sample, data_dir),
            split=options.get("split"),
            skip_bad_rows=skip_bad_rows,
        )
        warn_bad_rows(loaded.path, loaded.bad_rows)
        group_filter = metadata.get(protocol.group_field) or None
        records = keep_named(loaded.records, protocol.group_field, group_filter, loaded.path)
    # The generation options travel with every document: doc_to_text sees only the document.
    generation = json.dumps({o.name: options[o.name] for o in protocol.options_of("generation")})
    docs = [
        {**protocol.record_to_dict(r), TASK_KEY: spec.task, OPTIONS_KEY: generation}
        for r in records
    ]
    return {"test": datasets.Dataset.from_list(docs)}


def _document(doc: Mapping[str, Any]) -> tuple[Protocol, Any, dict[str, Any]]:
    """A document's protocol, record and generation options."""
    protocol = protocol_of(doc[TASK_KEY])
    options = protocol.option_values(json.loads(doc.get(OPTIONS_KEY) or "{}"), doc[TASK_KEY])
    return protocol, protocol.record_from_dict(doc), options


def doc_to_text(doc: Mapping[str, Any]) -> str:
    """The GenRM prompt of a document's request (the first, unless the document names
    another: a label benchmark asks several per document); only that one is rendered."""
    protocol, record, options = _document(doc)
    return protocol.genrm_prompt(record, options, doc.get(PROMPT_INDEX_KEY, 0))


def doc_to_target(doc: Mapping[str, Any]) -> str:
    protocol = protocol_of(doc[TASK_KEY])
    return protocol.target(protocol.record_from_dict(doc))


def max_failure_rate(metadata: Mapping[str, Any]) -> float:
    """The failure rule's threshold from ``--metadata`` (a share between 0 and 1)."""
    try:
        return failure_rate(metadata.get(MAX_FAILURE_RATE_KEY, DEFAULT_MAX_FAILURE_RATE))
    except ValueError as exc:
        raise ConfigError(f"{MAX_FAILURE_RATE_KEY} {exc}") from None


def _running_lm_eval_cli() -> bool:
    """Whether this process is the ``lm_eval`` command (not a Python program calling
    ``simple_evaluate``, whose process is its own)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return bool(spec and spec.name.startswith("lm_eval")) or os.path.basename(
        sys.argv[0] if sys.argv else ""
    ) in ("lm_eval", "lm-eval")


_unusable: list[str] = []


def _exit_failing() -> None:
    """At the ``lm_eval`` command's exit (its results written and printed): the framed
    message of each task that was not usable again, under lm-eval's table, and exit status
    3. lm-eval has no way for a task to fail the command, so the status is set here
    (``os._exit`` after flushing: the only exit status an exit handler can set)."""
    for block in _unusable:
        print(block, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(UNUSABLE_EXIT)


def _report_unusable(task: str, block: str) -> None:
    """The framed message now (a Python caller's only one), or, for the ``lm_eval`` command,
    a line now and the message under its table at exit, with a failing status."""
    if not _running_lm_eval_cli():
        logger.error("%s", block)
        return
    logger.error("%s: not usable; the reason follows lm-eval's results", task)
    if not _unusable:
        atexit.register(_exit_failing)
    _unusable.append(block)


def judge_config(metadata: Mapping[str, Any]) -> JudgeSettings | None:
    """The judge's settings from ``RALIGN_METAJUDGE_*`` and the ``metajudge_*`` metadata keys
    (see :mod:`ralign_tasks.scorers.settings`); ``None`` when switched off with ``metajudge:
    none`` (or ``RALIGN_METAJUDGE=none``)."""
    if switched_off(metadata.get(SWITCH_NAME)):
        return None
    judge = resolve_judge(
        given_by_name(metadata, JUDGE_SETTINGS, "--metadata"),
        extractor=extractor_given(metadata, "--metadata"),
    )
    if not judge.transport.model:
        raise ConfigError(
            f"no meta-judge configured for the R-Align tasks: set {METAJUDGE_ENV_PREFIX}MODEL "
            f"(and {METAJUDGE_ENV_PREFIX}BASE_URL, {METAJUDGE_ENV_PREFIX}API_KEY as needed) or "
            'pass --metadata \'{"metajudge_model": ..., "metajudge_base_url": ...}\'. '
            'For label accuracy alone, pass --metadata \'{"metajudge": "none"}\'.'
        )
    return judge


class RalignTask(ConfigurableTask):
    """A generate-until task of any protocol: after generation every document's output is
    parsed and judged in one batch (``apply_filters``), and its judged-item record becomes the
    filtered response that ``process_results`` scores and lm-eval logs."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        # lm-eval hands over the whole YAML mapping, including the `class` key that chose us.
        config = {key: value for key, value in (config or {}).items() if key != "class"}
        super().__init__(config=config, **kwargs)
        metadata = dict(self.config.metadata or {})
        # Fail before any generation when the scoring settings are unusable.
        with user_errors_stop(str(self.config.task)):
            self.spec = get_task(self.config.task)
            self.protocol = protocol_of(self.spec)
            self.options = self.protocol.option_values(metadata, self.spec.task)
            self.judge_config = judge_config(metadata) if self.protocol.uses_judge else None
            self.max_failure_rate = max_failure_rate(metadata)
        self._context_settings: dict[str, Any] = {}
        # Set by apply_filters, carried by each document's summary values (see summary).
        self._judged: JudgedItems | None = None
        judge_template = (
            self.protocol.judge_template(self.judge_config) if self.judge_config else None
        )
        # Each metric's standard error is the protocol's own (its bootstrap over items, as
        # the CLI and Inspect report it), not lm-eval's bootstrap of a per-document mean.
        for spec in self.protocol.schema.metrics:
            compat.add_metric(self, compat.stderr_name(spec.name), summary, False)
        with user_errors_stop(self.spec.task):
            self.protocol.check_templates(None, judge_template)

    def build_all_requests(self, **kwargs: Any) -> None:
        self._context_settings = compat.context_settings(kwargs)
        super().build_all_requests(**kwargs)

    def construct_requests(self, doc: dict[str, Any], ctx: Any, **kwargs: Any) -> Any:
        """One generation request per GenRM prompt of the document: the first from lm-eval's
        context, the others from contexts built the same way for the other prompts."""
        first = super().construct_requests(doc, ctx, **kwargs)
        protocol, record, options = _document(doc)
        count = protocol.prompt_count(record, options)
        if count == 1:
            return first
        requests = [first]
        for index in range(1, count):
            context = compat.prompt_context(
                self, {**doc, PROMPT_INDEX_KEY: index}, self._context_settings
            )
            request = super().construct_requests(doc, context, **kwargs)
            requests.append(compat.with_index(request, index))
        return requests

    def apply_filters(self) -> Any:
        result = super().apply_filters()
        # Each document's outputs, per filter, in the order of its prompts.
        documents: dict[tuple[str, int], list[tuple[int, Any, Any]]] = {}
        for instance, key, output in compat.filtered_responses(self):
            documents.setdefault((key, instance.doc_id), []).append(
                (instance.idx, instance, output)
            )
        slots = [sorted(found, key=lambda entry: entry[0]) for found in documents.values()]
        records = [self.protocol.record_from_dict(found[0][1].doc) for found in slots]
        judgments = [
            # lm-eval does not tell a task why generation stopped: truncation is unknown.
            self.protocol.judgment(
                record, [GenRMOutput(output, truncated=None) for _, _, output in found],
                self.options,
            )
            for record, found in zip(records, slots, strict=True)
        ]  # fmt: skip
        try:
            items, stats, _ = judge_items(self.spec, records, judgments, self.judge_config)
        except StopRun as exc:
            # An error every call would repeat, or a judge unreachable for its whole retry
            # budget: one line, not a traceback, and a failing exit status (the answers
            # received are in the cache; a rerun resumes).
            raise SystemExit(f"ralign: error: {self.spec.task}: {exc}") from None
        # What the summary metrics aggregate: each document's value carries this object.
        judged = self._judged = JudgedItems(self.spec.task, [item.item for item in items])
        roles = tally_failures(self.protocol.request_errors(item.item) for item in items)
        flagged = flagged_roles(roles, self.max_failure_rate)
        if flagged:
            # Never a clean-looking number: what the failed role measures is NaN.
            judged.unmeasured = set(self.protocol.unmeasured_metrics(flagged))
            labels = [
                spec.label for spec in map(self.protocol.schema.spec, judged.unmeasured)
                if spec.option is None or self.protocol.option_on(spec.option, self.options)
            ]  # fmt: skip
            judge = self.judge_config
            endpoints = {
                "judge": stats.endpoint if stats else judge and judge.transport.host,
                "extractor": judge and judge.endpoint_of("extractor").host,
            }
            _report_unusable(self.spec.task, unusable_block(
                self.spec.task, flagged, endpoints, self.max_failure_rate, sorted(labels),
                LM_EVAL_SETTINGS,
            ))  # fmt: skip
        for (key, _), found, item in zip(documents, slots, items, strict=True):
            # The document's first request carries its judged-item record.
            compat.replace_filtered_response(found[0][1], key, json_text(item.item))
        return result

    def process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        item = checked_item(json.loads(results[0]))
        values: dict[str, Any] = self.protocol.document_values(
            self.protocol.outcome_from_item(item)
        )
        # A summary metric's per-document value names it and carries the task's judged items
        # (one object shared by every document, so that `summary` computes once per task):
        # lm-eval hands an aggregation only the documents' values, so this is how the items
        # reach it without a module-global table (the documents' own records are in the
        # samples log). Metrics of an option that is off (swap) are not reported at all, and a
        # run without a judge reports what needs none. A metric's stderr follows it (compat).
        reported = {}
        for spec in self.protocol.schema:
            if spec.option is not None and not self.protocol.option_on(spec.option, self.options):
                continue
            if self.judge_config is None and spec.needs_judge:
                continue
            if spec.aggregation == "summary":
                for name in (spec.name, compat.stderr_name(spec.name)):
                    reported[name] = (name, self._judged)
            else:
                reported[spec.name] = values[spec.name]
        return reported


def count(items: Sequence[float]) -> float:
    """Aggregation of counts: how many documents have the fact; NaN when it is unknown for
    every document (e.g. truncation, which lm-eval does not report)."""
    known = [item for item in items if not math.isnan(item)]
    return float(sum(known)) if known or not items else math.nan


@dataclass(eq=False)
class JudgedItems:
    """A task's judged-item records from its ``apply_filters``, and their summary once
    computed: what every document's summary-metric value carries to :func:`summary`."""

    task: str
    items: list[Mapping[str, Any]]
    report: dict[str, Any] | None = None
    # Metrics the run could not measure (a role failed too often): NaN, never a number.
    unmeasured: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        # What lm-eval writes for the value in a logged sample (it str()s what JSON cannot
        # hold): the task, not every item of the run.
        return f"{self.task}: {len(self.items)} judged items"


def summary(items: Sequence[tuple[str, JudgedItems]]) -> float:
    """Aggregation of a ``summary`` metric: the protocol's own metric (or, for
    ``<metric>_stderr``, its standard error) over the task's judged items (NaN where
    undefined), computed once per task for all its summary metrics."""
    if not items:
        return math.nan
    name, judged = items[0]
    if len(judged.items) != len(items):
        raise RuntimeError(
            f"{judged.task}: {len(items)} documents to aggregate but {len(judged.items)} "
            "judged items: the task's filters ran on other documents"
        )
    if judged.report is None:
        protocol = protocol_of(judged.task)
        judged.report = protocol.summarize([protocol.outcome_from_item(i) for i in judged.items])
    metric = name.removesuffix("_stderr")
    if metric in judged.unmeasured:
        return math.nan
    value = judged.report["stderr"][metric] if metric != name else judged.report[name]
    return math.nan if value is None else float(value)


def per_document(items: Any) -> Any:
    """Metric function of the registry entries below: values are computed per document in
    ``process_results`` and pass through unchanged to their aggregation."""
    return items


def register_schema_metrics() -> None:
    """Register every protocol's metric and count names with lm-eval's metric registry. This
    spares lm-eval a slow, offline-failing search of the HF Evaluate library for each name on
    every task load."""
    for name, spec in merged_specs([p.schema for p in PROTOCOLS]).items():
        if name not in metric_registry:
            register_metric(metric=name, higher_is_better=spec.higher_is_better)(per_document)


register_schema_metrics()

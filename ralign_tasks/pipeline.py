"""Any protocol end to end outside the harnesses (``ralign run``, ``score``, ``rc-score``), and the
batch judge step the lm-eval adapter shares: GenRM calls → judgments → one concurrent judge
batch → outcomes and judged-item records → metrics. A run folder holds ``results.json`` and
``samples.jsonl`` (one ``{"doc": record, "item": judged-item record}`` per line), which
``ralign report`` and ``ralign view`` read like the harnesses' outputs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ralign_tasks.protocols import Protocol, TaskSpec, protocol_of
from ralign_tasks.protocols.base import GenRMOutput, ItemRun
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import BatchStats, ChatRequest, run_chat_batch
from ralign_tasks.scorers.jsonl import read_jsonl

RUN_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


@dataclass
class ScoredRun:
    """The items of one task through its protocol, and the metrics over them."""

    spec: TaskSpec
    records: list[Any]
    items: list[ItemRun[Any, Any]]
    report: dict[str, Any]
    genrm_stats: BatchStats | None = None
    judge_stats: BatchStats | None = None

    @property
    def protocol(self) -> Protocol[Any, Any, Any]:
        return protocol_of(self.spec)

    def samples(self) -> list[dict[str, Any]]:
        """One ``{"doc", "item"}`` row per item, as ``samples.jsonl`` holds them."""
        return [
            {"doc": self.protocol.record_to_dict(record), "item": run.item}
            for record, run in zip(self.records, self.items, strict=True)
        ]


def generate_outputs(
    spec: TaskSpec,
    records: Sequence[Any],
    config: EndpointConfig,
    options: Mapping[str, Any] | None = None,
    template: str | None = None,
) -> tuple[list[list[GenRMOutput]], BatchStats]:
    """Ask the GenRM every prompt of every record (concurrent, cached, retried like the
    judge), and once more where the protocol asks a follow-up question after an answer; the
    outputs of each record in the order of its prompts."""
    protocol = protocol_of(spec)
    options = protocol.option_values(options or {}, spec.task)
    prompts = [protocol.genrm_prompts(record, options, template) for record in records]
    samples = protocol.samples(options)
    requests = [
        ChatRequest(
            str(config.model),
            prompt,
            config.temperature,
            config.max_tokens,
            with_reasoning=True,
            # Repeated sampling: the k-th repeat of an item's prompts is its own request (and
            # cache key); otherwise identical prompts are asked once.
            sample=index // (len(item) // samples),
        )
        for item in prompts
        for index, prompt in enumerate(item)
    ]
    calls, stats = run_chat_batch(requests, config, description="GenRM")
    outputs = [
        GenRMOutput(call.value, call.finish_reason == "length")
        if call.ok
        else GenRMOutput(None, False, call.error)
        for call in calls
    ]
    follow_ups = [
        (index, question)
        for index, output in enumerate(outputs)
        if output.text is not None
        and (question := protocol.follow_up(options, output.text)) is not None
    ]
    if follow_ups:
        second = [
            replace(
                requests[index],
                prompt=question,
                history=(("user", requests[index].prompt), ("assistant", str(outputs[index].text))),
            )
            for index, question in follow_ups
        ]
        answers, more = run_chat_batch(second, config, description="GenRM follow-up")
        stats.add(more)
        for (index, _), call in zip(follow_ups, answers, strict=True):
            if call.ok:  # a failed follow-up leaves the first answer, which has no verdict
                first = outputs[index]
                outputs[index] = GenRMOutput(
                    f"{first.text}\n{call.value}", call.finish_reason == "length"
                )
    grouped, start = [], 0
    for item in prompts:
        grouped.append(outputs[start : start + len(item)])
        start += len(item)
    return grouped, stats


def judge_items(
    spec: TaskSpec,
    records: Sequence[Any],
    judgments: Sequence[Any],
    config: EndpointConfig | None,
) -> tuple[list[ItemRun[Any, Any]], BatchStats | None]:
    """Send every request the protocol wants judged (each item's slots) to the judge in one
    concurrent batch (none when ``config`` is ``None``); outcomes and judged-item records of
    all items, in order."""
    protocol = protocol_of(spec)
    calls: list[list[Any]] = []
    stats = None
    if config is None:
        calls = [[None] * len(protocol.judge_prompts(j)) for j in judgments]
    else:
        template = protocol.judge_template(config)
        prompts = [protocol.judge_prompts(j, template) for j in judgments]
        calls = [[None] * len(slots) for slots in prompts]
        todo = [
            (index, slot)
            for index, slots in enumerate(prompts)
            for slot, prompt in enumerate(slots)
            if prompt is not None
        ]
        requests = [
            ChatRequest(str(config.model), prompts[i][slot], config.temperature, config.max_tokens)
            for i, slot in todo
        ]
        results, stats = run_chat_batch(
            requests,
            config,
            checks=[protocol.check(judgments[i], slot) for i, slot in todo],
            description=protocol.judge_step.replace("_", "-"),
        )
        for (index, slot), result in zip(todo, results, strict=True):
            calls[index][slot] = result
    items = [
        protocol.run_item(
            spec.task, record, judgment, item_calls, config is not None,
            config.model if config else None,
        )
        for record, judgment, item_calls in zip(records, judgments, calls, strict=True)
    ]  # fmt: skip
    return items, stats


def score_outputs(
    spec: TaskSpec,
    records: Sequence[Any],
    outputs: Sequence[Sequence[GenRMOutput]],
    judge_config: EndpointConfig | None,
    options: Mapping[str, Any] | None = None,
) -> ScoredRun:
    """Parse the GenRM outputs (those of each record, in the order of its prompts), judge
    what the protocol sends (unless ``judge_config`` is ``None``) and compute the metrics
    overall and per group."""
    protocol = protocol_of(spec)
    options = protocol.option_values(options or {}, spec.task)
    judgments = [
        protocol.judgment(record, output, options)
        for record, output in zip(records, outputs, strict=True)
    ]
    return score_judgments(spec, records, judgments, judge_config)


def score_judgments(
    spec: TaskSpec,
    records: Sequence[Any],
    judgments: Sequence[Any],
    judge_config: EndpointConfig | None,
) -> ScoredRun:
    """Judge already parsed judgments (e.g. a reference model's stored checklists) and compute
    the metrics."""
    items, stats = judge_items(spec, records, judgments, judge_config)
    report = protocol_of(spec).report([item.outcome for item in items])
    return ScoredRun(spec, list(records), items, report, judge_stats=stats)


def write_run(
    run: ScoredRun, folder: str | os.PathLike[str], genrm: str, settings: dict[str, Any]
) -> Path:
    """``folder/results.json`` (task, GenRM, settings, metrics, usage) and
    ``folder/samples.jsonl``; NaN is refused: an undefined metric must be null."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "ralign_run": RUN_VERSION,
        "task": run.spec.task,
        "genrm": genrm,
        "created": time.time(),
        "settings": settings,
        "metrics": run.report,
        "usage": {
            "genrm": run.genrm_stats.as_dict() if run.genrm_stats else None,
            "judge": run.judge_stats.as_dict() if run.judge_stats else None,
        },
    }
    (folder / RESULTS_FILE).write_text(
        json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    with open(folder / SAMPLES_FILE, "w", encoding="utf-8") as handle:
        for row in run.samples():
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return folder


def is_run_results(data: Any) -> bool:
    """Whether parsed JSON is the ``results.json`` of a run folder."""
    return isinstance(data, dict) and data.get("ralign_run") == RUN_VERSION


def read_outputs_file(path: str | os.PathLike[str]) -> dict[str, list[str | None]]:
    """Read precomputed GenRM outputs: JSONL rows ``{"id": …, "output": …}`` (output may be null
    for a failed call), or ``{"id": …, "outputs": [...]}`` for a family that asks several
    prompts per item (in the order of its prompts). Errors name file and line."""
    outputs: dict[str, list[str | None]] = {}
    for line_no, row in read_jsonl(path):
        if not isinstance(row, dict) or "id" not in row or not ({"output", "outputs"} & set(row)):
            raise ValueError(f"{path}:{line_no}: expected an object with 'id' and 'output'")
        texts = row["outputs"] if "outputs" in row else [row["output"]]
        if not isinstance(texts, list) or not all(t is None or isinstance(t, str) for t in texts):
            raise ValueError(f"{path}:{line_no}: 'output' must be a string or null")
        key = str(row["id"])
        if key in outputs:
            raise ValueError(f"{path}:{line_no}: duplicate id {key!r}")
        outputs[key] = texts
    return outputs

"""Any protocol end to end outside the harnesses (``ralign run``, ``score``, ``rc-score``), and the
batch judge step the lm-eval adapter shares: GenRM calls → judgments → one concurrent judge
batch → outcomes and judged-item records → metrics. A run folder holds ``results.json`` and
``samples.jsonl`` (one ``{"doc": record, "item": judged-item record}`` per line), which
``ralign report`` and ``ralign view`` read like the harnesses' outputs."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from ralign_tasks.cost import Price
from ralign_tasks.identity import RunIdentity
from ralign_tasks.protocols import TASKS, Protocol, TaskSpec, protocol_of
from ralign_tasks.protocols.base import GenRMOutput, ItemRun, PrepCall
from ralign_tasks.scorers.ask import StopRun
from ralign_tasks.scorers.config import EndpointConfig
from ralign_tasks.scorers.engine import BatchStats, ChatRequest, run_chat_batch
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.jsonl import json_text, read_json_bytes, read_jsonl
from ralign_tasks.scorers.settings import JudgeSettings

RUN_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
# Held (an OS lock) by the one process writing a run folder.
LOCK_FILE = ".ralign.lock"
PARTIAL_SUFFIX = ".partial"
PENDING_SUFFIX = ".pending"


@dataclass
class ScoredRun:
    """Items of one task through its protocol: records, outcomes and judged-item records."""

    spec: TaskSpec
    records: list[Any]
    items: list[ItemRun[Any, Any]]
    genrm_stats: BatchStats | None = None
    judge_stats: BatchStats | None = None
    # The prep steps' totals (extraction, reason types), by step name.
    prep_stats: dict[str, BatchStats] = field(default_factory=dict)


def generate_outputs(
    spec: TaskSpec,
    records: Sequence[Any],
    config: EndpointConfig,
    options: Mapping[str, Any] | None = None,
    template: str | None = None,
    part: str | None = None,
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
    calls, stats = run_chat_batch(requests, config, description="GenRM", part=part)
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
        answers, more = run_chat_batch(second, config, description="GenRM follow-up", part=part)
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


class LazyRequests(Sequence[ChatRequest]):
    """Requests to one endpoint whose prompts are rendered when the engine takes each one in:
    the engine asks the first requests while it takes in the rest, so rendering overlaps the
    calls instead of delaying the first one. ``todo`` has one entry per request."""

    def __init__(self, todo: Sequence[Any], config: EndpointConfig) -> None:
        self.todo, self.config = todo, config

    def prompt_at(self, position: int) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.todo)

    @overload
    def __getitem__(self, position: int) -> ChatRequest: ...

    @overload
    def __getitem__(self, position: slice) -> list[ChatRequest]: ...

    def __getitem__(self, position: int | slice) -> ChatRequest | list[ChatRequest]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        config = self.config
        prompt = self.prompt_at(position)
        return ChatRequest(str(config.model), prompt, config.temperature, config.max_tokens)


class JudgeRequests(LazyRequests):
    """The judge requests of a batch; ``todo`` lists (item, slot) per request."""

    def __init__(
        self,
        protocol: Protocol[Any, Any, Any],
        judgments: Sequence[Any],
        todo: Sequence[tuple[int, int]],
        judge: JudgeSettings,
    ) -> None:
        super().__init__(todo, judge.transport)
        self.protocol, self.judgments = protocol, judgments
        self.template = protocol.judge_template(judge)
        # The prompts of the item rendered last: its other slots follow it (swap runs).
        self._rendered: tuple[int, list[str | None]] = (-1, [])

    def prompt_at(self, position: int) -> str:
        index, slot = self.todo[position]
        if self._rendered[0] != index:
            self._rendered = (index, self.protocol.judge_prompts(self.judgments[index],
                                                                 self.template))  # fmt: skip
        prompt = self._rendered[1][slot]
        assert prompt is not None, "judge_slots and judge_prompts disagree"
        return prompt


class PrepRequests(LazyRequests):
    """The requests of one prep step; ``todo`` lists the items that want the step."""

    def __init__(
        self, prompt: Callable[[Any], str], judgments: Sequence[Any], todo: Sequence[int],
        config: EndpointConfig,
    ) -> None:  # fmt: skip
        super().__init__(todo, config)
        self.prompt, self.judgments = prompt, judgments

    def prompt_at(self, position: int) -> str:
        return self.prompt(self.judgments[self.todo[position]])


def run_prep_steps(
    protocol: Protocol[Any, Any, Any],
    judgments: Sequence[Any],
    judge: JudgeSettings,
    part: str | None = None,
) -> tuple[list[Any], list[list[PrepCall]], dict[str, BatchStats]]:
    """Send each of the protocol's prep steps, in order, as one concurrent batch of the items
    that want it (to its role's endpoint); the judgments completed by their calls, each
    item's calls, and each step's totals."""
    judgments = list(judgments)
    made: list[list[PrepCall]] = [[] for _ in judgments]
    stats: dict[str, BatchStats] = {}
    for step in protocol.prep_steps:
        todo = [index for index, judgment in enumerate(judgments) if step.wanted(judgment)]
        if not todo:
            continue
        config = judge.endpoint_of(step.role)
        results, stats[step.name] = run_chat_batch(
            PrepRequests(step.prompt, judgments, todo, config),
            config,
            checks=[step.check(judgments[index]) for index in todo],
            description=step.name.replace("_", "-"),
            part=part,
        )
        for index, result in zip(todo, results, strict=True):
            judgments[index] = step.apply(judgments[index], result)
            made[index].append(PrepCall(step.name, config.model, result))
    return judgments, made, stats


def judge_items(
    spec: TaskSpec,
    records: Sequence[Any],
    judgments: Sequence[Any],
    judge: JudgeSettings | None,
    part: str | None = None,
) -> tuple[list[ItemRun[Any, Any]], BatchStats | None, dict[str, BatchStats]]:
    """Send the protocol's prep steps (:func:`run_prep_steps`), then every request it wants
    judged (each item's slots) to the judge in one concurrent batch (none of them when
    ``judge`` is ``None``); outcomes and judged-item records of all items, in order, the
    judge step's totals and the prep steps'."""
    protocol = protocol_of(spec)
    prep: list[list[PrepCall]] = [[] for _ in judgments]
    prep_stats: dict[str, BatchStats] = {}
    if judge is not None:
        judgments, prep, prep_stats = run_prep_steps(protocol, judgments, judge, part)
    slots = [protocol.judge_slots(judgment) for judgment in judgments]
    calls: list[list[Any]] = [[None] * len(sent) for sent in slots]
    stats = None
    if judge is not None:
        todo = [
            (index, slot)
            for index, sent in enumerate(slots)
            for slot, on in enumerate(sent)
            if on
        ]  # fmt: skip
        requests = JudgeRequests(protocol, judgments, todo, judge)
        results, stats = run_chat_batch(
            requests,
            judge.transport,
            checks=[protocol.check(judgments[i], slot) for i, slot in todo],
            description=protocol.judge_step.replace("_", "-"),
            part=part,
        )
        for (index, slot), result in zip(todo, results, strict=True):
            calls[index][slot] = result
    items = [
        protocol.run_item(
            spec.task, record, judgment, item_calls, judge is not None,
            judge.transport.model if judge else None, item_prep,
        )
        for record, judgment, item_calls, item_prep in zip(
            records, judgments, calls, prep, strict=True
        )
    ]  # fmt: skip
    return items, stats, prep_stats


def score_outputs(
    spec: TaskSpec,
    records: Sequence[Any],
    outputs: Sequence[Sequence[GenRMOutput]],
    judge_config: JudgeSettings | None,
    options: Mapping[str, Any] | None = None,
    part: str | None = None,
) -> ScoredRun:
    """Parse the GenRM outputs (those of each record, in the order of its prompts) and judge
    what the protocol sends (unless ``judge_config`` is ``None``)."""
    protocol = protocol_of(spec)
    options = protocol.option_values(options or {}, spec.task)
    judgments = [
        protocol.judgment(record, output, options)
        for record, output in zip(records, outputs, strict=True)
    ]
    return score_judgments(spec, records, judgments, judge_config, part)


def score_judgments(
    spec: TaskSpec,
    records: Sequence[Any],
    judgments: Sequence[Any],
    judge_config: JudgeSettings | None,
    part: str | None = None,
) -> ScoredRun:
    """Judge already parsed judgments (e.g. a reference model's stored checklists)."""
    items, stats, prep_stats = judge_items(spec, records, judgments, judge_config, part)
    return ScoredRun(spec, list(records), items, judge_stats=stats, prep_stats=prep_stats)


# Items per step of a run folder's run: each step is asked, judged and written before the next
# one starts, so that a run holds one step's texts at a time, not the whole run's.
RUN_STEP = 2000

StepScorer = Callable[[int, int, "str | None"], ScoredRun]


@dataclass
class FinishedRun:
    """A run folder's run once written: its metrics and the calls' totals."""

    spec: TaskSpec
    report: dict[str, Any]
    genrm_stats: BatchStats | None
    judge_stats: BatchStats | None
    prep_stats: dict[str, BatchStats] = field(default_factory=dict)

    def role_stats(self) -> list[tuple[str, BatchStats]]:
        """Each role's totals (GenRM, each prep step, the judge step) that the run has."""
        found = [("GenRM", self.genrm_stats), *self.prep_stats.items(),
                 ("judge", self.judge_stats)]  # fmt: skip
        return [(role, stats) for role, stats in found if stats is not None]


def _merged(total: BatchStats | None, step: BatchStats | None) -> BatchStats | None:
    if step is None:
        return total
    if total is None:
        return step
    total.add(step)
    return total


class RunFolderBusy(StopRun):
    """Another process is writing the run folder."""


class RunFolderTaken(StopRun):
    """The run folder holds a run of another identity (see :func:`check_run_folder`)."""


def _derived_path(settings: Mapping[str, Any]) -> str:
    """The command that wrote a run folder made before identities were stored, from its
    settings."""
    for key, command in (
        ("rejudged_from", "ralign rejudge"),
        ("judgebench_outputs", "ralign score"),
        ("outputs", "ralign score"),
        ("source", "ralign rc-score"),
    ):
        if settings.get(key):
            return f"{command} {Path(str(settings[key])).name}"
    return "ralign run"


def identity_of_results(data: Mapping[str, Any]) -> RunIdentity:
    """The identity of a run folder's parsed ``results.json``: the one it stores, else (a
    folder of an earlier release) the one its settings describe."""
    stored = RunIdentity.from_dict(data.get("identity"))
    if stored is not None:
        return stored
    settings = data.get("settings") if isinstance(data.get("settings"), Mapping) else {}
    task = str(data.get("task"))
    judge, endpoint = settings.get("meta_judge_model"), settings.get("meta_judge_endpoint")
    return RunIdentity(
        genrm=str(data.get("genrm")),
        task=task,
        options=protocol_of(task).variant(settings) if task in TASKS else "",
        judge=str(judge) if judge else None,
        judge_endpoint=str(endpoint) if judge and endpoint else None,
        path=_derived_path(settings),
    )


def check_run_folder(folder: Path, identity: RunIdentity, overwrite: bool) -> None:
    """Refuse (:class:`RunFolderTaken`) to write a run into a folder whose ``results.json``
    is a run of another identity, or unreadable, unless ``overwrite``: a result is never
    replaced by another measurement without being asked. A rerun of the same identity
    replaces it (the cache makes a rerun cost nothing paid before)."""
    results = folder / RESULTS_FILE
    if overwrite or not results.is_file():
        return
    remedy = "pass --overwrite to replace it, or another --output-dir to keep both"
    try:
        data = read_run_results(results)
    except ValueError as exc:
        raise RunFolderTaken(f"{results} cannot be read ({exc}); {remedy}") from None
    if not is_run_results(data):
        raise RunFolderTaken(f"{results} is not a ralign run's results; {remedy}")
    found = identity_of_results(data)
    if found != identity:
        raise RunFolderTaken(
            f"{folder} holds another run: {found.describe()}; this one is "
            f"{identity.describe()}; {remedy}"
        )


@contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's OS lock for a run, or raise :class:`RunFolderBusy` naming the process
    that holds it. The lock ends with the process, however it ends (kill -9 included)."""
    import fcntl  # POSIX only, like the rest of the run's signal handling

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunFolderBusy(
                f"{folder} is being written by {holder}; wait for it to finish or pass "
                "another --output-dir (two runs in one folder would mix their items)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"ralign process {os.getpid()} (since {time.strftime('%H:%M:%S')})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pending_results(folder: Path, run_id: str) -> Path:
    return folder / f"{RESULTS_FILE}.{run_id}{PENDING_SUFFIX}"


def _samples_run_id(samples: Path) -> str | None:
    """The run id of a samples file's first row (``None`` for an empty or older file)."""
    for _, row in read_jsonl(samples):
        return row.get("run_id") if isinstance(row, dict) else None
    return None


def _waiting_results(folder: Path) -> tuple[str, Path] | None:
    """When a kill cut a commit between its two renames (the samples are the new run's,
    ``results.json`` still the old one's): the new run's id and its results, waiting beside
    them."""
    samples = folder / SAMPLES_FILE
    if not samples.is_file():
        return None
    try:
        run_id = _samples_run_id(samples)
    except ValueError:
        return None  # the samples' reader says what is wrong with them
    pending = _pending_results(folder, run_id) if run_id else None
    return (run_id, pending) if run_id and pending and pending.is_file() else None


def finish_interrupted_commit(folder: Path) -> str | None:
    """Complete a commit that a kill cut between its two renames (see :func:`_waiting_results`);
    the run id of the folder's samples when it did."""
    waiting = _waiting_results(folder)
    if waiting is None:
        return None
    run_id, pending = waiting
    os.replace(pending, folder / RESULTS_FILE)
    return run_id


def read_run_results(results_file: Path) -> dict[str, Any]:
    """A run folder's results, as its samples see them: after a commit cut between its two
    renames, the results waiting beside them (read, not moved: only the folder's writer moves
    files)."""
    waiting = _waiting_results(results_file.parent)
    _, data = read_json_bytes(waiting[1] if waiting else results_file)
    return data


def samples_row_of(run_id: str | None) -> Callable[[dict[str, Any]], tuple[Any, Any]]:
    """The record and judged-item record of a run folder's samples row, which must carry the
    folder's run id (rows written before run ids carry none and are taken as they are)."""

    def record_and_item(row: dict[str, Any]) -> tuple[Any, Any]:
        found = row.get("run_id")
        if run_id and found != run_id:
            raise UserError(
                f"a row of another run ({found}) than its results.json ({run_id}): two runs "
                "wrote this folder, or a copy mixed two folders"
            )
        return row["doc"], row["item"]

    return record_and_item


def _write_durably(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def run_in_steps(
    spec: TaskSpec,
    count: int,
    score_step: StepScorer,
    folder: str | os.PathLike[str],
    identity: RunIdentity,
    settings: dict[str, Any],
    overwrite: bool = False,
) -> FinishedRun:
    """Score ``count`` items in steps of :data:`RUN_STEP` (``score_step(start, stop, part)``
    scores items ``start:stop``; ``part`` names the step when there are several) and write
    each step's samples the moment it is scored, keeping only outcomes; then the metrics.

    One process writes a folder at a time (:func:`run_folder_lock`). Every samples row and
    ``results.json`` carry the run's id. The samples grow in a file of this run's own
    (``samples.jsonl.<id>.partial``: an interrupted run leaves its finished items there, and
    their answers in the cache); the commit writes ``results.json.<id>.pending``, then renames
    the samples, then the results, so that a kill at any instant leaves the old pair or the new
    one (a kill between the renames is completed by the next reader or run, see
    :func:`finish_interrupted_commit`).

    A folder holding a run of another identity is refused before any call unless
    ``overwrite`` (:func:`check_run_folder`).
    """
    folder = Path(folder)
    with run_folder_lock(folder):
        finish_interrupted_commit(folder)
        check_run_folder(folder, identity, overwrite)
        return _run_locked(spec, count, score_step, folder, identity, settings)


def _priced(
    usage: dict[str, dict[str, Any] | None], prices: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any] | None]:
    """Each role's usage with what its spent tokens cost at its price (answers replayed from
    the cache cost nothing, a provider batch's at its discount: :meth:`Price.billed`);
    ``cost_usd`` is null for a role without a price."""
    for role, stats in usage.items():
        if stats is None:
            continue
        price = prices.get(role)
        stats["cost_usd"] = None if price is None else Price.from_dict(price).billed(stats)
    return usage


def _run_locked(
    spec: TaskSpec,
    count: int,
    score_step: StepScorer,
    folder: Path,
    identity: RunIdentity,
    settings: dict[str, Any],
) -> FinishedRun:
    protocol = protocol_of(spec)
    run_id = uuid.uuid4().hex
    partial = folder / f"{SAMPLES_FILE}.{run_id}{PARTIAL_SUFFIX}"
    outcomes: list[Any] = []
    genrm_stats = judge_stats = None
    prep_stats: dict[str, BatchStats] = {}
    starts = range(0, count, RUN_STEP)
    with open(partial, "w", encoding="utf-8") as handle:
        for number, start in enumerate(starts, start=1):
            part = f"[{number}/{len(starts)}]" if len(starts) > 1 else None
            step = score_step(start, min(start + RUN_STEP, count), part)
            for record, item in zip(step.records, step.items, strict=True):
                row = {"run_id": run_id, "doc": protocol.record_to_dict(record), "item": item.item}
                handle.write(json_text(row) + "\n")
                outcomes.append(item.outcome)
            handle.flush()
            genrm_stats = _merged(genrm_stats, step.genrm_stats)
            judge_stats = _merged(judge_stats, step.judge_stats)
            for name, stats in step.prep_stats.items():
                prep_stats[name] = _merged(prep_stats.get(name), stats)  # type: ignore[assignment]
        os.fsync(handle.fileno())
    if len(starts) > 1:  # the run's totals (each step logged its own at debug level)
        for role, stats in (("GenRM", genrm_stats), *prep_stats.items(),
                            (protocol.judge_step, judge_stats)):  # fmt: skip
            if stats is not None:
                stats.log(role.replace("_", "-"))
    run = FinishedRun(spec, protocol.report(outcomes), genrm_stats, judge_stats, prep_stats)
    results = {
        "ralign_run": RUN_VERSION,
        "run_id": run_id,
        "task": spec.task,
        "genrm": identity.genrm,
        "identity": identity.to_dict(),
        "created": time.time(),
        "settings": settings,
        "metrics": run.report,
        "usage": _priced(
            {
                "genrm": genrm_stats.as_dict() if genrm_stats else None,
                "judge": judge_stats.as_dict() if judge_stats else None,
                **{name: stats.as_dict() for name, stats in prep_stats.items()},
            },
            settings.get("prices") or {},
        ),
    }
    pending = _pending_results(folder, run_id)
    _write_durably(pending, json_text(results, indent=2) + "\n")
    os.replace(partial, folder / SAMPLES_FILE)
    os.replace(pending, folder / RESULTS_FILE)
    # What earlier interrupted runs left: their items (their answers are in the cache), and
    # results whose samples never replaced the folder's.
    for stale in [
        *folder.glob(f"{SAMPLES_FILE}.*{PARTIAL_SUFFIX}"),
        *folder.glob(f"{RESULTS_FILE}.*{PENDING_SUFFIX}"),
    ]:
        stale.unlink()
    return run


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
            raise UserError(f"{path}:{line_no}: expected an object with 'id' and 'output'")
        texts = row["outputs"] if "outputs" in row else [row["output"]]
        if not isinstance(texts, list) or not all(t is None or isinstance(t, str) for t in texts):
            raise UserError(f"{path}:{line_no}: 'output' must be a string or null")
        key = str(row["id"])
        if key in outputs:
            raise UserError(f"{path}:{line_no}: duplicate id {key!r}")
        outputs[key] = texts
    return outputs

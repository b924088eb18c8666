"""What a benchmark family is: the :class:`Protocol` each family implements once, and the
:class:`TaskSpec` of each of its tasks.

Data flows one way through a protocol: record → GenRM prompt → (the harness runs the GenRM)
→ :meth:`Protocol.judgment` (parse the output) → :meth:`Protocol.judge_prompt` (the judge
request, if any) → the judge's answer, asked until :meth:`Protocol.check` accepts it →
:meth:`Protocol.outcome` → :meth:`Protocol.summarize` (metrics of the family's schema). The
lm-eval and Inspect adapters, the CLI, the report and the viewer only call these methods, and
every path stores the same judged-item record (:meth:`Protocol.item`), so identical outputs
give identical numbers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from ralign_tasks.data import LoadResult, locate_data_file, read_jsonl_records
from ralign_tasks.item import ITEM_VERSION
from ralign_tasks.prompts import load_template
from ralign_tasks.records import record_dict, record_of
from ralign_tasks.scorers.ask import JudgeCall
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.lazy_modules import lazy_import
from ralign_tasks.scorers.schema import Schema
from ralign_tasks.scorers.settings import JudgeSettings
from ralign_tasks.scorers.stats import paired_units

# Loaded when a metric is first compared (see scorers/lazy_modules.py).
np = lazy_import("numpy")

RecordT = TypeVar("RecordT")
JudgmentT = TypeVar("JudgmentT")
OutcomeT = TypeVar("OutcomeT")


@dataclass(frozen=True)
class TaskSpec:
    """One task: its names, where its data lives and the family that scores it.

    ``files`` maps each split to its file name (under ``data/`` of the dataset, or directly in
    a local folder); ``folder`` is the CLI's output folder for it.
    """

    task: str
    family: str
    title: str
    files: Mapping[str, str]
    folder: str
    hf_dataset: str
    hf_revision: str = "main"
    aliases: tuple[str, ...] = ()
    # Other names a split's file may have in a local folder (the official repository's names
    # where they differ from the hub's), tried after ``files``.
    local_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The folder of ``files`` in the hub dataset (``""``: its root).
    hub_folder: str = "data"

    @property
    def short(self) -> str:
        """The name tables print (``helpsteer3``, ``rewardbench2``); accepted as input too."""
        return self.task.removeprefix("ralign_")

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that selects this task."""
        return tuple(dict.fromkeys((self.task, self.short, *self.aliases)))

    @property
    def default_split(self) -> str:
        return next(iter(self.files))

    def file_name(self, split: str) -> str:
        if split not in self.files:
            raise UserError(
                f"{self.task}: split must be one of {sorted(self.files)}, got {split!r}"
            )
        return self.files[split]

    def file_names(self, split: str) -> tuple[str, ...]:
        """Every name the split's file may have in a local folder, the hub's first."""
        return (self.file_name(split), *self.local_files.get(split, ()))


@dataclass(frozen=True)
class Option:
    """A setting of a family beyond the common ones (task parameter, lm-eval metadata key, CLI
    option): ``data`` settings choose what is loaded (``split``), ``generation`` settings what
    the GenRM is asked (``verdict_format``, ``mode``, ``seed``; every record carries them to
    the scorer), ``scoring`` settings how outputs are read (``verdict_policy``; also a
    parameter of the Inspect scorer). An ``int`` option accepts whole numbers only, a
    ``bool`` option true or false (as strings too, as a command line gives them)."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    stage: Literal["data", "generation", "scoring"] = "scoring"
    kind: type = str

    def validate(self, value: Any, where: str) -> Any:
        if self.kind is bool:
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            if not isinstance(value, bool):
                raise UserError(f"{where}: {self.name} must be true or false, got {value!r}")
        if self.kind is int:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{where}: {self.name} must be a whole number, got {value!r}")
        if self.choices and value not in self.choices:
            raise UserError(f"{where}: {self.name} must be one of {self.choices}, got {value!r}")
        return value


@dataclass
class GenRMOutput:
    """What the GenRM produced for one item: its text (``None`` if its call failed), whether
    it was cut off at the token limit (``None`` when the harness does not say), and the error
    of a failed call."""

    text: str | None
    truncated: bool | None = False
    error: str | None = None


# The judge calls of one item, one per judge request slot (``None``: that slot not sent).
JudgeCalls = Sequence["JudgeCall[Any] | None"]

# Who answers a request: the meta-judge, or the extractor (whose settings default to the
# meta-judge's; see ralign_tasks.scorers.settings).
Role = Literal["judge", "extractor"]


@dataclass(frozen=True)
class PrepStep(Generic[JudgmentT]):
    """A request made before the family's judge step whose answer completes the judgment:
    the extractor lists a free-form rationale's reasons, the judge names each reason's type.
    Every path sends an item's prep steps in order, each through the one ask-until-valid loop
    (the CLI and lm-eval as one concurrent, cached batch per step), and records each call in
    the judged-item record under the step's ``name``."""

    name: str
    role: Role
    # Whether an item needs the step (its judgment says so).
    wanted: Callable[[JudgmentT], bool]
    prompt: Callable[[JudgmentT], str]
    # The parser of the answer (raises InvalidAnswer to have it asked again); its value is
    # plain JSON.
    check: Callable[[JudgmentT], Callable[[str], Any]]
    # The judgment completed with the step's call.
    apply: Callable[[JudgmentT, JudgeCall[Any]], JudgmentT]


@dataclass(frozen=True)
class PrepCall:
    """One prep step's call of an item, and the model that answered it."""

    step: str
    model: str | None
    call: JudgeCall[Any]


def latest_call(
    judge: Sequence[Mapping[str, Any]], slot: int = 0, step: str | None = None
) -> Mapping[str, Any]:
    """The last call of one judge slot in a judged-item record's ``judge`` list (an empty
    mapping where none was made; a call that names no slot answers the first), of the
    ``step`` named (default: any step)."""
    calls = [
        call for call in judge
        if call.get("slot", 0) == slot and (step is None or call.get("step") == step)
    ]  # fmt: skip
    return calls[-1] if calls else {}


@dataclass(frozen=True)
class InstanceScore:
    """One item's own score, as a per-item export lists it: the metric it counts toward, its
    value there and whether the GenRM's answer was right (Every Eval Ever's ``evaluation``)."""

    metric: str
    score: float
    correct: bool


@dataclass
class ItemRun(Generic[JudgmentT, OutcomeT]):
    """One item through a protocol: its judgment, its judge calls (one per slot of
    :meth:`Protocol.judge_prompts`, ``None`` where not sent), its outcome and its judged-item
    record."""

    judgment: JudgmentT
    calls: JudgeCalls
    outcome: OutcomeT
    item: dict[str, Any] = field(default_factory=dict)


class Protocol(ABC, Generic[RecordT, JudgmentT, OutcomeT]):
    """A benchmark family, defined once. Subclasses set the class attributes and implement the
    abstract methods; everything else is generic."""

    name: ClassVar[str]
    title: ClassVar[str]
    # The Inspect scorer's registered name (``inspect score --scorer ralign_tasks/<name>``).
    scorer_name: ClassVar[str]
    # The judge step's name in judged-item records (``""``: the family has no judge step).
    judge_step: ClassVar[str] = ""
    # Requests sent before the judge step, in order (see PrepStep); run only with a judge.
    prep_steps: ClassVar[tuple[PrepStep[Any], ...]] = ()
    schema: ClassVar[Schema]
    # The record attribute that groups items for per-group metrics; also the name of the filter
    # option (``subset`` / ``domain``).
    group_field: ClassVar[str]
    tasks: ClassVar[tuple[TaskSpec, ...]]
    # Family settings: task parameters, lm-eval metadata keys, CLI options.
    options: ClassVar[tuple[Option, ...]] = ()
    # Official GenRM generation settings (overridable in every harness).
    genrm_temperature: ClassVar[float] = 0.4
    genrm_max_tokens: ClassVar[int] = 8192
    # The bundled prompt templates, the environment variable that replaces the GenRM's (if
    # any), and the key of the judge setting that replaces the judge's (``template``:
    # ``--metajudge-template``, ``RALIGN_METAJUDGE_TEMPLATE``, ``metajudge_template``; see
    # :mod:`ralign_tasks.scorers.settings`); a family without a judge step has no judge template.
    genrm_template_file: ClassVar[str]
    judge_template_file: ClassVar[str | None] = None
    genrm_template_env: ClassVar[str | None] = None
    judge_template_setting: ClassVar[str | None] = None

    @property
    def uses_judge(self) -> bool:
        """Whether items go to a judge (meta-judge, MetaJudge); the label benchmarks score the
        GenRM's verdicts alone, and no harness asks for a judge for them."""
        return bool(self.judge_step)

    # The three R-Align fidelity benchmarks: what `ralign run` runs when given no names.
    run_by_default: ClassVar[bool] = False
    # The family's record: a frozen dataclass whose fields give its document form
    # (see ralign_tasks.records).
    record_type: ClassVar[type]

    # --- judgments made elsewhere (scored without asking the GenRM) ----------------------

    def reference_judgments(
        self,
        records: Sequence[RecordT],
        model: str,
        options: Mapping[str, Any],
        extract: bool = False,
    ) -> list[JudgmentT]:
        """The judgments of a reference model whose outputs the data carries (``ralign
        rc-score --reference``; ``extract``: its reasons extracted from its text)."""
        raise UserError(f"{self.title}: its data carries no reference model outputs")

    def official_outputs(
        self, path: str
    ) -> tuple[list[RecordT], list[JudgmentT], str, dict[str, Any]]:
        """The records, judgments, judge name and options of one of the benchmark's own
        judge-output files (``ralign score --judgebench-outputs``)."""
        raise UserError(f"{self.title}: there are no official judge-output files to score")

    def official_line(self, report: Mapping[str, Any]) -> str | None:
        """The headline numbers as the benchmark's own code prints them (``None``: none)."""
        return None

    # --- records ---------------------------------------------------------------------------

    @abstractmethod
    def parse_row(self, row: Any, line: int, spec: TaskSpec, split: str) -> RecordT:
        """Validate one decoded JSON row; ``ValueError`` naming the problem."""

    def record_from_dict(self, data: Mapping[str, Any]) -> RecordT:
        """A record from its :meth:`record_to_dict` form (an lm-eval document, Inspect sample
        metadata), derived from :attr:`record_type`'s fields."""
        return record_of(self.record_type, data)

    def record_to_dict(self, record: RecordT) -> dict[str, Any]:
        """The record as plain JSON types, derived from its fields."""
        return record_dict(record)

    def load(
        self,
        spec: TaskSpec,
        data_dir: str | os.PathLike[str] | None,
        *,
        split: str | None = None,
        skip_bad_rows: bool = False,
    ) -> LoadResult:
        """Validated records of one task's split: ``data_dir``, else ``RALIGN_DATA_DIR``, else
        the Hugging Face dataset at the task's revision (``RALIGN_HF_REVISION`` overrides it)."""
        split = split or spec.default_split
        path = locate_data_file(
            spec.file_names(split), spec.task, data_dir, spec.hf_dataset, spec.hf_revision,
            spec.hub_folder,
        )  # fmt: skip
        records, bad_rows = read_jsonl_records(
            path,
            lambda row, line: self.parse_row(row, line, spec, split),
            skip_bad_rows=skip_bad_rows,
        )
        return LoadResult(spec.task, str(path), records, bad_rows)

    def group_of(self, record: RecordT) -> str:
        return str(getattr(record, self.group_field))

    # --- the GenRM -------------------------------------------------------------------------

    def prompt_count(self, record: RecordT, options: Mapping[str, Any]) -> int:
        """How many prompts the GenRM gets for one item: one for most families; a label
        benchmark asks several (both orders of a pair, the nine style cells of an item, each
        completion to rate), a swap or repeated run more. ``options`` are the family's."""
        return 1

    @abstractmethod
    def genrm_prompt(
        self, record: RecordT, options: Mapping[str, Any], index: int, template: str | None = None
    ) -> str:
        """The ``index``-th GenRM prompt of one item (one user message), of
        :meth:`prompt_count`, in a fixed order: a harness renders only what it sends."""

    def genrm_prompts(
        self, record: RecordT, options: Mapping[str, Any], template: str | None = None
    ) -> list[str]:
        """Every GenRM prompt of one item, in order."""
        count = self.prompt_count(record, options)
        return [self.genrm_prompt(record, options, i, template) for i in range(count)]

    def asks_several(self, options: Mapping[str, Any]) -> bool:
        """Whether an item may need more than one GenRM request under ``options`` (several
        prompts, or a follow-up question): Inspect then asks them in a solver of its own
        instead of one ``generate()``."""
        return False

    def samples(self, options: Mapping[str, Any]) -> int:
        """How many times an item's prompts are repeated (:meth:`prompt_count`) to sample the GenRM
        again (repeated sampling; 1: no repeats, and identical prompts are asked once)."""
        return 1

    def follow_up(self, options: Mapping[str, Any], answer: str) -> str | None:
        """A second user turn after the GenRM's first ``answer`` to a prompt, where the
        protocol asks once more (``None``: no second turn, the default). A harness that
        allows a second turn sends it and hands :meth:`judgment` both answers joined by a
        newline."""
        return None

    @abstractmethod
    def target(self, record: RecordT) -> str:
        """The harness's target string (the better answer, or ``""``)."""

    @abstractmethod
    def judgment(
        self, record: RecordT, outputs: Sequence[GenRMOutput], options: Mapping[str, Any]
    ) -> JudgmentT:
        """What the GenRM said about one item, parsed: ``outputs`` answer its prompts
        (:meth:`genrm_prompt`), in their order."""

    # --- prompt templates ------------------------------------------------------------------

    def judge_template(self, judge: JudgeSettings) -> str | None:
        """This family's judge template in the judge's settings (``None``: the bundled one)."""
        return judge.template(self.judge_template_setting)

    def genrm_template_files(self) -> tuple[str, ...]:
        """The bundled templates the family may render besides its judge template: the GenRM's,
        and those of its prep steps and extra judge questions (all are checked up front)."""
        return (self.genrm_template_file,)

    def check_templates(self, genrm: str | None, judge: str | None) -> None:
        """Compile the prompt templates a run will use, so that a missing or broken file
        stops it before any generation (``FileNotFoundError``, ``jinja2.TemplateError``)."""
        env = os.environ.get(self.genrm_template_env) if self.genrm_template_env else None
        if genrm or env:
            load_template(genrm or env, self.genrm_template_file)
        for name in self.genrm_template_files():
            load_template(None, name)
        if self.judge_template_file is not None:
            load_template(judge, self.judge_template_file)

    # --- the judge -------------------------------------------------------------------------

    @abstractmethod
    def judge_slots(self, judgment: JudgmentT) -> list[bool]:
        """Which of the item's judge slots are sent, without rendering a prompt (a batch
        renders each prompt only when it takes the request in); empty for a family without a
        judge."""

    @abstractmethod
    def judge_prompts(self, judgment: JudgmentT, template: str | None = None) -> list[str | None]:
        """The judge requests of one item, one per slot, ``None`` where :meth:`judge_slots`
        says the slot is not sent (an item of a swapped run has one slot per order)."""

    @abstractmethod
    def check(self, judgment: JudgmentT, slot: int) -> Callable[[str], Any]:
        """The parser of the judge's answer to one slot: returns the answer's value, or raises
        :class:`~ralign_tasks.scorers.ask.InvalidAnswer` to have it asked again."""

    @abstractmethod
    def outcome(self, judgment: JudgmentT, calls: JudgeCalls, judged: bool) -> OutcomeT:
        """The scored facts of one item. ``calls`` answer :meth:`judge_prompts` slot by slot
        (``None`` where not sent); ``judged`` is false when the run has no judge at all."""

    @abstractmethod
    def explain(self, judgment: JudgmentT, calls: JudgeCalls) -> str:
        """One readable paragraph on how the item was scored."""

    # --- the judged-item record ------------------------------------------------------------

    @abstractmethod
    def genrm_fields(self, judgment: JudgmentT) -> dict[str, Any]:
        """The GenRM part of the judged-item record (``output``, ``verdict``, …)."""

    def stored_outputs(self, genrm: Mapping[str, Any]) -> list[GenRMOutput]:
        """The GenRM outputs of an item, one per prompt, from the ``genrm`` part of its
        judged-item record (re-judging a finished run makes no GenRM call)."""
        return [GenRMOutput(genrm["output"], genrm.get("truncated"), genrm.get("error"))]

    def request_errors(self, item: Mapping[str, Any]) -> dict[str, list[str | None]]:
        """Per role (``GenRM``, ``judge``), one entry per request an item's judged-item record
        shows (a judge slot's last call): ``None`` where it was answered, else its error."""
        outputs = [o for o in self.stored_outputs(item["genrm"]) if o.text is not None or o.error]
        latest = {(call.get("step"), call.get("slot", 0)): call for call in item["judge"]}
        errors: dict[str, list[str | None]] = {
            "GenRM": [None if o.text is not None else str(o.error) for o in outputs],
            "judge": [],
        }
        for (step, _), call in latest.items():
            errors.setdefault(self.role_of(step), []).append(
                None if call.get("ok") else str(call.get("error") or "no answer")
            )
        return errors

    def role_of(self, step: str | None) -> Role:
        """Who answers a step's requests (the judge step's: the judge)."""
        return next((s.role for s in self.prep_steps if s.name == step), "judge")

    def unmeasured_metrics(self, roles: Iterable[str]) -> list[str]:
        """The metrics a run cannot measure when these roles failed too often: every metric
        when the GenRM did, those that need the judge when the judge or the extractor (which
        feeds it) did."""
        roles = set(roles)
        return [
            spec.name for spec in self.schema.metrics
            if "GenRM" in roles or (roles & {"judge", "extractor"} and spec.needs_judge)
        ]  # fmt: skip

    @abstractmethod
    def judge_value(self, value: Any) -> Any:
        """A judge answer's value (from :meth:`check`) as plain JSON."""

    @abstractmethod
    def outcome_to_dict(self, outcome: OutcomeT) -> dict[str, str | int | float | bool | None]:
        """The outcome as one flat mapping (also Inspect's score value)."""

    @abstractmethod
    def outcome_from_item(self, item: Mapping[str, Any]) -> OutcomeT:
        """The outcome stored in a judged-item record."""

    def item(
        self,
        task: str,
        record: RecordT,
        judgment: JudgmentT,
        calls: JudgeCalls,
        outcome: OutcomeT,
        judge_model: str | None = None,
        prep: Sequence[PrepCall] = (),
    ) -> dict[str, Any]:
        """The judged-item record: what every path writes per item (the CLI's samples.jsonl,
        lm-eval's filtered response, Inspect's score metadata) and the report reads. Its
        ``judge`` list has one entry per call made, with the ``step`` and ``slot`` it answers:
        the prep steps' first, in order."""
        steps = [
            {
                "step": made.step,
                "slot": 0,
                "model": made.model,
                **made.call.to_dict(),
                "value": made.call.value if made.call.ok else None,
            }
            for made in prep
        ]
        judge = [
            {
                "step": self.judge_step,
                "slot": slot,
                "model": judge_model,
                **call.to_dict(),
                "value": self.judge_value(call.value) if call.ok else None,
            }
            for slot, call in enumerate(calls)
            if call is not None
        ]
        return {
            "ralign_item": ITEM_VERSION,
            "task": task,
            "id": record.id,
            "subset": self.group_of(record),
            "label": record.label,
            "genrm": self.genrm_fields(judgment),
            "judge": [*steps, *judge],
            "outcome": self.outcome_to_dict(outcome),
        }

    def run_item(
        self,
        task: str,
        record: RecordT,
        judgment: JudgmentT,
        calls: JudgeCalls,
        judged: bool,
        judge_model: str | None = None,
        prep: Sequence[PrepCall] = (),
    ) -> ItemRun[JudgmentT, OutcomeT]:
        """Outcome and judged-item record of one item whose judge calls (if any) are done
        (``judgment`` completed by its ``prep`` calls)."""
        outcome = self.outcome(judgment, calls, judged)
        item = self.item(task, record, judgment, calls, outcome, judge_model, prep)
        return ItemRun(judgment, calls, outcome, item)

    def variant(self, given: Mapping[str, Any]) -> str:
        """The family options in ``given`` that differ from their defaults, as
        ``name=value`` (``verdict_policy=strict``, ``split=full``); ``""`` for a default run.
        Reports name a run by its GenRM and this, so runs of other settings never shadow it."""
        return ", ".join(
            f"{option.name}={given[option.name]}"
            for option in self.options
            if given.get(option.name) not in (None, option.default)
        )

    def option_on(self, name: str, options: Mapping[str, Any]) -> bool:
        """Whether an option is set away from its default (``swap``, ``samples`` > 1), or for
        ``name=value`` to that value (``mode=pairwise_all``): the metrics that need it exist
        only then."""
        name, is_value, value = name.partition("=")
        option = next(o for o in self.options if o.name == name)
        given = options.get(name, option.default)
        return str(given) == value if is_value else given != option.default

    def options_of(self, stage: str) -> tuple[Option, ...]:
        return tuple(option for option in self.options if option.stage == stage)

    # --- metrics ---------------------------------------------------------------------------

    @abstractmethod
    def summarize(self, outcomes: Sequence[OutcomeT]) -> dict[str, Any]:
        """Metrics of one group of items: ``n``, each schema name, and ``ci`` / ``stderr``
        mappings of the metrics (``None`` where undefined, never 0)."""

    @abstractmethod
    def document_values(self, outcome: OutcomeT) -> dict[str, float]:
        """Per-item values whose lm-eval aggregation (schema) gives :meth:`summarize`'s numbers;
        NaN marks an item outside a metric's denominator."""

    def report(self, outcomes: Sequence[OutcomeT]) -> dict[str, Any]:
        """:meth:`summarize` over all items and per group (groups sorted by name)."""
        groups: dict[str, list[OutcomeT]] = {}
        for outcome in outcomes:
            groups.setdefault(self.outcome_group(outcome), []).append(outcome)
        return {
            "overall": self.summarize(outcomes),
            "subsets": {name: self.summarize(groups[name]) for name in sorted(groups)},
        }

    @abstractmethod
    def outcome_group(self, outcome: OutcomeT) -> str:
        """The group (subset, domain) an outcome belongs to."""

    # --- options ---------------------------------------------------------------------------

    def option_values(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The family options from ``given`` (defaults for the absent ones), validated."""
        values = {}
        for option in self.options:
            value = given.get(option.name)
            values[option.name] = option.validate(option.default if value is None else value, where)
        return values

    # --- the report: --compare, --agreement, plots, results_summary.csv, the viewer ----------

    # The metrics drawn against each other with the ``y = x`` line (label accuracy and what is
    # left of it once the rationale is checked), and bars of them per GenRM; ``None``: bars of
    # the headline metrics only, no such scatter.
    plot_pair: ClassVar[tuple[str, str] | None] = None
    # The columns of the R-Align repository's ``results_summary.csv`` (metric, column suffix);
    # empty: the family is not in that file.
    summary_csv: ClassVar[tuple[tuple[str, str], ...]] = ()
    # What the judge's grades of :meth:`judge_grades` mean, true then false (the agreement's
    # confusion matrix names them).
    grade_names: ClassVar[tuple[str, str]] = ("yes", "no")
    # The viewer's page layout (``viewer_page.html`` renders one per kind), its outcome filters
    # (key -> label; every item is in exactly one, :meth:`view_item` says which) and the
    # filters shown only where a run has such items.
    view_kind: ClassVar[str]
    view_outcomes: ClassVar[dict[str, str]]
    view_optional: ClassVar[frozenset[str]] = frozenset()

    def headline_metrics(self) -> tuple[str, ...]:
        """The metrics ``--compare`` compares (and a run's bars plot): the schema's headline."""
        return (self.schema.headline,)

    def paired_units(self, outcomes: Sequence[OutcomeT]) -> Mapping[str, Sequence[Any]]:
        """What ``--compare``'s paired bootstrap draws, per stratum: here each item's values
        of :meth:`headline_metrics` (from :meth:`document_values`), one stratum. Two runs'
        units pair by stratum and position: they come from the same items in the same order."""
        names = self.headline_metrics()
        rows = [self.document_values(outcome) for outcome in outcomes]
        return {"": [tuple(row[name] for name in names) for row in rows]}

    def paired_statistic(self, units: list[Any]) -> dict[str, float | None]:
        """The compared metrics of drawn units (a unit drawn twice counts twice): here the
        mean of each one's per-item values, NaN (an item outside its denominator) left out, as
        :meth:`summarize` and lm-eval's ``nanmean`` compute it; ``None`` where no item has one."""
        names = self.headline_metrics()
        if not units:
            return dict.fromkeys(names)
        values = np.asarray(units, dtype=float).reshape(len(units), len(names))
        defined = (~np.isnan(values)).any(axis=0)
        return {
            name: float(np.nanmean(values[:, column])) if defined[column] else None
            for column, name in enumerate(names)
        }

    def paired_difference(
        self, first: Sequence[OutcomeT], second: Sequence[OutcomeT], *, draws: int
    ) -> dict[str, dict[str, Any]]:
        """``--compare``: per :meth:`headline_metrics`, A's and B's values, A - B, its CI and
        p-value over the items both runs have (``first[i]`` and ``second[i]`` are one item):
        :meth:`paired_statistic` on each draw of :meth:`paired_units`
        (:func:`~ralign_tasks.scorers.stats.paired_units`)."""
        return paired_units(
            self.paired_units(first), self.paired_units(second), self.paired_statistic,
            self.headline_metrics(), n=len(first), draws=draws,
        )  # fmt: skip

    def judge_grades(
        self, record: RecordT, item: Mapping[str, Any], outcome: OutcomeT
    ) -> dict[str, bool | None]:
        """The judge's grades of one item for ``--agreement``, keyed so that two raters' grades
        of the same thing match (a slot, a rationale): true or false (:attr:`grade_names`),
        ``None`` where the judge was asked but gave no grade. Empty: nothing was graded (a
        family without a judge, an item not sent)."""
        return {}

    def judge_requests_at_most(self, options: Mapping[str, Any]) -> dict[str, int]:
        """The most requests of each judge role (``results.json``'s usage key: ``judge`` and
        each prep step's name) one item can need, whatever the GenRM answers (a dry run bounds
        what answers not yet given will cost). None: a family without a judge."""
        return {}

    @abstractmethod
    def instance_score(self, outcome: OutcomeT) -> InstanceScore | None:
        """An item's own score (``None``: it is scored only as part of a set)."""

    @abstractmethod
    def view_item(
        self, record: RecordT, item: Mapping[str, Any], outcome: OutcomeT
    ) -> dict[str, Any]:
        """One item as the viewer's page shows it (plain JSON types), from its record, its
        judged-item record and its outcome: ``kind`` (:attr:`view_kind`), ``id``, ``subset``,
        ``label``, ``verdict``, ``outcome`` (a key of :attr:`view_outcomes`), ``truncated``,
        and what the kind's layout shows."""

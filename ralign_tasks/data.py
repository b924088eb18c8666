"""Loading and validating R-Align benchmark files (SPEC §1).

Sources, in order: an explicit ``data_dir``, ``RALIGN_DATA_DIR``, else the Hugging Face dataset.
Every row is validated; a bad row is an error naming file and line, or, with
``skip_bad_rows=True``, is reported in :attr:`LoadResult.bad_rows` (never dropped silently).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ralign_tasks.benchmarks import get_benchmark
from ralign_tasks.records import PairRecord, Turn
from ralign_tasks.scorers.verdict import strip_thinking

DATA_DIR_ENV = "RALIGN_DATA_DIR"
HF_DATASET = "lyn22333/R-Align-BMK"
# The dataset revision every run reads unless RALIGN_HF_REVISION says otherwise.
HF_REVISION = "main"
HF_REVISION_ENV = "RALIGN_HF_REVISION"


T = TypeVar("T")
logger = logging.getLogger("ralign_tasks.data")


class DataFormatError(ValueError):
    """A row of a benchmark file is not in the R-Align format."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class DataUnavailableError(RuntimeError):
    """The benchmark file could not be found locally or fetched from the hub."""


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped, and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class LoadResult:
    """Records read from one file, plus the rows skipped on request."""

    benchmark: str
    path: str
    records: list[PairRecord]
    bad_rows: list[BadRow] = field(default_factory=list)


def sample_data_dir() -> Path:
    """Folder of the bundled sample (a few hand-written rows per benchmark, not the benchmark)."""
    return Path(str(resources.files("ralign_tasks") / "samples"))


def resolve_data_file(file_name: str, data_dir: str | os.PathLike[str], task: str) -> Path:
    """Find ``<data_dir>/data/<file>`` or ``<data_dir>/<file>``; error naming both if neither."""
    root = Path(data_dir).expanduser()
    candidates = [root / "data" / file_name, root / file_name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise DataUnavailableError(f"{task}: no data file at {tried}")


def download_data_file(
    file_name: str, task: str, repo_id: str = HF_DATASET, revision: str = HF_REVISION
) -> Path:
    """Fetch ``data/<file_name>`` of a Hugging Face dataset at its pinned revision
    (``RALIGN_HF_REVISION`` overrides it)."""
    from huggingface_hub import hf_hub_download

    revision = os.environ.get(HF_REVISION_ENV, revision)
    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                repo_type="dataset",
                filename=f"data/{file_name}",
                revision=revision,
            )
        )
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        raise DataUnavailableError(
            f"{task}: could not get data/{file_name} from the Hugging Face "
            f"dataset {repo_id}@{revision} ({type(exc).__name__}: {exc}). "
            f"Offline or behind a firewall? Download it once with\n"
            f"  hf download {repo_id} --repo-type dataset --local-dir DIR --include 'data/**'\n"
            f"and point at it with {DATA_DIR_ENV}=DIR (lm-eval: --metadata "
            f'\'{{"data_dir": "DIR"}}\', Inspect: -T data_dir=DIR).'
        ) from exc


def locate_data_file(
    file_name: str,
    task: str,
    data_dir: str | os.PathLike[str] | None,
    repo_id: str = HF_DATASET,
    revision: str = HF_REVISION,
) -> Path:
    """``data_dir``, else ``RALIGN_DATA_DIR``, else the hub."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir:
        return resolve_data_file(file_name, data_dir, task)
    return download_data_file(file_name, task, repo_id, revision)


def load_benchmark(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    skip_bad_rows: bool = False,
) -> LoadResult:
    """Load one benchmark as validated records (see the module docstring for sources)."""
    benchmark = get_benchmark(name)
    path = locate_data_file(benchmark.file_name, benchmark.task, data_dir)
    return read_benchmark_file(path, benchmark.name, skip_bad_rows=skip_bad_rows)


def read_benchmark_file(
    path: str | os.PathLike[str], benchmark: str, *, skip_bad_rows: bool = False
) -> LoadResult:
    """Read and validate one R-Align JSONL file."""
    records, bad_rows = read_jsonl_records(
        path, lambda row, line: parse_row(row, benchmark, line), skip_bad_rows=skip_bad_rows
    )
    return LoadResult(benchmark, str(path), records, bad_rows)


def read_jsonl_records(
    path: str | os.PathLike[str],
    parse: Callable[[Any, int], T],
    *,
    skip_bad_rows: bool = False,
) -> tuple[list[T], list[BadRow]]:
    """Parse every non-blank line with ``parse(row, line_no)`` (records must have an ``id``);
    a bad row raises :class:`DataFormatError` naming file and line, or is returned in the
    bad-row list when ``skip_bad_rows``."""
    path_str = str(path)
    records: list[T] = []
    bad_rows: list[BadRow] = []
    first_line_of_id: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse(_decode_json(line), line_no)
                record_id = record.id  # type: ignore[attr-defined]
                if record_id in first_line_of_id:
                    raise ValueError(
                        f"duplicate id {record_id!r} (first on line {first_line_of_id[record_id]})"
                    )
            except ValueError as exc:
                if not skip_bad_rows:
                    raise DataFormatError(path_str, line_no, str(exc)) from None
                bad_rows.append(BadRow(path_str, line_no, str(exc)))
                continue
            first_line_of_id[record_id] = line_no
            records.append(record)
    return records, bad_rows


def _decode_json(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None


def _require_str(row: dict[str, Any], key: str, where: str = "") -> str:
    if key not in row:
        raise ValueError(f"missing field {where}{key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field {where}{key!r} must be a string, got {type(value).__name__}")
    return value


def _parse_turns(value: Any) -> list[Turn]:
    if not isinstance(value, list):
        raise ValueError(f"field 'conversations' must be a list, got {type(value).__name__}")
    if not value:
        raise ValueError("field 'conversations' is empty (the final user turn is required)")
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise ValueError(f"conversations[{index}] must be an object")
        where = f"conversations[{index}]."
        turns.append(Turn(_require_str(turn, "role", where), _require_str(turn, "content", where)))
    return turns


def parse_row(row: Any, benchmark: str, line: int) -> PairRecord:
    """Validate one decoded JSON row and normalise it; raises ``ValueError`` naming the problem."""
    if not isinstance(row, dict):
        raise ValueError(f"row must be a JSON object, got {type(row).__name__}")
    if "conversations" not in row:
        raise ValueError("missing field 'conversations'")
    turns = _parse_turns(row["conversations"])
    response_a = _require_str(row, "response_A")
    response_b = _require_str(row, "response_B")
    label = _require_str(row, "gt_label").strip()
    if label not in ("A", "B"):
        raise ValueError(f"field 'gt_label' must be 'A' or 'B', got {row['gt_label']!r}")
    golden = strip_thinking(_require_str(row, "gt_judgment"))
    if not golden:
        raise ValueError("field 'gt_judgment' has no rationale after its thinking trace")
    source = row.get("source")
    if not isinstance(source, dict):
        raise ValueError("missing field 'source' (an object with 'subset')")
    subset = _require_str(source, "subset", "source.")
    raw_id = row.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)):
        raise ValueError(f"field 'id' must be a string or integer, got {type(raw_id).__name__}")
    return PairRecord(
        benchmark=benchmark,
        id=str(raw_id) if raw_id is not None else f"{benchmark}-line{line}",
        context=tuple(turns[:-1]),
        prompt=turns[-1].content,
        response_a=response_a,
        response_b=response_b,
        label=label,  # type: ignore[arg-type]
        golden_rationale=golden,
        subset=subset,
    )


def describe_bad_rows(bad_rows: Iterable[BadRow], limit: int = 10) -> str:
    """One line per skipped row (at most ``limit``, then a count of the rest)."""
    rows = list(bad_rows)
    lines = [f"  {row}" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"  … and {len(rows) - limit} more")
    return "\n".join(lines)


def warn_bad_rows(path: str, bad_rows: Sequence[BadRow]) -> None:
    """Log the rows that ``skip_bad_rows`` left out (nothing when there are none)."""
    if bad_rows:
        logger.warning(
            "skipped %d bad row(s) of %s:\n%s", len(bad_rows), path, describe_bad_rows(bad_rows)
        )


def _names(names: str | Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    # `-T subset=code,stem` arrives as one string; `-T subset='[code, stem]'` as a list.
    items = names.split(",") if isinstance(names, str) else list(names)
    return [name.strip() for name in items if name.strip()]


def keep_named(
    items: list[T], field: str, names: str | Sequence[str] | None, location: str
) -> list[T]:
    """The items whose attribute ``field`` is one of ``names`` (all if ``None``); an unknown
    name is a ``ValueError`` listing the known ones."""
    wanted = _names(names)
    if wanted is None:
        return items
    known = sorted({getattr(item, field) for item in items})
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(
            f"unknown {field}(s) {', '.join(map(repr, unknown))} in {location}; "
            f"known: {', '.join(known)}"
        )
    return [item for item in items if getattr(item, field) in wanted]

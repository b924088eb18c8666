"""Finding and reading benchmark files; each family's row parser lives in its protocol.

Sources, in order: an explicit ``data_dir``, ``RALIGN_DATA_DIR``, else the Hugging Face dataset
at the task's revision (``RALIGN_HF_REVISION`` overrides it). Every row is validated; a bad
row is an error naming file and line, or, with ``skip_bad_rows=True``, is reported in
:attr:`LoadResult.bad_rows` (never dropped silently).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ralign_tasks.records import Turn
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.scorers.jsonl import (
    decode_json_line,
    has_surrogate_escape,
    jsonl_lines,
    lone_surrogate,
)

DATA_DIR_ENV = "RALIGN_DATA_DIR"
# Overrides every task's dataset revision.
HF_REVISION_ENV = "RALIGN_HF_REVISION"


T = TypeVar("T")
logger = logging.getLogger("ralign_tasks.data")


class DataFormatError(UserError):
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
    """Records of one task read from one file, plus the rows skipped on request."""

    task: str
    path: str
    records: list[Any]
    bad_rows: list[BadRow] = field(default_factory=list)


def sample_data_dir() -> Path:
    """Folder of the bundled sample (a few hand-written rows per benchmark, not the benchmark)."""
    return Path(str(resources.files("ralign_tasks") / "samples"))


def resolve_data_file(
    file_names: str | Sequence[str], data_dir: str | os.PathLike[str], task: str
) -> Path:
    """Find ``<data_dir>/data/<file>`` or ``<data_dir>/<file>`` for the first of ``file_names``
    present; an error naming every place tried if none is."""
    names = [file_names] if isinstance(file_names, str) else list(file_names)
    root = Path(data_dir).expanduser()
    candidates = [folder / name for name in names for folder in (root / "data", root)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise DataUnavailableError(f"{task}: no data file at {tried}")


def _offline_advice(repo_id: str, include: str) -> str:
    return (
        "Offline or behind a firewall? Download it once with\n"
        f"  hf download {repo_id} --repo-type dataset --local-dir DIR --include '{include}'\n"
        f"and point at it with {DATA_DIR_ENV}=DIR (lm-eval: --metadata "
        f'\'{{"data_dir": "DIR"}}\', Inspect: -T data_dir=DIR).'
    )


def download_data_file(
    file_name: str, task: str, repo_id: str, revision: str, folder: str = "data"
) -> Path:
    """Fetch ``<folder>/<file_name>`` of a Hugging Face dataset at ``revision``
    (``RALIGN_HF_REVISION`` overrides it)."""
    from huggingface_hub import hf_hub_download

    revision = os.environ.get(HF_REVISION_ENV, revision)
    path_in_repo = f"{folder}/{file_name}" if folder else file_name
    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                repo_type="dataset",
                filename=path_in_repo,
                revision=revision,
            )
        )
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        raise DataUnavailableError(
            f"{task}: could not get {path_in_repo} from the Hugging Face "
            f"dataset {repo_id}@{revision} ({type(exc).__name__}: {exc}). "
            + _offline_advice(repo_id, f"{folder}/**" if folder else path_in_repo)
        ) from exc


def download_data_files(pattern: str, task: str, repo_id: str, revision: str) -> list[Path]:
    """Fetch the files of a Hugging Face dataset matching ``pattern`` (``data/test-*``) at
    ``revision`` (``RALIGN_HF_REVISION`` overrides it), sorted by name."""
    from huggingface_hub import snapshot_download

    revision = os.environ.get(HF_REVISION_ENV, revision)
    try:
        root = Path(
            snapshot_download(
                repo_id=repo_id, repo_type="dataset", revision=revision, allow_patterns=[pattern]
            )
        )
    except Exception as exc:  # as above: every hub failure means "not available here"
        raise DataUnavailableError(
            f"{task}: could not get {pattern} from the Hugging Face dataset "
            f"{repo_id}@{revision} ({type(exc).__name__}: {exc}). "
            + _offline_advice(repo_id, pattern)
        ) from exc
    found = sorted(root.glob(pattern))
    if not found:
        raise DataUnavailableError(f"{task}: {repo_id}@{revision} has no file {pattern}")
    return found


def locate_data_file(
    file_names: str | Sequence[str],
    task: str,
    data_dir: str | os.PathLike[str] | None,
    repo_id: str,
    revision: str,
    hub_folder: str = "data",
) -> Path:
    """``data_dir``, else ``RALIGN_DATA_DIR``, else the hub (the first of ``file_names``)."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir:
        return resolve_data_file(file_names, data_dir, task)
    first = file_names if isinstance(file_names, str) else file_names[0]
    return download_data_file(first, task, repo_id, revision, hub_folder)


def _refuse_lone_surrogate(raw: bytes, value: Any) -> Any:
    """``value``, decoded from a data file's JSON text ``raw``; ``ValueError`` when a string of
    it holds a lone surrogate (see :func:`~ralign_tasks.scorers.jsonl.lone_surrogate`): its
    text would fail later, when sent to a model or written as UTF-8, so it is a bad row now."""
    problem = lone_surrogate(value) if has_surrogate_escape(raw) else None
    if problem:
        raise UserError(problem)
    return value


def read_jsonl_records(
    path: str | os.PathLike[str],
    parse: Callable[[Any, int], T],
    *,
    skip_bad_rows: bool = False,
    rows: Sequence[Any] | None = None,
) -> tuple[list[T], list[BadRow]]:
    """Parse every non-blank line with ``parse(row, line_no)`` (records must have an ``id``);
    a bad row raises :class:`DataFormatError` naming file and line, or is returned in the
    bad-row list when ``skip_bad_rows``. Lines are read as :mod:`ralign_tasks.scorers.jsonl`
    reads them (a line that is not UTF-8 or not JSON, or holds a lone surrogate, is a bad row
    like any other). ``rows``: the file's rows already decoded (a parquet file, whose strings
    are UTF-8 by its format; row numbers count from 1)."""
    path_str = str(path)
    records: list[T] = []
    bad_rows: list[BadRow] = []
    first_line_of_id: dict[str, int] = {}
    numbered: Iterable[tuple[int, Any]] = (
        (
            (line_no, lambda raw=raw: _refuse_lone_surrogate(raw, decode_json_line(raw)))
            for line_no, raw in jsonl_lines(path)
        )
        if rows is None
        else ((index, lambda row=row: row) for index, row in enumerate(rows, 1))
    )
    for line_no, decoded in numbered:
        try:
            record = parse(decoded(), line_no)
            record_id = record.id  # type: ignore[attr-defined]
            if record_id in first_line_of_id:
                raise UserError(
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


def require_str(row: dict[str, Any], key: str, where: str = "") -> str:
    """``row[key]`` if it is a string; ``ValueError`` naming the field otherwise."""
    if key not in row:
        raise UserError(f"missing field {where}{key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise UserError(f"field {where}{key!r} must be a string, got {type(value).__name__}")
    return value


def parse_turns(value: Any, field_name: str) -> list[Turn]:
    """A non-empty list of ``{role, content}`` objects as turns."""
    if not isinstance(value, list):
        raise UserError(f"field {field_name!r} must be a list, got {type(value).__name__}")
    if not value:
        raise UserError(f"field {field_name!r} is empty (the final user turn is required)")
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise UserError(f"{field_name}[{index}] must be an object")
        where = f"{field_name}[{index}]."
        turns.append(Turn(require_str(turn, "role", where), require_str(turn, "content", where)))
    return turns


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


def data_source(
    sample: bool, data_dir: str | os.PathLike[str] | None
) -> str | os.PathLike[str] | None:
    """Where to load from: the bundled sample, ``data_dir``, or ``None`` (environment or hub)."""
    if sample and data_dir:
        raise UserError("pass either sample=true or data_dir, not both")
    return sample_data_dir() if sample else data_dir


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
        raise UserError(
            f"unknown {field}(s) {', '.join(map(repr, unknown))} in {location}; "
            f"known: {', '.join(known)}"
        )
    return [item for item in items if getattr(item, field) in wanted]

"""On-disk cache of model answers, keyed by the full request.

SQLite in WAL mode, so several processes may share one cache file. Answers are written by a
thread of their own, each committed within milliseconds of its arrival (those that arrive
together in one transaction), so that the event loop asking the endpoint never waits for
the disk; closing the cache (also on an error, Ctrl-C or SIGTERM) commits every answer
still pending, so only a killed process (SIGKILL) can lose the answers of the last moments
(see ``KILL_LOSS_BOUND_S``). Answers are stored as JSON that keeps any text, a lone surrogate
included (:func:`json_text`). A write that fails stops the run at its next answer (or when
the cache is closed) with the cause, after the writer has committed every row it still can.
A row that cannot be read is dropped with a warning (its request is asked again); a file that
cannot be opened or written is a :class:`CacheError` saying why (damaged, not writable, disk
full) and what to do, never advising to delete intact answers.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from ralign_tasks.scorers.ask import StopRun
from ralign_tasks.scorers.jsonl import json_text

logger = logging.getLogger("ralign_tasks.cache")

CACHE_DIR_ENV = "RALIGN_CACHE_DIR"
CACHE_FILE = "responses.sqlite"
# SQLite caps the number of bound parameters per statement; stay well below it.
_LOOKUP_CHUNK = 500
_INSERT = "INSERT OR IGNORE INTO responses (key, model, answer, created) VALUES (?, ?, ?, ?)"
# What a SIGKILL can lose: the answers received in this many seconds before it (the writer
# commits each within milliseconds of its arrival; the bound leaves room for a busy machine).
# The README quotes it and tests/e2e/test_hostile_engine.py checks it.
KILL_LOSS_BOUND_S = 0.5
# SQLite's primary result codes (``sqlite_errorcode & 0xFF``) by what they mean for the user.
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_NOT_WRITABLE = {3, 8, 14}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN
_DISK = {10, 13}  # SQLITE_IOERR, SQLITE_FULL
# The caches this process has opened, for messages (an interrupted run names them).
OPENED: set[Path] = set()


def default_cache_dir() -> Path:
    """``RALIGN_CACHE_DIR``, else the user cache dir of ralign-tasks."""
    return Path(os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir("ralign-tasks"))


def _usable(stored: Any) -> bool:
    """Whether a stored answer has the fields a replay reads, of the right types."""
    return (
        isinstance(stored, dict)
        and isinstance(stored.get("text"), str)
        and all(
            isinstance(stored.get(key) or 0, int) for key in ("prompt_tokens", "completion_tokens")
        )
    )


class CacheError(StopRun):
    """The cache file cannot be used (not a database, damaged, not writable): the run stops,
    never counting it as a failed call or losing an answer already paid for."""


def cache_problem(path: Path, exc: sqlite3.Error | OSError) -> str:
    """What is wrong with the cache at ``path`` and the way out, by the cause of ``exc``."""
    way_out = f"point {CACHE_DIR_ENV} at another folder, or run with --no-cache"
    if isinstance(exc, OSError):
        return f"the answer cache folder {path.parent} cannot be used ({exc}); {way_out}"
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in _DAMAGED:
        return (
            f"the answer cache {path} is damaged or not a cache ({exc}). Move it aside (its "
            f"answers will be asked again) or {way_out}"
        )
    if code in _NOT_WRITABLE:
        return (
            f"the answer cache {path} cannot be written ({exc}): check the "
            f"permissions of the file and of {path.parent} (SQLite also writes "
            f"{CACHE_FILE}-wal and -shm there). Its answers are intact; or {way_out}"
        )
    if code in _DISK:
        return (
            f"the answer cache {path} cannot be written ({exc}): the disk is full or failing. "
            f"The answers stored so far are intact; free space, or {way_out}"
        )
    return f"the answer cache {path} cannot be used ({exc}); {way_out}"


class ResponseCache:
    """Maps a request key to the stored answer (a JSON object)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        folder = Path(directory) if directory else default_cache_dir()
        self.path = folder / CACHE_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(cache_problem(self.path, exc)) from None
        with self._readable():
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, answer TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
            # What each endpoint said it serves under each model name, last time it was asked.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS served_models ("
                " endpoint TEXT NOT NULL, model TEXT NOT NULL, identity TEXT NOT NULL,"
                " seen REAL NOT NULL, PRIMARY KEY (endpoint, model))"
            )
        # Rows waiting for the writer thread (started by the first put); None stops it.
        self._pending: queue.Queue[tuple[str, str, str, float] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._write_error: CacheError | None = None
        OPENED.add(self.path)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit, so that reads see other processes' answers; writes commit in batches.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _readable(self) -> Iterator[None]:
        """Turn SQLite's errors about the file into a :class:`CacheError` saying why."""
        try:
            yield
        except sqlite3.Error as exc:
            raise CacheError(cache_problem(self.path, exc)) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored answers for those of ``keys`` that are present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        unreadable = []
        with self._readable():
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, answer FROM responses WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, answer in rows:
                    try:
                        stored = json.loads(answer)
                    except (TypeError, ValueError):
                        stored = None
                    if _usable(stored):
                        found[key] = stored
                    else:
                        unreadable.append(key)
            if unreadable:
                # Dropped, so the fresh answer to the request can be stored in its place.
                self._db.executemany(
                    "DELETE FROM responses WHERE key = ?", [(k,) for k in unreadable]
                )
                logger.warning(
                    "%d unreadable answer(s) in the cache %s were dropped and are asked again",
                    len(unreadable),
                    self.path,
                )
        return found

    def remember_identity(self, endpoint: str, model: str, identity: dict[str, Any]) -> None:
        """Keep what ``endpoint`` said it serves under ``model``."""
        with self._readable():
            self._db.execute(
                "INSERT OR REPLACE INTO served_models VALUES (?, ?, ?, ?)",
                (endpoint, model, json_text(identity, sort_keys=True), time.time()),
            )

    def last_identity(self, endpoint: str, model: str) -> dict[str, Any] | None:
        """What ``endpoint`` said it serves under ``model`` when it was last asked."""
        with self._readable():
            row = self._db.execute(
                "SELECT identity FROM served_models WHERE endpoint = ? AND model = ?",
                (endpoint, model),
            ).fetchone()
        try:
            identity = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return identity if isinstance(identity, dict) else None

    def put(self, key: str, model: str, answer: dict[str, Any]) -> None:
        """Store one answer (the first one stored for a key wins), in the writer thread; a
        :class:`CacheError` of an earlier write is raised here."""
        self._raise_write_error()
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_pending, name="ralign-cache-writer", daemon=True
            )
            self._writer.start()
        self._pending.put((key, model, json_text(answer), time.time()))

    def _write_pending(self) -> None:
        """The writer thread: commit what is pending, one transaction per wake-up. It never
        dies on an error: the first one is kept for the asking thread to raise, and rows keep
        being taken (and dropped) so that ``flush`` and ``close`` return."""
        db: sqlite3.Connection | None = None
        try:
            with self._readable():
                db = self._connect()
        except CacheError as exc:
            self._write_error = exc
        stopping = False
        while not stopping:
            rows = [self._pending.get()]
            while not self._pending.empty():
                rows.append(self._pending.get_nowait())
            stopping = None in rows
            todo = [row for row in rows if row is not None]
            try:
                if todo and db is not None and self._write_error is None:
                    self._commit(db, todo)
            finally:
                for _ in rows:
                    self._pending.task_done()
        if db is not None:
            db.close()

    def _commit(self, db: sqlite3.Connection, rows: list[tuple[str, str, str, float]]) -> None:
        """Commit ``rows`` in one transaction; if that fails, each row on its own, so that
        every row that can be stored is, and the first failure is kept."""
        try:
            db.execute("BEGIN")
            db.executemany(_INSERT, rows)
            db.execute("COMMIT")
            return
        except Exception:
            if db.in_transaction:
                db.execute("ROLLBACK")
        for row in rows:
            try:
                with self._readable():
                    db.execute(_INSERT, row)
            except Exception as exc:
                if self._write_error is None:
                    error = exc if isinstance(exc, CacheError) else CacheError(
                        f"an answer could not be stored in the cache {self.path} "
                        f"({type(exc).__name__}: {exc})"
                    )  # fmt: skip
                    self._write_error = error

    def _raise_write_error(self) -> None:
        if self._write_error is not None:
            raise self._write_error

    def flush(self) -> None:
        """Wait until every answer put so far is committed."""
        self._pending.join()
        self._raise_write_error()

    def __len__(self) -> int:
        self.flush()
        with self._readable():
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Commit every pending answer, then close."""
        if self._writer is not None:
            self._pending.put(None)
            self._writer.join()
            self._writer = None
        self._db.close()
        self._raise_write_error()

"""On-disk cache of model answers, keyed by the full request.

SQLite in WAL mode, so several processes may share one cache file. Answers are written by a
thread of their own, each committed within milliseconds of its arrival (those that arrive
together in one transaction), so that the event loop asking the endpoint never waits for
the disk; closing the cache (also on an error or Ctrl-C) commits every answer still
pending, so only a killed process (SIGKILL) can lose the last few milliseconds' answers. A
row that cannot be read is dropped with a warning (its request is asked again); a file that
is not a readable database is a :class:`CacheError` naming it and the way out.
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

logger = logging.getLogger("ralign_tasks.cache")

CACHE_DIR_ENV = "RALIGN_CACHE_DIR"
CACHE_FILE = "responses.sqlite"
# SQLite caps the number of bound parameters per statement; stay well below it.
_LOOKUP_CHUNK = 500
_INSERT = "INSERT OR IGNORE INTO responses (key, model, answer, created) VALUES (?, ?, ?, ?)"


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


class ResponseCache:
    """Maps a request key to the stored answer (a JSON object)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        folder = Path(directory) if directory else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        with self._readable():
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, answer TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
        # Rows waiting for the writer thread (started by the first put); None stops it.
        self._pending: queue.Queue[tuple[str, str, str, float] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._write_error: CacheError | None = None

    def _connect(self) -> sqlite3.Connection:
        # Autocommit, so that reads see other processes' answers; writes commit in batches.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _readable(self) -> Iterator[None]:
        """Turn SQLite's errors about the file into a :class:`CacheError` with the way out."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"the answer cache {self.path} cannot be used ({exc}). Delete that file (its "
                f"answers will be asked again) or point {CACHE_DIR_ENV} at another folder; "
                "--no-cache (RALIGN_*_USE_CACHE=false) runs without it"
            ) from None

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

    def put(self, key: str, model: str, answer: dict[str, Any]) -> None:
        """Store one answer (the first one stored for a key wins), in the writer thread; a
        :class:`CacheError` of an earlier write is raised here."""
        self._raise_write_error()
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_pending, name="ralign-cache-writer", daemon=True
            )
            self._writer.start()
        self._pending.put((key, model, json.dumps(answer, ensure_ascii=False), time.time()))

    def _write_pending(self) -> None:
        """The writer thread: commit what is pending, one transaction per wake-up."""
        try:
            with self._readable():
                db = self._connect()
        except CacheError as exc:
            self._write_error = exc
            return
        try:
            stopping = False
            while not stopping:
                rows = [self._pending.get()]
                while not self._pending.empty():
                    rows.append(self._pending.get_nowait())
                stopping = None in rows
                todo = [row for row in rows if row is not None]
                try:
                    if todo and self._write_error is None:
                        with self._readable():
                            db.execute("BEGIN")
                            db.executemany(_INSERT, todo)
                            db.execute("COMMIT")
                except CacheError as exc:
                    self._write_error = exc
                finally:
                    for _ in rows:
                        self._pending.task_done()
        finally:
            db.close()

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

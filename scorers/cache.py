"""On-disk cache of model answers, keyed by the full request.

SQLite in WAL mode: every answer is committed the moment it arrives, so a crash or Ctrl-C
loses nothing finished, and several processes may share one cache file. A row that cannot be
read is dropped with a warning (its request is asked again); a file that is not a readable
database is a :class:`CacheError` naming it and the way out.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
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
            # Autocommit: each put is its own durable transaction.
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, answer TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )

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
        """Store one answer (the first one stored for a key wins)."""
        with self._readable():
            self._db.execute(
                "INSERT OR IGNORE INTO responses (key, model, answer, created) VALUES (?, ?, ?, ?)",
                (key, model, json.dumps(answer, ensure_ascii=False), time.time()),
            )

    def __len__(self) -> int:
        with self._readable():
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

"""On-disk cache of successful model answers, keyed by the full request.

SQLite in WAL mode: every answer is committed the moment it arrives, so a crash or Ctrl-C
loses nothing finished, and several processes may share one cache file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import platformdirs

CACHE_DIR_ENV = "RALIGN_CACHE_DIR"
CACHE_FILE = "responses.sqlite"
# SQLite caps the number of bound parameters per statement; stay well below it.
_LOOKUP_CHUNK = 500


def default_cache_dir() -> Path:
    """``RALIGN_CACHE_DIR``, else the user cache dir of ralign-tasks."""
    return Path(os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir("ralign-tasks"))


class ResponseCache:
    """Maps a request key to the stored answer (a JSON object)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        folder = Path(directory) if directory else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        # Autocommit: each put is its own durable transaction.
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, model TEXT NOT NULL, answer TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored answers for those of ``keys`` that are present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, answer FROM responses WHERE key IN ({marks})", chunk
            )
            found.update((key, json.loads(answer)) for key, answer in rows)
        return found

    def put(self, key: str, model: str, answer: dict[str, Any]) -> None:
        """Store one answer (the first one stored for a key wins)."""
        self._db.execute(
            "INSERT OR IGNORE INTO responses (key, model, answer, created) VALUES (?, ?, ?, ?)",
            (key, model, json.dumps(answer, ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

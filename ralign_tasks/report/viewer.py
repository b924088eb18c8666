"""``ralign view``: one static HTML page per run, every item as its protocol shows it
(:meth:`~ralign_tasks.protocols.base.Protocol.view_item`: for R-Align fidelity the prompt, both
answers, golden rationale, GenRM output and meta-judge analysis; for Rationale Consistency the
human rationales beside the GenRM's reasons, each match and its score; for a label benchmark
its answers and games), with filters by outcome (the protocol's), subset and text.

The page is ``viewer_page.html`` with the run embedded as JSON. A run's items are read one at a
time (:meth:`TaskResult.full_items`) and never held together: while their JSON stays under
``INLINE_BYTES`` the page embeds them all and is one self-contained file; a larger run's page
embeds only an index (each item's id, subset, outcome, verdicts and flags: what the filters and
the list rows need) and its items go, as they are read, into a sibling folder
``<page stem>_items/`` of chunk scripts of at most ``CHUNK_BYTES``, which the page loads when
an item in one is opened (``<script src>``: browsers refuse ``fetch`` on ``file://`` pages).

The page's script renders all item text with ``textContent`` because the text is untrusted
model output, and the JSON is escaped so that no item text can end the ``<script>`` element
holding it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ralign_tasks.identity import safe_name
from ralign_tasks.protocols import SPECS, metric_label, protocol_of
from ralign_tasks.report.console import UNDEFINED
from ralign_tasks.report.runs import TaskResult, no_samples_hint
from ralign_tasks.scorers.jsonl import json_text

_PLACEHOLDER = re.compile(r"__RALIGN_(TITLE|DATA)__")
# Characters that could end or confuse the <script> element holding the JSON ("</script>",
# "<!--"), written as JSON escapes instead: JSON.parse reads them back unchanged. Also U+2028
# and U+2029, which end a line in JavaScript engines older than ES2019 and would break a chunk
# script (the chunks are JavaScript, not JSON).
_SCRIPT_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
# A run whose items' JSON stays under this is one self-contained page (about what a browser
# parses in a fraction of a second); a larger one is split into an index and chunk files.
INLINE_BYTES = 5_000_000
# A chunk file's limits: a few MB load in tens of milliseconds when an item is opened. An item
# larger than CHUNK_BYTES gets a chunk of its own.
CHUNK_BYTES = 2_000_000
CHUNK_ITEMS = 1_000
# The large page's chunk folder, next to it: ``<page stem>_items/chunk-00000.js``, ...
ITEMS_SUFFIX = "_items"
_CHUNK_GLOB = "chunk-*.js"
# What an item's index row keeps from its data: the list row's fields, and flags only where
# set (missing reads as false in the page), so that a 50,000-item index stays a few MB.
_ROW_FIELDS = ("id", "subset", "label", "verdict", "outcome")
_ROW_FLAGS = ("truncated", "call_fail", "consistent")


def _percent(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value * 100:.1f}%"


def _interval(ci: list[float] | None) -> str:
    return f"95% CI [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""


def _failure_counts(result: TaskResult) -> list[dict[str, Any]]:
    """The run's failure counts (the schema's non-breakdown counts); one unknown to the
    harness (lm-eval does not say why generation stopped) is left out, not shown as zero."""
    return [
        {"label": metric_label(name), "count": value}
        for name, value in result.counts.items()
        if value is not None and not SPECS[name].detail
    ]


def view_items(result: TaskResult) -> Iterator[dict[str, Any]]:
    """The run's items as the page shows them (its protocol's :meth:`~Protocol.view_item`), as
    plain JSON types, read one at a time."""
    protocol = protocol_of(result.task)
    for item in result.full_items():
        record = protocol.record_from_dict(item.record)
        yield protocol.view_item(record, item.judged(), item.outcome)


def index_row(item: dict[str, Any]) -> dict[str, Any]:
    """An item's entry in a large page's index: what its list row and the filters read."""
    row = {name: item[name] for name in _ROW_FIELDS}
    row.update((name, True) for name in _ROW_FLAGS if item.get(name))
    return row


def _page_head(result: TaskResult, shown: set[str], swap: bool) -> dict[str, Any]:
    """Everything the page shows but the items, as plain JSON types (metric cells
    preformatted); ``shown``: the outcomes of the run's items; ``swap``: whether any item
    has a second order."""
    protocol = protocol_of(result.task)
    # A metric of an option the run had off (the swap metrics) is not shown.
    metric_names = [
        name for name in protocol.schema.metric_names
        if protocol.schema.spec(name).option is None or result.values.get(name) is not None
    ]  # fmt: skip
    subsets = [
        {
            "subset": part.subset,
            "n": part.n,
            "cells": [_percent(part.values.get(m)) for m in metric_names],
        }
        for part in result.subsets
    ]
    return {
        "genrm": result.genrm,
        "task": result.task,
        "harness": result.harness,
        "source": result.source,
        "n": result.n,
        "kind": protocol.view_kind,
        "metrics": [
            {
                "name": metric_label(m),
                "value": _percent(result.values.get(m)),
                "ci": _interval(result.ci.get(m)),
            }
            for m in metric_names
        ],
        "metric_names": [metric_label(m) for m in metric_names],
        "subsets": subsets,
        "failures": _failure_counts(result),
        "swap": swap,
        "outcomes": [
            {"key": key, "label": label}
            for key, label in protocol.view_outcomes.items()
            # Filters of items only some runs have ("not judged", "scored as a set").
            if key not in protocol.view_optional or key in shown
        ],
    }


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element and as a JavaScript
    expression (a chunk script)."""
    # A lone surrogate (a GenRM answer may hold one) is written as an escape, not crashing.
    text = json_text(data)
    for char, escape in _SCRIPT_UNSAFE.items():
        text = text.replace(char, escape)
    return text


class ChunkWriter:
    """Writes a run's items, in order, into ``folder`` as chunk scripts
    (``chunk-00000.js``, ...) of at most ``max_items`` items and, but for a single item larger
    than that, ``max_bytes`` bytes. Each file is one call, ``ralignChunk(number, [items])``,
    which the page defines to receive it."""

    def __init__(
        self, folder: Path, max_bytes: int = CHUNK_BYTES, max_items: int = CHUNK_ITEMS
    ) -> None:
        self.folder = folder
        self.max_bytes, self.max_items = max_bytes, max_items
        self.files: list[str] = []  # the chunk files' names, in order
        self.starts: list[int] = []  # the index of each chunk's first item
        self._pending: list[str] = []  # the next chunk's encoded items
        self._size = 0  # the next chunk's size in bytes, as written
        self._count = 0  # items added
        folder.mkdir(parents=True, exist_ok=True)

    def _frame(self) -> tuple[str, str]:
        return f"ralignChunk({len(self.files)},[", "]);\n"

    def add(self, item: dict[str, Any]) -> None:
        encoded = script_json(item)
        size = len(encoded.encode("utf-8")) + 1  # and its comma
        head, tail = self._frame()
        framed = len(head) + len(tail)
        if self._pending and (
            self._size + size + framed > self.max_bytes or len(self._pending) >= self.max_items
        ):
            self._flush()
        if not self._pending:
            self.starts.append(self._count)
        self._pending.append(encoded)
        self._size += size
        self._count += 1

    def _flush(self) -> None:
        head, tail = self._frame()
        name = f"chunk-{len(self.files):05d}.js"
        with (self.folder / name).open("w", encoding="utf-8") as file:
            file.write(head)
            file.write(",".join(self._pending))
            file.write(tail)
        self.files.append(name)
        self._pending, self._size = [], 0

    def close(self) -> None:
        """Write the last chunk."""
        if self._pending:
            self._flush()


def _remove_chunks(folder: Path) -> None:
    """Remove the chunk files an earlier ``ralign view`` wrote for a page of this name (and
    their folder once empty): the page written now names its own, or none."""
    if not folder.is_dir():
        return
    for stale in folder.glob(_CHUNK_GLOB):
        stale.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def write_view(
    result: TaskResult,
    page: Path,
    *,
    inline_bytes: int = INLINE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    chunk_items: int = CHUNK_ITEMS,
) -> None:
    """Write the page of one run with items, reading its items once and one at a time: all
    of them in the page while their JSON stays under ``inline_bytes``, else an index in the
    page and the items in chunk files (:class:`ChunkWriter`) in ``<page stem>_items/``."""
    folder = page.with_name(page.stem + ITEMS_SUFFIX)
    _remove_chunks(folder)
    rows: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []  # the items, while they may still fit in the page
    kept_bytes = 0
    chunks: ChunkWriter | None = None
    swap = False
    for item in view_items(result):
        rows.append(index_row(item))
        swap = swap or bool(item.get("swapped"))
        if chunks is not None:
            chunks.add(item)
            continue
        kept.append(item)
        kept_bytes += len(script_json(item).encode("utf-8"))
        if kept_bytes > inline_bytes:
            chunks = ChunkWriter(folder, chunk_bytes, chunk_items)
            for earlier in kept:
                chunks.add(earlier)
            kept = []
    data = _page_head(result, {row["outcome"] for row in rows}, swap)
    if chunks is None:
        data["items"] = kept
    else:
        chunks.close()
        data["index"] = rows
        # The folder by its name alone (relative to the page): page and folder can be moved.
        data["chunks"] = {"folder": folder.name, "files": chunks.files, "starts": chunks.starts}
    template = (
        resources.files("ralign_tasks.report").joinpath("viewer_page.html").read_text("utf-8")
    )
    values = {
        "TITLE": html.escape(f"{result.genrm} · {result.task} — R-Align viewer"),
        "DATA": script_json(data),
    }
    # One pass, so a placeholder-like string inside the data is never substituted.
    page.write_text(
        _PLACEHOLDER.sub(lambda match: values[match.group(1)], template), encoding="utf-8"
    )


def page_name(result: TaskResult, taken: set[str]) -> str:
    """A file name from GenRM and task, safe on any filesystem and not in ``taken`` (compared
    case-insensitively, for case-insensitive filesystems); adds it to ``taken``."""
    stem = safe_name(f"{result.genrm}__{result.task}")
    name, number = f"{stem}.html", 1
    while name.lower() in taken:
        number += 1
        name = f"{stem}-{number}.html"
    taken.add(name.lower())
    return name


def write_views(
    results: list[TaskResult],
    out_dir: Path,
    warnings: list[str],
    *,
    inline_bytes: int = INLINE_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    chunk_items: int = CHUNK_ITEMS,
) -> list[Path]:
    """Write one page per result with items into ``out_dir`` (see :func:`write_view`); every
    other result gets a warning saying why it has no page. Returns the pages written."""
    pages: list[Path] = []
    taken: set[str] = set()
    for result in results:
        if not result.items:
            warnings.append(
                f"{result.source}: {result.genrm} on {result.task} not viewed: "
                f"{no_samples_hint(result)}"
            )
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        page = out_dir / page_name(result, taken)
        write_view(
            result, page, inline_bytes=inline_bytes, chunk_bytes=chunk_bytes,
            chunk_items=chunk_items,
        )  # fmt: skip
        pages.append(page)
    return pages

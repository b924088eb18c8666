"""``ralign view``'s chunk files (the items of a large run, loaded by its page when one is
opened): their limits and order, script-safe text, and when a page is split at all."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from ralign_tasks.report.runs import TaskResult, load_runs
from ralign_tasks.report.viewer import ChunkWriter, script_json, view_items, write_views
from tests.support.big_run import record_sample_run

_CALL = re.compile(r"ralignChunk\((\d+),(\[.*\])\);\n", re.DOTALL)
_DATA = re.compile(r'<script type="application/json" id="ralign-data">(.*?)</script>', re.DOTALL)
HOSTILE = "</script><!--<script>alert(1)</script> & \u2028line\u2029para é 中文 \\ \" '"


def read_chunk(path: Path) -> tuple[int, list[Any]]:
    """A chunk file's number and items; the file must be exactly one ``ralignChunk`` call."""
    match = _CALL.fullmatch(path.read_text(encoding="utf-8"))
    assert match, f"{path.name} is not one ralignChunk(number, [items]) call"
    return int(match.group(1)), json.loads(match.group(2))


def written(writer: ChunkWriter) -> list[list[Any]]:
    chunks = [read_chunk(writer.folder / name) for name in writer.files]
    assert [number for number, _ in chunks] == list(range(len(writer.files)))
    return [items for _, items in chunks]


def test_chunks_keep_the_items_in_order_within_both_limits(tmp_path):
    pick = random.Random(4)
    items = [
        {"id": f"item-{n}", "text": "é" * pick.randrange(0, 3000) + "x" * pick.randrange(0, 500)}
        for n in range(400)
    ]
    writer = ChunkWriter(tmp_path / "items", max_bytes=20_000, max_items=25)
    for item in items:
        writer.add(item)
    writer.close()
    chunks = written(writer)
    assert [item for chunk in chunks for item in chunk] == items
    assert writer.starts == [sum(len(c) for c in chunks[:k]) for k in range(len(chunks))]
    assert writer.files == sorted(writer.files) == [p.name for p in sorted(writer.folder.iterdir())]
    for name, chunk in zip(writer.files, chunks, strict=True):
        assert (writer.folder / name).stat().st_size <= 20_000 and 1 <= len(chunk) <= 25
    # Filled greedily: a chunk ends where its next item would break a limit.
    for name, chunk, following in zip(writer.files, chunks, chunks[1:], strict=False):
        grown = (writer.folder / name).stat().st_size + len(json.dumps(following[0]).encode())
        assert len(chunk) == 25 or grown > 20_000 - 100


def test_an_item_over_the_size_limit_gets_a_chunk_of_its_own(tmp_path):
    items = [{"id": "a", "text": "x" * 10}, {"id": "big", "text": "x" * 5000}, {"id": "c"}]
    writer = ChunkWriter(tmp_path, max_bytes=1000, max_items=100)
    for item in items:
        writer.add(item)
    writer.close()
    assert written(writer) == [[items[0]], [items[1]], [items[2]]]
    assert writer.starts == [0, 1, 2]


def test_chunk_text_cannot_end_a_script_or_a_javascript_line(tmp_path):
    writer = ChunkWriter(tmp_path)
    writer.add({"id": HOSTILE, "output": HOSTILE})
    writer.close()
    (name,) = writer.files
    raw = (tmp_path / name).read_bytes()
    for unsafe in ("<", ">", "&", "\u2028", "\u2029"):
        assert unsafe.encode("utf-8") not in raw
    assert "é 中文".encode() in raw  # other text stays UTF-8, not \u escapes (size)
    assert read_chunk(tmp_path / name) == (0, [{"id": HOSTILE, "output": HOSTILE}])


# --- when a page is split, and how ------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory) -> TaskResult:
    (result,), warnings = load_runs([record_sample_run(tmp_path_factory.mktemp("sample"))])
    assert not warnings
    return result


def embedded(page: Path) -> dict[str, Any]:
    (text,) = _DATA.findall(page.read_text(encoding="utf-8"))
    return json.loads(text)


def test_a_run_over_the_inline_limit_is_an_index_page_and_a_folder_of_chunks(
    sample_result, tmp_path
):
    (page,) = write_views([sample_result], tmp_path, [], inline_bytes=0, chunk_items=3)
    folder = tmp_path / f"{page.stem}_items"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([page.name, folder.name])
    data = embedded(page)
    items = list(view_items(sample_result))
    assert "items" not in data and len(data["index"]) == len(items) == 8
    # The folder is named relative to the page, so that both can be moved together.
    assert data["chunks"] == {
        "folder": folder.name,
        "files": ["chunk-00000.js", "chunk-00001.js", "chunk-00002.js"],
        "starts": [0, 3, 6],
    }
    chunks = [read_chunk(folder / name)[1] for name in data["chunks"]["files"]]
    assert [item for chunk in chunks for item in chunk] == json.loads(json.dumps(items))
    for row, item in zip(data["index"], items, strict=True):
        # What the list rows and the filters read, and no item text.
        assert row.items() <= item.items()
        assert {"id", "subset", "label", "verdict", "outcome"} <= row.keys()
        assert set(row) <= {"id", "subset", "label", "verdict", "outcome", "truncated",
                            "call_fail", "consistent"}  # fmt: skip

    # Written again with larger chunks, the stale third chunk goes; as one page, the folder.
    write_views([sample_result], tmp_path, [], inline_bytes=0, chunk_items=5)
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-00000.js", "chunk-00001.js"]
    write_views([sample_result], tmp_path, [])
    assert [p.name for p in tmp_path.iterdir()] == [page.name]
    assert embedded(page)["items"] == json.loads(json.dumps(items))


def test_a_run_stays_one_page_up_to_the_limit(sample_result, tmp_path):
    # The limit is on the items' JSON as the page holds it (script-safe escapes included).
    size = sum(len(script_json(item).encode()) for item in view_items(sample_result))
    (page,) = write_views([sample_result], tmp_path, [], inline_bytes=size)
    assert "items" in embedded(page) and [p.name for p in tmp_path.iterdir()] == [page.name]
    write_views([sample_result], tmp_path, [], inline_bytes=size - 1)
    assert "chunks" in embedded(page)

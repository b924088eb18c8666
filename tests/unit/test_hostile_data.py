"""Hostile data files (issue 20): a row with a lone surrogate, a row nested deeper than Python's
JSON parser goes, and whole files that are not JSON or not Parquet are bad rows or errors
naming their file (and line), in every family's loader and every JSON reader, never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import DataFormatError, sample_data_dir
from ralign_tasks.pipeline import read_outputs_file
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.judgebench import read_official_outputs
from ralign_tasks.scorers.jsonl import decode_json_line, json_text, lone_surrogate, read_jsonl
from ralign_tasks.testing.loopback import (
    GENRM_PICKS_A,
    METAJUDGE_CORRECT,
    LoopbackServer,
    play_both_roles,
)
from tests.support.folders import run_dir

HIGH = "\ud83d"  # the first half of 😀 (\ud83d\ude00), alone
DEEP = "[" * 100_000 + "]" * 100_000
SURROGATE_MESSAGE = r"lone surrogate \ud83d in field "


def copy_sample(tmp_path: Path) -> Path:
    """A writable copy of the bundled sample folder (every family's files)."""
    return Path(shutil.copytree(sample_data_dir(), tmp_path / "data_dir"))


def helpsteer3_rows(folder: Path) -> tuple[Path, list[dict]]:
    path = folder / "data" / "helpsteer3_aug.jsonl"
    return path, [row for _, row in read_jsonl(path)]


def write_jsonl(path: Path, rows: list) -> None:
    """Rows as JSON Lines; a string row is written as it is (raw JSON text)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def longest_text_field(row: dict) -> str:
    return max((k for k, v in row.items() if isinstance(v, str)), key=lambda k: len(row[k]))


# --- a lone surrogate -----------------------------------------------------------------------


def test_a_lone_surrogate_names_itself_and_where_it_is():
    row = {"id": "x", "context": [{"role": "user", "content": "ok"}, {"content": f"a{HIGH}"}]}
    assert lone_surrogate(row) == (
        r"lone surrogate \ud83d in field context[1].content at character 2 "
        "(half of a UTF-16 pair, not encodable as UTF-8)"
    )
    # A key, and a bare string; the message itself is always encodable.
    assert lone_surrogate({"id": "x", f"k{HIGH}": 1}).startswith(
        r"lone surrogate \ud83d in a key of the row"
    )
    assert "in the row at character 1" in lone_surrogate(HIGH)
    # A pair is one character; an escaped backslash is text.
    assert lone_surrogate(json.loads(r'{"a": "\ud83d\ude00", "b": "\\ud83d"}')) is None
    # Iterative: as deep as the parser allows, without recursion of its own.
    deep: list = [f"x{HIGH}"]
    for _ in range(50_000):
        deep = [deep]
    assert lone_surrogate(deep).startswith(r"lone surrogate \ud83d in field [0][0]")


def test_a_row_with_a_lone_surrogate_is_a_bad_row_named_by_file_and_line(tmp_path):
    folder = copy_sample(tmp_path)
    path, rows = helpsteer3_rows(folder)
    rows[1]["response_A"] += HIGH
    # Harmless look-alikes stay valid rows: a pair (written "\ud83d\ude00"), an escaped
    # backslash.
    rows[2]["response_A"] += "\U0001f600 \\ud83d"
    write_jsonl(path, rows)
    assert r"\ud83d" in path.read_text(encoding="utf-8")  # json.dumps escapes it
    with pytest.raises(DataFormatError) as info:
        load_task("helpsteer3", folder)
    assert str(info.value).startswith(f"{path}:2: {SURROGATE_MESSAGE}response_A at character")
    loaded = load_task("helpsteer3", folder, skip_bad_rows=True)
    assert len(loaded.records) == 7 and [b.line for b in loaded.bad_rows] == [2]
    assert loaded.records[1].response_a.endswith("\U0001f600 \\ud83d")


def test_check_data_counts_a_lone_surrogate_in_every_family(tmp_path, capsys):
    """JSONL of every family and RM-Bench's JSON file: one bad row each, named."""
    folder = copy_sample(tmp_path)
    for path in sorted((folder / "data").iterdir()):
        if path.suffix == ".json":  # RM-Bench: one JSON array
            rows = json.loads(path.read_text(encoding="utf-8"))
            rows[0][longest_text_field(rows[0])] += HIGH
            path.write_text(json.dumps(rows), encoding="utf-8")
        else:
            rows = [row for _, row in read_jsonl(path)]
            rows[0][longest_text_field(rows[0])] += HIGH
            write_jsonl(path, rows)
    assert main(["check-data", "--data-dir", str(folder)]) == 1
    out = capsys.readouterr().out
    summaries = [line for line in out.splitlines() if " valid rows, " in line]
    assert len(summaries) == 7 and all(line.endswith(", 1 bad") for line in summaries), out
    assert out.count(SURROGATE_MESSAGE) == 7, out
    assert f"{folder / 'data' / 'total_dataset.json'}:0: {SURROGATE_MESSAGE}" in out
    assert f"{folder / 'data' / 'helpsteer3_aug.jsonl'}:1: {SURROGATE_MESSAGE}" in out


def test_ralign_run_skips_a_lone_surrogate_row_or_stops_naming_it(tmp_path, capsys):
    folder = copy_sample(tmp_path)
    path, rows = helpsteer3_rows(folder)
    rows[3]["context"] = [{"role": "user", "content": f"earlier {HIGH}"}]
    write_jsonl(path, rows)
    with LoopbackServer(play_both_roles(GENRM_PICKS_A, METAJUDGE_CORRECT)) as server:
        args = [
            "run", "helpsteer3", "--data-dir", str(folder), "--genrm-model", "g",
            "--genrm-base-url", server.base_url, "--metajudge-model", "j",
            "--metajudge-base-url", server.base_url, "--output-dir", str(tmp_path / "out"),
        ]  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"ralign: error: {path}:4: {SURROGATE_MESSAGE}context[0].content" in err
        assert main([*args, "--skip-bad-rows"]) == 0
    results = json.loads((run_dir(tmp_path / "out", "helpsteer3") / "results.json").read_text())
    (skipped,) = results["settings"]["skipped_bad_rows"]
    assert skipped.startswith(f"{path}:4: {SURROGATE_MESSAGE}context[0].content")
    assert results["settings"]["items"] == 7


def test_a_lone_surrogate_in_a_samples_row_still_reads_back_losslessly(tmp_path):
    """The run's own files are not data: json_text writes a lone surrogate as an escape."""
    value = {"output": f"half {HIGH}"}
    text = json_text(value)
    assert text.isascii() and decode_json_line(text.encode("utf-8")) == value


# --- nested too deeply ----------------------------------------------------------------------


def test_a_row_nested_too_deeply_is_a_bad_row_not_a_recursion_error(tmp_path, capsys):
    folder = copy_sample(tmp_path)
    path, rows = helpsteer3_rows(folder)
    write_jsonl(path, [*rows[:2], DEEP, '{"id": ' + DEEP + "}", *rows[2:]])
    with pytest.raises(DataFormatError, match=r":3: invalid JSON \(nested too deeply to read\)"):
        load_task("helpsteer3", folder)
    loaded = load_task("helpsteer3", folder, skip_bad_rows=True)
    assert len(loaded.records) == 8 and [b.line for b in loaded.bad_rows] == [3, 4]
    assert main(["check-data", "--data-dir", str(folder), "helpsteer3"]) == 1
    assert f"{path}: 8 valid rows, 2 bad" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name", ["total_dataset.json", "chat_filtered.json"], ids=["total", "per-domain"]
)
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json at all", r"invalid JSON \(Expecting value at column 1\)"),
        (
            b'[{"id": 1},\n {"id": 2',
            r"invalid JSON \(Expecting ',' delimiter at line 2 column 10\)",
        ),
        (b"[\xff]", r"not UTF-8 text \(byte 0xff at byte column 2\)"),
        (DEEP.encode(), r"invalid JSON \(nested too deeply to read\)"),
    ],
    ids=["text", "cut-off", "not-utf8", "deep"],
)
def test_an_rmbench_file_that_is_not_json_is_an_error_naming_it(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{path}: not JSON \({reason}\)$"):
        load_task("rmbench", tmp_path)


def test_an_rb2_parquet_file_that_is_not_parquet_is_an_error_naming_it(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data" / "test-00000-of-00001.parquet"
    path.parent.mkdir()
    path.write_text("not parquet\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{path}: not a readable Parquet file \("):
        load_task("rb2", tmp_path)
    # A string column whose bytes are not UTF-8 (a surrogate's CESU-8 bytes): named too.
    offsets = pa.py_buffer(b"\x00\x00\x00\x00\x03\x00\x00\x00")
    prompt = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xed\xa0\xbd")])
    pq.write_table(pa.table({"prompt": prompt}), path)
    with pytest.raises(ValueError, match=rf"^{path}: not a readable Parquet file \(.*utf-8"):
        load_task("rb2", tmp_path)


def test_a_judgebench_file_of_garbage_names_its_file_and_line(tmp_path):
    path = tmp_path / "data" / "gpt-00000-of-00001.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataFormatError, match=rf"^{path}:1: not UTF-8 text \(byte 0x89"):
        load_task("judgebench", tmp_path)


def test_every_jsonl_reader_turns_deep_nesting_into_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n" + DEEP + "\n", encoding="utf-8")  # line 2 (a blank line first)
    message = rf"^{path}:2: invalid JSON \(nested too deeply to read\)"
    with pytest.raises(ValueError, match=message):
        read_outputs_file(path)
    with pytest.raises(ValueError, match=message):
        read_official_outputs(path)
    with pytest.raises(ValueError, match=message):
        list(read_jsonl(path))


def test_a_cut_off_last_row_says_the_file_ends_inside_it(tmp_path):
    path = tmp_path / "outputs.jsonl"
    path.write_text('{"id": "a", "output": "x"}\n{"id": "b", "outp', encoding="utf-8")
    with pytest.raises(ValueError) as info:
        list(read_jsonl(path))
    assert str(info.value) == (
        f"{path}:2: invalid JSON (Unterminated string starting at column 13); "
        "the file ends inside this row (cut off?)"
    )

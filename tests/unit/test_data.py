import json
import re
from pathlib import Path

import pytest

from ralign_tasks.data import DataFormatError, DataUnavailableError, sample_data_dir
from ralign_tasks.protocols import TASKS, get_task, load_task, protocol_of
from ralign_tasks.protocols.fidelity import FIDELITY

GOOD_ROW = {
    "id": "x1",
    "conversations": [{"role": "user", "content": "Which is larger, 9.9 or 9.11?"}],
    "response_A": "9.11",
    "response_B": "9.9",
    "gt_label": "B",
    "gt_judgment": "<think>compare decimals</think>\nB is right: 9.9 > 9.11. \\boxed{B}",
    "source": {"subset": "stem"},
}


def write_rows(folder: Path, rows, name="helpsteer3_aug.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**changes):
    data = json.loads(json.dumps(GOOD_ROW))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize("name", [spec.task for spec in FIDELITY.tasks])
def test_bundled_sample_loads_every_benchmark(name):
    loaded = load_task(name, sample_data_dir())
    assert len(loaded.records) == 8
    assert not loaded.bad_rows
    assert len({r.subset for r in loaded.records}) >= 4
    assert any(r.context for r in loaded.records), "a multi-turn case"
    assert {r.label for r in loaded.records} == {"A", "B"}
    for record in loaded.records:
        assert "</think>" not in record.golden_rationale
        assert record.golden_rationale.strip() == record.golden_rationale


def test_normalised_record(tmp_path):
    multi = row(
        id=None,
        conversations=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "final?"},
        ],
        gt_label=" A\n",
    )
    write_rows(tmp_path / "data", [GOOD_ROW, multi])
    records = load_task("ralign_helpsteer3", tmp_path).records
    first, second = records
    assert first.id == "x1" and first.label == "B" and first.subset == "stem"
    assert first.context == () and first.prompt == "Which is larger, 9.9 or 9.11?"
    assert first.golden_rationale == "B is right: 9.9 > 9.11. \\boxed{B}"
    assert second.label == "A"
    assert second.id == "helpsteer3-line2"
    assert [t.content for t in second.context] == ["hi", "hello"]
    assert second.prompt == "final?"


def test_data_dir_may_hold_the_files_directly_or_under_data(tmp_path, monkeypatch):
    write_rows(tmp_path / "flat", [GOOD_ROW])
    assert len(load_task("helpsteer3", tmp_path / "flat").records) == 1
    monkeypatch.setenv("RALIGN_DATA_DIR", str(tmp_path / "flat"))
    assert len(load_task("helpsteer3").records) == 1


def test_missing_file_names_both_places(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_task("reward_bench2", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "data" / "reward_bench2_aug.jsonl") in message
    assert str(tmp_path / "reward_bench2_aug.jsonl") in message


BAD_ROWS = [
    ('{"id": "broken", ', "invalid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (row(conversations=...), "missing field 'conversations'"),
    (row(conversations=[]), "'conversations' is empty"),
    (row(conversations="hi"), "'conversations' must be a list"),
    (row(conversations=[{"role": "user"}]), "missing field conversations[0].'content'"),
    (row(response_A=...), "missing field 'response_A'"),
    (row(response_B=3), "field 'response_B' must be a string"),
    (row(gt_label="C"), "'gt_label' must be 'A' or 'B', got 'C'"),
    (row(gt_label="tie"), "got 'tie'"),
    (row(gt_judgment=...), "missing field 'gt_judgment'"),
    (row(gt_judgment="<think>only thinking</think>  "), "no rationale"),
    (row(source=...), "missing field 'source'"),
    (row(source={"dataset": "x"}), "missing field source.'subset'"),
    (row(id=[1]), "field 'id' must be"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_ROWS)
def test_bad_row_error_names_file_line_and_reason(tmp_path, bad, reason):
    path = write_rows(tmp_path, [GOOD_ROW, "", bad])
    with pytest.raises(DataFormatError) as info:
        load_task("helpsteer3", tmp_path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert reason in str(info.value)


def test_duplicate_ids_are_an_error(tmp_path):
    write_rows(tmp_path, [GOOD_ROW, GOOD_ROW])
    with pytest.raises(DataFormatError, match=r":2: duplicate id 'x1' \(first on line 1\)"):
        load_task("helpsteer3", tmp_path)


def test_skip_bad_rows_reports_each_one(tmp_path):
    rows = [GOOD_ROW, "not json", row(id="x2", gt_label="C"), row(id="x3")]
    path = write_rows(tmp_path, rows)
    loaded = load_task("helpsteer3", tmp_path, skip_bad_rows=True)
    assert [r.id for r in loaded.records] == ["x1", "x3"]
    assert [(b.line, b.path) for b in loaded.bad_rows] == [(2, str(path)), (3, str(path))]
    assert "invalid JSON" in loaded.bad_rows[0].reason
    assert "gt_label" in loaded.bad_rows[1].reason


def test_hub_path_fails_clearly_offline():
    with pytest.raises(DataUnavailableError) as info:
        load_task("helpsteer3")
    message = str(info.value)
    assert "lyn22333/R-Align-BMK" in message
    assert "hf download lyn22333/R-Align-BMK --repo-type dataset" in message
    assert "RALIGN_DATA_DIR" in message


def test_unknown_benchmark():
    with pytest.raises(KeyError, match="unknown benchmark 'helpsteer4'"):
        get_task("helpsteer3".replace("3", "4"))


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("rewardbench2", "ralign_rewardbench2"),  # the name tables print
        ("reward_bench2", "ralign_rewardbench2"),  # the R-Align repository's name
        ("ppe", "ralign_ppe"),
        ("ppe_human_preference_v1", "ralign_ppe"),
        ("helpsteer3_atomic", "ralign_helpsteer3_atomic"),
        ("ralign_helpsteer3", "ralign_helpsteer3"),
    ],
)
def test_every_printed_name_is_accepted(name, task):
    assert get_task(name).task == task
    for spec in TASKS.values():
        assert get_task(spec.short) is spec


def test_every_loader_rejects_unknown_subset_and_domain_names():
    """The CLI, lm-eval and Inspect loaders all name an unknown subset (or domain) and list the
    known ones, instead of quietly evaluating fewer items."""
    from ralign_tasks.lm_eval_adapter.tasks import load_docs

    # lm-eval: one line naming the task, no traceback (SystemExit).
    with pytest.raises(SystemExit, match=r"ralign: error: ralign_helpsteer3: unknown subset\(s\) "
                       r"'maths'.*known: code, general"):  # fmt: skip
        load_docs("ralign_helpsteer3", sample=True, subset=["code", "maths"])
    docs = load_docs("ralign_helpsteer3", sample=True, subset="code")["test"]
    assert {d["subset"] for d in docs} == {"code"}
    with pytest.raises(SystemExit, match=r"unknown domain\(s\) 'code'.*known: Code, General"):
        load_docs("ralign_helpsteer3_atomic", sample=True, domain="code")


def test_bytes_that_are_not_utf8_are_a_bad_row_named_by_file_and_line(tmp_path):
    path = tmp_path / "helpsteer3_aug.jsonl"
    bad = json.dumps(row(id="x2")).encode().replace(b"9.11", b"9.\xff11")
    path.write_bytes(json.dumps(GOOD_ROW).encode() + b"\n" + bad + b"\n")
    with pytest.raises(DataFormatError) as info:
        load_task("helpsteer3", tmp_path)
    assert str(info.value).startswith(f"{path}:2: not UTF-8 text (byte 0xff")
    loaded = load_task("helpsteer3", tmp_path, skip_bad_rows=True)
    assert [r.id for r in loaded.records] == ["x1"] and loaded.bad_rows[0].line == 2


def test_a_byte_order_mark_and_line_separators_inside_strings_are_fine(tmp_path):
    tricky = row(id="x2", response_A="one\u2028two\u2029three\x85four")
    # A lone carriage return between tokens is JSON whitespace, not the end of a row.
    second = json.dumps(tricky, ensure_ascii=False).replace(', "', ',\r"', 1)
    path = tmp_path / "helpsteer3_aug.jsonl"
    text = json.dumps(GOOD_ROW) + "\n" + second + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    records = load_task("helpsteer3", tmp_path).records
    assert [r.id for r in records] == ["x1", "x2"]
    assert records[1].response_a == "one\u2028two\u2029three\x85four"


def test_every_loader_reports_non_utf8_rows_by_file_and_line(tmp_path):
    """The CLI, lm-eval and Inspect share one reader: the same bad row, the same message."""
    from ralign_tasks.inspect_adapter.tasks import TaskSetupError, ralign_helpsteer3
    from ralign_tasks.lm_eval_adapter.tasks import load_docs

    path = tmp_path / "helpsteer3_aug.jsonl"
    bad = json.dumps(row(id="x2")).encode().replace(b"9.11", b"9.\xff11")
    path.write_bytes(json.dumps(GOOD_ROW).encode() + b"\n" + bad + b"\n")
    message = f"{path}:2: not UTF-8 text (byte 0xff"
    with pytest.raises(SystemExit, match=re.escape(message)):
        load_docs("ralign_helpsteer3", data_dir=str(tmp_path))
    with pytest.raises(TaskSetupError, match=re.escape(message)):
        ralign_helpsteer3(data_dir=str(tmp_path))
    docs = load_docs("ralign_helpsteer3", data_dir=str(tmp_path), skip_bad_rows=True)["test"]
    assert [d["id"] for d in docs] == ["x1"]


def test_a_run_variant_names_its_non_default_options():
    fidelity, rationale = protocol_of("helpsteer3"), protocol_of("helpsteer3_atomic")
    assert fidelity.variant({"verdict_policy": "official"}) == ""
    assert fidelity.variant({"verdict_policy": "strict", "split": "full"}) == (
        "verdict_policy=strict"
    )
    assert rationale.variant({"split": "full"}) == "split=full"
    assert rationale.variant({}) == ""

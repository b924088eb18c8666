"""The label benchmarks' protocols without a model: where their files are found (official
names, per-domain files, parquet, the hub offline), bad rows, and what each prompt shows."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ralign_tasks.data import DataFormatError, DataUnavailableError, sample_data_dir
from ralign_tasks.protocols import get_task, protocol_of
from ralign_tasks.protocols.base import GenRMOutput
from ralign_tasks.protocols.rewardbench2 import JSONL_FILE
from ralign_tasks.scorers.rewardbench2 import ranking_order


def load(name, folder, **kwargs):
    spec = get_task(name)
    return protocol_of(spec).load(spec, folder, **kwargs)


def sample_rows(name: str) -> list[dict]:
    path = sample_data_dir() / "data" / name
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rb2_reads_the_hub_parquet_layout_like_the_jsonl(tmp_path):
    rows = sample_rows(JSONL_FILE)
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000-of-00001.parquet")
    from_parquet = load("rb2", tmp_path).records
    assert from_parquet == load("rb2", sample_data_dir()).records


def test_rmbench_per_domain_files_give_the_total_files_items(tmp_path):
    rows = sample_rows("total_dataset.json")
    for domain in ("chat", "code", "math", "safety-refuse", "safety-response"):
        mine = [
            {**{k: v for k, v in row.items() if k != "domain"}, "id": int(row["id"].split("/")[1])}
            for row in rows
            if row["domain"] == domain
        ]
        (tmp_path / f"{domain}_filtered.json").write_text(json.dumps(mine))
    per_domain = sorted(load("rmbench", tmp_path).records, key=lambda r: r.id)
    total = sorted(load("rmbench", sample_data_dir()).records, key=lambda r: r.id)
    assert per_domain == total
    assert {r.domain for r in total} == {"chat", "code", "math", "safety"}  # safety pooled


def test_the_hub_offline_is_a_clear_error_with_the_way_out(monkeypatch):
    for name in ("rb2", "rmbench", "judgebench"):
        with pytest.raises(DataUnavailableError, match="hf download") as error:
            load(name, None)
        assert get_task(name).hf_dataset in str(error.value)


def test_bad_rows_name_the_problem_and_can_be_skipped(tmp_path):
    rows = sample_rows(JSONL_FILE)
    rows[0] = {**rows[0], "rejected": rows[0]["rejected"][:2]}
    (tmp_path / JSONL_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError, match="best-of-4: 'rejected' must hold 3"):
        load("rb2", tmp_path)
    loaded = load("rb2", tmp_path, skip_bad_rows=True)
    assert len(loaded.records) == len(rows) - 1 and len(loaded.bad_rows) == 1
    total = sample_rows("total_dataset.json")
    total[1]["chosen"] = total[1]["chosen"][:2]
    (tmp_path / "total_dataset.json").write_text(json.dumps(total))
    with pytest.raises(ValueError, match=r"row 1: field 'chosen' must be a list of three"):
        load("rmbench", tmp_path)


def test_an_integer_option_accepts_digits_only():
    protocol = protocol_of("rmbench")
    assert protocol.option_values({"seed": "7"}, "rmbench")["seed"] == 7
    with pytest.raises(ValueError, match="seed must be a whole number"):
        protocol.option_values({"seed": "seven"}, "rmbench")


def test_what_each_prompt_shows():
    judgebench = protocol_of("judgebench")
    pair = load("judgebench", sample_data_dir()).records[0]
    first, second = judgebench.genrm_prompts(pair, judgebench.option_values({}, "judgebench"))
    assert first.index(pair.response_a) < first.index(pair.response_b)
    assert second.index(pair.response_b) < second.index(pair.response_a)  # game 2 swaps

    rb2 = protocol_of("rb2")
    options = rb2.option_values({}, "rb2")
    for record in load("rb2", sample_data_dir()).records:
        if record.subset == "ties":
            continue
        (shown,) = rb2.games(record, options)
        (prompt,) = rb2.genrm_prompts(record, options)
        slot = "ABCD".index(shown["chosen_slot"])
        assert shown["order"] == list(ranking_order(slot))
        candidates = (record.chosen[0], *record.rejected)
        positions = [prompt.index(candidates[i]) for i in shown["order"]]
        assert positions == sorted(positions)  # shown in slot order A..D
        # The verdict naming the chosen slot earns 1; no verdict 0.25.
        judgment = rb2.judgment(record, [GenRMOutput(f"[[{shown['chosen_slot']}]]")], options)
        assert rb2.outcome(judgment, [], False).credit == 1.0
        judgment = rb2.judgment(record, [GenRMOutput("no idea")], options)
        assert rb2.outcome(judgment, [], False).credit == 0.25

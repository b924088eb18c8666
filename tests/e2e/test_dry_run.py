"""``ralign run --dry-run`` and ``ralign cost``: what a run will pay, known before it runs, equals
what it then records: requests always; prompt tokens exactly where the model's tokenizer is at
hand (an in-process tiny Llama); the cost by the same prices. Cached answers are never counted,
and the judge's requests are exact once the GenRM's answers are cached, bounded before."""

from __future__ import annotations

import json

import pytest

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import LoopbackServer, stand_in
from ralign_tasks.testing.random_model import build_random_llama

PRICES = ["--price-in", "3", "--price-out", "7"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    records = load_task("helpsteer3", sample_data_dir()).records
    corpus = [r.prompt + r.response_a + r.golden_rationale for r in records] * 4
    return build_random_llama(tmp_path_factory.mktemp("tiny") / "llama", corpus)


def dry_rows(capsys) -> dict[tuple[str, str], list[str]]:
    """The dry run's table by (benchmark, role)."""
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("benchmark"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line or line.startswith(("total", "~")):
            break
        cells = [cell for cell in line.split("  ") if cell.strip()]
        rows[(cells[0].strip(), cells[1].strip())] = [cell.strip() for cell in cells[2:]]
    return rows


def number(cell: str) -> float:
    return float(cell.lstrip("~≤ ").replace(",", "").split(" ")[0])


def usage(out, genrm="genrm") -> dict:
    (results,) = (out / genrm).glob("*/results.json")
    return json.loads(results.read_text())["usage"]


def test_the_dry_run_counts_what_the_run_then_pays(tmp_path, capsys):
    with LoopbackServer(stand_in) as server:
        base = ["helpsteer3", "--sample", "--genrm-model", "genrm", "--genrm-base-url",
                server.base_url, "--output-dir", str(tmp_path)]  # fmt: skip
        judge = ["--metajudge-model", "judge", "--metajudge-base-url", server.base_url]
        assert main(["run", *base, *judge, "--dry-run"]) == 0
        before = dry_rows(capsys)
        # Nothing is answered yet: 8 GenRM prompts; the judge at most one per item.
        assert before[("helpsteer3", "genrm")][1] == "8"
        assert before[("helpsteer3", "judge")][1] == "0 (≤ 8)"
        assert not (tmp_path / "genrm").exists()  # and no run was written
        assert main(["run", *base, "--no-metajudge"]) == 0  # the GenRM's answers are cached
        capsys.readouterr()
        assert main(["run", *base, *judge, "--dry-run", "--overwrite"]) == 0
        after = dry_rows(capsys)
        assert after[("helpsteer3", "genrm")][1:3] == ["0", "8"]
        judged = after[("helpsteer3", "judge")]
        assert main(["run", *base, *judge, "--overwrite"]) == 0
    paid = usage(tmp_path)
    # The stand-in GenRM answers A: the judge grades the label-correct items, as foreseen.
    assert int(judged[1]) == paid["judge"]["calls"] == paid["judge"]["requests"] > 0
    assert paid["genrm"]["calls"] == 0 and paid["genrm"]["cost_usd"] is None


def test_tokens_and_cost_are_exact_for_a_local_tokenizer(tmp_path, capsys, monkeypatch,
                                                         tiny_model):  # fmt: skip
    # The meta-judge: a tiny random Llama in process (its answers are noise, counted as
    # unreadable), at most 4 tokens an answer.
    monkeypatch.setenv("RALIGN_METAJUDGE_BACKEND", "hf")
    monkeypatch.setenv("RALIGN_METAJUDGE_MAX_TOKENS", "4")
    monkeypatch.setenv("RALIGN_METAJUDGE_MAX_ATTEMPTS", "1")
    with LoopbackServer(stand_in) as server:
        base = ["helpsteer3", "--sample", "--genrm-model", "genrm", "--genrm-base-url",
                server.base_url, "--output-dir", str(tmp_path)]  # fmt: skip
        assert main(["run", *base, "--no-metajudge"]) == 0
        capsys.readouterr()
        judge = ["--metajudge-model", str(tiny_model), *PRICES, "--overwrite"]
        assert main(["run", *base, *judge, "--dry-run"]) == 0
        foreseen = dry_rows(capsys)[("helpsteer3", "judge")]
        # Its noise grades nothing: the run is flagged (exit 3) and records what it paid.
        assert main(["run", *base, *judge]) == 3
    paid = usage(tmp_path)["judge"]
    requests, prompt, completion, cost = (number(foreseen[i]) for i in (1, 3, 4, 5))
    assert not foreseen[3].startswith("~")  # counted, not estimated
    assert requests == paid["calls"] and prompt == paid["prompt_tokens"]
    # Completions are foreseen at max_tokens; the cost differs by exactly what was not used.
    assert completion == 4 * requests >= paid["completion_tokens"]
    unused = (completion - paid["completion_tokens"]) * 7 / 1e6
    assert cost == pytest.approx(paid["cost_usd"] + unused, abs=1e-4)
    assert paid["cost_usd"] == pytest.approx((3 * prompt + 7 * paid["completion_tokens"]) / 1e6)


def test_the_genrm_prompt_tokens_of_an_in_process_genrm(tmp_path, capsys, monkeypatch,
                                                        tiny_model):  # fmt: skip
    monkeypatch.setenv("RALIGN_GENRM_BACKEND", "hf")
    monkeypatch.setenv("RALIGN_GENRM_MAX_TOKENS", "4")
    base = ["rb2", "--sample", "--subset", "math", "--genrm-model", str(tiny_model),
            "--output-dir", str(tmp_path), "--no-metajudge"]  # fmt: skip
    assert main(["run", *base, "--dry-run"]) == 0
    foreseen = dry_rows(capsys)[("rb2", "genrm")]
    assert main(["run", *base]) == 3  # noise, no ranking: flagged, and its usage recorded
    (results,) = tmp_path.glob("*/*/results.json")
    paid = json.loads(results.read_text())["usage"]["genrm"]
    assert number(foreseen[1]) == paid["calls"] == 2  # one ranking per item
    assert number(foreseen[3]) == paid["prompt_tokens"]


def test_cost_reads_what_runs_paid(tmp_path, capsys):
    with LoopbackServer(stand_in) as server:
        assert main(["run", "helpsteer3", "--sample", "--genrm-model", "genrm",
                     "--genrm-base-url", server.base_url, "--metajudge-model", "judge",
                     "--metajudge-base-url", server.base_url, "--output-dir", str(tmp_path),
                     *PRICES]) == 0  # fmt: skip
    paid = usage(tmp_path)
    capsys.readouterr()
    assert main(["cost", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = paid["genrm"]["cost_usd"] + paid["judge"]["cost_usd"]
    assert f"{total:,.4f}" in out and "genrm" in out and "judge" in out
    # Priced anew: every role at these prices.
    assert main(["cost", str(tmp_path), "--price-in", "0", "--price-out", "0"]) == 0
    assert "total: 0.0000 USD" in capsys.readouterr().out
    # The report has them too (its terminal table with --details; CSV always).
    assert main(["report", str(tmp_path), "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    spent = sum(paid[r]["prompt_tokens"] + paid[r]["completion_tokens"] for r in paid if paid[r])
    assert cells["ralign_helpsteer3.tokens"] == str(spent)
    assert cells["ralign_helpsteer3.cost_usd"] == f"{total:.4f}"
    assert main(["report", str(tmp_path), "--details"]) == 0
    assert "cost USD" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 0
    assert "cost USD" not in capsys.readouterr().out


def test_price_flags_go_together(capsys):
    assert main(["run", "helpsteer3", "--sample", "--genrm-model", "g", "--no-metajudge",
                 "--dry-run", "--price-in", "1"]) == 2  # fmt: skip
    assert "--price-in and --price-out go together" in capsys.readouterr().err

"""Position swap (issue 14) on the bundled HelpSteer3 sample against scripted loopback GenRMs
and meta-judges: every swap metric equals hand-computed values in the CLI, Inspect and lm-eval,
and without swap nothing changes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval

from ralign_tasks.cli.main import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.inspect_adapter.tasks import TASK_FUNCTIONS
from ralign_tasks.protocols import load_task
from ralign_tasks.testing.loopback import LoopbackServer, is_metajudge_prompt, prompt_of
from tests.support.folders import run_dir
from tests.support.harness import lm_eval_run, read_lm_eval_output
from tests.support.label_judges import pair_answers
from tests.support.scripted import meta_answer

RECORDS = load_task("helpsteer3", sample_data_dir()).records
SECOND_ORDER_NOTE = "the other way round"


def record_of(prompt: str):
    return next(r for r in RECORDS if r.prompt in prompt)


def position_biased(body: dict) -> str:
    """Always the first answer; every rationale Correct."""
    return meta_answer("Correct") if is_metajudge_prompt(body) else "\\boxed{A}"


def order_robust(body: dict) -> str:
    """The better answer in both orders; the meta-judge finds the second order's rationale
    Incorrect on the even-numbered items, every other rationale Correct."""
    prompt = prompt_of(body)
    record = record_of(prompt)
    if is_metajudge_prompt(body):
        second = SECOND_ORDER_NOTE in prompt
        even = RECORDS.index(record) % 2 == 0
        return meta_answer("Incorrect" if second and even else "Correct")
    first, _ = pair_answers(prompt)
    better = record.response_a if record.label == "A" else record.response_b
    return "\\boxed{A}" if first == better else "\\boxed{B}"


N = len(RECORDS)
EXPECTED = {
    # A then A: one order right, one wrong, on every item.
    "position_biased": {"position_consistency": 0.0, "first_position_rate": 1.0,
                        "l_acc_swap": 0.0, "s_corr_swap": None, "f_score_swap": 0.0},
    # Right in both orders; half the items have an Incorrect second-order rationale.
    "order_robust": {"position_consistency": 1.0, "first_position_rate": 0.5,
                     "l_acc_swap": 1.0, "s_corr_swap": 0.5, "f_score_swap": 0.5},
}  # fmt: skip
GENRMS = {"position_biased": position_biased, "order_robust": order_robust}


def cli_run(server, out: Path, *extra: str) -> dict:
    code = main(["run", "helpsteer3", "--sample", "--genrm-model", "g", "--genrm-base-url",
                 server.base_url, "--metajudge-model", "j", "--metajudge-base-url",
                 server.base_url, "--output-dir", str(out), *extra])  # fmt: skip
    assert code == 0
    return json.loads(next(out.glob("*/*/results.json")).read_text())


@pytest.mark.parametrize("genrm", sorted(GENRMS))
def test_swap_metrics_equal_hand_computed_values_in_the_cli(tmp_path, genrm):
    with LoopbackServer(GENRMS[genrm]) as server:
        results = cli_run(server, tmp_path / "swap", "--swap")
        genrm_requests = [b for b in server.requests if not is_metajudge_prompt(b)]
        plain = cli_run(server, tmp_path / "plain")
    assert len(genrm_requests) == 2 * N  # both orders of every pair
    overall = results["metrics"]["overall"]
    for name, value in EXPECTED[genrm].items():
        assert overall[name] == (None if value is None else pytest.approx(value)), name
        assert plain["metrics"]["overall"][name] is None  # swap off: no swap metrics
    # The official metrics are those of the first order, as without swap.
    for name in ("l_acc", "s_corr", "f_score", "label_correct", "meta_correct"):
        assert overall[name] == plain["metrics"]["overall"][name], name
    item = json.loads((run_dir(tmp_path / "swap", "helpsteer3_swap") / "samples.jsonl").read_text()
                      .splitlines()[0])["item"]  # fmt: skip
    assert item["genrm"]["swapped"]["output"] is not None
    assert {entry["slot"] for entry in item["judge"]} <= {0, 1}


def test_the_second_orders_meta_judge_prompt_shows_what_the_genrm_saw(tmp_path):
    with LoopbackServer(order_robust) as server:
        cli_run(server, tmp_path, "--swap")
        meta = [prompt_of(b) for b in server.requests if is_metajudge_prompt(b)]
    second = [p for p in meta if SECOND_ORDER_NOTE in p]
    assert len(second) == len(meta) // 2 == N
    record = record_of(second[0])
    # The comparison as the GenRM saw it: answer B first.
    assert second[0].index(record.response_b) < second[0].index(record.response_a)


def test_the_meta_judge_position_probe_puts_the_genrm_output_first(tmp_path):
    with LoopbackServer(order_robust) as server:
        cli_run(server, tmp_path / "probe", "--judge-order", "genrm_first")
        meta = [prompt_of(b) for b in server.requests if is_metajudge_prompt(b)]
    assert meta and all(p.index("<genrm_output>") < p.index("<golden_judge>") for p in meta)
    assert (run_dir(tmp_path / "probe", "helpsteer3_genrm_first")).is_dir()  # a run of its own


@pytest.mark.parametrize("genrm", sorted(GENRMS))
def test_inspect_gives_the_same_swap_metrics(tmp_path, monkeypatch, genrm):
    with LoopbackServer(GENRMS[genrm]) as server:
        monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
        monkeypatch.setenv("LOOP_API_KEY", "unused")
        monkeypatch.chdir(tmp_path)
        (log,) = inspect_eval(
            TASK_FUNCTIONS["ralign_helpsteer3"](sample=True, swap=True),
            model=f"openai-api/loop/{genrm}",
            model_roles={"meta_judge": f"openai-api/loop/{genrm}-judge"},
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    assert log.status == "success", log.error
    metrics = log.results.scores[0].metrics
    for name, value in EXPECTED[genrm].items():
        got = metrics[name].value
        assert math.isnan(got) if value is None else got == pytest.approx(value), name


@pytest.mark.slow  # lm_eval in a subprocess
def test_lm_eval_gives_the_same_swap_metrics(tmp_path):
    with LoopbackServer(order_robust) as server:
        metadata = {"sample": True, "swap": True, "metajudge_model": "j",
                    "metajudge_base_url": server.base_url}  # fmt: skip
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
    assert run.returncode == 0, run.stderr[-3000:]
    results, _ = read_lm_eval_output(tmp_path)
    found = results["results"]["ralign_helpsteer3"]
    for name, value in EXPECTED["order_robust"].items():
        assert found[f"{name},none"] == pytest.approx(value), name

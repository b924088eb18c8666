"""Repeated sampling (issue 14, ``samples: k``) on the bundled HelpSteer3 sample: a scripted
GenRM whose k answers per item follow a fixed pattern gives hand-computed majority, mean,
stability and per-sample F-Score values in the CLI, Inspect and lm-eval."""

from __future__ import annotations

import json
import threading
from collections import Counter
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
from tests.support.scripted import meta_answer

RECORDS = load_task("helpsteer3", sample_data_dir()).records
K = 3
# Per item (by index mod 4): which of its k answers name the better answer.
PATTERNS = [(True, True, True), (True, False, False), (True, True, False), (False, False, False)]
EXPECTED = {
    "l_acc_maj": 2 / 4,  # patterns 0 and 2
    "l_acc_mean": (3 + 1 + 2 + 0) / 3 / 4,
    "verdict_stability": (1 + 2 / 3 + 2 / 3 + 1) / 4,
    "f_score_mean": (3 + 1 + 2 + 0) / 3 / 4,  # every label-correct rationale is Correct
}


class Sampler:
    """The j-th request for an item's prompt gets the j-th answer of its pattern."""

    def __init__(self) -> None:
        self.asked: Counter[int] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        if is_metajudge_prompt(body):
            return meta_answer("Correct")
        prompt = prompt_of(body)
        index, record = next((i, r) for i, r in enumerate(RECORDS) if r.prompt in prompt)
        with self.lock:
            turn = self.asked[index]
            self.asked[index] += 1
        right = PATTERNS[index % 4][turn % K]
        other = "B" if record.label == "A" else "A"
        return f"\\boxed{{{record.label if right else other}}}"


def check(values: dict, getter) -> None:
    for name, value in EXPECTED.items():
        assert getter(values, name) == pytest.approx(value), name


def test_cli_samples_k_answers_per_item_and_a_rerun_pays_no_call_twice(tmp_path):
    sampler = Sampler()
    args = ["run", "helpsteer3", "--sample", "--samples", str(K), "--genrm-model", "g",
            "--metajudge-model", "j", "--output-dir", str(tmp_path)]  # fmt: skip
    with LoopbackServer(sampler) as server:
        urls = ["--genrm-base-url", server.base_url, "--metajudge-base-url", server.base_url]
        assert main([*args, *urls]) == 0
        asked = len(server.requests)
        assert sum(sampler.asked.values()) == K * len(RECORDS)
        assert main([*args, *urls]) == 0  # every answer from the cache
        assert len(server.requests) == asked
    results = json.loads((run_dir(tmp_path, "helpsteer3_samples3") / "results.json").read_text())
    check(results["metrics"]["overall"], lambda values, name: values[name])
    item = json.loads((run_dir(tmp_path, "helpsteer3_samples3") / "samples.jsonl").read_text()
                      .splitlines()[1])["item"]  # fmt: skip
    assert len(item["genrm"]["repeats"]) == K - 1 and len(item["outcome"]["samples"]) == K


def test_samples_and_swap_together_are_refused(tmp_path, capsys):
    code = main(["run", "helpsteer3", "--sample", "--samples", "2", "--swap",
                 "--genrm-model", "g", "--no-metajudge"])  # fmt: skip
    assert code == 2
    assert "choose swap or samples > 1" in capsys.readouterr().err


def test_inspect_gives_the_same_repeated_sampling_metrics(tmp_path, monkeypatch):
    with LoopbackServer(Sampler()) as server:
        monkeypatch.setenv("LOOP_BASE_URL", server.base_url)
        monkeypatch.setenv("LOOP_API_KEY", "unused")
        monkeypatch.chdir(tmp_path)
        (log,) = inspect_eval(
            TASK_FUNCTIONS["ralign_helpsteer3"](sample=True, samples=K),
            model="openai-api/loop/sampler",
            model_roles={"meta_judge": "openai-api/loop/sampler-judge"},
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    assert log.status == "success", log.error
    check(log.results.scores[0].metrics, lambda metrics, name: metrics[name].value)


@pytest.mark.slow  # lm_eval in a subprocess
def test_lm_eval_gives_the_same_repeated_sampling_metrics(tmp_path: Path):
    with LoopbackServer(Sampler()) as server:
        metadata = {"sample": True, "samples": K, "metajudge_model": "j",
                    "metajudge_base_url": server.base_url}  # fmt: skip
        run = lm_eval_run(server, tmp_path, "ralign_helpsteer3", metadata)
    assert run.returncode == 0, run.stderr[-3000:]
    results, _ = read_lm_eval_output(tmp_path)
    check(results["results"]["ralign_helpsteer3"], lambda found, name: found[f"{name},none"])

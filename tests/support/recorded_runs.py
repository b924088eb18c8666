"""Real lm-eval, Inspect and ``ralign run`` outputs recorded once per test session (the
session fixture ``runs``, registered by ``tests/conftest.py``), for the report and the viewer:
one ``lm_eval run`` (helpsteer3 and ppe, GenRM ``genrm``), one Inspect run (helpsteer3, GenRM
``openai-api/loop/other``) and one ``ralign run`` with the same GenRM answers (GenRM
``cli-genrm``), plus a copy of the Inspect log as ``.json``, a foreign JSON file, a corrupt log
and an lm-eval results file with a metric missing; under ``more/``, Inspect runs of two further
GenRMs with other numbers on the same items."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog, read_eval_log, write_eval_log
from inspect_ai.model import get_model

from ralign_tasks.cli import main
from ralign_tasks.data import sample_data_dir
from ralign_tasks.inspect_adapter.tasks import ralign_helpsteer3
from ralign_tasks.protocols import load_task
from ralign_tasks.protocols.fidelity import PairRecord
from ralign_tasks.testing.loopback import LoopbackServer, Reply
from tests.support.harness import LM_EVAL_SCRIPT, lm_eval_run
from tests.support.scripted import DEFAULT_OTHERS, SCRIPT, meta_answer, scripted_responder

INSPECT_GENRM = "openai-api/loop/other"
JSON_GENRM = "openai-api/loop/other-json"
CLI_GENRM = "cli-genrm"


# name, which items the GenRM gets right ("1") and the meta verdicts of those ("C"/"I").
VARIED_GENRMS = [
    ("strong", "11111111", "CCCCCCCI"),
    ("weak", "11011011", "CICIII"),
]
VARIED_GENRM_NAMES = [f"openai-api/loop/{name}" for name, _, _ in VARIED_GENRMS]


def varied_script(
    records: list[PairRecord], picks: str, verdicts: str
) -> list[tuple[str | Reply, str | Reply]]:
    """A GenRM that picks the label where ``picks`` has a 1, with the meta-judge's verdicts on
    those items in order."""
    script: list[tuple[str | Reply, str | Reply]] = []
    meta = iter(verdicts)
    for record, pick in zip(records, picks, strict=True):
        right = pick == "1"
        choice = record.label if right else ("B" if record.label == "A" else "A")
        verdict = {"C": "Correct", "I": "Incorrect"}[next(meta)] if right else "Correct"
        script.append((f"Answer {choice} is better. \\boxed{{{choice}}}", meta_answer(verdict)))
    return script


def inspect_run(
    records: list[PairRecord],
    script: list[tuple[str | Reply, str | Reply]],
    genrm: str,
    log_dir: Path,
) -> EvalLog:
    """One Inspect run of the helpsteer3 sample with GenRM ``openai-api/loop/<genrm>``."""
    with LoopbackServer(scripted_responder(records, script)) as srv:

        def model(name: str):
            return get_model(
                f"openai-api/loop/{name}", base_url=srv.base_url, api_key="x", memoize=False,
                max_retries=0,
            )  # fmt: skip

        (log,) = inspect_eval(
            ralign_helpsteer3(sample=True),
            model=model(genrm),
            model_roles={"meta_judge": model("judge")},
            max_retries=0,
            score_on_error=True,
            fail_on_error=False,
            log_dir=str(log_dir),
            display="none",
        )
    return log


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict:
    """Real lm-eval and Inspect outputs of the scripted helpsteer3 sample under one folder."""
    root = tmp_path_factory.mktemp("report")
    records = load_task("helpsteer3", sample_data_dir()).records
    lm_out = root / "runs" / "lm_eval"
    with LoopbackServer(scripted_responder(records, LM_EVAL_SCRIPT, others=DEFAULT_OTHERS)) as srv:
        metadata = {
            "sample": True,
            "metajudge_model": "judge",
            "metajudge_base_url": srv.base_url,
            "metajudge_max_attempts": 2,
        }
        run = lm_eval_run(srv, lm_out, "ralign_helpsteer3,ralign_ppe", metadata, "--log_samples")
    assert run.returncode == 0, run.stderr[-3000:]
    shutil.rmtree(lm_out / "cache", ignore_errors=True)
    shutil.rmtree(lm_out / "hf", ignore_errors=True)
    (results_file,) = lm_out.glob("*/results_*.json")
    lm_results = json.loads(results_file.read_text())

    log = inspect_run(records, SCRIPT, "other", root / "runs" / "inspect")
    # The CLI with the Inspect run's GenRM answers: the same numbers, from its run folder.
    with LoopbackServer(scripted_responder(records, SCRIPT)) as srv:
        code = main(
            ["run", "helpsteer3", "--sample", "--genrm-model", CLI_GENRM,
             "--genrm-base-url", srv.base_url, "--metajudge-model", "judge",
             "--metajudge-base-url", srv.base_url, "--no-cache",
             "--output-dir", str(root / "runs" / "cli")]
        )  # fmt: skip
    assert code == 0
    json_log = read_eval_log(log.location)
    json_log.eval.model = JSON_GENRM
    write_eval_log(json_log, str(root / "runs" / "inspect_json" / "run.json"), format="json")

    # A results file without samples: aggregates only, f_score missing, s_corr NaN.
    partial = root / "partial" / "partial_model" / "results_2026-01-01T00-00-00.json"
    partial.parent.mkdir(parents=True)
    trimmed = json.loads(results_file.read_text())
    trimmed["config"]["model_args"] = "model=partial,base_url=http://x"
    task = trimmed["results"]["ralign_helpsteer3"]
    del task["f_score,none"]
    task["s_corr,none"] = float("nan")
    trimmed["results"] = {"ralign_helpsteer3": task}
    partial.write_text(json.dumps(trimmed))

    # Two more GenRMs with their own numbers on the same items, for comparisons and plots.
    for name, picks, verdicts in VARIED_GENRMS:
        inspect_run(records, varied_script(records, picks, verdicts), name, root / "more" / name)

    bad = root / "bad"
    bad.mkdir()
    (bad / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (bad / "broken.eval").write_bytes(b"not a zip file")
    return {"root": root, "lm": lm_results, "inspect": log}

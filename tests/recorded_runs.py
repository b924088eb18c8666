"""Real lm-eval and Inspect outputs recorded once per test session, for the report and the
viewer: one ``lm_eval run`` (helpsteer3 and ppe, GenRM ``genrm``) and one Inspect run
(helpsteer3, GenRM ``openai-api/loop/other``), plus a copy of the Inspect log as ``.json``, a
foreign JSON file, a corrupt log and an lm-eval results file with a metric missing."""

from __future__ import annotations

import json
import shutil

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import get_model

from ralign_tasks.data import load_benchmark, sample_data_dir
from ralign_tasks.inspect_tasks import ralign_helpsteer3
from ralign_tasks.loopback import LoopbackServer
from tests.scripted import DEFAULT_OTHERS, SCRIPT, scripted_responder
from tests.test_lm_eval import LM_EVAL_SCRIPT, lm_eval_run

INSPECT_GENRM = "openai-api/loop/other"
JSON_GENRM = "openai-api/loop/other-json"


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict:
    """Real lm-eval and Inspect outputs of the scripted helpsteer3 sample under one folder."""
    root = tmp_path_factory.mktemp("report")
    records = load_benchmark("helpsteer3", sample_data_dir()).records
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

    with LoopbackServer(scripted_responder(records, SCRIPT)) as srv:

        def model(name: str):
            return get_model(
                f"openai-api/loop/{name}", base_url=srv.base_url, api_key="x", memoize=False,
                max_retries=0,
            )  # fmt: skip

        (log,) = inspect_eval(
            ralign_helpsteer3(sample=True),
            model=model("other"),
            model_roles={"meta_judge": model("judge")},
            max_retries=0,
            score_on_error=True,
            fail_on_error=False,
            log_dir=str(root / "runs" / "inspect"),
            display="none",
        )
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

    bad = root / "bad"
    bad.mkdir()
    (bad / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (bad / "broken.eval").write_bytes(b"not a zip file")
    return {"root": root, "lm": lm_results, "inspect": log}

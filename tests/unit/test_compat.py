"""The harness internals the adapters rely on (their compat modules). These fail loudly on a
harness upgrade that moves or changes them: re-check the adapter against the new release."""

from __future__ import annotations

import inspect as source
from dataclasses import fields

import lm_eval
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask
from lm_eval.evaluator import evaluate

from ralign_tasks.inspect_adapter import compat as inspect_compat
from ralign_tasks.lm_eval_adapter import compat as lm_eval_compat


def test_lm_eval_judges_after_generation_and_scores_the_filtered_responses():
    # Each instance keeps its filtered responses per filter key...
    assert "filtered_resps" in {f.name for f in fields(Instance)}
    assert callable(getattr(ConfigurableTask, "apply_filters", None))
    # ...and the evaluator filters once per task, after all generation, then hands each
    # document's filtered responses to process_results.
    code = source.getsource(evaluate)
    filters = code.index("task.apply_filters()")
    scoring = code.index("task.process_results(")
    assert filters < scoring
    assert "req.filtered_resps[filter_key]" in code[scoring:]


def test_lm_eval_compat_reads_and_replaces_filtered_responses():
    instance = Instance(
        request_type="generate_until", doc={"id": 1}, arguments=("prompt", {}), idx=0
    )
    instance.filtered_resps = {"none": ["the output"]}

    class Task:
        def __init__(self) -> None:
            self.instances = [instance]

    ((found, key, output),) = lm_eval_compat.filtered_responses(Task())  # type: ignore[arg-type]
    assert (found, key, output) == (instance, "none", "the output")
    lm_eval_compat.replace_filtered_response(instance, key, '{"ralign_item": 1}')
    assert instance.filtered_resps == {"none": '{"ralign_item": 1}'}
    assert lm_eval.__version__ == "0.4.13", "re-check lm_eval_adapter/compat.py on an upgrade"


def test_inspect_private_names_still_exist():
    from inspect_ai._util.error import PrerequisiteError

    assert inspect_compat.PrerequisiteError is PrerequisiteError
    assert issubclass(PrerequisiteError, Exception)
    assert inspect_compat.active_model() is None  # no eval running
    error = inspect_compat.ModelGenerateError("Request: …", status_code=400, provider_message="x")
    assert (error.status_code, error.provider_message) == (400, "x")
    from inspect_ai._eval.task.run import update_metrics_display_fn

    display = update_metrics_display_fn(lambda metrics: None)
    assert display.__qualname__ == inspect_compat.DISPLAY_METRICS
    assert not inspect_compat.computing_for_display()

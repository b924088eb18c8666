"""The parts of lm-eval 0.4.13 outside its documented task API that the adapter relies on, in
one place; ``tests/unit/test_compat.py`` fails loudly when an upgrade changes them.

lm-eval's evaluator generates for every document first, then calls ``task.apply_filters()``
once, then ``task.process_results(doc, [instance.filtered_resps[key], …])`` per document and
logs ``filtered_resps`` with ``--log_samples``. The adapter judges all documents in one batch
inside ``apply_filters`` and replaces each filtered response with its judged-item record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask


def filtered_responses(task: ConfigurableTask) -> Iterator[tuple[Instance, str, Any]]:
    """(instance, filter key, the filtered GenRM output) of every instance of a task."""
    for instance in task.instances:
        for key, response in instance.filtered_resps.items():
            yield instance, key, response[0] if isinstance(response, list) else response


def replace_filtered_response(instance: Instance, key: str, value: str) -> None:
    """What ``process_results`` receives (and the samples log shows) for one filter key."""
    instance.filtered_resps[key] = value


# The keyword arguments of ``ConfigurableTask.build_all_requests`` that shape a prompt's
# context (system instruction, chat template): ``construct_requests`` does not receive them
# all, and a task that asks several prompts per document builds its other contexts with them.
CONTEXT_SETTINGS = ("system_instruction", "apply_chat_template", "fewshot_as_multiturn",
                    "chat_template")  # fmt: skip


def context_settings(build_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The context settings among ``build_all_requests``'s keyword arguments."""
    return {name: build_kwargs[name] for name in CONTEXT_SETTINGS if name in build_kwargs}


def prompt_context(task: ConfigurableTask, doc: dict[str, Any], settings: Mapping[str, Any]) -> Any:
    """The context of ``doc`` as lm-eval builds it for a document's first request (zero-shot,
    with the run's system instruction and chat template)."""
    return task.fewshot_context(doc, num_fewshot=0, gen_prefix=task.doc_to_prefix(doc), **settings)


def with_index(instance: Instance, index: int) -> Instance:
    """The request ``instance`` as the ``index``-th of its document (``process_results`` gets
    a document's filtered responses in this order)."""
    instance.idx = index
    return instance


def add_metric(task: ConfigurableTask, name: str, aggregation: Any, higher_is_better: bool) -> None:
    """Report one more metric that the task's YAML does not list (its value comes from
    ``process_results``; ``aggregation`` combines the documents' values)."""
    task._metric_fn_list[name] = lambda items: items
    task._aggregation_list[name] = aggregation
    task._higher_is_better[name] = higher_is_better


def stderr_name(metric: str) -> str:
    """The metric whose value lm-eval reports as ``metric``'s standard error: it writes
    ``<metric>_stderr,<filter>`` itself ("N/A" for an aggregation it cannot bootstrap), and a
    metric of that name, aggregated later, takes that key over."""
    return f"{metric}_stderr"

"""The parts of lm-eval 0.4.13 outside its documented task API that the adapter relies on, in
one place; ``tests/unit/test_compat.py`` fails loudly when an upgrade changes them.

lm-eval's evaluator generates for every document first, then calls ``task.apply_filters()``
once, then ``task.process_results(doc, [instance.filtered_resps[key], …])`` per document and
logs ``filtered_resps`` with ``--log_samples``. The adapter judges all documents in one batch
inside ``apply_filters`` and replaces each filtered response with its judged-item record.
"""

from __future__ import annotations

from collections.abc import Iterator
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

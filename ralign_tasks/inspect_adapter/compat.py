"""The private parts of inspect-ai 0.3.285 that the adapter uses, in one place;
``tests/unit/test_compat.py`` fails loudly when an upgrade moves or changes them."""

from __future__ import annotations

import sys

# The error type Inspect prints without a traceback (a missing role, unusable data).
from inspect_ai._util.error import PrerequisiteError

# The model under evaluation (``active_model``), already set while `inspect eval` creates the
# tasks: lets a task check its model roles before anything runs. A provider's error after
# Inspect's retries (``ModelGenerateError``): its status code and the provider's own message
# (its text also carries the whole request).
from inspect_ai.model._model import ModelGenerateError, active_model

# Inspect computes metrics on the samples done so far for its progress display, from this
# function's inner ``compute``, and for the eval's results elsewhere.
DISPLAY_METRICS = "update_metrics_display_fn.<locals>.compute"

__all__ = [
    "ModelGenerateError",
    "PrerequisiteError",
    "StatedError",
    "active_model",
    "computing_for_display",
]


class StatedError(PrerequisiteError):
    """An error Inspect prints without a traceback whose ``str()`` (and so the log's error
    message) is its text too: ``PrerequisiteError`` keeps the text in ``.message`` only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)


def computing_for_display() -> bool:
    """Whether the metrics being computed are the progress display's (on the samples done so
    far), not the eval's results."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_qualname == DISPLAY_METRICS:
            return True
        frame = frame.f_back
    return False

"""The private parts of inspect-ai 0.3.285 that the adapter uses, in one place;
``tests/unit/test_compat.py`` fails loudly when an upgrade moves or changes them."""

from __future__ import annotations

# The error type Inspect prints without a traceback (a missing role, unusable data).
from inspect_ai._util.error import PrerequisiteError

# The model under evaluation, already set while `inspect eval` creates the tasks: lets a task
# check its model roles before anything runs.
from inspect_ai.model._model import active_model

__all__ = ["PrerequisiteError", "active_model"]

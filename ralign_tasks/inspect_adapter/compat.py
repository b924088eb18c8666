"""The private parts of inspect-ai 0.3.285 that the adapter uses, in one place;
``tests/unit/test_compat.py`` fails loudly when an upgrade moves or changes them."""

from __future__ import annotations

# The error type Inspect prints without a traceback (a missing role, unusable data).
from inspect_ai._util.error import PrerequisiteError

# The model under evaluation (``active_model``), already set while `inspect eval` creates the
# tasks: lets a task check its model roles before anything runs. A provider's error after
# Inspect's retries (``ModelGenerateError``): its status code and the provider's own message
# (its text also carries the whole request).
from inspect_ai.model._model import ModelGenerateError, active_model

__all__ = ["ModelGenerateError", "PrerequisiteError", "active_model"]

"""Inspect's entry point: importing this registers every protocol's tasks and scorer."""

from ralign_tasks.inspect_adapter.scorer import SCORERS
from ralign_tasks.inspect_adapter.tasks import TASK_FUNCTIONS

globals().update(SCORERS)
globals().update(TASK_FUNCTIONS)
__all__ = sorted([*SCORERS, *TASK_FUNCTIONS])

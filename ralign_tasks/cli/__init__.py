"""The ``ralign`` command line."""

from ralign_tasks.cli.main import main

__all__ = ["main"]

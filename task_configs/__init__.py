"""lm-evaluation-harness YAML task and group configs, shipped as package data."""

from pathlib import Path


def include_path() -> Path:
    """The folder to pass to ``lm_eval --include_path``."""
    return Path(__file__).parent

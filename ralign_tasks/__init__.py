"""ralign-tasks: rationale-aware reward-model benchmarks for lm-evaluation-harness and Inspect."""

__version__ = "0.1.0"

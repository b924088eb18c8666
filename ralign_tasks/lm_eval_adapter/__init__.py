"""The lm-evaluation-harness adapter: one generic task class and hooks for every protocol's
YAML in ``task_configs/``. The only package modules that import ``lm_eval``."""

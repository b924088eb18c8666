"""The Inspect adapter: a task and a scorer for every protocol, registered under
``ralign_tasks/`` through ``_registry`` (the ``inspect_ai`` entry point). The only package
modules, with ``lm_eval_adapter``, that import a harness."""

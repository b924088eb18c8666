"""Helpers for tests and benchmarks, not used by any run: a scripted OpenAI-compatible loopback
server (also ``python -m ralign_tasks.testing.loopback``) and random-weight models built from a
config when no checkpoint can be downloaded."""

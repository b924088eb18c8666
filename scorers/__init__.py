"""Harness-agnostic scoring: verdict parsing, the meta-judge protocol and engine, metrics."""

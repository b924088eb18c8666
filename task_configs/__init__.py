"""lm-evaluation-harness YAML task and group configs, shipped as package data."""

"""Benchmarks: scripts that print figures, not tests. See ``docs/benchmarks.md``."""

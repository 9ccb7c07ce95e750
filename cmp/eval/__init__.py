"""Benchmarks: how well models and baselines propagate sparse motion to dense flow."""

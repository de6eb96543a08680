"""Synthetic readings at a configured rate, for demos, load tests and benchmarks."""

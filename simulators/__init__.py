"""Runnable device simulators, one per driver: `python -m simulators <name> --help`."""

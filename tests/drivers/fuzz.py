"""Settings shared by the parsers' fuzz tests (hypothesis).

Quick and deterministic by default: every run of CI tries the same examples (`derandomize`), a
few hundred per parser, in a few seconds in total. On demand, longer and with new examples:

    FUZZ=long .venv/bin/python -m pytest -q tests/drivers -k fuzz            # 20 000 examples per test
    FUZZ=long FUZZ_SEED=7 .venv/bin/python -m pytest -q tests/drivers -k fuzz   # the same long run again
    FUZZ_EXAMPLES=100000 FUZZ=long …                                         # longer still

Time is asserted by counting work (bytes examined, candidate frames checked) against the input's
length. Wall-clock budgets are asserted only with FUZZ=long, where a slow machine is no surprise and
the budgets are generous.
"""

from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, seed, settings

LONG = os.environ.get("FUZZ", "ci") == "long"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20000" if LONG else "200"))

_settings = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(test):
    """Apply the profile's settings (and FUZZ_SEED in a long run) to a @given test."""
    test = _settings(test)
    if LONG and "FUZZ_SEED" in os.environ:
        test = seed(int(os.environ["FUZZ_SEED"]))(test)
    return test


def cpu_seconds(fn, *args) -> float:
    start = time.process_time()
    fn(*args)
    return time.process_time() - start

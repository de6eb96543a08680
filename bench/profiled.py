"""Run `python -m gateway …` under cProfile with a CPU-time clock (wall time would count the waits
of a loaded machine): `python bench/profiled.py OUT.prof run -c gateway.yaml`. The profile is
written when the gateway stops (SIGTERM)."""

import cProfile
import sys
import time

sys.path.insert(0, ".")
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["gateway", *args]
prof = cProfile.Profile(time.process_time)
try:
    from gateway.ops.cli import main

    prof.enable()
    code = main(args)
finally:
    prof.disable()
    prof.dump_stats(out)
sys.exit(code)

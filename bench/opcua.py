"""OPC UA benchmark: the simulator in its own process with `--nodes` changing Double nodes, read
through one subscription.

    python bench/opcua.py [--seconds 20] [--nodes 500] [--period 0.1]             # driver alone
    python bench/opcua.py --pipeline [--seconds 20] …                            # through the gateway

Driver alone: the driver runs in this process and its readings are counted.
`--pipeline`: the real gateway process subscribes, stamps, commits every reading to its SQLite capture log
and publishes it to a private mosquitto; printed are readings/s, the backlog at the start,
middle and end of the window (it must not grow: the publisher keeps up), and the gateway's CPU.
Every node changes every `--period` seconds and is sampled at that rate: nodes / period readings per
second offered (the simulator is pure Python: on a small machine it may offer less). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio

from harness import driver_alone, pipeline, simulator, stop


def device(url: str, ns: int, nodes: int, period: float) -> dict:
    return {
        "kind": "opcua", "name": "ua", "url": url, "timeout": 10, "watchdog": 2.0, "sampling": period, "connect_timeout": 30,
        "nodes": [{"name": f"v{i:04d}", "node": f"ns={ns};s=Bench.v{i:04d}", "queue": 10} for i in range(nodes)],
    }


async def main_async(args: argparse.Namespace) -> None:
    sim, line = simulator(["opcua", "--port", "0", "--period", str(args.period), "--extra", str(args.nodes)])
    try:
        # "opcua simulator: opc.tcp://127.0.0.1:PORT/shopfloor certificate … namespace N"
        words = line.split()
        url, ns = words[2], int(words[-1])
        dev = device(url, ns, args.nodes, args.period)
        print(f"opcua: {args.nodes} nodes changing every {args.period} s = {args.nodes / args.period:,.0f} changes/s offered; {url}")
        if args.pipeline:
            res = await pipeline([dev], args.seconds, mqtt={"max_pack": args.pack})
            res.report(f"pipeline (gateway process -> SQLite capture log -> mosquitto, max_pack {args.pack})")
        else:
            from drivers.opcua.config import OpcUaConfig

            await driver_alone([OpcUaConfig.model_validate(dev).build()], args.seconds)
    finally:
        stop(sim)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measured window in seconds (after a 3 s warm-up)")
    p.add_argument("--nodes", type=int, default=1000, help="changing nodes subscribed (monitored items)")
    p.add_argument("--period", type=float, default=0.1, help="seconds between changes (and sampling interval)")
    p.add_argument("--pipeline", action="store_true", help="through the real gateway, capture log and a private mosquitto")
    p.add_argument("--pack", type=int, default=100, help="with --pipeline: mqtt.max_pack")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

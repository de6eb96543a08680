"""Modbus TCP benchmark: the simulator in its own process, polled by several connections.

    python bench/modbus.py [--seconds 20] [--devices 4] [--tags 100] [--interval 0.1]             # driver alone
    python bench/modbus.py --pipeline [--seconds 20] …                                         # through the gateway

Driver alone: the drivers run in this process and their readings are counted.
`--pipeline`: the real gateway process reads the same devices, stamps, commits every reading to its
SQLite capture log and publishes it to a private mosquitto; printed are readings/s, the backlog at
the start, middle and end of the window (it must not grow: the publisher keeps up), and the gateway's
CPU. Each device is one TCP connection polling `--tags` uint16 registers (one merged request) every
`--interval` seconds: devices × tags / interval readings per second. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio

from harness import driver_alone, pipeline, simulator, stop


def devices(port: int, n: int, tags: int, interval: float) -> list[dict]:
    return [
        {
            "kind": "modbus", "name": f"plc{i}", "host": "127.0.0.1", "port": port, "unit": 1, "timeout": 2.0,
            "polls": [{"interval": interval, "tags": [{"name": f"r{a}", "address": a, "type": "uint16"} for a in range(tags)]}],
        }
        for i in range(n)
    ]


async def main_async(args: argparse.Namespace) -> None:
    sim, line = simulator(["modbus", "--port", "0", "--period", "0.1"])
    try:
        port = int(line.rsplit(":", 1)[1].split(",")[0])
        devs = devices(port, args.devices, args.tags, args.interval)
        rate = args.devices * args.tags / args.interval
        print(f"modbus: {args.devices} TCP connection(s) x {args.tags} registers every {args.interval} s = {rate:,.0f} readings/s offered; simulator {line}")
        if args.pipeline:
            res = await pipeline(devs, args.seconds, mqtt={"max_pack": args.pack})
            res.report(f"pipeline (gateway process -> SQLite capture log -> mosquitto, max_pack {args.pack})")
        else:
            from drivers.modbus.config import ModbusConfig

            await driver_alone([ModbusConfig.model_validate(d).build() for d in devs], args.seconds)
    finally:
        stop(sim)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measured window in seconds (after a 3 s warm-up)")
    p.add_argument("--devices", type=int, default=10, help="Modbus TCP connections (PLCs) to the simulator")
    p.add_argument("--tags", type=int, default=100, help="uint16 registers per device (<= 125: one request)")
    p.add_argument("--interval", type=float, default=0.1, help="poll interval in seconds")
    p.add_argument("--pipeline", action="store_true", help="through the real gateway, capture log and a private mosquitto")
    p.add_argument("--pack", type=int, default=100, help="with --pipeline: mqtt.max_pack")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command benchmark: what deciding about one MQTT command costs on one core (schema, signature,
replay window), for commands that are applied and for a flood that is refused.

    python bench/commands.py [--commands 20000]

Prints figures; asserts nothing. Runs in a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.station.commands import Commands, Guard, Incoming, sign  # noqa: E402

BASE = "shopfloor/plant1/assembly/line1"
TOPIC = f"{BASE}/st10/cmd/context"
KEY = b"0123456789abcdef" * 4


async def applied(station, ch):
    return {"ok": True, "context": {"context_id": "c", "version": 1}}


def payloads(n: int, signed: bool, kind: str) -> list[bytes]:
    out = []
    now = time.time()
    for i in range(n):
        cmd = {"id": f"c-{i}", "ts": now, "action": "start", "work_order": f"WO-{i}", "extra": {"bom": [f"{i:014d}"] * 50}}
        if kind == "invalid":
            cmd["extra"] = {"bom": 5}
        body = orjson.dumps(cmd)
        if kind == "too_large":
            body = b"x" * 300_000
        if kind == "bad_signature":
            body = sign(b"x" * 64, body)
        elif signed:
            body = sign(KEY, body)
        out.append(body)
    return out


async def run(n: int) -> None:
    cases = [("unsigned, applied", False, "ok"), ("signed, applied", True, "ok"), ("unsigned, invalid", False, "invalid"),
             ("signed, bad signature", True, "bad_signature"), ("300 KB, refused", False, "too_large")]
    for name, signed, kind in cases:
        cmds = Commands(BASE, "gw", ["st10"], applied, Guard(KEY, 60) if signed else None)
        bodies = payloads(n if kind != "too_large" else n // 10, signed, kind)
        t = time.perf_counter()
        for body in bodies:
            await cmds.on_message(Incoming(TOPIC, body))
        dt = time.perf_counter() - t
        print(f"{name:<24} {dt / len(bodies) * 1e6:8.1f} us per command  ({cmds.accepted} accepted, {cmds.reasons or '-'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--commands", type=int, default=20000)
    args = p.parse_args()
    import structlog

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # refusals are logged; not measured here
    asyncio.run(run(args.commands))


if __name__ == "__main__":
    main()

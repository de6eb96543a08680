from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

from drivers.synthetic.config import SyntheticConfig
from gateway.kit import Reading, every

TICK = 0.01  # finest pacing; higher rates emit several readings per tick, like a PLC poll


class Synthetic:
    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        self.count = 0

    async def connect(self) -> None:
        return None

    async def readings(self) -> AsyncIterator[list[Reading]]:
        """One list per tick, like a PLC poll; a crash or the limit ends the tick's list early, and
        the readings made before it are yielded first."""
        cfg = self.cfg
        interval = max(TICK, 1.0 / cfg.rate)
        per_tick = cfg.rate * interval
        names = [f"tag{i}" for i in range(cfg.tags)]
        loop = asyncio.get_running_loop()
        start, made = loop.time(), 0
        async for now in every(interval):
            # What the rate owes since the start: a tick the loop skipped under load is made up in the
            # next, so the offered rate is the configured one (a load generator, not a device).
            n = int((loop.time() - start) * cfg.rate + per_tick) - made
            made += n
            poll: list[Reading] = []
            for _ in range(n):
                i = self.count
                if cfg.crash_every and i % cfg.crash_every == cfg.crash_every - 1:
                    self.count += 1
                    if poll:
                        yield poll
                    raise _crash(cfg.crash_with, i)
                self.count += 1
                tag = names[i % cfg.tags]
                if cfg.bad_every and i % cfg.bad_every == cfg.bad_every - 1:
                    poll.append(Reading(tag, None, now, "bad", cfg.unit, "synthetic fault"))
                else:
                    poll.append(Reading(tag, round(50 + 20 * math.sin(i / 500), 3), now, "good", cfg.unit))
                if cfg.limit is not None and self.count >= cfg.limit:
                    break
            if poll:
                yield poll
            if cfg.limit is not None and self.count >= cfg.limit:
                return

    async def aclose(self) -> None:
        return None


def _crash(kind: str, i: int) -> Exception:
    """An error of a type nobody lists, as a library might raise it."""
    message = f"synthetic crash at reading {i}"
    if kind == "IncompleteReadError":
        return asyncio.IncompleteReadError(b"partial", 8)
    if kind == "KeyError":
        return KeyError(message)
    return {"ZeroDivisionError": ZeroDivisionError, "EOFError": EOFError, "AssertionError": AssertionError}[kind](message)

"""A null-modem cable made of two pseudo-terminals, for serial simulators.

A pty has one named end (the slave, `/dev/pts/N`) and one anonymous end (the master fd). Libraries that
open serial ports by path (pymodbus' serial server, the gateway's drivers) need a named end on *both*
sides, so `NullModem` creates two ptys and copies bytes between their masters: whatever is written to
`a` is read from `b` and back, like a crossed RS-232/RS-485 cable.

Invariants:
- Both slave ends are in raw mode (no echo, no line editing) before anyone opens them.
- We keep our own descriptor of each slave open, so a peer closing and re-opening its end does not
  make the master return EIO and tear the cable down.
- Bytes that cannot be delivered (the far side is not draining) are dropped and counted in `dropped`,
  as on a real line; the copy never blocks the event loop.
- `cut = True` drops everything in both directions (an unplugged cable) until set back to False.
"""

from __future__ import annotations

import asyncio
import os
import tty


class NullModem:
    def __init__(self) -> None:
        self.a = self.b = ""
        self.cut = False
        self.dropped = 0
        self._fds: list[int] = []

    async def __aenter__(self) -> NullModem:
        ma, sa = os.openpty()
        mb, sb = os.openpty()
        self._fds = [ma, sa, mb, sb]
        for fd in (sa, sb):
            tty.setraw(fd)
        for fd in (ma, mb):
            os.set_blocking(fd, False)
        self.a, self.b = os.ttyname(sa), os.ttyname(sb)
        loop = asyncio.get_running_loop()
        loop.add_reader(ma, self._copy, ma, mb)
        loop.add_reader(mb, self._copy, mb, ma)
        return self

    def _copy(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no slave open right now; nothing to forward
            return
        if self.cut:
            self.dropped += len(data)
            return
        try:
            sent = os.write(dst, data)
        except (BlockingIOError, OSError):
            sent = 0
        self.dropped += len(data) - sent

    async def __aexit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for fd in self._fds[::2]:
            loop.remove_reader(fd)
        for fd in self._fds:
            os.close(fd)
        self._fds = []

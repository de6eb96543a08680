"""Helpers shared by several test modules (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import fcntl
import struct
import subprocess
import sys
import termios
from datetime import datetime
from pathlib import Path

from gateway import config as config_mod
from gateway.capture.log import Log
from gateway.config import BufferConfig
from gateway.ops import control
from tests.conftest import ROOT, Upstream


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m gateway …` as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


class Control:
    """`status` of a gateway running as a subprocess, through its real control socket."""

    def __init__(self, path: Path):
        self.socket = config_mod.load(path).control_socket

    async def status(self) -> dict:
        async with asyncio.timeout(15):
            while True:
                try:
                    return await control.request(self.socket, {"cmd": "status"})
                except OSError:  # not listening yet
                    await asyncio.sleep(0.05)

    async def device(self, name: str) -> dict:
        return next(d for d in (await self.status())["devices"] if d["device"] == name)

    async def wait(self, name: str, predicate, timeout: float = 20.0) -> dict:
        """Poll `status` until the device's health satisfies `predicate`; fail with the last one seen."""
        d: dict = {}
        try:
            async with asyncio.timeout(timeout):
                while not predicate(d := await self.device(name)):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"timed out waiting on {name}; last status: {d}") from None
        return d


def epoch(ts: str) -> float:
    """A record's ISO timestamp as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def newer(up: Upstream, device: str, since: float, **match) -> list[dict]:
    """Records of `device` produced (device timestamp) after `since` (epoch seconds)."""
    return [r for r in up.of(device=device, **match) if epoch(r["ts"]) > since]


def buffer_cfg(tmp_path: Path, **kw) -> BufferConfig:
    return BufferConfig(path=tmp_path / "buffer.db", **kw)


def balance(box: Log, sink: str = "mqtt") -> int:
    """Records unaccounted for by one sink: zero when every captured record is still to send, was
    acknowledged, discarded or dead-lettered."""
    c = box.stats.counters
    r = box.readers[sink]
    return c["captured"] + c["requeued"] - r.acked - c["discarded"] - r.dead_lettered - r.backlog


def unread(fd: int) -> int:
    """Bytes waiting in a pipe or a terminal's input queue: 0 once the reader at the other end took all."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]

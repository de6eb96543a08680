"""A serial device on a real pseudo-terminal, reachable at a stable path (a symlink, like
/dev/serial/by-id/…). Unplug closes the pty; plug creates a new one behind the same path."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import Callable
from pathlib import Path


class PtyDevice:
    def __init__(self, link: str | os.PathLike, on_data: Callable[[bytes], None]):
        self.link = Path(link)
        self.on_data = on_data
        self.master: int | None = None
        self.slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR→LF translation before the driver configures the port
        self.master, self.slave = master, slave
        name = os.ttyname(slave)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(self.link)
        asyncio.get_running_loop().add_reader(master, self._readable)
        return name

    def unplug(self) -> None:
        if self.master is None:
            return
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = None
        self.link.unlink(missing_ok=True)

    def write(self, data: bytes) -> None:
        if self.master is None:
            raise OSError("device unplugged")
        os.write(self.master, data)  # blocking fd: scans are small, the pty buffer holds several KiB

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO while the driver side has nothing open: nothing to read
            return
        if data:
            self.on_data(data)

"""What every simulator needs: a free port, a task stopped cleanly, a command-line runner."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Coroutine


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel a simulator's background task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def until_interrupted(main: Coroutine) -> int:
    """Run a simulator's serve coroutine until Ctrl-C; exit status 0."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
    return 0

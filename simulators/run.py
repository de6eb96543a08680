"""Running a simulator from the command line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine


def until_interrupted(main: Coroutine) -> int:
    """Run a simulator's serve coroutine until Ctrl-C; exit status 0."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
    return 0

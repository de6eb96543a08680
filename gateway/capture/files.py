"""The log's files: private (0600 file, 0750 folders) and locked to one writer."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gateway.errors import BufferError

FILE_MODE = 0o600
DIR_MODE = 0o750  # the group may reach the control socket (0660) next to the buffer


class BufferLocked(BufferError):
    """Another process (a running gateway, or a command run without one) holds the buffer's lock."""


def make_dirs(folder: Path) -> None:
    """Create the missing folders of `folder`, DIR_MODE at most (mkdir applies the umask too);
    pathlib's parents=True would give the upper ones 0777 less the umask."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass


def create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives -wal and -shm the mode of
    the database file), whatever the umask."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def take_lock(path: Path) -> int:
    """Hold an exclusive lock for the life of the process (released by the kernel on any exit)."""
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BufferLocked(f"{path} is in use by another gateway process") from None
    if os.fstat(fd).st_size == 0:
        os.fchmod(fd, FILE_MODE)
    return fd

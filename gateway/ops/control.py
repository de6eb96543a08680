"""The local control socket: one JSON request per line, one JSON answer per line.

Requests: {"cmd": "status"}, {"cmd": "context", "station": …, "action": start|update|end|login|logout,
"work_order": …, "operation": …, "lot": …, "operators": […], "extra": {…}, "reason": …}, {"cmd": "contexts"},
{"cmd": "trace", "kind": lot|material|order|operator, "key": …, "opts": {"gtin"|"since"|"until": …}}.
The socket is created with mode 0660: who may change a station's work order is who may write it.
The handler is told who is asking from the kernel (SO_PEERCRED), never from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LIMIT = 1 << 20
SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a control connection."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        fmt = "3i"  # struct ucred: pid, uid, gid
        return cls(*struct.unpack(fmt, sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))))

    @classmethod
    def local(cls) -> Peer:
        """This process: the CLI changing the buffer file itself when no daemon runs."""
        return cls(os.getpid(), os.getuid(), os.getgid())

    @property
    def actor(self) -> str:
        try:
            name = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"cli:uid={self.uid}"
        return f"cli:uid={self.uid}({name})"


Handler = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for `path` that fits in sockaddr_un: the path itself, or (when the folder is deep,
    as pytest's and systemd's can be) the same file through /proc/self/fd/<folder descriptor>."""
    if len(os.fsencode(str(path))) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def serve(path: Path, handle: Handler, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled; set `ready` once the socket accepts connections."""
    if path.exists() or path.is_symlink():
        path.unlink()  # left over from a crash; we hold the buffer lock, so no live daemon owns it

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer.of(writer.get_extra_info("socket"))
        try:
            while line := await _line(reader, writer):
                try:
                    req = orjson.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("request must be a JSON object")
                    rsp = await handle(req, peer)
                except (ValueError, orjson.JSONDecodeError) as exc:
                    rsp = {"ok": False, "error": str(exc)}
                writer.write(orjson.dumps(rsp) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    old = os.umask(0o117)
    try:
        with reachable(path) as name:
            server = await asyncio.start_unix_server(client, path=name, limit=LIMIT)
    finally:
        os.umask(old)
    if ready is not None:
        ready.set()
    try:
        async with server:
            await server.serve_forever()
    finally:
        path.unlink(missing_ok=True)


async def _line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The next request line; a line over LIMIT is answered with a refusal and ends the connection
    (the rest of it cannot be told from the next request)."""
    try:
        return await reader.readline()
    except ValueError:
        writer.write(orjson.dumps({"ok": False, "error": f"request longer than {LIMIT} bytes", "code": "too_large"}) + b"\n")
        await writer.drain()
        return b""


async def request(path: Path, req: dict[str, Any], timeout: float = 10.0, limit: int = LIMIT) -> dict[str, Any]:
    """Send one request to a running daemon. Raises OSError when none listens. `limit`: the longest
    answer accepted (a trace can be far larger than other answers)."""
    async with asyncio.timeout(timeout):
        with reachable(path) as name:
            reader, writer = await asyncio.open_unix_connection(name, limit=limit)
        try:
            writer.write(orjson.dumps(req) + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    if not line:
        raise ConnectionError("the gateway closed the control connection")
    return orjson.loads(line)

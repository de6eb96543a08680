"""The control socket: who asks is taken from the kernel, requests are held to the command schema."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess

import orjson
import pytest

from gateway.ops import control
from tests.conftest import InProcess, Upstream, write_config

NOBODY = 65534
# A client run as another user: it gets at the socket through a folder descriptor handed to it, as
# an operator in the socket's group would by its path.
CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
print(s.makefile().readline())
"""


def as_nobody(folder: int, name: str, req: dict) -> dict:
    python = shutil.which("python3", path="/usr/bin:/bin")
    out = subprocess.run([python, "-c", CLIENT, f"/proc/self/fd/{folder}/{name}", orjson.dumps(req).decode()], user=NOBODY, group=NOBODY,
                         extra_groups=[], capture_output=True, text=True, timeout=30, pass_fds=[folder])
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin:/bin"), reason="needs root to run a client as another user")
async def test_the_actor_is_the_peer_user_never_the_request(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    async with Upstream(broker.port, "shopfloor/+/+/+/st10/context") as up, InProcess(path) as gw:
        sock = gw.cfg.control_socket
        os.chown(sock, 0, NOBODY)  # the socket is 0660: its group may change contexts
        os.chmod(sock.parent, 0o711)
        fd = os.open(sock.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            forged = await asyncio.to_thread(as_nobody, fd, sock.name, {"cmd": "context", "action": "start", "work_order": "WO-F", "actor": "mes:x/signed"})
            rsp = await asyncio.to_thread(as_nobody, fd, sock.name, {"cmd": "context", "action": "start", "work_order": "WO-N"})
        finally:
            os.close(fd)
        assert (forged["ok"], forged["code"], forged["error"]) == (False, "invalid", "actor: unknown field")
        assert rsp["ok"], rsp
        assert (await gw.request(cmd="context", action="end"))["ok"]
        await up.wait(lambda rs: len(rs) == 2)
    started, ended = up.records
    assert (started["source"], started["actor"]) == ("cli", f"cli:uid={NOBODY}({pwd.getpwuid(NOBODY).pw_name})")
    assert ended["actor"] == f"cli:uid={os.getuid()}({pwd.getpwuid(os.getuid()).pw_name})"


async def test_a_300_kb_work_order_is_refused_at_the_control_socket(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    async with InProcess(path) as gw:
        rsp = await gw.request(cmd="context", action="start", work_order="W" * 300_000)
        assert (rsp["ok"], rsp["code"]) == (False, "too_large")
        rsp = await gw.request(cmd="context", action="start", work_order="WO-1", extra={"bom": 5})
        assert (rsp["ok"], rsp["code"], rsp["error"]) == (False, "invalid", "extra.bom: Input should be a valid list")
        # Past the line limit the answer still comes, and the daemon goes on serving.
        rsp = await gw.request(cmd="context", action="start", work_order="W" * (control.LIMIT + 10))
        assert (rsp["ok"], rsp["code"]) == (False, "too_large")
        st = await gw.status()
    assert st["contexts"]["st10"]["state"] == "idle"


def test_peer_credentials_of_a_local_connection():
    a, b = __import__("socket").socketpair()
    with a, b:
        peer = control.Peer.of(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert peer.actor == control.Peer.local().actor

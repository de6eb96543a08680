"""The command line never prints a traceback: a closed stdout, an answer too large for the control
socket, a daemon that is running but slow, a buffer held by a process that does not answer.
Real subprocesses; the daemon's side is a real Unix socket server holding the real buffer lock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys

from gateway.capture.files import take_lock
from gateway.ops import control
from tests.conftest import ROOT, InProcess, write_config
from tests.helpers import cli


async def acli(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(cli, *args)


@contextlib.asynccontextmanager
async def fake_daemon(cfg_path, answer):
    """A control server on the configured socket that holds the buffer lock, as a daemon does;
    `answer(request)` is awaited for each request."""
    from gateway import config as config_mod

    cfg = config_mod.load(cfg_path)
    fd = take_lock(cfg.buffer.path)
    ready = asyncio.Event()
    task = asyncio.create_task(control.serve(cfg.control_socket, answer, ready))
    try:
        await ready.wait()
        yield cfg
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        os.close(fd)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_closed_stdout_ends_quietly():
    """`print-schema | head`: the reader is gone before the schema (80 kB) is written."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "print-schema"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == ""


def test_closed_stdout_in_a_shell_pipeline():
    r = subprocess.run(f"{sys.executable} -m gateway print-schema | head -n 2", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.count("\n") == 2 and r.stderr == ""


async def test_an_answer_larger_than_the_control_limit_is_one_line(tmp_path):
    path = write_config(tmp_path, 1, [])

    async def huge(req, peer):
        return {"ok": True, "blob": "x" * 1_900_000}

    async with fake_daemon(path, huge):
        r = await acli("status", "-c", str(path))
    assert r.returncode == 76
    assert "larger than" in one_line_error(r)


async def test_a_slow_daemon_is_reported_as_such_and_the_buffer_left_alone(tmp_path):
    path = write_config(tmp_path, 1, [])
    release = asyncio.Event()
    seen = []

    async def slow(req, peer):
        seen.append(req)
        await release.wait()  # busy: answers only once the test is done
        return {"ok": True, "context": {}}

    async with fake_daemon(path, slow):
        r = await acli("--timeout", "1", "context", "set", "-c", str(path), "--work-order", "WO-7")
        release.set()
    assert r.returncode == 69
    line = one_line_error(r)
    assert "did not answer" in line and "in use" not in line
    assert seen and seen[0]["work_order"] == "WO-7"  # the daemon got the change


async def test_no_fallback_to_a_buffer_held_by_a_process_that_does_not_listen(tmp_path):
    path = write_config(tmp_path, 1, [])
    async def never(req, peer):
        raise AssertionError("not reachable")

    async with fake_daemon(path, never) as cfg:
        cfg.control_socket.unlink()  # holds the lock, not (yet) listening: a daemon starting up
        r = await acli("context", "set", "-c", str(path), "--work-order", "WO-8")
    assert r.returncode == 69 and "does not answer" in one_line_error(r)
    assert not (tmp_path / "buffer.db").exists()  # the command did not open it


async def test_an_unreadable_answer_is_one_line(tmp_path):
    path = write_config(tmp_path, 1, [])

    async def closes(req, peer):
        raise ConnectionResetError("gone")

    async with fake_daemon(path, closes):
        r = await acli("status", "-c", str(path))
    assert r.returncode == 69 and "closed the control connection" in one_line_error(r)


def test_a_missing_config_is_one_line(tmp_path):
    r = cli("status", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 78 and "cannot read" in one_line_error(r)


async def test_control_socket_stays_reachable_by_the_group_in_a_0750_folder(tmp_path):
    old = os.umask(0)
    try:
        path = write_config(tmp_path, 1, [], buffer={"path": str(tmp_path / "state" / "buffer.db")})
        async with InProcess(path) as gw:
            sock = gw.cfg.control_socket
            assert stat.S_IMODE(sock.stat().st_mode) == 0o660
            assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o750
            assert (await gw.status())["running"]
    finally:
        os.umask(old)


async def test_an_answer_that_is_not_json_is_one_line(tmp_path):
    path = write_config(tmp_path, 1, [])
    fd = take_lock(tmp_path / "buffer.db")

    async def client(reader, writer):
        await reader.readline()
        writer.write(b"not json\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(client, path=str(tmp_path / "control.sock"))
    try:
        async with server:
            r = await acli("status", "-c", str(path))
    finally:
        os.close(fd)
    assert r.returncode == 76 and "not JSON" in one_line_error(r)

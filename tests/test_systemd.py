"""The systemd unit (hardening score, syntax) and the daemon's side of Type=notify, for real: the
daemon runs as a process and talks to a datagram socket this test binds, as systemd would."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Process, free_port, write_config

UNIT = ROOT / "systemd" / "shopfloor-gateway.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@needs_analyze
def test_unit_hardening_score_is_at_most_1_5():
    out = subprocess.run([ANALYZE, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, f"no score in the output of systemd-analyze security:\n{out.stdout}\n{out.stderr}"
    assert float(m.group(1)) <= 1.5, out.stdout


@needs_analyze
def test_unit_verifies(tmp_path):
    # `verify` also checks that ExecStart exists. The unit names the install path
    # (/opt/shopfloor-gateway); verify a copy that points at this checkout's console script instead,
    # everything else unchanged.
    script = Path(sys.executable).with_name("shopfloor-gateway")
    if not script.exists():
        pytest.skip(f"{script} is missing (package not installed in this venv)")
    text = UNIT.read_text()
    assert "ExecStart=/opt/shopfloor-gateway/bin/shopfloor-gateway " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/opt/shopfloor-gateway/bin/shopfloor-gateway", str(script)))
    out = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown or misspelt keys and only warns: any word about our file is a failure.
    problems = [line for line in out.stderr.splitlines() if UNIT.name in line]
    assert out.returncode == 0 and not problems, out.stderr


def test_unit_matches_the_code():
    """The unit and the code agree on exit status, state directory and credential name."""
    from gateway.config import BufferConfig
    from gateway.ops import cli

    text = UNIT.read_text()
    assert f"RestartPreventExitStatus={cli.EX_CONFIG}" in text
    state = BufferConfig().path.parent
    assert state == Path("/var/lib") / re.search(r"^StateDirectory=(\S+)$", text, re.M).group(1)
    cred = re.search(r"^LoadCredential=([^:]+):", text, re.M).group(1)
    from gateway import config as config_mod

    prod = config_mod.load(ROOT / "config" / "production.yaml")
    assert prod.mqtt.password_credential == cred
    assert prod.control_socket.parent == state
    assert f"--config {cli.DEFAULT_CONFIG}" in text


# --- sd_notify, for real ---------------------------------------------------------------------------


class NotifySocket:
    """What systemd does for Type=notify: a datagram socket whose messages we collect."""

    def __init__(self, address: str | bytes):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()

    def wait_for(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; notifications so far: {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def count(self, key: str) -> int:
        return sum(1 for m in self.messages if key in m)


def _gateway(tmp_path: Path, env: dict[str, str], prefix: list[str] | None = None) -> Process:
    # No broker listens on this port: the daemon must become ready (capturing into the buffer) anyway.
    path = write_config(tmp_path, free_port(), [{"kind": "synthetic", "name": "press", "rate": 50, "tags": 1}])
    return Process(path, tmp_path / "gateway.log", env=env, prefix=prefix)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_watchdog_and_stopping_reach_systemd(tmp_path, abstract):
    if abstract:
        name = f"shopfloor-test-{time.monotonic_ns()}"
        ns, env_value = NotifySocket(b"\0" + name.encode()), "@" + name
    else:
        ns = NotifySocket(str(tmp_path / "notify.sock"))
        env_value = str(tmp_path / "notify.sock")
    gw = _gateway(tmp_path, {"NOTIFY_SOCKET": env_value, "WATCHDOG_USEC": "200000"})
    try:
        gw.start()
        ns.wait_for(lambda ms: any(m.get("READY") == "1" for m in ms))
        ready_at = next(i for i, m in enumerate(ns.messages) if "READY" in m)
        # Pings keep coming after READY, each with a one-line status for `systemctl status`.
        ns.wait_for(lambda ms: sum(1 for m in ms[ready_at:] if m.get("WATCHDOG") == "1") >= 3)
        assert all("broker" in m["STATUS"] for m in ns.messages if "WATCHDOG" in m)
        gw.proc.send_signal(signal.SIGTERM)
        ns.wait_for(lambda ms: any(m.get("STOPPING") == "1" for m in ms))
        assert gw.proc.wait(30) == 0
    finally:
        if gw.proc and gw.proc.poll() is None:
            gw.kill()
        ns.close()


def test_watchdog_meant_for_another_process_is_not_pinged(tmp_path):
    # systemd sets WATCHDOG_PID to the main pid; a child that inherits the variables must stay quiet.
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    gw = _gateway(tmp_path, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    try:
        gw.start()
        ns.wait_for(lambda ms: any("READY" in m for m in ms))
        gw.proc.send_signal(signal.SIGTERM)
        ns.wait_for(lambda ms: any("STOPPING" in m for m in ms))
        assert gw.proc.wait(30) == 0
    finally:
        if gw.proc and gw.proc.poll() is None:
            gw.kill()
        ns.close()
    assert ns.count("WATCHDOG") == 0, ns.messages


# --- MemoryDenyWriteExecute= -----------------------------------------------------------------------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# Run the command with the kernel's "memory deny write execute" (Linux 6.3+), which systemd's
# MemoryDenyWriteExecute= enforces with seccomp: no mapping may be writable and executable.
MDWE_WRAPPER = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit(99)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)
IMPORTS = "import asyncua, evdev, pymodbus.client, serial_asyncio_fast, biip, cryptography.x509, orjson, pydantic, aiosqlite, aiomqtt, gateway.ops.cli"
PROBE = IMPORTS + "\nimport mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\nexcept PermissionError:\n    print('refused')\n"


def _mdwe() -> list[str]:
    probe = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, sys.executable, "-c", "pass"], capture_output=True, timeout=30)
    if probe.returncode == 99:
        pytest.skip("this kernel has no prctl(PR_SET_MDWE) (Linux < 6.3) to stand in for MemoryDenyWriteExecute=")
    return [sys.executable, "-c", MDWE_WRAPPER]


def test_python_and_drivers_work_without_writable_executable_memory():
    prefix = _mdwe()
    out = subprocess.run([*prefix, sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    # The control: a writable+executable mapping is refused, so the restriction was really in force.
    assert out.stdout.strip() == "refused", out.stdout


def test_daemon_runs_without_writable_executable_memory(tmp_path):
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    gw = _gateway(tmp_path, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}, prefix=_mdwe())
    try:
        gw.start()
        ns.wait_for(lambda ms: any("READY" in m for m in ms))
        assert gw.terminate() == 0
    finally:
        if gw.proc and gw.proc.poll() is None:
            gw.kill()
        ns.close()

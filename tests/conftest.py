"""Real parts for tests: a private mosquitto on a free loopback port, an upstream subscriber with a
persistent session, and the gateway in-process or as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
import yaml

from gateway import config as config_mod
from gateway import daemon
from gateway.ops import control
from simulators.broker import Broker, free_port, wait_port  # noqa: F401 - re-exported for tests

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.pki"]  # the fixtures pki and brokers


async def eventually(predicate, timeout: float = 10.0, every: float = 0.01, what: str = ""):
    """Wait until `predicate()` (plain or async) returns something true, and return that; fail after
    `timeout` seconds saying what was awaited."""
    try:
        async with asyncio.timeout(timeout):
            while not (got := await _call(predicate)):
                await asyncio.sleep(every)
            return got
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what or getattr(predicate, '__name__', 'a condition')}") from None


async def _call(predicate):
    got = predicate()
    return await got if asyncio.iscoroutine(got) else got


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Upstream:
    """A consumer at the broker: persistent session, QoS 1, reconnects; keeps every record."""

    def __init__(self, port: int, topic: str = "#", client_id: str | None = None, **client_args: Any):
        """`client_args` go to aiomqtt.Client: tls_context, username, password, protocol."""
        self.port = port
        self.topic = topic
        self.client_args = client_args
        self.client_id = client_id or f"test-upstream-{os.getpid()}-{time.monotonic_ns()}"
        self.records: list[dict[str, Any]] = []
        self.messages: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> Upstream:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self._subscribed.wait()
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.client_id, clean_session=False, **self.client_args) as c:
                    await c.subscribe(self.topic, qos=1)
                    self._subscribed.set()
                    async for msg in c.messages:
                        try:
                            data = orjson.loads(msg.payload)
                        except orjson.JSONDecodeError:
                            self.messages.append((str(msg.topic), msg.payload))
                            continue
                        self.messages.append((str(msg.topic), data))
                        for rec in data if isinstance(data, list) else [data]:
                            if isinstance(rec, dict) and "seq" in rec:
                                rec["_topic"] = str(msg.topic)
                                self.records.append(rec)
                        self._changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def wait(self, predicate, timeout: float = 20.0) -> None:
        """Wait until predicate(records) is true; fail with what arrived otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.records):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; {len(self.records)} records arrived, last: {self.records[-3:]}") from None

    def of(self, **match) -> list[dict[str, Any]]:
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]


def write_config(tmp_path: Path, broker_port: int, devices: list[dict], **sections) -> Path:
    doc = {
        "gateway": {"id": "gw-test", "site": "plant1", "area": "assembly", "line": "line1", "stations": ["st10"]},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, **sections.pop("mqtt", {})},
        "buffer": {"path": str(tmp_path / "buffer.db"), **sections.pop("buffer", {})},
        "log": {"level": "info", "format": "json"},
        "devices": devices,
        **sections,
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class InProcess:
    """The daemon in the test's event loop; talk to it through its real control socket."""

    def __init__(self, path: Path):
        self.path = path
        self.cfg = config_mod.load(path)
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> InProcess:
        ready = asyncio.Event()

        def started(gw):
            self.gw = gw
            ready.set()

        self.task = asyncio.create_task(daemon.run(self.cfg, self.stop, started, source=self.path))
        async with asyncio.timeout(10):
            await asyncio.wait([self.task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        async with asyncio.timeout(30):
            assert await self.task == 0

    async def request(self, **req) -> dict[str, Any]:
        return await control.request(self.cfg.control_socket, req)

    async def status(self) -> dict[str, Any]:
        return await self.request(cmd="status")

    async def wait_status(self, predicate, timeout: float = 20.0) -> dict[str, Any]:
        """Poll the control socket until predicate(status) holds; fail with the last status otherwise."""
        st = await self.status()
        try:
            async with asyncio.timeout(timeout):
                while not predicate(st):
                    await asyncio.sleep(0.05)
                    st = await self.status()
        except TimeoutError:
            raise AssertionError(f"timed out; last status: broker={st['broker']}, counters={st['counters']}") from None
        return st


class Process:
    """The daemon as a real process (`python -m gateway run`), for SIGKILL and exit-status tests."""

    def __init__(self, path: Path, log: Path, env: dict[str, str] | None = None, prefix: list[str] | None = None):
        """`env`: extra environment (e.g. NOTIFY_SOCKET); `prefix`: a wrapper command to run it under."""
        self.path = path
        self.log = log
        self.env = env
        self.prefix = prefix or []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        env = {**os.environ, **self.env} if self.env else None
        cmd = [*self.prefix, sys.executable, "-m", "gateway", "run", "-c", str(self.path)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out, env=env)
        out.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line))
        return out

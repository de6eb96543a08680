"""A private mosquitto (Debian's package) on a free loopback port, for tests, demos and benchmarks.

    python -m simulators broker --port 18830      # runs until Ctrl-C

It stands in for the plant's upstream broker: persistence on (so a consumer's persistent session
survives a restart), loopback only, no authentication unless asked for (`--conf` with the lines of
config/mosquitto/shopfloor.conf, or `extra` and `anonymous=False` from Python).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from simulators.run import free_port, wait_port


def executable() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise FileNotFoundError("mosquitto is not installed: apt-get install mosquitto (scripts/setup does it)")
    return exe


class Broker:
    """Start, stop and restart a mosquitto on 127.0.0.1:`port`, its files in `folder`."""

    def __init__(self, folder: Path, port: int | None = None, *, listener: str = "", extra: str = "", anonymous: bool = True):
        """`listener`: lines for the listener (TLS: cafile, certfile, keyfile, require_certificate);
        `extra`: global lines (password_file, acl_file); `anonymous=False` requires a login."""
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        # `user root` keeps mosquitto (started as root) from dropping to a user that cannot write
        # our folder; as another user it has no effect.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{listener.strip()}\nallow_anonymous {str(anonymous).lower()}\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 1000000\n"
            f"max_inflight_messages 0\nuser root\nlog_dest file {self.log}\n{extra.strip()}\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen([executable(), "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except TimeoutError:
            log = self.log.read_text() if self.log.exists() else "(no log)"
            raise RuntimeError(f"mosquitto did not start (exit {self.proc.poll()}):\n{log}") from None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators broker", description=__doc__)
    p.add_argument("--port", type=int, default=18830)
    p.add_argument("--conf", type=Path, help="a file of further mosquitto settings (password_file, acl_file, …)")
    p.add_argument("--no-anonymous", action="store_true", help="require a login")
    args = p.parse_args(argv)
    extra = args.conf.read_text() if args.conf else ""
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp), args.port, extra=extra, anonymous=not args.no_anonymous) as b:
        print(f"mosquitto on 127.0.0.1:{b.port}", flush=True)
        try:
            b.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0

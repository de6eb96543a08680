"""systemd notification (Type=notify): READY, WATCHDOG, STOPPING, STATUS — a no-op outside systemd.

The protocol (sd_notify(3)): one datagram of newline-separated KEY=VALUE lines to the AF_UNIX socket
named by $NOTIFY_SOCKET (a leading "@" means the abstract namespace). The watchdog is on when
$WATCHDOG_USEC is set and $WATCHDOG_PID, if set, is our pid; systemd recommends pinging at half the
period.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger("gateway.ops.notify")

_failing = False  # log a failing notify socket once per episode, not on every watchdog ping


def notify(message: str) -> bool:
    """Send `message`; False when not under systemd or when the send failed (logged, never raised:
    a notification problem must not stop capture)."""
    global _failing
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            # A datagram send blocks while the receiver's queue is full; never stall the event loop.
            s.settimeout(1.0)
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as exc:
        if not _failing:
            _failing = True
            log.warning("notify_failed", socket=os.environ.get("NOTIFY_SOCKET"), error=str(exc))
        return False
    if _failing:
        _failing = False
        log.info("notify_recovered")
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asked for, or None when there is no watchdog (for us)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000

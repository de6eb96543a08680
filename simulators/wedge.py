"""Wedge scanner stand-ins for tests without /dev/uinput.

- `events_for(text, layout, …)`: the key events a wedge scanner emulating `layout` sends for `text`
  (evdev `InputEvent`s with timestamps, EV_SYN reports in between).
- `PipeDevice`: a stand-in for an opened `/dev/input/eventN`: a real file descriptor (a pipe) that
  carries real `struct input_event` records, read with evdev's own C reader. `unplug()` makes the
  next read fail with ENODEV, as the kernel does when the scanner is pulled.
- `Devices`: the opener the driver gets injected, mapping stable paths to plugged stand-ins.
"""

from __future__ import annotations

import errno
import os
import struct

from evdev import InputEvent, _input
from evdev import ecodes as e

from drivers.scanner_evdev.keymap import DEAD, LAYOUTS, Key

EVENT = struct.Struct("llHHi")


def _reverse(layout: str) -> dict[str, tuple[int, bool, bool]]:
    """char → (keycode, shift, altgr), preferring plain over shift over AltGr, main keys over keypad."""
    out: dict[str, tuple[int, bool, bool]] = {}
    table: dict[int, Key] = LAYOUTS[layout]()
    for pick in ("plain", "shift", "altgr", "shift_altgr"):
        for code, key in sorted(table.items(), key=lambda kv: kv[0] >= e.KEY_KP7):
            ch = getattr(key, pick)
            if ch and ch not in out:
                out[ch] = (code, pick in ("shift", "shift_altgr"), pick in ("altgr", "shift_altgr"))
    return out


class Typist:
    """Turns text into key events the way a scanner set to `layout` types it."""

    def __init__(self, layout: str = "us", gs: str = "ctrl", terminator: str = "enter", capslock: bool = False,
                 key_delay: float = 0.002, t0: float = 1_700_000_000.0, repeat: bool = False):
        self.layout, self.gs, self.terminator, self.capslock = layout, gs, terminator, capslock
        self.rev = _reverse(layout)
        self.dead = {ch[1:]: v for ch, v in self.rev.items() if ch.startswith(DEAD)}
        self.key_delay, self.t, self.repeat = key_delay, t0, repeat
        self.altgr = e.KEY_RIGHTALT

    def _ev(self, code: int, value: int, type_: int = e.EV_KEY) -> list[InputEvent]:
        sec, usec = int(self.t), int(round((self.t % 1) * 1e6))
        evs = [InputEvent(sec, usec, type_, code, value)]
        if type_ == e.EV_KEY:
            evs.append(InputEvent(sec, usec, e.EV_SYN, e.SYN_REPORT, 0))
        return evs

    def tap(self, code: int, *mods: int) -> list[InputEvent]:
        evs = []
        for m in mods:
            evs += self._ev(m, 1)
        evs += self._ev(code, 1)
        if self.repeat:  # autorepeat events a slow scanner can trigger: must be ignored
            evs += self._ev(code, 2)
        self.t += self.key_delay
        evs += self._ev(code, 0)
        for m in reversed(mods):
            evs += self._ev(m, 0)
        self.t += self.key_delay
        return evs

    def pause(self, seconds: float) -> None:
        self.t += seconds

    def char(self, ch: str) -> list[InputEvent]:
        if ch == "\x1d" and self.gs == "ctrl":
            return self.tap(e.KEY_RIGHTBRACE, e.KEY_LEFTCTRL)
        if ch in self.rev and ch != "\x1d":
            code, shift, altgr = self.rev[ch]
            if self.capslock and ch.isalpha() and ch.lower() != ch.upper() and not altgr:
                shift = not shift
            mods = ([e.KEY_LEFTSHIFT] if shift else []) + ([self.altgr] if altgr else [])
            return self.tap(code, *mods)
        if ch in self.dead:  # e.g. `^` on a German layout: dead key, then space
            code, shift, _ = self.dead[ch]
            return self.tap(code, *([e.KEY_LEFTSHIFT] if shift else [])) + self.tap(e.KEY_SPACE)
        return self.alt_code(ch)

    def alt_code(self, ch: str) -> list[InputEvent]:
        """Alt + keypad digits (with a leading 0: the Windows-1252 code), e.g. Alt+0029 for GS."""
        n = ch.encode("cp1252")[0]
        evs = self._ev(e.KEY_LEFTALT, 1)
        for d in f"{n:04d}":
            evs += self.tap(getattr(e, f"KEY_KP{d}"))
        evs += self._ev(e.KEY_LEFTALT, 0)
        return evs

    def scan(self, text: str) -> list[InputEvent]:
        evs: list[InputEvent] = []
        for ch in text:
            evs += self.char(ch)
        term = {"enter": e.KEY_ENTER, "kpenter": e.KEY_KPENTER, "tab": e.KEY_TAB}[self.terminator]
        return evs + self.tap(term)


def events_for(text: str, layout: str = "us", **kw) -> list[InputEvent]:
    return Typist(layout, **kw).scan(text)


class PipeDevice:
    """A stand-in for an opened evdev device (what `evdev.InputDevice(path)` returns)."""

    def __init__(self, path: str, capslock_led: bool = False, busy: bool = False):
        self.path = path
        self.name = "Simulated wedge scanner"
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        self.grabbed = False
        self.busy = busy
        self.closed = False
        self._leds = [e.LED_CAPSL] if capslock_led else []

    def fileno(self) -> int:
        return self.fd

    def send(self, events: list[InputEvent]) -> None:
        os.write(self._w, b"".join(EVENT.pack(ev.sec, ev.usec, ev.type, ev.code, ev.value) for ev in events))

    def unplug(self) -> None:
        if self._w is not None:
            os.close(self._w)
            self._w = None

    def read(self):
        events = _input.device_read_many(self.fd)  # BlockingIOError when nothing is there, like a real device
        if not events and self._w is None:
            raise OSError(errno.ENODEV, "No such device")
        for ev in events:
            yield InputEvent(*ev)

    def grab(self) -> None:
        if self.busy:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self) -> None:
        if self._w is None:
            raise OSError(errno.ENODEV, "No such device")
        self.grabbed = False

    def leds(self) -> list[int]:
        return list(self._leds)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            self.unplug()


class Devices:
    """The injected opener: `devices.plug(path)` makes a device appear; opening an absent path fails
    like the kernel (ENOENT)."""

    def __init__(self):
        self.plugged: dict[str, PipeDevice] = {}
        self.opened: list[PipeDevice] = []

    def plug(self, path: str, **kw) -> PipeDevice:
        dev = self.plugged[path] = PipeDevice(path, **kw)
        return dev

    def unplug(self, path: str) -> None:
        self.plugged.pop(path).unplug()

    def __call__(self, path: str) -> PipeDevice:
        dev = self.plugged.get(str(path))
        if dev is None or dev.closed:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        self.opened.append(dev)
        return dev

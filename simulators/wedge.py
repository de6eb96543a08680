"""Wedge scanner stand-ins for tests without /dev/uinput.

- `events_for(text, layout, …)`: the key events a wedge scanner emulating `layout` sends for `text`
  (evdev `InputEvent`s with timestamps, EV_SYN reports in between). Which keys to press is looked up
  in libxkbcommon (character → keycode + modifiers, dead key + next key through the compose table),
  never in the driver's tables: a wrong table there must fail the round trip.
- `PipeDevice`: a stand-in for an opened `/dev/input/eventN`: a real file descriptor (a pipe) that
  carries real `struct input_event` records, read with evdev's own C reader. `unplug()` makes the
  next read fail with ENODEV, as the kernel does when the scanner is pulled.
- `Devices`: the opener the driver gets injected, mapping stable paths to plugged stand-ins.
"""

from __future__ import annotations

import errno
import os
import struct
from functools import lru_cache

from evdev import InputEvent, _input
from evdev import ecodes as e
from xkbcommon import xkb

EVENT = struct.Struct("llHHi")
XKB = 8  # xkb keycode = evdev keycode + 8
LEVELS = ((), (e.KEY_LEFTSHIFT,), (e.KEY_RIGHTALT,), (e.KEY_LEFTSHIFT, e.KEY_RIGHTALT))
Taps = tuple[tuple[int, tuple[int, ...]], ...]  # (keycode, modifiers held) per key press


def _state(km, capslock: bool, mods: tuple[int, ...]):
    """An xkb state as the host sees it: NumLock on, CapsLock as given, `mods` held."""
    st = km.state_new()
    for lock in (e.KEY_NUMLOCK, *((e.KEY_CAPSLOCK,) if capslock else ())):
        st.update_key(lock + XKB, xkb.KeyDirection.XKB_KEY_DOWN)
        st.update_key(lock + XKB, xkb.KeyDirection.XKB_KEY_UP)
    for m in mods:
        st.update_key(m + XKB, xkb.KeyDirection.XKB_KEY_DOWN)
    return st


@lru_cache(maxsize=16)
def keyboard(layout: str, capslock: bool = False) -> dict[str, Taps]:
    """character → the key presses that type it on `layout`: plain before Shift before AltGr, main
    keys before the keypad, one key before a dead key and the next."""
    ctx = xkb.Context()
    km = ctx.keymap_new_from_names(rules="evdev", model="pc105", layout=layout)
    direct: dict[str, Taps] = {}
    dead: dict[int, Taps] = {}  # keysym → taps
    syms: dict[str, int] = {}
    codes = sorted((c for c in range(1, 256) if c in e.KEY), key=lambda c: "KP" in str(e.KEY[c]))
    for mods in LEVELS:
        st = _state(km, capslock, mods)
        for code in codes:
            sym = st.key_get_one_sym(code + XKB)
            text = st.key_get_string(code + XKB)
            taps = ((code, mods),)
            if xkb.keysym_get_name(sym).startswith("dead_"):
                dead.setdefault(sym, taps)
            elif len(text) == 1 and text.isprintable() and text not in direct:
                direct[text], syms[text] = taps, sym
    out = dict(direct)
    compose = ctx.compose_table_new_from_locale("en_US.UTF-8").compose_state_new()
    seconds = [(sym, taps) for sym, taps in dead.items()] + [(syms[ch], taps) for ch, taps in direct.items()]
    for first, taps in dead.items():
        for second, more in seconds:
            compose.reset()
            compose.feed(first)
            compose.feed(second)
            if compose.get_status() == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED:
                out.setdefault(compose.get_utf8(), taps + more)
    return out


class Typist:
    """Turns text into key events the way a scanner set to `layout` types it."""

    def __init__(self, layout: str = "us", gs: str = "ctrl", terminator: str = "enter", capslock: bool = False,
                 key_delay: float = 0.002, t0: float = 1_700_000_000.0, repeat: bool = False):
        self.layout, self.gs, self.terminator, self.capslock = layout, gs, terminator, capslock
        self.keys = keyboard(layout, capslock)
        self.key_delay, self.t, self.repeat = key_delay, t0, repeat

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
        taps = self.keys.get(ch) if ch != "\x1d" else None
        if taps is None:
            return self.alt_code(ch)
        evs: list[InputEvent] = []
        for code, mods in taps:
            evs += self.tap(code, *mods)
        return evs

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

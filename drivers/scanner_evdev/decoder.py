"""Keycode-level decoding of a wedge scanner's key events into scans.

Invariants:
- Only EV_KEY events count: value 1 (down) emits, 0 (up) changes modifier state only, 2 (autorepeat)
  is ignored. Shift, Ctrl, Alt and AltGr are held state; CapsLock toggles on key down and starts
  from the device LED.
- A key gives what Linux (xkb) gives for the layout (see `keymap`), Ctrl included; dead keys
  compose as the compose table says.
- GS (0x1D) arrives as Ctrl+] (at keycode level, whatever the layout) or as Alt + keypad 0 0 2 9;
  any Alt + keypad number gives that character (leading 0: Windows-1252, else code page 437).
- A scan ends at Enter, keypad Enter, or Tab when `tab="terminator"`. A gap longer than `timeout`
  between two keys means the earlier keys were a stale partial: they are dropped and reported as an
  error result (`Result.error`), never glued to the next scan.
- A key the layout cannot map becomes U+FFFD in the text and an error on the result: nothing is
  silently lost.
- Work per event is constant: a scanner stuck without a terminator costs time linear in its keys.
- `counters` is a plain dict of totals (scans, stale, unmapped, empty, uncomposed) the owner reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evdev import ecodes as e

from drivers.scanner_evdev.keymap import COMPOSE, CTRL_KEYS, CTRL_KEYS_BY_LAYOUT, DEAD, KEYPAD, KEYPAD_DIGITS, KP, PREFIXES, build, spacing

SHIFT = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})
CTRL = frozenset({e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL})
ENTER = frozenset({e.KEY_ENTER, e.KEY_KPENTER})
MODIFIERS = SHIFT | CTRL | {e.KEY_LEFTALT, e.KEY_RIGHTALT, e.KEY_LEFTMETA, e.KEY_RIGHTMETA, e.KEY_NUMLOCK}
REPLACEMENT = "\ufffd"
Tab = Literal["terminator", "data", "ignore"]


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    ts: float  # time of the last key
    error: str | None = None


class WedgeDecoder:
    def __init__(self, layout: str = "us", tab: Tab = "terminator", timeout: float = 0.5, capslock: bool = False,
                 keymap: dict[str, list[str | None]] | None = None):
        self.keys, altgr = build(layout, keymap)
        self.ctrl_keys = {**CTRL_KEYS, **CTRL_KEYS_BY_LAYOUT.get(layout, {})}
        # Right Alt is AltGr where the layout has a third level; elsewhere it is Alt.
        self.altgr_key = e.KEY_RIGHTALT if altgr else None
        self.tab, self.timeout, self.capslock = tab, timeout, capslock
        self.held: set[int] = set()
        self.counters = {"scans": 0, "stale": 0, "unmapped": 0, "empty": 0, "uncomposed": 0}
        self._buf: list[str] = []
        self._errors: list[str] = []
        self._alt: int | None = None  # Alt + keypad code so far (mod 256, as Windows takes it)
        self._alt_zero = False  # it began with 0: Windows-1252 rather than code page 437
        self._pending: tuple[str, ...] = ()  # dead keys (and what followed) still composing
        self._last: float | None = None

    @property
    def stats(self) -> dict[str, int]:
        return self.counters

    @property
    def pending(self) -> bool:
        """An unfinished scan is under way."""
        return bool(self._buf or self._pending or self._alt is not None)

    @property
    def partial(self) -> str:
        return "".join(self._buf)

    def drop_partial(self, why: str) -> Result | None:
        """Give up an unfinished scan (timeout, device lost); counted as stale."""
        if not self.pending:
            return None
        self._flush()
        text = "".join(self._buf)
        self._reset()
        self.counters["stale"] += 1
        return Result(text, self._last or 0.0, f"partial scan dropped: {why}")

    def feed(self, ev) -> list[Result]:
        """Feed one evdev event; return the scans (and dropped partials) it completes."""
        if ev.type != e.EV_KEY or ev.value not in (0, 1):
            return []
        code, down = ev.code, ev.value == 1
        ts = ev.timestamp()
        out: list[Result] = []
        if down and self._last is not None and ts - self._last > self.timeout:
            stale = self.drop_partial(f"{ts - self._last:.3f} s between keys")
            if stale:
                out.append(stale)
        if not down:
            self.held.discard(code)
            if code in (e.KEY_LEFTALT, e.KEY_RIGHTALT) and code != self.altgr_key and self._alt is not None:
                self._alt_code()
            return out
        self._last = ts
        self.held.add(code)
        if code == e.KEY_CAPSLOCK:
            self.capslock = not self.capslock
        elif code in MODIFIERS:
            pass
        elif code in ENTER or (code == e.KEY_TAB and self.tab == "terminator"):
            out.append(self._finish(ts))
        elif code == e.KEY_TAB:
            if self.tab == "data":
                self._put("\t")
        else:
            self._key(code)
        return out

    def _key(self, code: int) -> None:
        held = self.held
        alt = (e.KEY_LEFTALT in held) or (e.KEY_RIGHTALT in held and self.altgr_key is None)
        if alt and code in KEYPAD_DIGITS:
            self._alt_digit(KEYPAD_DIGITS[code])
            return
        ctrl = bool(held & CTRL)
        if ctrl and code in self.ctrl_keys:
            self._put(self.ctrl_keys[code])
            return
        shift = bool(held & SHIFT)
        altgr = self.altgr_key is not None and self.altgr_key in held
        row = self.keys.get(code)
        ch = row[shift | self.capslock << 1 | altgr << 2 | ctrl << 3] if row else ""
        if not ch:
            self._unmapped(code, ("Ctrl+" if ctrl else "") + ("Shift+" if shift else "") + ("AltGr+" if altgr else ""))
            return
        self._put(KP + ch if code in KEYPAD and not ch.startswith(DEAD) else ch)

    def _put(self, item: str) -> None:
        """A character (KP + character from the keypad) or a dead key, through composition."""
        if not self._pending:
            if item.startswith(DEAD):
                self._pending = (item,)
            else:
                self._buf.append(item.removeprefix(KP))
            return
        seq = (*self._pending, item)
        done = COMPOSE.get(seq)
        if done is not None:
            self._pending = ()
            self._buf.append(done)
        elif seq in PREFIXES:
            self._pending = seq
        else:
            self.counters["uncomposed"] += 1
            self._flush()
            self._put(item)

    def _flush(self) -> None:
        """Dead keys that compose with nothing stand for their accent: nothing typed is dropped."""
        pending, self._pending = self._pending, ()
        for item in pending:
            if not item.startswith(DEAD):
                self._buf.append(item.removeprefix(KP))
                continue
            accent = spacing(item)
            if accent is None:
                self._errors.append(f"dead key {item[1:]} has no character of its own")
                accent = REPLACEMENT
            self._buf.append(accent)

    def _alt_digit(self, digit: str) -> None:
        if self._alt is None:
            self._alt, self._alt_zero = 0, digit == "0"
        self._alt = (self._alt * 10 + int(digit)) % 256

    def _alt_code(self) -> None:
        n, self._alt = self._alt or 0, None
        if n < 128:
            self._put(chr(n))
        else:
            self._put(bytes([n]).decode("cp1252" if self._alt_zero else "cp437", errors="replace"))

    def _unmapped(self, code: int, mods: str) -> None:
        name = e.KEY.get(code, code)
        name = name[0] if isinstance(name, (list, tuple)) else name
        self.counters["unmapped"] += 1
        self._errors.append(f"key {mods}{name} has no character in this layout")
        self._put(REPLACEMENT)

    def reset_device(self) -> None:
        """A new device connection: held keys are unknown (their key-up may have been lost)."""
        self.held.clear()
        self._last = None

    def _finish(self, ts: float) -> Result:
        self._flush()
        text, errors = "".join(self._buf), self._errors
        if not text:
            self.counters["empty"] += 1
            errors = [*errors, "empty scan (a terminator alone)"]
        self._reset()
        self.counters["scans"] += 1
        return Result(text, ts, "; ".join(errors) if errors else None)

    def _reset(self) -> None:
        self._buf, self._errors, self._alt, self._alt_zero, self._pending = [], [], None, False, ()

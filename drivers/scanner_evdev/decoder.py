"""Keycode-level decoding of a wedge scanner's key events into scans.

Invariants:
- Only EV_KEY events count: value 1 (down) emits, 0 (up) changes modifier state only, 2 (autorepeat)
  is ignored. Shift, Ctrl, Alt and AltGr are held state; CapsLock toggles on key down and starts
  from the device LED.
- GS (0x1D) arrives as Ctrl+] (at keycode level, whatever the layout) or as Alt + keypad 0 0 2 9;
  any Alt + keypad number gives that character (leading 0: Windows-1252, else code page 437).
- A scan ends at Enter, keypad Enter, or Tab when `tab="terminator"`. A gap longer than `timeout`
  between two keys means the earlier keys were a stale partial: they are dropped and reported as an
  error result (`Result.error`), never glued to the next scan.
- A key the layout cannot map becomes U+FFFD in the text and an error on the result: nothing is
  silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evdev import ecodes as e

from drivers.scanner_evdev.keymap import COMPOSE, CTRL_KEYS, CTRL_KEYS_BY_LAYOUT, DEAD, KEYPAD_DIGITS, Key, build

SHIFT = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})
CTRL = frozenset({e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL})
ENTER = frozenset({e.KEY_ENTER, e.KEY_KPENTER})
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
        self.keys: dict[int, Key] = build(layout, keymap)
        self.ctrl_keys = {**CTRL_KEYS, **CTRL_KEYS_BY_LAYOUT.get(layout, {})}
        # AltGr exists on layouts that have third-level characters; elsewhere Right Alt is Alt.
        self.altgr_key = e.KEY_RIGHTALT if any(k.altgr for k in self.keys.values() if k.altgr and k.altgr != " ") else None
        self.tab, self.timeout, self.capslock = tab, timeout, capslock
        self.held: set[int] = set()
        self.stats = {"scans": 0, "stale": 0, "unmapped": 0}
        self._buf: list[str] = []
        self._errors: list[str] = []
        self._alt_digits = ""
        self._dead: str | None = None
        self._last: float | None = None

    @property
    def partial(self) -> str:
        return "".join(self._buf)

    def drop_partial(self, why: str) -> Result | None:
        """Give up an unfinished scan (timeout, device lost); counted as stale."""
        if not self._buf and not self._alt_digits and self._dead is None:
            return None
        text = "".join(self._buf) + (self._dead or "")
        self._reset()
        self.stats["stale"] += 1
        return Result(text, self._last or 0.0, f"partial scan dropped: {why}")

    def feed(self, ev) -> list[Result]:
        """Feed one evdev event; return the scans (and dropped partials) it completes."""
        if ev.type != e.EV_KEY or ev.value == 2:
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
            if code in (e.KEY_LEFTALT, e.KEY_RIGHTALT) and code != self.altgr_key and self._alt_digits:
                self._alt_code()
            return out
        self._last = ts
        self.held.add(code)
        if code == e.KEY_CAPSLOCK:
            self.capslock = not self.capslock
            return out
        if code in SHIFT or code in CTRL or code in (e.KEY_LEFTALT, e.KEY_RIGHTALT, e.KEY_LEFTMETA, e.KEY_RIGHTMETA, e.KEY_NUMLOCK):
            return out
        if code in ENTER or (code == e.KEY_TAB and self.tab == "terminator"):
            out.append(self._finish(ts))
            return out
        if code == e.KEY_TAB:
            if self.tab == "data":
                self._put("\t")
            return out
        self._key(code)
        return out

    def _key(self, code: int) -> None:
        held = self.held
        alt = (e.KEY_LEFTALT in held) or (e.KEY_RIGHTALT in held and self.altgr_key is None)
        if alt and code in KEYPAD_DIGITS:
            self._alt_digits += KEYPAD_DIGITS[code]
            return
        shift = bool(held & SHIFT)
        if held & CTRL:
            ch = self.ctrl_keys.get(code)
            if ch is None:
                key = self.keys.get(code)
                base = key.shift if key and shift else key.plain if key else None
                if base and len(base) == 1 and "@" <= base.upper() <= "_":
                    ch = chr(ord(base.upper()) - 64)  # Ctrl+letter, Ctrl+^ (RS), Ctrl+_ (US) …
            if ch is None:
                self._unmapped(code, "Ctrl")
                return
            self._put(ch)
            return
        key = self.keys.get(code)
        altgr = self.altgr_key is not None and self.altgr_key in held
        if key is None:
            self._unmapped(code, "")
            return
        if key.letter and self.capslock:
            shift = not shift
        ch = (key.shift_altgr if shift else key.altgr) if altgr else (key.shift if shift else key.plain)
        if ch is None:
            self._unmapped(code, ("Shift+" if shift else "") + ("AltGr" if altgr else ""))
            return
        if ch.startswith(DEAD):
            accent = ch[1:]
            if self._dead is not None:  # two dead keys: the first stands for itself
                self._put(self._dead)
            self._dead = accent
            return
        self._put(ch)

    def _put(self, ch: str) -> None:
        if self._dead is not None:
            dead, self._dead = self._dead, None
            if ch == " ":
                ch = dead
            else:
                composed = COMPOSE.get(dead, {}).get(ch)
                ch = composed if composed else dead + ch
        self._buf.append(ch)

    def _alt_code(self) -> None:
        digits, self._alt_digits = self._alt_digits, ""
        n = int(digits) % 256
        if n < 128:
            self._put(chr(n))
        else:
            self._put(bytes([n]).decode("cp1252" if digits.startswith("0") else "cp437", errors="replace"))

    def _unmapped(self, code: int, mods: str) -> None:
        name = e.KEY.get(code, code)
        name = name[0] if isinstance(name, list) else name
        self.stats["unmapped"] += 1
        self._errors.append(f"key {mods + '+' if mods else ''}{name} has no character in this layout")
        self._put(REPLACEMENT)

    def reset_device(self) -> None:
        """A new device connection: held keys are unknown (their key-up may have been lost)."""
        self.held.clear()
        self._last = None

    def _finish(self, ts: float) -> Result:
        if self._dead is not None:
            self._buf.append(self._dead)
        text, errors = "".join(self._buf), self._errors
        if not text:
            errors = [*errors, "empty scan (a terminator alone)"]
        self._reset()
        self.stats["scans"] += 1
        return Result(text, ts, "; ".join(errors) if errors else None)

    def _reset(self) -> None:
        self._buf, self._errors, self._alt_digits, self._dead = [], [], "", None

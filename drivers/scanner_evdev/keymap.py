"""Keyboard layouts as tables: evdev keycode → the key's characters at each level.

evdev reports physical keys; what a key means depends on the layout the scanner emulates. The
tables in `layouts.py` are written from libxkbcommon by `gen_layouts.py`, so a key gives what Linux
gives: plain, Shift, AltGr and Shift+AltGr, each with CapsLock off and on and with Ctrl, keypad with
NumLock on, dead keys composed as the compose table says. `build(name, overrides)` returns one layout with
per-site overrides applied (config `keymap:`).

Deliberate differences from xkb, for scanners: Ctrl + the key right of P, and Ctrl+] at the US
position on every layout, give GS (0x1D); Alt + keypad digits give a character code (Windows
convention); a dead key followed by a key it does not compose with gives the accent and the key
(a desktop would drop both).
"""

from __future__ import annotations

from evdev import ecodes as e

from drivers.scanner_evdev.layouts import ALTGR, COMPOSE, DEAD, KP, LAYOUTS  # noqa: F401 - DEAD, KP: the tables' markers

Row = tuple[str, ...]  # 16 characters: index shift | capslock << 1 | altgr << 2 | ctrl << 3; "" for none

# Sequences that may still become a composed character.
PREFIXES = frozenset(seq[:i] for seq in COMPOSE for i in range(1, len(seq)))
KEYPAD_DIGITS = {getattr(e, f"KEY_KP{d}"): d for d in "0123456789"}
KEYPAD = frozenset(code for code, names in e.KEY.items() if any(n.startswith("KEY_KP") for n in ([names] if isinstance(names, str) else names)))
# Where Ctrl + the key gives a control character in the scanner's data whatever the layout says:
# Ctrl+] (KEY_RIGHTBRACE) is GS on every layout, as scanners send the US key position. On layouts
# whose key right of P is not `[` (de, fr), Ctrl + that key is taken as GS too: it has no other
# meaning there.
CTRL_KEYS = {e.KEY_RIGHTBRACE: "\x1d", e.KEY_BACKSLASH: "\x1c"}
CTRL_KEYS_BY_LAYOUT = {"de": {e.KEY_LEFTBRACE: "\x1d"}, "fr": {e.KEY_LEFTBRACE: "\x1d"}}


def to_control(ch: str) -> str:
    """Ctrl + a key, as xkb transforms it: only ASCII characters change."""
    if len(ch) != 1 or ord(ch) > 127:
        return ch
    c = ord(ch)
    if 0x40 <= c < 0x7F or ch == " ":
        return chr(c & 0x1F)
    if ch == "2":
        return "\0"
    if "3" <= ch <= "7":
        return chr(c - ord("3") + 0x1B)
    if ch == "8":
        return "\x7f"
    if ch == "/":
        return "\x1f"
    return ch


def spacing(dead: str) -> str | None:
    """The accent of a dead key on its own (what dead key + space gives)."""
    return COMPOSE.get((dead, " ")) or COMPOSE.get((dead, dead))


def key_code(name: str) -> int:
    code = getattr(e, name if name.startswith("KEY_") else f"KEY_{name.upper()}", None)
    if not isinstance(code, int):
        raise ValueError(f"unknown key {name!r} (use evdev names such as KEY_Y)")
    return code


def _row(chars: list[str | None]) -> Row:
    """[plain, shift, altgr, shift+altgr] → 16 levels; CapsLock swaps the case of letters, Ctrl
    transforms as xkb does."""
    plain, shift, altgr, shift_altgr = ((list(chars) + [None] * 4)[:4][i] or "" for i in range(4))
    letter = len(plain) == 1 and plain.lower() != plain.upper()
    caps, caps_shift = (shift, plain) if letter else (plain, shift)
    row = (plain, shift, caps, caps_shift, altgr, shift_altgr, altgr, shift_altgr)
    return row + tuple(to_control(c) for c in row)


def build(name: str, overrides: dict[str, list[str | None]] | None = None) -> tuple[dict[int, Row], bool]:
    """The layout's keys and whether it has AltGr (Right Alt as third-level shift)."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))} (or add keys with `keymap:`)")
    keys = {key_code(k): row for k, row in LAYOUTS[name].items()}
    altgr = ALTGR[name]
    for key, chars in (overrides or {}).items():
        row = _row(chars)
        keys[key_code(key)] = row
        altgr = altgr or any(row[4:])
    return keys, altgr


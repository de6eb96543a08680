"""Keyboard layouts as tables: evdev keycode → characters (plain, shift, altgr, shift+altgr).

evdev reports physical keys; what a key means depends on the layout the scanner emulates. A layout
here is a dict {keycode: Key}; `build(name, overrides)` returns one of the tables below with
per-site overrides applied (config `keymap:`), which is how other layouts are added without code.

Dead keys (German `^` and `´`, French `^` `¨`) are marked with `dead=True` on the character; they
compose with the next key (space gives the accent itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from evdev import ecodes as e

DEAD = "\0"  # prefix marking a dead character in the tables below


@dataclass(frozen=True, slots=True)
class Key:
    plain: str | None = None
    shift: str | None = None
    altgr: str | None = None
    shift_altgr: str | None = None
    letter: bool = False  # CapsLock applies


def _letters(keys: str) -> dict[int, Key]:
    return {getattr(e, f"KEY_{c.upper()}"): Key(c, c.upper(), letter=True) for c in keys}


_ROW_KEYS = [e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0]
_KEYPAD = {
    e.KEY_KP0: "0", e.KEY_KP1: "1", e.KEY_KP2: "2", e.KEY_KP3: "3", e.KEY_KP4: "4", e.KEY_KP5: "5",
    e.KEY_KP6: "6", e.KEY_KP7: "7", e.KEY_KP8: "8", e.KEY_KP9: "9", e.KEY_KPDOT: ".", e.KEY_KPSLASH: "/",
    e.KEY_KPASTERISK: "*", e.KEY_KPMINUS: "-", e.KEY_KPPLUS: "+",
}
KEYPAD_DIGITS = {k: v for k, v in _KEYPAD.items() if v.isdigit()}


def _common() -> dict[int, Key]:
    m = {k: Key(v, v) for k, v in _KEYPAD.items()}
    m[e.KEY_SPACE] = Key(" ", " ", " ", " ")
    return m


def _us() -> dict[int, Key]:
    m = _common()
    m.update(_letters("abcdefghijklmnopqrstuvwxyz"))
    m.update({k: Key(d, s) for k, d, s in zip(_ROW_KEYS, "1234567890", "!@#$%^&*()")})
    m.update({
        e.KEY_MINUS: Key("-", "_"), e.KEY_EQUAL: Key("=", "+"), e.KEY_LEFTBRACE: Key("[", "{"), e.KEY_RIGHTBRACE: Key("]", "}"),
        e.KEY_SEMICOLON: Key(";", ":"), e.KEY_APOSTROPHE: Key("'", '"'), e.KEY_GRAVE: Key("`", "~"), e.KEY_BACKSLASH: Key("\\", "|"),
        e.KEY_COMMA: Key(",", "<"), e.KEY_DOT: Key(".", ">"), e.KEY_SLASH: Key("/", "?"), e.KEY_102ND: Key("\\", "|"),
    })
    return m


def _de() -> dict[int, Key]:
    m = _common()
    m.update(_letters("abcdefghijklmnopqrstuvwx"))
    m[e.KEY_Y] = Key("z", "Z", letter=True)  # QWERTZ: Y and Z swap
    m[e.KEY_Z] = Key("y", "Y", letter=True)
    m.update({k: Key(d, s, a) for k, d, s, a in zip(_ROW_KEYS, "1234567890", '!"§$%&/()=', [None, "²", "³", None, None, None, "{", "[", "]", "}"])})
    m.update({
        e.KEY_MINUS: Key("ß", "?", "\\"), e.KEY_EQUAL: Key(DEAD + "´", DEAD + "`"),
        e.KEY_LEFTBRACE: Key("ü", "Ü", letter=True), e.KEY_RIGHTBRACE: Key("+", "*", "~"),
        e.KEY_SEMICOLON: Key("ö", "Ö", letter=True), e.KEY_APOSTROPHE: Key("ä", "Ä", letter=True),
        e.KEY_GRAVE: Key(DEAD + "^", "°"), e.KEY_BACKSLASH: Key("#", "'"), e.KEY_102ND: Key("<", ">", "|"),
        e.KEY_COMMA: Key(",", ";"), e.KEY_DOT: Key(".", ":"), e.KEY_SLASH: Key("-", "_"),
        e.KEY_Q: Key("q", "Q", "@", letter=True), e.KEY_E: Key("e", "E", "€", letter=True), e.KEY_M: Key("m", "M", "µ", letter=True),
    })
    return m


def _fr() -> dict[int, Key]:
    m = _common()
    m.update(_letters("bcdefghijklnoprstuvxy"))
    m.update({  # AZERTY: A/Q and Z/W swap, M sits right of L
        e.KEY_Q: Key("a", "A", letter=True), e.KEY_A: Key("q", "Q", letter=True), e.KEY_W: Key("z", "Z", letter=True),
        e.KEY_Z: Key("w", "W", letter=True), e.KEY_SEMICOLON: Key("m", "M", letter=True), e.KEY_M: Key(",", "?"),
    })
    # The number row gives symbols unshifted and digits with Shift.
    m.update({k: Key(d, s, a) for k, d, s, a in zip(_ROW_KEYS, '&é"\'(-è_çà', "1234567890", [None, "~", "#", "{", "[", "|", "`", "\\", "^", "@"])})
    m.update({
        e.KEY_MINUS: Key(")", "°", "]"), e.KEY_EQUAL: Key("=", "+", "}"), e.KEY_LEFTBRACE: Key(DEAD + "^", DEAD + "¨"),
        e.KEY_RIGHTBRACE: Key("$", "£", "¤"), e.KEY_APOSTROPHE: Key("ù", "%"), e.KEY_GRAVE: Key("²", None),
        e.KEY_BACKSLASH: Key("*", "µ"), e.KEY_102ND: Key("<", ">"), e.KEY_COMMA: Key(";", "."), e.KEY_DOT: Key(":", "/"),
        e.KEY_SLASH: Key("!", "§"), e.KEY_E: Key("e", "E", "€", letter=True),
    })
    return m


def _gb() -> dict[int, Key]:
    m = _us()
    m.update({
        e.KEY_2: Key("2", '"'), e.KEY_3: Key("3", "£"), e.KEY_APOSTROPHE: Key("'", "@"), e.KEY_BACKSLASH: Key("#", "~"),
        e.KEY_GRAVE: Key("`", "¬", "¦"), e.KEY_102ND: Key("\\", "|"), e.KEY_4: Key("4", "$", "€"),
    })
    return m


LAYOUTS = {"us": _us, "de": _de, "fr": _fr, "gb": _gb}  # keep keymap_names.LAYOUT_NAMES in step
# Dead key + base → composed character; dead key + space → the accent itself.
COMPOSE = {
    "^": dict(zip("aeiouAEIOU", "âêîôûÂÊÎÔÛ")),
    "´": dict(zip("aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ")),
    "`": dict(zip("aeiouAEIOU", "àèìòùÀÈÌÒÙ")),
    "¨": dict(zip("aeiouyAEIOU", "äëïöüÿÄËÏÖÜ")),
}
# Where Ctrl + the key gives a control character in the scanner's data. Ctrl+] (KEY_RIGHTBRACE) is
# GS on every layout: scanners send the US key position whatever the layout. On layouts whose key
# right of P is not `[` (de, fr), Ctrl + that key is taken as GS too: it has no other meaning there.
CTRL_KEYS = {e.KEY_RIGHTBRACE: "\x1d", e.KEY_BACKSLASH: "\x1c"}
CTRL_KEYS_BY_LAYOUT = {"us": {e.KEY_LEFTBRACE: "\x1b"}, "gb": {e.KEY_LEFTBRACE: "\x1b"}, "de": {e.KEY_LEFTBRACE: "\x1d"}, "fr": {e.KEY_LEFTBRACE: "\x1d"}}


def key_code(name: str) -> int:
    code = getattr(e, name if name.startswith("KEY_") else f"KEY_{name.upper()}", None)
    if not isinstance(code, int):
        raise ValueError(f"unknown key {name!r} (use evdev names such as KEY_Y)")
    return code


def build(name: str, overrides: dict[str, list[str | None]] | None = None) -> dict[int, Key]:
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))} (or add keys with `keymap:`)")
    m = LAYOUTS[name]()
    for key, chars in (overrides or {}).items():
        chars = list(chars) + [None] * (4 - len(chars))
        plain = chars[0]
        m[key_code(key)] = Key(*chars[:4], letter=bool(plain and plain.isalpha() and plain.lower() != plain.upper()))
    return m

"""Write `layouts.py` from libxkbcommon: what Linux gives for every key of each layout.

    python -m drivers.scanner_evdev.gen_layouts   (needs the test extra and libxkbcommon)

Run once when a layout is added or xkb-data changes; the gateway itself reads the written tables and
never needs libxkbcommon. Keymaps are compiled with rules evdev, model pc105 and NumLock on: wedge
scanners that use the keypad send digits, which is what NumLock on gives. Dead keys are composed
with the en_US.UTF-8 compose table (the one most desktops fall back to), up to three keys long.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evdev import ecodes as e
from xkbcommon import xkb

from drivers.scanner_evdev.keymap_names import LAYOUT_NAMES

# Markers are Unicode noncharacters: no key, Ctrl combination or Alt code can give them.
DEAD = "\ufdd0"  # + keysym name: a dead key
KP = "\ufdd1"  # + character: from the keypad, where it composes (dead key + KP_1 is not dead key + 1)
OUT = Path(__file__).with_name("layouts.py")
LOCALE = "en_US.UTF-8"
EVDEV = 8  # xkb keycode = evdev keycode + 8
# Index of a key's characters: shift | capslock << 1 | altgr << 2 | ctrl << 3.
COMBOS = range(16)


def _name(code: int) -> str:
    n = e.KEY[code]
    return n[0] if isinstance(n, (list, tuple)) else n


def _keys(ctx: xkb.Context, layout: str) -> tuple[dict[str, tuple[str, ...]], dict[str, int], bool]:
    """{evdev key name: 16 characters} for the keys that give a printable character or a dead key,
    the keysym behind each character (KP + character on the keypad), and whether Right Alt is AltGr."""
    km = ctx.keymap_new_from_names(rules="evdev", model="pc105", layout=layout)
    st = km.state_new()
    mod = {n: 1 << km.mod_get_index(n) for n in ("Shift", "Lock", "Control", "Mod2", "Mod5")}
    keys: dict[str, tuple[str, ...]] = {}
    syms: dict[str, int] = {}
    for code in range(1, 256):
        if code not in e.KEY:
            continue
        row: list[str] = []
        keypad = _name(code).startswith("KEY_KP")
        for combo in COMBOS:
            depressed = (mod["Shift"] if combo & 1 else 0) | (mod["Mod5"] if combo & 4 else 0) | (mod["Control"] if combo & 8 else 0)
            locked = mod["Mod2"] | (mod["Lock"] if combo & 2 else 0)
            st.update_mask(depressed, 0, locked, 0, 0, 0)
            sym = st.key_get_one_sym(code + EVDEV)
            name = xkb.keysym_get_name(sym) if sym else ""
            text = st.key_get_string(code + EVDEV)
            if name.startswith("dead_"):
                text = DEAD + name
            elif combo & 8:
                text = text if row[combo & 7] else ""  # Ctrl + a data key may give a control character
            elif not text.isprintable():
                text = ""  # Enter, Tab, Escape, Backspace …: not data characters
            row.append(text)
            if text and not combo & 8:
                syms.setdefault(KP + text if keypad and not text.startswith(DEAD) else text, sym)
        if any(row):
            keys[_name(code)] = tuple(row)
    ralt = xkb.keysym_get_name(km.state_new().key_get_one_sym(e.KEY_RIGHTALT + EVDEV))
    return keys, syms, ralt == "ISO_Level3_Shift"


def _compose(table, syms: dict[str, int]) -> dict[tuple[str, ...], str]:
    """Every sequence of up to three layout characters that starts with a dead key and composes."""
    out: dict[tuple[str, ...], str] = {}
    cs = table.compose_state_new()
    dead = [k for k in syms if k.startswith(DEAD)]

    def feed(seq: tuple[str, ...]):
        cs.reset()
        for item in seq:
            cs.feed(syms[item])
        return cs.get_status()

    for d in dead:
        for x in syms:
            status = feed((d, x))
            if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED:
                out[(d, x)] = cs.get_utf8()
            elif status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSING:
                for y in syms:
                    if feed((d, x, y)) == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED:
                        out[(d, x, y)] = cs.get_utf8()
    return {k: v for k, v in out.items() if v}


def render(layouts: dict, altgr: dict[str, bool], compose: dict[tuple[str, ...], str]) -> str:
    lines = [
        '"""Keyboard layouts as libxkbcommon gives them. Written by `python -m drivers.scanner_evdev.gen_layouts`:',
        "do not edit by hand (add per-site keys with the driver's `keymap:` setting instead).",
        "",
        "LAYOUTS[layout][evdev key name]: the key's characters at index shift | capslock << 1 | altgr << 2 |",
        'ctrl << 3, "" where the key gives nothing there, DEAD + keysym name for a dead key (NumLock on).',
        "ALTGR[layout]: Right Alt is AltGr (else it is Alt).",
        "COMPOSE[(dead key, next, …)]: what the compose table makes of the sequence (KP + character: from the keypad).",
        '"""',
        "",
        "# ruff: noqa: E501",
        f"DEAD = {DEAD!r}",
        f"KP = {KP!r}",
        f"ALTGR = {altgr!r}",
        "LAYOUTS = {",
    ]
    for layout, keys in layouts.items():
        lines.append(f"    {layout!r}: {{")
        lines += [f"        {name!r}: {row!r}," for name, row in keys.items()]
        lines.append("    },")
    lines.append("}")
    lines.append("COMPOSE = {")
    by_dead: dict[str, list] = {}
    for seq, text in sorted(compose.items()):
        by_dead.setdefault(seq[0], []).append(f"{seq!r}: {text!r}")
    for entries in by_dead.values():
        lines += ["    " + ", ".join(entries[i : i + 6]) + "," for i in range(0, len(entries), 6)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ctx = xkb.Context()
    layouts, altgr, syms = {}, {}, {}
    for layout in LAYOUT_NAMES:
        layouts[layout], s, altgr[layout] = _keys(ctx, layout)
        for k, v in s.items():
            syms.setdefault(k, v)
    compose = _compose(ctx.compose_table_new_from_locale(LOCALE), syms)
    OUT.write_text(render(layouts, altgr, compose), encoding="utf-8")
    print(f"{OUT}: {sum(map(len, layouts.values()))} keys, {len(compose)} compose sequences", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The wedge decoder against libxkbcommon itself: for us, de, fr and gb, every key and level a scanner
can send (plain, Shift, AltGr, Shift+AltGr, each with CapsLock off and on; keypad with NumLock on),
Ctrl, and dead keys composed through the compose table. xkb is asked live, through its own state
machine with the modifier keys pressed: nothing here reads the decoder's tables."""

import subprocess
import sys

import pytest
from evdev import InputEvent
from evdev import ecodes as e
from xkbcommon import xkb

from drivers.scanner_evdev import gen_layouts
from drivers.scanner_evdev.decoder import REPLACEMENT, WedgeDecoder
from drivers.scanner_evdev.keymap_names import LAYOUT_NAMES

DOWN, UP = xkb.KeyDirection.XKB_KEY_DOWN, xkb.KeyDirection.XKB_KEY_UP
COMPOSED = xkb.ComposeStatus.XKB_COMPOSE_COMPOSED
COMPOSING = xkb.ComposeStatus.XKB_COMPOSE_COMPOSING
CTX = xkb.Context()
TABLE = CTX.compose_table_new_from_locale("en_US.UTF-8")
# Keys the decoder gives a meaning of its own: modifiers and terminators.
SPECIAL = {e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT, e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL, e.KEY_LEFTALT, e.KEY_RIGHTALT, e.KEY_LEFTMETA,
           e.KEY_RIGHTMETA, e.KEY_CAPSLOCK, e.KEY_NUMLOCK, e.KEY_ENTER, e.KEY_KPENTER, e.KEY_TAB}
KEYPAD_DIGITS = {getattr(e, f"KEY_KP{d}") for d in range(10)}
LEVELS = [(shift, caps, altgr) for altgr in (False, True) for caps in (False, True) for shift in (False, True)]


def keymap(layout):
    return CTX.keymap_new_from_names(rules="evdev", model="pc105", layout=layout)


def xkb_key(km, code, shift=False, caps=False, altgr=False, ctrl=False):
    """(text, keysym) xkb gives for `code` with the modifier keys pressed, NumLock on."""
    st = km.state_new()
    for lock in [e.KEY_NUMLOCK] + ([e.KEY_CAPSLOCK] if caps else []):
        st.update_key(lock + 8, DOWN)
        st.update_key(lock + 8, UP)
    for mod, on in ((e.KEY_LEFTSHIFT, shift), (e.KEY_RIGHTALT, altgr), (e.KEY_LEFTCTRL, ctrl)):
        if on:
            st.update_key(mod + 8, DOWN)
    return st.key_get_string(code + 8), st.key_get_one_sym(code + 8)


def dead(sym) -> bool:
    return xkb.keysym_get_name(sym).startswith("dead_")


def compose(*syms):
    cs = TABLE.compose_state_new()
    for s in syms:
        cs.feed(s)
    status = cs.get_status()
    return status, (cs.get_utf8() if status == COMPOSED else None)


class Keys:
    """Key events built by hand (not by the simulator, which asks xkb the other way round)."""

    def __init__(self):
        self.t = 1_700_000_000.0

    def ev(self, code, value):
        self.t += 0.001
        return InputEvent(int(self.t), int(self.t % 1 * 1e6), e.EV_KEY, code, value)

    def tap(self, code, shift=False, altgr=False, ctrl=False):
        mods = [m for m, on in ((e.KEY_LEFTSHIFT, shift), (e.KEY_RIGHTALT, altgr), (e.KEY_LEFTCTRL, ctrl)) if on]
        return [self.ev(m, 1) for m in mods] + [self.ev(code, 1), self.ev(code, 0)] + [self.ev(m, 0) for m in reversed(mods)]


def typed(dec, caps, *taps):
    dec.capslock = caps
    k = Keys()
    out = []
    for ev in [ev for t in taps for ev in k.tap(*t)] + k.tap(e.KEY_ENTER):
        out += dec.feed(ev)
    (r,) = out
    return r


def xkb_keys(km):
    return [c for c in range(1, 256) if c in e.KEY and c not in SPECIAL and any(xkb_key(km, c, *lv)[0] or dead(xkb_key(km, c, *lv)[1]) for lv in LEVELS)]


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_key_and_level_is_what_xkb_gives(layout):
    km, dec = keymap(layout), WedgeDecoder(layout)
    codes = sorted(set(xkb_keys(km)) | (set(dec.keys) - SPECIAL))
    assert len(codes) >= 60
    ralt_is_alt = xkb.keysym_get_name(xkb_key(km, e.KEY_RIGHTALT)[1]) != "ISO_Level3_Shift"
    wrong = []
    for code in codes:
        for shift, caps, altgr in LEVELS:
            if altgr and ralt_is_alt and code in KEYPAD_DIGITS:
                continue  # Alt + keypad digits is a character code, on purpose
            text, sym = xkb_key(km, code, shift, caps, altgr)
            if dead(sym):  # a dead key on its own: followed by space
                want = compose(sym, xkb_key(km, e.KEY_SPACE)[1])[1]
                r = typed(dec, caps, (code, shift, altgr), (e.KEY_SPACE,))
                ok = r.text == want and r.error is None if want else r.error is not None
            elif text and text.isprintable():
                r = typed(dec, caps, (code, shift, altgr))
                ok = (r.text, r.error) == (text, None)
            else:  # xkb gives no data character: the decoder says so
                r = typed(dec, caps, (code, shift, altgr))
                ok = r.text == REPLACEMENT and r.error is not None
            if not ok:
                wrong.append((e.KEY[code], shift, caps, altgr, text or xkb.keysym_get_name(sym), r.text))
    assert not wrong


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_ctrl_is_what_xkb_gives(layout):
    km, dec = keymap(layout), WedgeDecoder(layout)
    wrong = []
    for code in xkb_keys(km):
        if code in dec.ctrl_keys:
            continue  # GS and FS at the US key positions on every layout, on purpose
        for shift in (False, True):
            text, sym = xkb_key(km, code, shift, ctrl=True)
            if dead(sym) or not text or not xkb_key(km, code, shift)[0].isprintable():
                continue
            r = typed(dec, False, (code, shift, False, True))
            if (r.text, r.error) != (text, None):
                wrong.append((e.KEY[code], shift, text, r.text))
    assert not wrong


def _typable(km):
    """One way to type each keysym of the layout: {keysym: (code, shift, caps, altgr)}."""
    out = {}
    for code in xkb_keys(km):
        for shift, caps, altgr in LEVELS:
            text, sym = xkb_key(km, code, shift, caps, altgr)
            if (dead(sym) or (text and text.isprintable())) and sym not in out:
                out[sym] = (code, shift, caps, altgr)
    return out


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_dead_keys_compose_as_xkb(layout):
    km, dec = keymap(layout), WedgeDecoder(layout)
    keys = _typable(km)
    deads = {s: k for s, k in keys.items() if dead(s)}
    space = xkb_key(km, e.KEY_SPACE)[1]
    wrong, checked = [], 0
    for first, (c1, s1, caps, a1) in deads.items():
        for second, (c2, s2, caps2, a2) in keys.items():
            if caps2 != caps:
                continue
            status, want = compose(first, second)
            if status == COMPOSED:
                r = typed(dec, caps, (c1, s1, a1), (c2, s2, a2))
                checked += 1
                if (r.text, r.error) != (want, None):
                    wrong.append((xkb.keysym_get_name(first), xkb.keysym_get_name(second), want, r.text))
            elif status == COMPOSING and dead(second):
                for third, (c3, s3, caps3, a3) in keys.items():
                    status3, want3 = compose(first, second, third)
                    if caps3 == caps and status3 == COMPOSED:
                        r = typed(dec, caps, (c1, s1, a1), (c2, s2, a2), (c3, s3, a3))
                        checked += 1
                        if r.text != want3:
                            wrong.append((xkb.keysym_get_name(first), xkb.keysym_get_name(second), xkb.keysym_get_name(third), want3, r.text))
            elif status != COMPOSING and not dead(second):
                # A desktop drops a sequence that composes nothing; the decoder keeps the accent and the key.
                accent = compose(first, space)[1]
                text = xkb_key(km, c2, s2, caps, a2)[0]
                r = typed(dec, caps, (c1, s1, a1), (c2, s2, a2))
                if accent and r.text != accent + text:
                    wrong.append((xkb.keysym_get_name(first), text, accent + text, r.text))
    assert (checked > 100 or not deads) and not wrong


def test_tables_are_what_the_generator_writes():
    # Hand edits to layouts.py would be lost at the next generation, and escape the tests above
    # only where they agree with xkb.
    layouts, altgr, syms = {}, {}, {}
    for layout in LAYOUT_NAMES:
        layouts[layout], s, altgr[layout] = gen_layouts._keys(CTX, layout)
        for k, v in s.items():
            syms.setdefault(k, v)
    text = gen_layouts.render(layouts, altgr, gen_layouts._compose(TABLE, syms))
    assert gen_layouts.OUT.read_text(encoding="utf-8") == text, "regenerate: python -m drivers.scanner_evdev.gen_layouts"


def test_decoder_runs_without_libxkbcommon():
    code = ("import sys; sys.modules['xkbcommon'] = None\n"
            "from drivers.scanner_evdev.decoder import WedgeDecoder\n"
            "assert WedgeDecoder('de').keys")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=gen_layouts.OUT.parents[2])

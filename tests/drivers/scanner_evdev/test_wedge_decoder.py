"""The wedge cases: layouts, CapsLock, GS both ways, timeout, repeats, Tab."""

import subprocess
import sys
from pathlib import Path

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from drivers.scanner_evdev.decoder import WedgeDecoder
from simulators.wedge import Typist, events_for

G = "0109501101020917"
GS1 = f"]C1{G}10ABC-12\x1d1725123121Sn/01"
MIXED = 'Hello World! @#$%^&*()_+-=[]{};:\'",.<>/?|\\~`'


def run(dec: WedgeDecoder, events) -> list:
    out = []
    for ev in events:
        out += dec.feed(ev)
    return out


@pytest.mark.parametrize("layout", ["us", "de", "fr", "gb"])
@pytest.mark.parametrize("gs", ["ctrl", "alt"])
def test_layouts_and_gs_both_ways(layout, gs):
    (r,) = run(WedgeDecoder(layout), events_for(GS1, layout, gs=gs))
    assert (r.text, r.error) == (GS1, None)


@pytest.mark.parametrize("layout", ["us", "de", "fr", "gb"])
def test_every_printable_ascii_round_trips(layout):
    text = "".join(chr(c) for c in range(32, 127))
    (r,) = run(WedgeDecoder(layout), events_for(text, layout))
    assert r.text == text and r.error is None


def test_german_is_not_us():
    # The same keys mean different things: Shift+2 is `"` on a German layout, `@` on a US one; Y/Z swap.
    evs = events_for('"zY@', "de")
    assert run(WedgeDecoder("de"), evs)[0].text == '"zY@'
    assert run(WedgeDecoder("us"), evs)[0].text != '"zY@'
    assert run(WedgeDecoder("de"), events_for("äöüß€", "de"))[0].text == "äöüß€"


def test_german_dead_keys():
    assert run(WedgeDecoder("de"), events_for("^`´", "de"))[0].text == "^`´"


@pytest.mark.parametrize("led", [False, True])
def test_capslock(led):
    # A scanner that does not know the host's CapsLock: with the LED on, Shift inverts.
    dec = WedgeDecoder("us", capslock=led)
    evs = events_for("AbC-1", "us", capslock=False)
    expected = "aBc-1" if led else "AbC-1"
    assert run(dec, evs)[0].text == expected


def test_capslock_toggled_by_the_scanner():
    t = Typist("us")
    evs = t.tap(e.KEY_CAPSLOCK) + t.tap(e.KEY_A) + t.tap(e.KEY_B, e.KEY_LEFTSHIFT) + t.tap(e.KEY_1) + t.tap(e.KEY_CAPSLOCK) + t.tap(e.KEY_C) + t.tap(e.KEY_ENTER)
    assert run(WedgeDecoder("us"), evs)[0].text == "Ab1c"


def test_modifiers_are_held_state():
    # Shift pressed once, held over several keys, released: all shifted.
    t = Typist("us")
    evs = t._ev(e.KEY_LEFTSHIFT, 1) + t.tap(e.KEY_A) + t.tap(e.KEY_1) + t._ev(e.KEY_LEFTSHIFT, 0) + t.tap(e.KEY_A) + t.tap(e.KEY_KPENTER)
    assert run(WedgeDecoder("us"), evs)[0].text == "A!a"


def test_autorepeat_is_ignored():
    (r,) = run(WedgeDecoder("us"), events_for("AABB11", "us", repeat=True))
    assert r.text == "AABB11"


def test_stale_partial_is_dropped_and_counted():
    t = Typist("us")
    evs = t.char("W") + t.char("O")
    t.pause(0.8)
    evs += t.scan("WO-7")
    dec = WedgeDecoder("us", timeout=0.5)
    stale, scan = run(dec, evs)
    assert (stale.text, scan.text, scan.error) == ("WO", "WO-7", None)
    assert "partial" in stale.error and dec.stats["stale"] == 1 and dec.stats["scans"] == 1


def test_slow_but_steady_typing_is_not_stale():
    (r,) = run(WedgeDecoder("us", timeout=0.5), events_for("SLOW", "us", key_delay=0.2))
    assert r.text == "SLOW" and r.error is None


@pytest.mark.parametrize("tab, expected", [("terminator", ["A", "B"]), ("data", ["A\tB"]), ("ignore", ["AB"])])
def test_tab(tab, expected):
    t = Typist("us")
    evs = t.char("A") + t.tap(e.KEY_TAB) + t.char("B") + t.tap(e.KEY_ENTER)
    assert [r.text for r in run(WedgeDecoder("us", tab=tab), evs)] == expected


def test_terminators_enter_and_keypad_enter():
    evs = events_for("A", "us") + events_for("B", "us", terminator="kpenter")
    assert [r.text for r in run(WedgeDecoder("us"), evs)] == ["A", "B"]


def test_unmapped_key_is_an_error_not_a_silent_gap():
    t = Typist("us")
    evs = t.char("A") + t.tap(e.KEY_F5) + t.char("B") + t.tap(e.KEY_ENTER)
    (r,) = run(WedgeDecoder("us"), evs)
    assert r.text == "A\ufffdB" and "KEY_F5" in r.error


def test_alt_code_for_any_character_and_keymap_override():
    t = Typist("us")
    evs = t.alt_code("é") + t.alt_code("\x1e") + t.tap(e.KEY_ENTER)
    assert run(WedgeDecoder("us"), evs)[0].text == "é\x1e"
    # A site layout through a table: KEY_GRAVE gives § on this site's scanners.
    dec = WedgeDecoder("us", keymap={"KEY_GRAVE": ["§", "°"]})
    assert run(dec, t.tap(e.KEY_GRAVE) + t.tap(e.KEY_GRAVE, e.KEY_LEFTSHIFT) + t.tap(e.KEY_ENTER))[0].text == "§°"


def test_other_event_types_are_ignored():
    evs = [InputEvent(1, 0, e.EV_MSC, e.MSC_SCAN, 458756), *events_for("X", "us"), InputEvent(1, 0, e.EV_LED, e.LED_NUML, 1)]
    assert [r.text for r in run(WedgeDecoder("us"), evs)] == ["X"]


def test_ctrl_on_a_key_whose_capital_is_two_letters():
    # 'ß'.upper() is 'SS': Ctrl+ß crashed the decoder. xkb leaves non-ASCII characters alone under Ctrl.
    t = Typist("de")
    (r,) = run(WedgeDecoder("de"), t.tap(e.KEY_A) + t.tap(e.KEY_MINUS, e.KEY_LEFTCTRL) + t.tap(e.KEY_ENTER))
    assert (r.text, r.error) == ("aß", None)


@pytest.mark.parametrize(
    "layout, taps, text",
    [
        ("us", [(e.KEY_KPEQUAL,), (e.KEY_KPPLUSMINUS,), (e.KEY_KPLEFTPAREN,)], "=±("),
        ("de", [(e.KEY_KPDOT,), (e.KEY_KPCOMMA,)], ",."),  # the German keypad's decimal key is a comma
        ("de", [(e.KEY_102ND,), (e.KEY_102ND, e.KEY_LEFTSHIFT), (e.KEY_102ND, e.KEY_RIGHTALT)], "<>|"),
        ("gb", [(e.KEY_102ND,), (e.KEY_102ND, e.KEY_LEFTSHIFT), (e.KEY_102ND, e.KEY_RIGHTALT, e.KEY_LEFTSHIFT)], "\\|¦"),
        ("de", [(e.KEY_Q, e.KEY_RIGHTALT), (e.KEY_Q, e.KEY_RIGHTALT, e.KEY_LEFTSHIFT), (e.KEY_A, e.KEY_RIGHTALT)], "@Ωæ"),
        ("fr", [(e.KEY_2, e.KEY_RIGHTALT), (e.KEY_0, e.KEY_RIGHTALT), (e.KEY_GRAVE, e.KEY_LEFTSHIFT)], "~@~"),
        ("gb", [(e.KEY_4, e.KEY_RIGHTALT), (e.KEY_GRAVE, e.KEY_RIGHTALT)], "€|"),
        # Dead keys on AltGr: gb AltGr+; is dead acute, de AltGr+ä dead circumflex, fr Shift+AltGr+= dead ogonek.
        ("gb", [(e.KEY_SEMICOLON, e.KEY_RIGHTALT), (e.KEY_E,)], "é"),
        ("de", [(e.KEY_APOSTROPHE, e.KEY_RIGHTALT), (e.KEY_O,)], "ô"),
        ("fr", [(e.KEY_EQUAL, e.KEY_RIGHTALT, e.KEY_LEFTSHIFT), (e.KEY_Q,)], "ą"),
        ("de", [(e.KEY_EQUAL,), (e.KEY_EQUAL,)], "´"),  # dead acute twice: the accent itself
    ],
)
def test_keys_and_levels_as_linux_gives_them(layout, taps, text):
    t = Typist(layout)
    evs = [ev for tap in taps for ev in t.tap(*tap)] + t.tap(e.KEY_ENTER)
    (r,) = run(WedgeDecoder(layout), evs)
    assert (r.text, r.error) == (text, None)


def test_dead_key_that_composes_nothing_keeps_both():
    # A desktop drops the pair; a scan must not lose characters.
    t = Typist("de")
    dec = WedgeDecoder("de")
    (r,) = run(dec, t.tap(e.KEY_GRAVE) + t.tap(e.KEY_X) + t.tap(e.KEY_ENTER))
    assert (r.text, dec.counters["uncomposed"]) == ("^x", 1)


def test_alt_code_with_endless_digits():
    # Any number of keypad digits: taken mod 256, as Windows does; int() of thousands of digits raised.
    t = Typist("us")
    evs = t._ev(e.KEY_LEFTALT, 1) + [ev for _ in range(6000) for ev in t.tap(e.KEY_KP0)] + t.tap(e.KEY_KP2) + t.tap(e.KEY_KP9)
    (r,) = run(WedgeDecoder("us"), evs + t._ev(e.KEY_LEFTALT, 0) + t.tap(e.KEY_ENTER))
    assert r.text == "\x1d"


def test_counters_are_a_plain_dict():
    t = Typist("us")
    dec = WedgeDecoder("us")
    run(dec, t.tap(e.KEY_ENTER) + t.char("A") + t.tap(e.KEY_F5) + t.tap(e.KEY_ENTER))
    assert type(dec.counters) is dict
    assert dec.counters == {"scans": 2, "stale": 0, "unmapped": 1, "empty": 1, "uncomposed": 0}


def test_simulator_imports_neither_driver_nor_gateway():
    code = "import sys, simulators.wedge; bad = [m for m in sys.modules if m.split('.')[0] in ('drivers', 'gateway')]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_a_wrong_driver_table_fails_the_round_trip(monkeypatch):
    # The simulator types from xkb: Y and Z swapped in the driver's German table must show.
    from drivers.scanner_evdev import layouts

    de = layouts.LAYOUTS["de"]
    monkeypatch.setitem(de, "KEY_Y", de["KEY_Z"])
    (r,) = run(WedgeDecoder("de"), events_for("Lot-z", "de"))
    assert r.text != "Lot-z"

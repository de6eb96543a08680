"""Seeded fuzzing of the wedge key decoder: any event stream gives results with their errors, never an
exception, in time linear in its length. Quick by default; FUZZ_EXAMPLES=20000 for a long run."""

import os
import time

import pytest
from evdev import InputEvent
from evdev import ecodes as e
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivers.scanner_evdev.decoder import WedgeDecoder
from drivers.scanner_evdev.keymap_names import LAYOUT_NAMES

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# Keys where layouts differ most first: generation favours the front of a list.
MODS = [e.KEY_MINUS, e.KEY_EQUAL, e.KEY_GRAVE, e.KEY_LEFTBRACE, e.KEY_RIGHTBRACE, e.KEY_APOSTROPHE, e.KEY_SEMICOLON,
        e.KEY_102ND, e.KEY_SPACE, e.KEY_KP0, e.KEY_KP2, e.KEY_KP9, e.KEY_ENTER, e.KEY_KPENTER, e.KEY_TAB, e.KEY_CAPSLOCK,
        e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT, e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL, e.KEY_LEFTALT, e.KEY_RIGHTALT]
codes = st.one_of(st.sampled_from(MODS), st.integers(0, 300))
gaps = st.sampled_from([0.0, 0.001, 0.002, 0.6, 5.0, -1.0])
raw = st.tuples(st.sampled_from([e.EV_KEY, e.EV_KEY, e.EV_KEY, e.EV_SYN, e.EV_MSC, e.EV_LED]), codes, st.sampled_from([0, 1, 1, 2, -1, 7]), gaps).map(lambda ev: [ev])
HELD = [e.KEY_LEFTCTRL, e.KEY_RIGHTALT, e.KEY_LEFTSHIFT, e.KEY_LEFTALT]


def _chord(mods, code, gap):
    """Modifiers held around one key, as a scanner types."""
    return [(e.EV_KEY, m, 1, gap) for m in mods] + [(e.EV_KEY, code, 1, gap), (e.EV_KEY, code, 0, 0.001)] + [(e.EV_KEY, m, 0, 0.001) for m in mods]


keys = st.sampled_from(MODS)
chords = st.builds(_chord, st.lists(st.sampled_from(HELD), max_size=3, unique=True), st.one_of(keys, keys, keys, st.integers(1, 127)), gaps)
events = st.lists(st.one_of(raw, chords, chords, chords), min_size=4, max_size=40).map(lambda groups: [ev for g in groups for ev in g])


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
@FUZZ
@given(st.sampled_from(["terminator", "data", "ignore"]), st.booleans(), events)
@example("terminator", False, _chord([e.KEY_LEFTCTRL], e.KEY_MINUS, 0.001))  # Ctrl+ß on de: 'ß'.upper() is 'SS'
@example("data", True, _chord([e.KEY_LEFTCTRL, e.KEY_RIGHTALT], e.KEY_MINUS, 0.001) + _chord([], e.KEY_ENTER, 0.001))
def test_any_event_stream(layout, tab, caps, stream):
    dec = WedgeDecoder(layout, tab=tab, capslock=caps)
    t = 1_700_000_000.0
    results = []
    for type_, code, value, gap in stream:
        t += gap
        results += dec.feed(InputEvent(int(t), int(t % 1 * 1e6), type_, code, value))
    results += [r for r in [dec.drop_partial("end of test")] if r]
    assert all(isinstance(r.text, str) and (r.error is None or r.error) for r in results)
    assert all(isinstance(v, int) and v >= 0 for v in dec.counters.values())
    assert dec.counters["scans"] + dec.counters["stale"] == len(results)


def _seconds(layout: str, keys: int) -> float:
    t = 1_700_000_000.0
    stream = []
    for i in range(keys):
        for code, value in ((e.KEY_RIGHTALT, 1), (e.KEY_EQUAL, 1), (e.KEY_EQUAL, 0), (e.KEY_RIGHTALT, 0), (e.KEY_A + i % 3, 1), (e.KEY_A + i % 3, 0)):
            t += 0.001
            stream.append(InputEvent(int(t), int(t % 1 * 1e6), e.EV_KEY, code, value))
    best = float("inf")
    for _ in range(3):
        dec = WedgeDecoder(layout)
        t0 = time.perf_counter()
        for ev in stream:
            dec.feed(ev)
        best = min(best, time.perf_counter() - t0)
    assert dec.pending  # never terminated: one ever-growing scan
    return best


def test_time_is_linear_without_a_terminator():
    # A scanner that never sends Enter: 8 times the keys may take at most 24 times as long.
    for layout in ("de", "gb"):
        small, large = _seconds(layout, 1000), _seconds(layout, 8000)
        assert large < 24 * small, (layout, small, large)

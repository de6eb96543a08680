"""Per-minute aggregates: written once a minute is over, exact across a crash."""

from __future__ import annotations

import math
import sqlite3

from gateway.capture.log import Log
from gateway.config import JournalConfig
from gateway.journal.aggregate import Minutes
from tests.gateway.capture.logkit import tel
from tests.helpers import buffer_cfg as cfg

T0 = 1_795_000_020.0  # 20 s into a minute


def minutes(tmp_path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        return db.execute("SELECT context_id, device, tag, minute, count, numeric, min, max, sum, bad FROM minutes ORDER BY minute, device").fetchall()


def test_fold_counts_numbers_and_leaves_out_the_rest():
    m = Minutes(0)
    m.fold(10, "st10", "press", "c1", T0, [("t", 1.5, "degC", True), ("t", "text", None, True), ("t", math.nan, None, False), ("t", 4, None, True)])
    assert m.due() is None  # the minute is not over
    m.fold(14, "st10", "press", "c1", T0 + 60, [("t", 2.0, None, True)])
    rows, mark = m.due()
    assert mark == 13  # every record up to the open minute's first is written
    (row,) = rows
    assert row[:4] == ("c1", "press", "t", int(T0 // 60))
    assert row[5:12] == (4, 2, 1.5, 4, 5.5, 1, "degC")  # count, numeric, min, max, sum, bad, unit


async def test_a_minute_is_written_when_the_next_begins(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig()) as box:
        for v in (3.0, 1.0, 2.0):
            tel(box, v, at=T0)
        await box.flush()
        assert minutes(tmp_path) == []
        tel(box, 9.0, at=T0 + 60)
        await box.flush()
        tel(box, 9.5, at=T0 + 61)
        await box.flush()
        assert minutes(tmp_path) == [("ctx-1", "press", "t", int(T0 // 60), 3, 3, 1.0, 3.0, 6.0, 0)]


async def test_aggregates_are_exact_across_a_crash(tmp_path):
    """Records committed, their minute never written (a kill): the next start folds them again."""
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig()) as box:
        for v in (1.0, 2.0):
            tel(box, v, at=T0)
        await box.flush()
        box.flush = None  # the process dies here: no flush at close writes the open minute
        box._minutes = Minutes(box._minutes.watermark)  # (and what it folded dies with it)
        await box._close()
        box._unlock()
        box.db = None
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig()) as box:
        tel(box, 3.0, at=T0 + 1)
        await box.flush()
        tel(box, 7.0, at=T0 + 60)  # a chunk's minute is that of its ingest time: a commit apart
        await box.flush()
        tel(box, 8.0, at=T0 + 61)
        await box.flush()
    got = minutes(tmp_path)
    assert got[0] == ("ctx-1", "press", "t", int(T0 // 60), 3, 3, 1.0, 3.0, 6.0, 0)
    assert got[1][4] == 2  # the later minute, written at close

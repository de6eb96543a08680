"""A buffer file written by release 0.1.0 opens with today's code: every row, seq, dead letter,
counter and station context is kept, and what it held is delivered."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from gateway.capture.outbox import Outbox
from gateway.config import BufferConfig
from tests.conftest import InProcess, Upstream, write_config

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "buffer-0.1.0.sqlite3"
FIRST = 1796160271805001  # the first seq the 0.1.0 outbox gave in the fixture (see make_buffer_0_1_0.py)
HELD = [FIRST + 2, FIRST + 3, FIRST + 4, FIRST + 5]  # FIRST acknowledged, FIRST + 1 dead-lettered


def copy(tmp_path: Path) -> Path:
    path = tmp_path / "buffer.db"
    shutil.copy(FIXTURE, path)
    return path


async def test_a_0_1_0_buffer_opens_with_every_row_counter_and_context(tmp_path):
    path = copy(tmp_path)
    async with Outbox(BufferConfig(path=path)) as box:
        assert [r[0] for r in await box.fetch(0, 100)] == HELD
        assert box.stats.rows == 4 and box.stats.dead_rows == 1
        c = box.stats.counters
        assert (c["captured"], c["published"], c["dead_lettered"]) == (6, 1, 1)
        assert (await box.contexts())["st10"]["work_order"] == "WO-1"
        box.put("t/x/telemetry", b'"v":1}', False)
        await box.flush()
        assert [r[0] for r in await box.fetch(0, 100)][-1] == HELD[-1] + 1  # numbering goes on, nothing reused
    with sqlite3.connect(path) as db:
        (reason, protected), = db.execute("SELECT reason, protected FROM dead_letter WHERE seq = ?", (FIRST + 1,))
    assert "0x87" in reason and protected == 0


async def test_what_a_0_1_0_buffer_held_is_delivered_with_its_seqs(tmp_path, broker):
    path = copy(tmp_path)
    cfg = write_config(tmp_path, broker.port, [], buffer={"path": str(path)})
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(cfg) as gw:
        await up.wait(lambda rs: len(rs) >= 4)
        st = await gw.status()
    assert sorted(r["seq"] for r in up.records) == HELD
    assert st["contexts"]["st10"]["work_order"] == "WO-1" and st["contexts"]["st10"]["version"] == 3

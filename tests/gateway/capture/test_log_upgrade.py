"""Buffer files written by earlier releases open with today's code: every undelivered record keeps
its seq, dead letters, counters and station contexts stay, and what they held is delivered."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway.capture.log import Log
from gateway.config import BufferConfig
from gateway.journal.schema import FORMAT
from tests.conftest import InProcess, Upstream, write_config
from tests.gateway.capture.logkit import seqs, take, tel

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# (file, seqs still undelivered, the dead letter's seq, counters captured/published/dead_lettered)
FORMAT_0 = ("buffer-0.1.0.sqlite3", [1796160271805001 + i for i in (2, 3, 4, 5)], 1796160271805002, (6, 1, 1))
FORMAT_1 = ("buffer-format-1.sqlite3", [1796166094472001 + i for i in (2, 3, 4, 5, 6)], 1796166094472002, (7, 1, 1))


def copy(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "buffer.db"
    shutil.copy(FIXTURES / name, path)
    return path


@pytest.mark.parametrize("fixture", [FORMAT_0, FORMAT_1], ids=["format-0", "format-1"])
async def test_an_earlier_buffer_opens_with_every_record_counter_and_context(tmp_path, fixture):
    name, held, dead, (captured, published, dead_lettered) = fixture
    path = copy(tmp_path, name)
    async with Log(BufferConfig(path=path), ["mqtt"]) as box:
        recs = await take(box)
        assert seqs(recs) == held  # nothing lost, nothing renumbered
        assert box.stats.rows == len(held) and box.stats.dead_rows == 1
        c = box.stats.counters
        r = box.readers["mqtt"]
        assert (c["captured"], r.acked, r.dead_lettered) == (captured, published, dead_lettered)
        assert (await box.contexts())["st10"]["work_order"] == "WO-1"
        tel(box)
        await box.flush()
        assert seqs(await take(box)) == [held[-1] + 1]  # numbering goes on, nothing reused
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT
        (reason, sink), = db.execute("SELECT reason, sink FROM dead_letter WHERE seq = ?", (dead,))
        assert "0x87" in reason and sink == "mqtt"
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchall()


async def test_a_format_1_scan_is_indexed_for_trace_after_the_migration(tmp_path):
    path = copy(tmp_path, FORMAT_1[0])
    async with Log(BufferConfig(path=path), ["mqtt"]):
        pass
    with sqlite3.connect(path) as db:
        keys = dict(db.execute("SELECT key, value FROM keys WHERE key IN ('batch', 'lot', 'work_order')"))
    assert keys == {"batch": "BATCH-9", "lot": "LOT-1", "work_order": "WO-1"}


async def test_a_migration_cut_by_a_crash_leaves_the_old_file_as_it_was(tmp_path, monkeypatch):
    from gateway.journal import migrate

    path = copy(tmp_path, FORMAT_1[0])
    before = path.read_bytes()

    def crash(*a):
        raise RuntimeError("power cut")

    monkeypatch.setattr(migrate, "_record", crash)
    with pytest.raises(RuntimeError):
        async with Log(BufferConfig(path=path), ["mqtt"]):
            pass
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 5
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert len(before) > 0


@pytest.mark.parametrize("fixture", [FORMAT_0, FORMAT_1], ids=["format-0", "format-1"])
async def test_what_an_earlier_buffer_held_is_delivered_with_its_seqs(tmp_path, broker, fixture):
    name, held, *_ = fixture
    path = copy(tmp_path, name)
    cfg = write_config(tmp_path, broker.port, [], buffer={"path": str(path)})
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(cfg) as gw:
        await up.wait(lambda rs: len(rs) >= len(held))
        st = await gw.status()
    assert sorted(r["seq"] for r in up.records) == held
    assert st["contexts"]["st10"]["work_order"] == "WO-1"

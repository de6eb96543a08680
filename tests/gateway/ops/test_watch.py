"""The live view prints one readable line per record."""

from gateway.ops.watch import line


def test_lines_for_a_reading_and_a_context_event():
    reading = {"seq": 6, "type": "telemetry", "ts": "2026-11-24T02:25:32.185Z", "station": "st10", "device": "press1", "tag": "temp", "value": 181.2,
               "unit": "degC", "quality": "bad", "reason": "stuck", "context": "active", "work_order": "WO-1", "lot": "L1"}
    assert line("t", reading) == "02:25:32.185     6 st10/press1 temp=181.2 degC BAD (stuck) [WO-1 lot L1]"
    event = {"seq": 7, "type": "context", "station": "st10", "event": "started", "work_order": "WO-1", "operation": "OP10",
             "lot": "L1", "operators": ["op-7"], "source": "mes"}
    assert line("t", event) == "--:--:--.---     7 st10 CONTEXT started: work order WO-1 op OP10 lot L1 operators op-7 (mes)"


def test_alarms_and_scan_outcomes_are_marked():
    alarm = {"seq": 8, "type": "alarm", "ts": "2026-11-24T02:25:33.000Z", "station": "st10", "device": "press1", "tag": "temp",
             "value": 187.0, "unit": "degC", "alarm": "high_high", "state": "raised", "severity": "alarm", "limit": 186,
             "context": "unassigned"}
    assert line("t", alarm) == "02:25:33.000     8 st10/press1 ALARM high_high RAISED (alarm): temp=187.0 degC limit 186 [unassigned]"
    scan = {"seq": 9, "type": "scan", "ts": "2026-11-24T02:25:34.000Z", "station": "st10", "device": "scanner1", "tag": "scan",
            "value": "]C101…", "quality": "good", "status": "rejected", "reason_code": "not_in_bom", "context": "active",
            "work_order": "WO-1", "lot": "L1"}
    assert line("t", scan).endswith("scan=]C101… -> rejected (not_in_bom) [WO-1 lot L1]")


async def test_watch_reaches_a_tls_broker_with_the_gateway_configuration(tmp_path, pki, brokers):
    import asyncio
    import sys

    import orjson

    from tests.conftest import InProcess, write_config
    from tests.pki import password_file, tls_broker

    broker = brokers(tls_broker(tmp_path, pki, mutual=False))
    mqtt = {"username": "gw-test", **password_file(tmp_path), "tls": {"ca_file": str(pki.ca)}}
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "oven", "rate": 50, "tags": 1}], mqtt=mqtt)
    async with InProcess(path):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "watch", "-c", str(path), "--count", "5",
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err
        lines = out.decode().splitlines()
        assert any(x.startswith("shopfloor/") and "/_gateway/gw-test/status: {" in x and '"state":"online"' in x for x in lines), lines
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "watch", "-c", str(path), "--count", "5", "--json",
                                                    "--topic", "shopfloor/+/+/+/+/+/telemetry",
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    records = [orjson.loads(x) for x in out.splitlines()]
    assert proc.returncode == 0 and len(records) >= 5 and all(r["topic"].endswith("/telemetry") and "seq" in r for r in records)

"""The live view prints one readable line per record."""

from gateway.watch import line


def test_lines_for_a_reading_and_a_context_event():
    reading = {"seq": 6, "type": "telemetry", "station": "st10", "device": "press1", "tag": "temp", "value": 181.2,
               "unit": "degC", "quality": "bad", "reason": "stuck", "context": "active", "work_order": "WO-1", "lot": "L1"}
    assert line("t", reading) == "    6 st10/press1 temp=181.2 degC BAD (stuck) [WO-1 lot L1]"
    event = {"seq": 7, "type": "context", "station": "st10", "event": "started", "work_order": "WO-1", "operation": "OP10",
             "lot": "L1", "operators": ["op-7"], "source": "mes"}
    assert line("t", event) == "    7 st10 context started: work order WO-1 op OP10 lot L1 operators op-7 (mes)"

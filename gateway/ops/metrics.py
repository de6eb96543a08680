"""Prometheus metrics: what the gateway already counts, read at scrape time.

Nothing here runs per reading except `Histogram.observe` (a bisect and two additions); every other
figure is read from the parts that keep it (pipeline, supervisors' health, capture log, sinks) when
Prometheus scrapes. Label sets are bounded by the configuration: device names, record types, states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily, Metric

if TYPE_CHECKING:
    from gateway.daemon import Gateway

PREFIX = "shopfloor"
STATES = ("starting", "connected", "down", "failed", "crashed", "finished")
BROKER_STATES = ("starting", "connected", "disconnected", "crashed")
SCAN_STATUSES = ("accepted", "warning", "rejected", "duplicate", "unassigned")


class GatewayCollector:
    """Reads one gateway's state when the registry is collected."""

    def __init__(self, gw: Gateway, version: str):
        self.gw = gw
        self.version = version
        self.oldest: float | None = None  # ingest time of the oldest unsent row, fetched before each scrape

    def collect(self) -> Iterator[Metric]:
        gw = self.gw
        yield from self._identity(gw)
        yield from self._readings(gw)
        yield from self._devices(gw)
        yield from self._buffer(gw)
        yield from self._broker(gw)

    def _identity(self, gw: Gateway) -> Iterator[Metric]:
        info = InfoMetricFamily(f"{PREFIX}_gateway", "The gateway and its version.")
        info.add_metric([], {"gateway_id": gw.cfg.gateway.id, "version": self.version})
        yield info
        up = GaugeMetricFamily(f"{PREFIX}_gateway_start_time_seconds", "When the gateway started (Unix time).")
        up.add_metric([], gw.started)
        yield up

    def _readings(self, gw: Gateway) -> Iterator[Metric]:
        p, pub = gw.pipeline, gw.publisher
        read = CounterMetricFamily(f"{PREFIX}_readings_read", "Readings taken from devices.", labels=["device", "type"])
        for h in gw.health.values():
            for type_, n in sorted(p.type_counts(h.device, h.readings).items()):
                read.add_metric([h.device, type_], n)
        yield read
        box = gw.log
        for name, counts, text in (
            ("records_captured", box.captured_by, "Records committed to the buffer (captured)."),
            ("records_published", pub.published if pub else {}, "Records acknowledged by the broker (PUBACK) to the JSON sink."),
            ("records_dead_lettered", pub.refused_rows if pub else {}, "Records the broker refused for good."),
            ("records_discarded", box.discarded_by, "Telemetry discarded by the overflow policy (never scans, RFID reads, alarms, context events)."),
        ):
            fam = CounterMetricFamily(f"{PREFIX}_{name}", text + " Since the gateway started.", labels=["device", "type"])
            for key, n in sorted(counts.items()):
                fam.add_metric(list(key), n)
            yield fam
        # The buffer file's own counters: they last as long as the file, across restarts.
        lifetime = CounterMetricFamily(
            f"{PREFIX}_buffer_records", "Records by outcome over the life of the buffer file (captured, published, discarded, "
            "dead_lettered, shed, requeued …), and commits the disk refused (write_errors).", labels=["outcome"],
        )
        for outcome, n in sorted(gw._counters().items()):
            lifetime.add_metric([outcome], n)
        yield lifetime
        internal = CounterMetricFamily(f"{PREFIX}_internal_errors", "Readings captured as internal_error after a stage failed.")
        internal.add_metric([], p.internal_errors)
        yield internal
        scans = CounterMetricFamily(f"{PREFIX}_scans", "Scan and RFID outcomes.", labels=["device", "status"])
        for (device, status), n in sorted(p.scans.items()):
            scans.add_metric([device, status], n)
        yield scans
        cmds = CounterMetricFamily(f"{PREFIX}_commands", "MES commands by outcome.", labels=["outcome"])
        cmds.add_metric(["accepted"], gw.commands.accepted)
        cmds.add_metric(["rejected"], gw.commands.rejected)
        yield cmds
        why = CounterMetricFamily(f"{PREFIX}_commands_rejected", "MES commands refused, by reason class.", labels=["reason"])
        for reason, n in sorted(gw.commands.reasons.items()):
            why.add_metric([reason], n)
        yield why

    def _devices(self, gw: Gateway) -> Iterator[Metric]:
        state = GaugeMetricFamily(f"{PREFIX}_device_state", "1 for the state each device is in.", labels=["device", "kind", "state"])
        outages = CounterMetricFamily(f"{PREFIX}_device_outages", "Times a device went down.", labels=["device"])
        crashes = CounterMetricFamily(f"{PREFIX}_device_crashes", "Times a driver raised an unexpected error.", labels=["device"])
        last = GaugeMetricFamily(f"{PREFIX}_device_last_reading_time_seconds", "When the device last delivered a reading (Unix time).", labels=["device"])
        for h in gw.health.values():
            for s in STATES:
                state.add_metric([h.device, h.kind, s], 1.0 if h.state == s else 0.0)
            outages.add_metric([h.device], h.outages)
            crashes.add_metric([h.device], h.crashes)
            if h.last_reading:
                last.add_metric([h.device], h.last_reading)
        yield from (state, outages, crashes, last)
        period = HistogramMetricFamily(f"{PREFIX}_poll_period_seconds", "Achieved time between polls of a poll group.", labels=["device", "group"])
        for device, groups in gw.poll_periods().items():
            for group, hist in groups.items():
                period.add_metric([device, group], hist.buckets(), hist.sum)
        yield period

    def _buffer(self, gw: Gateway) -> Iterator[Metric]:
        st = gw.log.stats
        for name, value, text in (
            ("buffer_rows", st.rows, "Records in the buffer awaiting delivery (by the slowest sink)."),
            ("buffer_bytes", st.bytes, "Bytes of those records."),
            ("buffer_pending_commit_rows", gw.log.pending(), "Readings read but not yet committed."),
            ("journal_rows", st.journal_rows, "Rows (chunks of records) in the capture log's file, delivered or not."),
            ("journal_bytes", st.journal_bytes, "Bytes of those rows."),
            ("buffer_oldest_unsent_age_seconds", time.time() - self.oldest if self.oldest else 0.0, "Age of the oldest row not yet delivered."),
        ):
            g = GaugeMetricFamily(f"{PREFIX}_{name}", text)
            g.add_metric([], value)
            yield g
        backlog = GaugeMetricFamily(f"{PREFIX}_sink_backlog_records", "Records a sink has not yet had acknowledged.", labels=["sink"])
        for name, r in gw.log.readers.items():
            backlog.add_metric([name], r.backlog)
        yield backlog
        free = gw.log.disk_free()
        if free is None:
            return
        g = GaugeMetricFamily(f"{PREFIX}_buffer_disk_free_bytes", "Free space on the buffer's file system.")
        g.add_metric([], free)
        yield g

    def _broker(self, gw: Gateway) -> Iterator[Metric]:
        pub = gw.publisher
        if pub is None:
            return
        state = GaugeMetricFamily(f"{PREFIX}_broker_state", "1 for the state the broker connection is in.", labels=["state"])
        for s in BROKER_STATES:
            state.add_metric([s], 1.0 if pub.state == s else 0.0)
        yield state
        up = GaugeMetricFamily(f"{PREFIX}_broker_up", "1 while connected to the broker.")
        up.add_metric([], 1.0 if pub.state == "connected" else 0.0)
        yield up
        connects = CounterMetricFamily(f"{PREFIX}_broker_connects", "Connections made to the broker (reconnects included).")
        connects.add_metric([], pub.connects)
        yield connects
        inflight = GaugeMetricFamily(f"{PREFIX}_broker_inflight_messages", "Messages awaiting PUBACK.")
        inflight.add_metric([], pub.inflight)
        yield inflight
        lat = HistogramMetricFamily(f"{PREFIX}_delivery_latency_seconds", "From ingest to the broker's PUBACK, per record.")
        lat.add_metric([], pub.latency_hist.buckets(), pub.latency_hist.sum)
        yield lat


def registry(gw: Gateway, version: str) -> tuple[CollectorRegistry, GatewayCollector]:
    reg = CollectorRegistry(auto_describe=False)
    collector = GatewayCollector(gw, version)
    reg.register(collector)  # type: ignore[arg-type]
    ProcessCollector(registry=reg)  # process_resident_memory_bytes, process_cpu_seconds_total …
    return reg, collector


async def exposition(reg: CollectorRegistry, collector: GatewayCollector) -> bytes:
    collector.oldest = await collector.gw.log.oldest()
    return generate_latest(reg)

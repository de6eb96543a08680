"""The station page: what a station runs (work order, operation, lot, operators), its last scans
with their outcome, active alarms, device health, broker and buffer, live in a browser; and a
trace view over the capture log. Served read-only by the gateway's HTTP server (gateway.ops.http)."""

from gateway.page.views import attach

__all__ = ["attach"]

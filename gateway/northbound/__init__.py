"""Northbound sinks: what leaves the buffer for the plant's systems."""

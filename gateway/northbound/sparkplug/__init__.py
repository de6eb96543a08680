"""Sparkplug B 3.0 northbound sink: the gateway as an edge node (see README.md beside this file).

`config` (settings and build), `points` (records as metric values), `catalog` (learned metrics and
aliases), `payload` (protobuf messages, from the vendored sparkplug_b.proto), `sink` (the sessions).
"""

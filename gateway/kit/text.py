"""Bytes from a device as text."""

from __future__ import annotations


def text_of(raw: bytes) -> str:
    """Scanner bytes as text: CP1252, as scanners emit (never fails: undefined bytes map to U+FFFD)."""
    return raw.decode("cp1252", errors="replace")

"""AIM symbology identifiers (ISO/IEC 15424): `]` + symbology letter + modifier character."""

from __future__ import annotations

# (letter, modifier) → name; a modifier of None matches any modifier of that letter.
_NAMES = {
    ("C", "1"): "gs1-128", ("C", "0"): "code128", ("C", "2"): "code128", ("C", "4"): "code128",
    ("d", "2"): "gs1-datamatrix", ("d", "5"): "gs1-datamatrix", ("d", "1"): "datamatrix", ("d", "4"): "datamatrix",
    ("Q", "3"): "gs1-qr", ("Q", "5"): "gs1-qr", ("Q", "1"): "qr", ("Q", "0"): "qr", ("Q", "2"): "qr",
    ("e", "0"): "gs1-databar", ("E", "0"): "ean-13", ("E", "4"): "ean-8", ("E", "3"): "ean-13+addon",
    ("J", "1"): "gs1-dotcode", ("z", "1"): "gs1-aztec", ("I", "1"): "itf", ("I", "0"): "itf",
}
_LETTERS = {"A": "code39", "C": "code128", "d": "datamatrix", "Q": "qr", "E": "ean-upc", "e": "gs1-databar",
            "I": "itf", "F": "codabar", "L": "pdf417", "z": "aztec", "J": "dotcode", "G": "code93", "H": "code11",
            "X": "other", "Z": "none"}
# Symbologies whose data is a GS1 element string (FNC1 in first position).
GS1_MESSAGE = frozenset({"gs1-128", "gs1-datamatrix", "gs1-qr", "gs1-databar", "gs1-dotcode", "gs1-aztec"})
# Symbologies that carry a bare GTIN.
GTIN = frozenset({"ean-13", "ean-8", "ean-13+addon"})


_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MODIFIER = _LETTER | frozenset("0123456789")


def split(text: str) -> tuple[str | None, str]:
    """Split `]Xm…` into (identifier, data). Text without a well-formed identifier is returned whole.
    ASCII only: `str.isalpha()` would also take `é`, `str.isalnum()` `¹`."""
    if len(text) >= 3 and text[0] == "]" and text[1] in _LETTER and text[2] in _MODIFIER:
        return text[:3], text[3:]
    return None, text


def malformed(text: str) -> str | None:
    """Why text that starts with the AIM flag character `]` carries no identifier, or None."""
    if text[:1] != "]" or split(text)[0] is not None:
        return None
    return f"{text[:3]!r} is no AIM symbology identifier (`]`, a letter, a modifier character)"


def name(aim: str | None) -> str | None:
    if aim is None:
        return None
    return _NAMES.get((aim[1], aim[2])) or _LETTERS.get(aim[1], "unknown")

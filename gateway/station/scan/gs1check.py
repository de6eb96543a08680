"""GS1 mod-10 check digit (weights 3,1,3,… from the right), on ASCII digits only."""

from __future__ import annotations


def digits(text: str) -> bool:
    """ASCII digits only: `str.isdigit()` also accepts `¹` and `٣`, which no GS1 code holds."""
    return text.isascii() and text.isdigit()


def check_digit(body: str) -> int:
    return -(3 * sum(map(int, body[-1::-2])) + sum(map(int, body[-2::-2]))) % 10


def valid(code: str) -> bool:
    return digits(code) and len(code) > 1 and check_digit(code[:-1]) == int(code[-1])

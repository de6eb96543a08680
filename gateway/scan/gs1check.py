"""GS1 mod-10 check digit (weights 3,1,3,… from the right)."""

from __future__ import annotations


def check_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def valid(code: str) -> bool:
    return code.isdigit() and len(code) > 1 and check_digit(code[:-1]) == int(code[-1])

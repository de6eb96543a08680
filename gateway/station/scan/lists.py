"""Loading the local bill of materials and blocked-lot lists (at start, never per scan)."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from gateway.errors import ConfigError
from gateway.station.scan.gs1check import valid as gtin_valid


def norm_item(code: str) -> str:
    """BOM entries and scanned items compare in one form: GTINs as 14 digits, anything else as is."""
    code = str(code).strip()
    if len(code) == 14 and code.isdigit():
        return code
    if code.isdigit() and len(code) in (8, 12, 13) and gtin_valid(code):
        return code.zfill(14)
    return code


def load_bom(path: Path) -> dict[str, frozenset[str]]:
    """YAML `{work_order: [code, …]}` or CSV rows `work_order,code` (a header row is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read bill of materials: {exc.strerror}"]) from None
    bom: dict[str, set[str]] = {}
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ConfigError([f"{path}: a bill of materials is a mapping of work order to a list of codes"])
        for wo, codes in data.items():
            bom.setdefault(str(wo), set()).update(norm_item(c) for c in codes)
    else:
        for n, row in enumerate(csv.reader(text.splitlines()), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ConfigError([f"{path}:{n}: expected `work_order,code`"])
            if n == 1 and row[0].strip().lower() in ("work_order", "order", "wo"):
                continue
            bom.setdefault(row[0].strip(), set()).add(norm_item(row[1]))
    return {wo: frozenset(codes) for wo, codes in bom.items()}


def load_blocked(path: Path) -> frozenset[str]:
    """One blocked lot per line: `lot`, or `gtin,lot` to block a lot of one item only. `#` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read blocked lots: {exc.strerror}"]) from None
    return frozenset(blocked_key(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def blocked_key(entry: str) -> str:
    if "," in entry:
        item, lot = entry.split(",", 1)
        return f"{norm_item(item)},{lot.strip()}"
    return entry.strip()

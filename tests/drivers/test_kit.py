"""Drivers take from the gateway only its driver kit (gateway.kit), never the capture path's modules
or the station's scan rules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_drivers_import_only_the_kit_from_the_gateway():
    wrong = []
    for path in (ROOT / "drivers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else [a.name for a in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
            wrong += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "gateway" and n != "gateway.kit" and not n.startswith("gateway.kit.")]
    assert wrong == []

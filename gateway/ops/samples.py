"""`shopfloor-gateway config sample KIND`: a commented example device entry for each driver kind.

The examples are the ones in each driver's README (the tests validate every one of them), so the
sample a technician pastes is the documented one and cannot drift from it.
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path

from gateway.registry import DeviceConfig

BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def kinds() -> dict[str, type]:
    """Every driver kind of the registry, with its config class."""
    union = typing.get_args(DeviceConfig)[0]
    return {typing.get_args(c.model_fields["kind"].annotation)[0]: c for c in typing.get_args(union)}


def readme(cls: type) -> Path:
    return Path(sys.modules[cls.__module__].__file__).with_name("README.md")


def sample(kind: str) -> str:
    """The README's first example entry of `kind`, as a `devices:` list item."""
    cls = kinds()[kind]
    for block in BLOCK.findall(readme(cls).read_text(encoding="utf-8")):
        item = _item(block, kind)
        if item:
            doc = (cls.__doc__ or kind).strip().splitlines()[0]
            return f"# {kind}: {doc}\n# Every setting, with its description: shopfloor-gateway print-schema\n{item}"
    raise LookupError(f"{readme(cls)} has no example of kind {kind}")


def _item(block: str, kind: str) -> str | None:
    lines = block.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)- kind: ([\w]+)\s*(#.*)?$", line)
        if not m or m.group(2) != kind:
            continue
        indent = len(m.group(1))
        out = [line[indent:]]
        for nxt in lines[i + 1 :]:
            if nxt.strip() and (len(nxt) - len(nxt.lstrip()) <= indent):
                break
            out.append(nxt[indent:] if nxt.strip() else "")
        return "\n".join(out).rstrip() + "\n"
    return None

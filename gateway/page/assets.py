"""What the page's modules share: the static folder, its templates, and the app's key to the live state."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from string import Template

from aiohttp import web

from gateway.page.live import Live

STATIC = Path(str(files("gateway.page") / "static"))
LIVE = web.AppKey("live", Live)


def template(name: str) -> Template:
    return Template((STATIC / name).read_text(encoding="utf-8"))


def script_json(data: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")

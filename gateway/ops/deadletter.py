"""`shopfloor-gateway dead-letter list|show|requeue|purge`: the command line of gateway.capture.deadletter."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import orjson

from gateway.capture.deadletter import SHOW_MAX, handle


def add_parser(sub: argparse._SubParsersAction, commands: dict, with_config) -> None:
    dl = sub.add_parser("dead-letter", help="list, show, requeue or purge records the broker or the encoder refused")
    dsub = dl.add_subparsers(dest="action", required=True)
    for name, text in (
        ("list", "seq, time, sink, type and reason of each dead letter"),
        ("show", "one dead letter with its record"),
        ("requeue", "move dead letters back into the log, to be sent again by their sink (new seqs)"),
        ("purge", "delete dead letters for good"),
    ):
        sp = dsub.add_parser(name, help=text)
        with_config(sp)
        if name == "show":
            sp.add_argument("seq", type=int)
        else:
            sp.add_argument("--first", type=int, help="lowest seq")
            sp.add_argument("--last", type=int, help="highest seq")
            sp.add_argument("--reason", help="reason contains this text (any case)")
            sp.add_argument("--older-than", type=float, metavar="SECONDS", help="dead-lettered at least this long ago")
        if name in ("requeue", "purge"):
            sp.add_argument("--all", action="store_true", help="every dead letter (when no filter is given)")
        if name == "list":
            sp.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        if name in ("list", "show"):
            sp.add_argument("--json", action="store_true", help="print JSON")
    commands["dead-letter"] = cmd_dead_letter


def request_of(args) -> dict[str, Any]:
    req: dict[str, Any] = {"cmd": "dead_letter", "action": args.action}
    for key in ("seq", "first", "last", "reason", "older_than", "limit", "all"):
        if getattr(args, key, None) not in (None, False):
            req[key] = getattr(args, key)
    return req


def cmd_dead_letter(args) -> int:
    import asyncio

    from gateway import config as config_mod
    from gateway.ops import cli

    cfg = config_mod.load(args.config)
    rsp = asyncio.run(cli.ask_or_open(cfg, request_of(args), args.timeout, handle))
    if not rsp.get("ok"):
        print(f"refused: {rsp.get('error')}", file=sys.stderr)
        return cli.EX_FAIL
    if getattr(args, "json", False):
        print(json.dumps({k: v for k, v in rsp.items() if k != "ok"}, indent=2))
    elif args.action == "list":
        print(render_list(rsp))
    elif args.action == "show":
        print(render_show(rsp))
    else:
        done = rsp[args.action + "d"]
        print(f"{args.action}d {done} dead letter{'s' if done != 1 else ''}")
    return cli.EX_OK


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def render_list(rsp: dict[str, Any]) -> str:
    items = rsp["dead_letters"]
    out = [f"{d['seq']:>20}  {_when(d['at'])}  {d['sink']}  {d['type']}  {d['reason']}" for d in items]
    if rsp["total"] > len(items):
        out.append(f"({len(items)} of {rsp['total']} shown; --limit, --first/--last or --reason narrow it)")
    elif not items:
        out.append("no dead letters")
    return "\n".join(out)


def render_show(rsp: dict[str, Any]) -> str:
    d = rsp["dead_letter"]
    out = [f"seq       {d['seq']}", f"at        {_when(d['at'])}", f"sink      {d['sink']}", f"type      {d['type']}", f"reason    {d['reason']}", f"bytes     {d['bytes']}"]
    text = rsp["record"]
    if not rsp["truncated"]:
        try:
            text = orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass  # shown as stored
        out.append(f"record\n{text}")
    else:
        out.append(f"record (first {SHOW_MAX} of {d['bytes']} bytes, without its seq)\n{text}")
    return "\n".join(out)

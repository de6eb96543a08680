"""`shopfloor-gateway decode [--hex] VALUE`: the record fields a scan of VALUE would produce, as one
JSON object (for integrators checking labels)."""

from __future__ import annotations

import json
import sys

EX_OK, EX_ERRORS, EX_USAGE = 0, 1, 2


def add_parser(sub, commands) -> None:
    p = sub.add_parser("decode", help="decode a barcode or EPC as the gateway would and print the fields as JSON")
    p.add_argument("value", help="the scanned text (GS may be written as \\x1d or <GS>); with --hex, the bytes in hex")
    p.add_argument("--hex", action="store_true", help="VALUE is the raw bytes in hex (as in a record's raw field)")
    p.add_argument("--epc", action="store_true", help="VALUE is an RFID tag's EPC in hex")
    p.add_argument("--separator", action="append", default=[], help="a character the scanner sends instead of GS (repeatable)")
    p.add_argument("-c", "--config", help="take the station's scan settings (patterns, separators) from this configuration")
    p.add_argument("--station", help="station whose settings apply (default: the first)")
    p.add_argument("--check", action="store_true", help=f"exit {EX_ERRORS} when the value has errors")
    commands["decode"] = run


def _value(args) -> bytes | str:
    if args.hex:
        return bytes.fromhex(args.value.replace(" ", "").replace(":", ""))
    # Shells cannot easily pass GS: accept the usual spellings of it.
    return args.value.replace("<GS>", "\x1d").replace("\\x1d", "\x1d").replace("\\x1D", "\x1d")


def run(args) -> int:
    try:
        from gateway.station.scan.decode import decode
    except ImportError as exc:
        print(f"error: decoding needs the scanner extra ({exc.name} is missing): pip install shopfloor-gateway[scanners]", file=sys.stderr)
        return 69
    from gateway.station.scan.config import ScanSettings

    settings = ScanSettings()
    if args.config:
        from gateway import config as config_mod

        cfg = config_mod.load(args.config)
        stations = {s.name: s for s in cfg.gateway.stations}
        if args.station and args.station not in stations:
            print(f"error: no station {args.station!r} in {args.config} ({', '.join(stations)})", file=sys.stderr)
            return EX_USAGE
        settings = stations[args.station].scan if args.station else cfg.gateway.stations[0].scan
    if args.separator:
        settings = settings.model_copy(update={"separators": [*settings.separators, *args.separator]})
    try:
        value = _value(args)
    except ValueError:
        print(f"error: --hex needs hex digits, got {args.value!r}", file=sys.stderr)
        return EX_USAGE
    rec = decode(value, settings, "epc" if args.epc else None)
    print(json.dumps(rec, ensure_ascii=False))
    return EX_ERRORS if args.check and rec["errors"] else EX_OK

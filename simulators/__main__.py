"""`python -m simulators NAME …`: start one simulator. Each module has `main(argv) -> int`."""

from __future__ import annotations

import importlib
import sys

SIMULATORS = {
    "modbus": ("simulators.modbus", "Modbus TCP/RTU PLC with moving process values"),
    "opcua": ("simulators.opcua", "OPC UA server with the same process tags"),
    "env": ("simulators.env", "temperature/humidity sensors on pseudo-terminals"),
    "scanner": ("simulators.scanner", "serial barcode scanner replaying a shift on a pty"),
    "rfid": ("simulators.rfid", "CF-RU UHF RFID reader on a pty"),
    "broker": ("simulators.broker", "a private mosquitto on a loopback port (the upstream)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SIMULATORS:
        print("usage: python -m simulators NAME [options]\n\nsimulators:", file=sys.stderr)
        for name, (_, text) in SIMULATORS.items():
            print(f"  {name:8} {text}", file=sys.stderr)
        return 2
    module = importlib.import_module(SIMULATORS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

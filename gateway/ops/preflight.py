"""Checks at start and before a reload: settings that would only fail later (secrets, TLS files,
a driver's missing optional dependency) stop the start with exit 78 and a clear message."""

from __future__ import annotations

from gateway.config import Config
from gateway.errors import ConfigError, DriverFatal
from gateway.northbound.mqtt import tls_context


def preflight(cfg: Config) -> None:
    """Fail at start, with exit 78, on settings that would only fail later (secrets, TLS files)."""
    problems = []
    for i, sink in enumerate(cfg.northbound):
        where = "mqtt" if len(cfg.northbound) == 1 and cfg.mqtt is sink else f"northbound[{i}]"
        try:
            sink.password()
        except OSError as exc:
            problems.append(f"{where}.password: cannot read the password: {exc}")
        if sink.tls:
            try:
                tls_context(sink)
            except (OSError, ValueError) as exc:
                problems.append(f"{where}.tls: {exc}")
    try:
        cfg.commands.key()
    except OSError as exc:
        problems.append(f"commands: cannot read the signing key: {exc}")
    except ConfigError as exc:
        problems += exc.problems
    if cfg.http is not None:
        try:
            cfg.http.token()
        except OSError as exc:
            problems.append(f"http: cannot read the token: {exc}")
    problems += missing_parts(cfg)
    if problems:
        raise ConfigError(problems)


def missing_parts(cfg: Config) -> list[str]:
    """Build every enabled device once (constructors open nothing) so that a missing optional
    dependency stops the start with a clear message instead of failing a device later."""
    problems = []
    for i, d in enumerate(cfg.devices):
        if not d.enabled:
            continue
        try:
            d.build()
            if d.scan_rules:
                import gateway.station.scan.rules  # noqa: F401 - the station's scan rules need biip
        except ImportError as exc:
            extra = d.extra or "all"
            problems.append(f"devices[{i}] ({d.name}): kind {d.kind} needs {exc.name or exc}: pip install 'shopfloor-gateway[{extra}]'")
        except (ConfigError, DriverFatal) as exc:
            problems.append(f"devices[{i}] ({d.name}): {exc}")
    return problems

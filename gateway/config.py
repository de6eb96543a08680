"""Configuration: YAML into pydantic models, with every error pointing at file, line and field.

Devices are a discriminated union on `kind`; the union in `gateway.registry` is the only registry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)

from gateway.device import NAME, RESERVED_NAMES, Strict
from gateway.errors import ConfigError
from gateway.registry import DeviceConfig
from gateway.northbound.registry import JsonSinkConfig, SinkConfig
from gateway.northbound.settings import MqttConfig, TlsConfig, secret  # noqa: F401 - TlsConfig: part of the configuration model
from gateway.station.scan.config import ScanSettings

TOPIC_LEVEL = r"^[^/#+\s]{1,64}$"




class StationConfig(Strict):
    """A workstation: the unit that has one active work order, operation and lot at a time."""

    name: str = Field(pattern=NAME, description="Station name; a topic level.")
    description: str | None = Field(default=None, description="Free text for people.")
    scan: ScanSettings = Field(
        default_factory=ScanSettings,
        description="What this station's barcodes mean (travelers, badges, lot labels, commands) and how material scans are validated.",
    )


def _station_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class GatewaySection(Strict):
    """Where this gateway sits in the ISA-95 hierarchy."""

    id: str = Field(pattern=NAME, description="Gateway id, unique in the plant; in every record as `gateway_id`.")
    site: str = Field(pattern=TOPIC_LEVEL, description="Site (plant) name; a topic level.")
    area: str = Field(pattern=TOPIC_LEVEL, description="Area name; a topic level.")
    line: str = Field(pattern=TOPIC_LEVEL, description="Production line name; a topic level.")
    stations: list[Annotated[StationConfig, BeforeValidator(_station_shorthand)]] = Field(
        min_length=1, description="Stations served by this gateway; a plain name is short for `{name: …}`."
    )


class BufferConfig(Strict):
    """The capture log. A reading counts as captured once it is committed here. `max_rows` and
    `max_bytes` bound what is not yet delivered (the backlog); the journal keeps what was."""

    path: Path = Field(default=Path("/var/lib/shopfloor-gateway/buffer.db"), description="SQLite file of the capture log and journal.")
    max_rows: int = Field(default=5_000_000, ge=100, description="Undelivered records the log may hold before the overflow policy applies.")
    max_bytes: int = Field(default=2 * 1024**3, ge=1024 * 1024, description="Bytes of undelivered records the log may hold before the overflow policy applies.")
    overflow: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest",
        description="What to discard when full: the oldest or the newest *telemetry*. Scans, RFID reads, alarms "
        "and context events are never discarded. Every discarded row is counted and its seq range recorded.",
    )
    commit_interval: float = Field(default=0.01, gt=0, le=1, description="Longest wait in seconds before a group commit.")
    commit_quiet: float = Field(
        default=0.002, ge=0, le=1,
        description="Commit sooner, once no record came for this many seconds: a poll's burst is one commit without waiting out commit_interval (0: always wait commit_interval).",
    )
    commit_rows: int = Field(default=2000, ge=1, description="Rows that trigger a group commit at once.")
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="SQLite synchronous mode: full survives a power cut; normal may lose the last commits."
    )
    dead_letter_max_rows: int = Field(
        default=10_000,
        ge=1,
        description="Dead letters (records the broker or the encoder refused for good) kept in the buffer file; past this "
        "or dead_letter_max_bytes the oldest are pruned and counted as dead_letter_pruned. Apart from max_rows.",
    )
    dead_letter_max_bytes: int = Field(
        default=64 * 1024**2,
        ge=1024 * 1024,
        description="Payload bytes of dead letters kept in the buffer file (on top of max_bytes); past this the oldest are pruned.",
    )


class JournalConfig(Strict):
    """What the capture log keeps after every sink has it, for `trace` at the station."""

    keep_days: float = Field(default=365, ge=0, description="Days scans, RFID reads, alarms, context events and minute aggregates are kept.")
    telemetry_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="Bytes of delivered raw telemetry kept; past it the oldest goes. 0 keeps none."
    )
    prune_interval: float = Field(default=1.0, gt=0, le=60, description="Seconds between pruning steps (each a short transaction).")


class ControlConfig(Strict):
    """The local control socket used by `status` and `context` while the daemon runs."""

    socket: Path | None = Field(default=None, description="Unix socket path; default: `control.sock` next to the buffer file.")


class HttpConfig(Strict):
    """The gateway's HTTP server: Prometheus metrics at `/metrics`. Read-only."""

    host: str = Field(default="127.0.0.1", description="Address to listen on. Anything but loopback needs a token.")
    port: int = Field(default=9580, ge=1, le=65535, description="TCP port.")
    token_file: Path | None = Field(
        default=None,
        description="File whose first line is the bearer token every request must carry "
        "(`Authorization: Bearer <token>`; Prometheus: `authorization: {credentials_file: …}`).",
    )
    token_credential: str | None = Field(default=None, description="Name of a systemd credential holding the token.")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> HttpConfig:
        if self.token_file and self.token_credential:
            raise ValueError("give either token_file or token_credential, not both")
        if not _loopback(self.host) and not (self.token_file or self.token_credential):
            raise ValueError(f"host {self.host!r} is reachable from the network: set token_file or token_credential")
        return self

    def token(self) -> str | None:
        text = secret(self.token_file, self.token_credential, "http.token_credential")
        return text.strip() if text is not None else None


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CommandsConfig(Strict):
    """MES commands over MQTT (`<station>/cmd/context`). With a key, only commands signed with it,
    fresh and not seen before are applied; without one, the broker's ACL is the only guard."""

    enabled: bool = Field(default=True, description="Subscribe to MES commands. false: the gateway does not subscribe; only the local CLI and scans change contexts.")
    key_file: Path | None = Field(default=None, description="File whose first line is the shared HMAC-SHA256 key (at least 32 characters, e.g. `openssl rand -hex 32`).")
    key_credential: str | None = Field(
        default=None, description="Name of a systemd credential ($CREDENTIALS_DIRECTORY/<name>) holding the key."
    )
    max_age: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds a signed command's `ts` may differ from the gateway's clock; its `id` is remembered as long to refuse replays.",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> CommandsConfig:
        if self.key_file and self.key_credential:
            raise ValueError("give either key_file or key_credential, not both")
        return self

    def key(self) -> bytes | None:
        """The signing key as bytes, or None when commands are not signed. OSError when unreadable."""
        text = secret(self.key_file, self.key_credential, "commands.key_credential")
        if text is None:
            return None
        if len(text) < 32:
            raise ConfigError([f"commands: the key is {len(text)} characters long; at least 32 are needed (openssl rand -hex 32)"])
        return text.encode()


class PageConfig(Strict):
    """The station page, served by the HTTP server (`http:`) at `/`: context, last scans, alarms, health."""

    language: Literal["en", "zh-CN"] = Field(default="en", description="Language of the page's labels: en or zh-CN.")


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Lowest level logged.")
    format: Literal["auto", "json", "console"] = Field(default="auto", description="auto: JSON unless stderr is a terminal.")


class Config(Strict):
    """The whole gateway configuration file."""

    gateway: GatewaySection
    mqtt: MqttConfig | None = Field(default=None, description="Short for `northbound: [{kind: mqtt, …}]`: one JSON sink.")
    northbound: list[SinkConfig] = Field(default_factory=list, description="The sinks records are forwarded to, each with its own cursor.")
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    http: HttpConfig | None = Field(default=None, description="HTTP server for metrics and the station page; off when absent.")
    page: PageConfig = Field(default_factory=PageConfig)
    devices: list[DeviceConfig] = Field(default_factory=list, description="The devices this gateway reads.")

    @model_validator(mode="after")
    def _sinks(self) -> Config:
        if self.mqtt is not None and self.northbound:
            raise ValueError("give either mqtt: (one JSON sink) or northbound: (a list of sinks), not both")
        if self.mqtt is None and not self.northbound:
            raise ValueError("northbound: (or mqtt:) is required: where records are forwarded to")
        if self.mqtt is not None:
            object.__setattr__(self, "northbound", [JsonSinkConfig(**dict(self.mqtt))])  # frozen model
        else:
            # The first JSON sink names the topics and carries the MES commands.
            object.__setattr__(self, "mqtt", next((s for s in self.northbound if isinstance(s, JsonSinkConfig)), None))
        return self

    def cross_check(self) -> list[tuple[tuple, str]]:
        """Checks across sections, as (document path, message) so errors can point at the line."""
        problems: list[tuple[tuple, str]] = []
        stations = [s.name for s in self.gateway.stations]
        for i, name in enumerate(stations):
            if name in stations[:i]:
                problems.append((("gateway", "stations", i, "name"), f"station {name!r} is listed twice"))
        names = [s.name for s in self.northbound]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.append((("northbound", i, "name"), f"sink name {name!r} is used twice: each sink needs its own cursor"))
        seen: set[str] = set()
        for i, dev in enumerate(self.devices):
            if dev.name in seen:
                problems.append((("devices", i, "name"), f"device name {dev.name!r} is used twice"))
            if dev.name in RESERVED_NAMES:
                problems.append((("devices", i, "name"), f"{dev.name!r} is reserved for the gateway's own topics"))
            seen.add(dev.name)
            if dev.station is None and len(stations) > 1:
                problems.append((("devices", i), f"station: required when the gateway has several stations ({', '.join(stations)})"))
            if dev.station is not None and dev.station not in stations:
                problems.append((("devices", i, "station"), f"{dev.station!r} is not one of gateway.stations ({', '.join(stations)})"))
        return problems

    def station_of(self, device: Any) -> str:
        return device.station or self.gateway.stations[0].name

    @property
    def control_socket(self) -> Path:
        return self.control.socket or self.buffer.path.with_name("control.sock")


# --- loading with line numbers -------------------------------------------------------------------


def _marks(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every path in the document (keys and list indexes) to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[path + (k,)] = key.start_mark.line + 1
            _marks(value, path + (k,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, path + (i,), out)
    return out


def _resolve_loc(loc: tuple, data: Any) -> tuple[tuple, str]:
    """Turn a pydantic error location into a document path, dropping union tags (e.g. `modbus`)."""
    path: list = []
    shown: list[str] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict):
            if part in cur:
                path.append(part)
                shown.append(f".{part}")
                cur = cur[part]
                continue
            if isinstance(part, str) and (cur.get("kind") == part or part.startswith("function-")):
                continue  # discriminator tag or validator wrapper, not a key in the file
            shown.append(f".{part}")
            cur = None
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            path.append(part)
            shown.append(f"[{part}]")
            cur = cur[part]
        elif isinstance(part, str) and part.startswith(("function-", "str")):
            continue
        else:
            shown.append(f"[{part}]" if isinstance(part, int) else f".{part}")
            cur = None
    return tuple(path), "".join(shown).lstrip(".") or "(top level)"


def _show(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _line_of(marks: dict[tuple, int], path: tuple) -> int:
    while path not in marks and path:
        path = path[:-1]
    return marks.get(path, 1)


def format_errors(file: str, exc: ValidationError, data: Any, marks: dict[tuple, int]) -> list[str]:
    problems = []
    for err in exc.errors():
        path, shown = _resolve_loc(tuple(err["loc"]), data)
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `shopfloor-gateway print-schema`)"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error") and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        problems.append(f"{file}:{_line_of(marks, path)}: {shown}: {msg}")
    return problems


def _yaml_problem(exc: yaml.YAMLError, file: str) -> str:
    """`file:line:column: YAML syntax error: …`, and where the construct it breaks began, as an
    unclosed bracket or quote is usually found far below the line that opened it."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1"
    text = f"{file}:{where}: YAML syntax error: {getattr(exc, 'problem', None) or exc}"
    start = getattr(exc, "context_mark", None)
    if start is not None and mark is not None and (start.line, start.column) != (mark.line, mark.column):
        text += f" ({getattr(exc, 'context', None) or 'started'} at line {start.line + 1}, column {start.column + 1})"
    return text


def parse(text: str, file: str = "<config>") -> Config:
    """Parse YAML text; raise `ConfigError` listing every problem as `file:line: field: message`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, file)]) from None
    if node is None:
        raise ConfigError([f"{file}:1: the file is empty"])
    data = yaml.SafeLoader(text).get_single_data()
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the top level must be a mapping with gateway, mqtt, buffer and devices"])
    marks = _marks(node)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(file, exc, data, marks)) from None
    problems = cfg.cross_check()
    if problems:
        raise ConfigError([f"{file}:{_line_of(marks, path)}: {_show(path)}: {msg}" for path, msg in problems])
    return cfg


def load(path: str | os.PathLike) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc}"]) from None
    return parse(text, str(path))


def schema() -> dict[str, Any]:
    return Config.model_json_schema()

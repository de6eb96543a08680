"""Settings of a connection to an MQTT broker, shared by the sinks that publish over MQTT."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gateway.device import Strict
from gateway.errors import ConfigError


class TlsConfig(Strict):
    """TLS to the broker. The broker certificate is always verified against `ca_file`."""

    ca_file: Path = Field(description="CA certificate(s) that signed the broker's certificate (PEM).")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    key_password_file: Path | None = Field(default=None, description="File holding the key's passphrase.")
    check_hostname: bool = Field(default=True, description="Verify that the broker certificate names `host`.")


class MqttConfig(Strict):
    """The upstream broker. Delivery is QoS 1, at least once; consumers drop duplicates by (gateway_id, seq)."""

    host: str = Field(description="Broker host name or address.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Broker port; 1883, or 8883 with TLS.")
    protocol: Literal["3.1.1", "5"] = Field(default="3.1.1", description="MQTT protocol version.")
    client_id: str | None = Field(default=None, description="Stable client id; default `shopfloor-<gateway id>`.")
    keepalive: int = Field(default=30, ge=5, le=3600, description="Keep-alive interval in seconds.")
    topic_prefix: str = Field(default="shopfloor", pattern=r"^[^#+\s]{1,128}$", description="First topic level(s).")
    username: str | None = Field(default=None, description="User name for the broker.")
    password_file: Path | None = Field(default=None, description="File whose first line is the password.")
    password_credential: str | None = Field(
        default=None, description="Name of a systemd credential ($CREDENTIALS_DIRECTORY/<name>) holding the password."
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; plain TCP when absent.")
    max_inflight: int = Field(default=64, ge=1, le=65535, description="Messages awaiting PUBACK at once.")
    max_pack: int = Field(
        default=100,
        ge=1,
        le=10000,
        description="Readings of one device packed into one message (a JSON array). 1 sends one JSON object per message.",
    )
    max_payload: int = Field(default=256 * 1024, ge=1024, description="Largest message in bytes; a larger record is dead-lettered.")
    reconnect_initial: float = Field(default=0.1, gt=0, description="First reconnect delay in seconds.")
    reconnect_max: float = Field(default=1.0, gt=0, description="Longest reconnect delay in seconds.")

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttConfig:
        if self.password_file and self.password_credential:
            raise ValueError("give either password_file or password_credential, not both")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    def password(self) -> str | None:
        return secret(self.password_file, self.password_credential, "mqtt.password_credential")


def secret(file: Path | None, credential: str | None, field: str) -> str | None:
    """The first line of `file`, or of the systemd credential `credential`; None when neither is set."""
    if file:
        return file.read_text().splitlines()[0]
    if credential:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise ConfigError([f"{field}: {credential!r} set but $CREDENTIALS_DIRECTORY is not (run under systemd with LoadCredential=)"])
        return (Path(folder) / credential).read_text().splitlines()[0]
    return None

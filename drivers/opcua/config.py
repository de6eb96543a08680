"""OPC UA device config. asyncua is imported only by `build()` (extra `opcua`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from drivers.common.config import TagRules
from gateway.kit import TAG_NAME, DeviceBase, DriverFatal, Strict


class Node(TagRules):
    """One monitored item. An absolute `deadband` is also sent to the server as a data-change filter."""

    name: str = Field(pattern=TAG_NAME, description="Tag name; the `tag` field of its readings.")
    node: str | None = Field(default=None, description="NodeId string, e.g. `ns=2;s=Press1.press_temperature`.")
    path: str | None = Field(
        default=None,
        description="Browse path from the Objects folder, `/`-separated `ns:Name` parts, e.g. `2:Press1/2:press_temperature`.",
    )
    sampling: float | None = Field(default=None, ge=0, description="Sampling interval in seconds; default: the device's `sampling`.")
    queue: int = Field(default=10, ge=0, le=10000, description="Server-side queue of samples per publish (0/1: latest only).")
    unit: str | None = Field(default=None, description="Engineering unit put on the readings.")

    @model_validator(mode="after")
    def _one_address(self) -> Node:
        if (self.node is None) == (self.path is None):
            raise ValueError("give exactly one of `node` (a NodeId) or `path` (a browse path)")
        return self


class Security(Strict):
    """Basic256Sha256 with a client certificate; the server's certificate must be in `trust`."""

    policy: Literal["Basic256Sha256"] = Field(default="Basic256Sha256", description="Security policy.")
    mode: Literal["Sign", "SignAndEncrypt"] = Field(default="SignAndEncrypt", description="Message security mode.")
    certificate: Path = Field(description="Client application certificate (DER or PEM). Its URI SAN must equal `application_uri`.")
    private_key: Path = Field(description="Client private key (PEM).")
    private_key_password_file: Path | None = Field(default=None, description="File whose first line is the key's passphrase.")
    trust: list[Path] = Field(
        min_length=1,
        description="Folders (or files) of trusted server or CA certificates. A server whose certificate is not trusted is refused.",
    )


class OpcUaConfig(DeviceBase):
    """An OPC UA server read through one subscription. A lost session raises NotConnected; the supervisor reconnects
    and `connect()` re-creates the session and every monitored item."""

    extra: ClassVar[str | None] = "opcua"

    kind: Literal["opcua"]
    url: str = Field(pattern=r"^opc\.tcp://", description="Endpoint URL, e.g. opc.tcp://10.0.0.5:4840/")
    security: Security | None = Field(default=None, description="Message security; absent: policy None (unencrypted, for lab use).")
    username: str | None = Field(default=None, description="User name; anonymous when absent.")
    password_file: Path | None = Field(default=None, description="File whose first line is the user's password.")
    application_uri: str = Field(default="urn:shopfloor:gateway", description="Our application URI (must match the client certificate).")
    timeout: float = Field(default=4.0, gt=0, description="Seconds to wait for each request.")
    watchdog: float = Field(default=1.0, gt=0, description="Seconds between checks that the server is alive.")
    sampling: float = Field(default=1.0, ge=0, description="Default sampling interval of the nodes, seconds.")
    publishing: float | None = Field(
        default=None, gt=0, description="Publishing interval of the subscription, seconds; default: the smallest sampling interval."
    )
    nodes: list[Node] = Field(min_length=1, description="Monitored items.")
    max_string: int = Field(
        default=4096, ge=1, le=1_048_576,
        description="Characters of text kept per value, in all its strings together (a ByteString counts its bytes); "
        "the rest is cut and the reading is uncertain with `truncated: …` in its reason.",
    )
    max_array: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Array elements and structure fields kept per value, at every depth together; beyond that the "
        "value is cut and the reading is uncertain with `truncated: …` in its reason.",
    )
    structures: bool = Field(
        default=True,
        description="Load the server's data type definitions at connect, so values of its own structure types arrive "
        "as objects of their fields (otherwise as TypeId and hex body).",
    )

    @model_validator(mode="after")
    def _checks(self) -> OpcUaConfig:
        names = [n.name for n in self.nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"node names must be unique within a device: {', '.join(dup)}")
        if self.password_file and not self.username:
            raise ValueError("password_file: needs `username`")
        return self

    def build(self):
        try:
            from drivers.opcua.driver import OpcUa
        except ImportError as exc:
            if "asyncua" not in str(exc):
                raise
            raise DriverFatal(f"device {self.name}: OPC UA needs asyncua: pip install shopfloor-gateway[opcua]") from exc
        return OpcUa(self)

"""``[osc]``: the OSC control surface of a venue (bind address, allowlist, rate and size bounds)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_host(value: str) -> str:
    """An IPv4 or IPv6 address, e.g. 127.0.0.1, 0.0.0.0 or ::1."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address; give one like 127.0.0.1, 0.0.0.0 or ::1") from None
    return value


def check_network(value: str) -> str:
    """A network in CIDR form, e.g. 192.168.1.0/24 or 10.0.0.7/32."""
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a network in CIDR form ({exc}); give one like 192.168.1.0/24 or 10.0.0.7/32"
        ) from None
    return value


def host_allowed(host: str, networks: list[IpNetwork]) -> bool:
    """Whether ``host`` (an IP address as text; IPv4-mapped IPv6 as IPv4) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


class OscConfig(BaseModel):
    """``[osc]``: the UDP OSC server. Off unless ``enabled``; 127.0.0.1 and ::1 may always send."""

    # The same rules as every other config model (config.fields' Strict); not imported from there because
    # the config package imports this module.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    enabled: bool = Field(
        default=False, description="start the OSC server with `latentd run`; false: no OSC control"
    )
    bind: Annotated[str, AfterValidator(check_host)] = Field(
        default="127.0.0.1",
        description="address to listen on; 0.0.0.0 listens on every interface (then set `allow`)",
    )
    port: int = Field(default=9000, ge=1, le=65535, description="UDP port to listen on")
    allow: list[Annotated[str, AfterValidator(check_network)]] = Field(
        default_factory=list,
        description="networks (CIDR) whose hosts may send; this host (127.0.0.1, ::1) is always allowed",
    )
    rate_limit_per_s: float = Field(
        default=200.0,
        ge=1.0,
        le=100000.0,
        description="packets per second accepted from one sender host; more are dropped and counted",
    )
    rate_burst: int = Field(
        default=200,
        ge=1,
        le=100000,
        description="packets one sender host may send at once before the rate applies",
    )
    max_packet_bytes: int = Field(
        default=4096,
        ge=64,
        le=65507,
        description="largest packet read, in bytes; larger ones are dropped unread",
    )
    reply_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="UDP port on the sender's host for replies (/status, /error); 0 = the port it sent from",
    )

    def networks(self) -> list[IpNetwork]:
        """The allowed networks: 127.0.0.1 and ::1 (local tools such as ``latentd send``), then ``allow``."""
        nets = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
        return nets + [ipaddress.ip_network(n) for n in self.allow]

"""``[web]``: the status page of a venue (bind address, port, allowlist, the token for actions)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from latentd.control.osc_config import IpNetwork, check_host, check_network


class WebConfig(BaseModel):
    """``[web]``: the status page. Off unless ``enabled``; 127.0.0.1 and ::1 may always read it."""

    # The same rules as every other config model; not imported from config.fields (see OscConfig).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    enabled: bool = Field(default=False, description="serve the status page with `latentd run`")
    bind: Annotated[str, AfterValidator(check_host)] = Field(
        default="127.0.0.1",
        description="address to listen on; 127.0.0.1 keeps the page on this machine (reach it through an "
        "SSH tunnel), a LAN address or 0.0.0.0 opens it to the network (then set `allow` and `token`)",
    )
    port: int = Field(
        default=8080, ge=0, le=65535, description="TCP port; 0 = any free port (the address is logged)"
    )
    allow: list[Annotated[str, AfterValidator(check_network)]] = Field(
        default_factory=list,
        description="networks (CIDR) whose hosts may open the page; this host (127.0.0.1, ::1) always may",
    )
    token: str = Field(
        default="",
        max_length=256,
        description="secret the page asks for before an action (next section, hold, fades, master gain, "
        "recording); empty = the page is read-only",
    )

    def networks(self) -> list[IpNetwork]:
        """The allowed networks: 127.0.0.1 and ::1, then ``allow``."""
        nets = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
        return nets + [ipaddress.ip_network(n) for n in self.allow]

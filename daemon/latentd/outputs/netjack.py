"""netjack2 on the master's side: the netmanager internal client and the ports a node's audio arrives on.

A worker node runs ``jackd -d net`` (``JackServer(driver="net")``); the master's jackd runs the netmanager
(``jack_load netmanager``), which makes one JACK client per joined node, named as the node names itself,
with ``from_slave_N`` output ports (the node's playback ports) and ``to_slave_N`` input ports (the node's
capture ports). While a client of that name still exists (a node that left less than about a second ago),
the next one gets ``<name>-01``.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterable

DEFAULT_MULTICAST = "225.3.19.154"
DEFAULT_PORT = 19000
_TIMEOUT_S = 10.0


class NetjackError(RuntimeError):
    """The netmanager could not be loaded or unloaded."""


def load_netmanager(server_name: str, address: str = "", port: int = DEFAULT_PORT) -> None:
    """Load the netmanager into a running jackd so that net-driver nodes can join it.

    Args:
        server_name: The master's JACK server.
        address: The address it listens on: empty = the multicast group (nodes find it by themselves; needs a
            multicast route), or this machine's IP (nodes then name it with ``-a``).
        port: Its UDP port.

    Raises:
        NetjackError: If ``jack_load`` is missing or fails; the message holds its output.
    """
    options = f"-p {port}" + (f" -a {address}" if address else "")
    _run(["jack_load", "-s", server_name, "netmanager", "-i", options], server_name, "load")


def unload_netmanager(server_name: str) -> None:
    """Unload the netmanager. A jackd with it loaded takes about 13 s to stop on SIGTERM; without, 1 s.

    Args:
        server_name: The master's JACK server.

    Raises:
        NetjackError: If ``jack_unload`` is missing or fails.
    """
    # jack_unload takes no -s: it finds its server in the environment.
    _run(["jack_unload", "netmanager"], server_name, "unload")


def _run(cmd: list[str], server_name: str, verb: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise NetjackError(f"{cmd[0]} is not installed (Debian/Ubuntu: apt install jackd2)")
    try:
        done = subprocess.run(
            cmd,
            env={**os.environ, "JACK_DEFAULT_SERVER": server_name},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetjackError(f"cannot {verb} the netmanager on JACK server {server_name!r}: timed out") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise NetjackError(
            f"cannot {verb} the netmanager on JACK server {server_name!r} (exit {done.returncode}): {output}"
        )


def node_ports(port_names: Iterable[str], node: str, direction: str = "from_slave") -> list[str]:
    """The master's ports of one node, in channel order.

    Args:
        port_names: Full port names on the master (e.g. from ``jack.Client.get_ports``).
        node: The node's name (its net driver's ``-n``).
        direction: ``"from_slave"`` (the node's audio) or ``"to_slave"`` (audio sent to it).

    Returns:
        ``<client>:<direction>_N`` for N = 1.. of the newest client of that node (``node``, ``node-01``, ..).
    """
    pattern = re.compile(rf"^({re.escape(node)}(?:-(\d\d))?):{direction}_(\d+)$")
    by_client: dict[str, list[tuple[int, str]]] = {}
    rank: dict[str, int] = {}
    for name in port_names:
        match = pattern.match(name)
        if match is None:
            continue
        client = match.group(1)
        rank[client] = int(match.group(2) or 0)
        by_client.setdefault(client, []).append((int(match.group(3)), name))
    if not by_client:
        return []
    newest = max(by_client, key=rank.__getitem__)
    return [name for _, name in sorted(by_client[newest])]

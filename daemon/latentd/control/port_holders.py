"""Who holds a UDP port: for an error message that names the program in the way (Linux ``/proc``)."""

from __future__ import annotations

import os
from pathlib import Path


def udp_port_holders(port: int) -> list[tuple[int, str]]:
    """Processes with a UDP socket bound to ``port``: (pid, command line), as far as this user can see.

    Sockets of other users' processes are found in ``/proc/net/udp*`` but their owners only when this
    user may read their file descriptors (root, or the same user).
    """
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for proc in Path("/proc").iterdir() if inodes else ():
        if proc.name.isdigit() and _links(proc / "fd") & inodes:
            try:
                argv = (proc / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
            except OSError:
                continue  # it just exited
            holders.append((int(proc.name), argv.decode(errors="replace")))
    return sorted(holders)


def _links(folder: Path) -> set[str]:
    """Targets of the links in a process's fd folder; descriptors that close meanwhile are skipped."""
    found: set[str] = set()
    try:
        fds = list(folder.iterdir())
    except OSError:
        return found
    for fd in fds:
        try:
            found.add(os.readlink(fd))
        except OSError:
            continue
    return found


def describe_udp_port(port: int) -> str:
    """``held by pid N (command)`` for each holder found, or a hint where none can be seen."""
    holders = udp_port_holders(port)
    if not holders:
        return "the program holding it is not visible to this user (another user's: try `sudo ss -ulpn`)"
    return "; ".join(f"held by pid {pid} ({' '.join(command.split())[:120]})" for pid, command in holders)

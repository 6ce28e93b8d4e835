"""Operator tools: ``latentd send /address args...`` and ``latentd status`` (OSC over UDP).

Where to send: ``--host`` and ``--port``; else, with ``-c/--config``, the venue's ``[osc]`` bind address
and port (and its ``reply_port``); else 127.0.0.1:9000.

``send`` follows its message with a ``/status`` query, so it knows the daemon heard it: it exits 0 when
the daemon answered and reported no error within ``--wait``, 1 when the message was refused (``/error``,
also from inside the engine) or when nothing answered at all.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
from typing import Any, TextIO

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg, config_errors
from latentd.control.osc_parse import OscArg, OscMessage, OscParseError, encode_message, parse_packet

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
INT_RE = re.compile(r"[-+]?\d+")
FLOAT_RE = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def parse_arg(text: str) -> OscArg:
    """One command-line argument as an OSC argument.

    ``i:3``, ``f:0.5``, ``s:name`` force a type; otherwise a whole number is an int, a decimal number a
    float, and anything else a string.

    Raises:
        ValueError: a typed prefix whose value does not fit the type.
    """
    kind, sep, value = text.partition(":")
    if sep and kind in ("i", "f", "s"):
        try:
            return int(value) if kind == "i" else float(value) if kind == "f" else value
        except ValueError:
            raise ValueError(f"{text!r}: {value!r} is not {'an int' if kind == 'i' else 'a float'}") from None
    if INT_RE.fullmatch(text):
        return int(text)
    if FLOAT_RE.fullmatch(text):
        return float(text)
    return text


def _socket(host: str, reply_port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", reply_port))
    return sock


def _wait_reply(sock: socket.socket, timeout_s: float, addresses: tuple[str, ...]) -> OscMessage | None:
    """The first reply with one of ``addresses`` within ``timeout_s``, or None."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            return None
        except OSError:  # e.g. ICMP port unreachable reported on the socket: nobody listens
            return None
        try:
            for message in parse_packet(data):
                if message.address in addresses:
                    return message
        except OscParseError:
            continue
    return None


def send(
    host: str, port: int, address: str, args: list[OscArg], wait_s: float, reply_port: int, out: TextIO
) -> int:
    """Send one message and wait ``wait_s`` for the daemon's answer. Returns the exit status.

    The message is followed by a ``/status`` query: its reply shows that the daemon heard both, and an
    ``/error`` within ``wait_s`` (the engine refuses some commands only when it applies them) fails.
    ``wait_s`` <= 0 sends without waiting.
    """
    payload = encode_message(address, args)
    with _socket(host, reply_port) as sock:
        sock.sendto(payload, (host, port))
        if wait_s <= 0:
            out.write(f"sent {address} to {host}:{port}\n")
            return EXIT_OK
        if address != "/status":
            sock.sendto(encode_message("/status"), (host, port))
        answered = False
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            reply = _wait_reply(sock, left, ("/error", "/status", address))
            if reply is None:
                break
            if reply.address == address != "/status":  # an answer of its own (/snapshot: the file)
                out.write(f"{address}: " + " ".join(str(a) for a in reply.args) + "\n")
                continue
            if reply.address == "/error":
                reason = reply.args[1] if len(reply.args) > 1 else reply.args
                sys.stderr.write(f"refused: {address}: {reason!s}\n")
                return EXIT_FAIL
            if address == "/status":
                out.write(" ".join(str(a) for a in reply.args) + "\n")
                return EXIT_OK
            answered = True  # go on listening: a refusal from inside the engine comes a little later
    if not answered:
        sys.stderr.write(
            f"no answer from {host}:{port} within {wait_s:g} s: is latentd running with [osc] enabled "
            "= true on that port, and is this host in its allow list?\n"
        )
        return EXIT_FAIL
    out.write(f"sent {address} to {host}:{port}: accepted (no error within {wait_s:g} s)\n")
    return EXIT_OK


def query_status(host: str, port: int, timeout_s: float, reply_port: int) -> dict[str, Any] | None:
    """Ask for ``/status``; the decoded reply, or None when nothing answered in time."""
    with _socket(host, reply_port) as sock:
        sock.sendto(encode_message("/status"), (host, port))
        reply = _wait_reply(sock, timeout_s, ("/status", "/error"))
    if reply is None:
        return None
    if reply.address == "/error":
        return {"error": str(reply.args[-1]) if reply.args else "refused"}
    if len(reply.args) != 1 or not isinstance(reply.args[0], str):
        return {"error": f"unexpected /status reply with arguments {reply.args!r}"}
    try:
        data = json.loads(reply.args[0])
    except json.JSONDecodeError as exc:
        return {"error": f"/status reply is not JSON: {exc}"}
    return data if isinstance(data, dict) else {"status": data}


def format_status(status: dict[str, Any]) -> str:
    """A human-readable status: section, uptime, levels, xruns, recording, then one line per voice."""
    lines = []
    hold = " (held)" if status.get("hold") else ""
    lines.append(f"section   {status.get('section', '?')}{hold}")
    if "uptime_s" in status:
        up = float(status["uptime_s"])
        lines.append(f"uptime    {int(up // 3600)}h{int(up % 3600 // 60):02d}m{up % 60:04.1f}s")
    if "master_gain" in status:
        lines.append(
            f"master    gain {status['master_gain']:.3f}  limiter {status.get('limiter_db', 0.0):.1f} dB"
        )
    peaks = status.get("peaks")
    if isinstance(peaks, dict):
        lines.append("peaks     " + "  ".join(f"{k} {float(v):.2f}" for k, v in peaks.items()))
    lines.append(f"xruns     {status.get('xruns', 'n/a') if status.get('xruns') is not None else 'n/a'}")
    recording = status.get("recording")
    lines.append(f"recording {json.dumps(recording) if recording is not None else 'n/a'}")
    voices = status.get("voices")
    if isinstance(voices, dict) and voices:
        lines.append("voices")
        width = max(len(n) for n in voices)
        for name, v in voices.items():
            if not isinstance(v, dict):
                lines.append(f"  {name:<{width}}  {v}")
                continue
            flags = [f for f, on in (("muted", v.get("muted")), ("frozen", v.get("frozen"))) if on]
            lines.append(
                f"  {name:<{width}}  gain {float(v.get('gain', 0.0)):.3f}  seed {v.get('seed', '?')}"
                + (f"  {' '.join(flags)}" if flags else "")
            )
    pools = status.get("pools")
    if isinstance(pools, dict) and pools:
        lines.append("pools")
        width = max(len(n) for n in pools)
        for name, pool in pools.items():
            if not isinstance(pool, dict):
                lines.append(f"  {name:<{width}}  {pool}")
            elif pool.get("state") == "failing":
                lines.append(
                    f"  {name:<{width}}  FAILING for {pool.get('failing_s')} s "
                    f"({pool.get('retries')} retries, {pool.get('items')} items): {pool.get('error')}"
                )
            else:
                lines.append(f"  {name:<{width}}  {pool.get('state')}, {pool.get('items')} items")
    shown = {
        "pools",
        "section",
        "hold",
        "uptime_s",
        "master_gain",
        "limiter_db",
        "peaks",
        "xruns",
        "recording",
        "voices",
    }
    for key, value in status.items():
        if key not in shown:
            lines.append(f"{key:<9} {value}")
    return "\n".join(lines) + "\n"


def _target(args: argparse.Namespace) -> tuple[str, int, int]:
    """``(host, port, reply_port)``: the options given, else the venue's ``[osc]`` (``-c``), else defaults.

    Raises:
        ConfigError: the venue config given with ``-c`` is not valid.
    """
    host, port, reply_port = DEFAULT_HOST, DEFAULT_PORT, 0
    if args.config is not None:
        from latentd.config import load_config

        osc = load_config(args.config).venue.osc
        # A server listening on every interface is reached here on loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(osc.bind, osc.bind)
        port, reply_port = osc.port, osc.reply_port
    return (
        args.host if args.host is not None else host,
        args.port if args.port is not None else port,
        args.reply_port if args.reply_port is not None else reply_port,
    )


def cmd_send(args: argparse.Namespace) -> int:
    """``latentd send``."""
    from latentd.config import ConfigError

    try:
        host, port, reply_port = _target(args)
    except ConfigError as exc:
        return config_errors(exc)
    try:
        values = [parse_arg(a) for a in args.args]
        if not args.address.startswith("/"):
            raise ValueError(f"the address {args.address!r} must start with '/', e.g. /voice/drone/gain")
        return send(host, port, args.address, values, args.wait, reply_port, sys.stdout)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    except BrokenPipeError:
        raise
    except OSError as exc:
        sys.stderr.write(f"cannot send to {host}:{port}: {exc}\n")
        return EXIT_FAIL


def cmd_status(args: argparse.Namespace) -> int:
    """``latentd status``."""
    from latentd.config import ConfigError

    try:
        host, port, reply_port = _target(args)
    except ConfigError as exc:
        return config_errors(exc)
    try:
        status = query_status(host, port, args.timeout, reply_port)
    except OSError as exc:
        sys.stderr.write(f"cannot query {host}:{port}: {exc}\n")
        return EXIT_FAIL
    if status is None:
        sys.stderr.write(
            f"no reply from {host}:{port} within {args.timeout:g} s: is latentd running with "
            "[osc] enabled = true on that port, and is this host in its allow list?\n"
        )
        return EXIT_FAIL
    if "error" in status and len(status) == 1:
        sys.stderr.write(f"{status['error']}\n")
        return EXIT_FAIL
    sys.stdout.write(json.dumps(status, indent=2) + "\n" if args.json else format_status(status))
    return EXIT_OK


def _target_args(p: argparse.ArgumentParser) -> None:
    config_arg(p, required=False, help="venue config whose [osc] bind address, port and reply_port to use")
    p.add_argument(
        "--host",
        default=None,
        help=f"host running latentd (default: the config's [osc] bind, or {DEFAULT_HOST})",
    )
    p.add_argument(
        "--port", type=int, default=None, help=f"its [osc] port (default: the config's, or {DEFAULT_PORT})"
    )
    p.add_argument(
        "--reply-port",
        type=int,
        default=None,
        help="local port to receive replies on ([osc] reply_port; default: the config's, or 0 = any)",
    )


def add_commands(sub: Any) -> None:
    """Add ``send`` and ``status`` to the ``latentd`` subcommands."""
    p = add_parser(
        sub,
        "send",
        help="send one OSC message to a running latentd",
        description="Send one OSC message. Arguments: 3 → int, 0.5 → float, other text → string; "
        "force a type with i:3, f:0.5, s:name.",
    )
    _target_args(p)
    p.add_argument(
        "--wait",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="wait this long for the daemon's answer and any /error (a model swap may need seconds); "
        "0: send without waiting",
    )
    p.add_argument("address", help="OSC address, e.g. /voice/drone/gain")
    p.add_argument("args", nargs="*", help="arguments (i:3 f:0.5 s:name force a type)")
    p.set_defaults(func=cmd_send)

    p = add_parser(sub, "status", help="ask a running latentd for its status over OSC and print it")
    _target_args(p)
    p.add_argument(
        "--timeout", type=float, default=2.0, metavar="SECONDS", help="how long to wait for the reply"
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)

"""OSC over UDP from the test's side: read one reply, ask for /status."""

from __future__ import annotations

import json
import socket

from latentd.control.osc import OscServer
from latentd.control.osc_parse import OscMessage, encode_message, parse_packet


def receive(sock: socket.socket) -> OscMessage:
    """The next reply on ``sock`` (its timeout bounds the wait)."""
    data, _ = sock.recvfrom(65536)
    (message,) = parse_packet(data)
    return message


def status(sock: socket.socket, server: OscServer) -> dict:
    """The server's /status JSON, asked from ``sock``."""
    sock.sendto(encode_message("/status"), server.address)
    reply = receive(sock)
    assert reply.address == "/status"
    return json.loads(reply.args[0])

"""Strict OSC 1.0 packets: parse a datagram into messages, or say exactly what is wrong with it.

python-osc's parser is lenient: it reads a truncated float as 0.0 and ignores trailing bytes, so a
broken gain message would silence a voice. This parser refuses anything that is not exactly well formed:
every string NUL-terminated and padded with NULs to 4 bytes, a type tag string starting with ``,``,
every argument present with its full size, no bytes left over. Bundles (``#bundle`` + timetag + sized
elements, nested up to :data:`MAX_BUNDLE_DEPTH`) are flattened into their messages in order; timetags
are read and ignored, because a control surface applies a bundle at once and never sleeps on it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

BUNDLE_TAG = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 4
MAX_ARGS = 16
FLOAT32_MAX = 3.4028234663852886e38

OscArg = int | float | str | bool | bytes | None


class OscParseError(ValueError):
    """A packet that is not well-formed OSC 1.0; ``address`` is the message's address if it could be read."""

    def __init__(self, reason: str, address: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.address = address


@dataclass(frozen=True)
class OscMessage:
    """One parsed message: its address, its type tags (without the comma) and its arguments."""

    address: str
    typetags: str
    args: tuple[OscArg, ...]


def _string(data: bytes, index: int, what: str, address: str = "") -> tuple[str, int]:
    end = data.find(b"\x00", index)
    if end < 0:
        raise OscParseError(f"{what} at byte {index} is not NUL-terminated (packet truncated?)", address)
    padded_end = (end // 4 + 1) * 4
    if padded_end > len(data):
        raise OscParseError(f"{what} at byte {index} is not padded to a multiple of 4 bytes", address)
    if data[end:padded_end].strip(b"\x00"):
        raise OscParseError(f"{what} at byte {index} has non-NUL padding", address)
    try:
        text = data[index:end].decode("utf-8")
    except UnicodeDecodeError:
        raise OscParseError(f"{what} at byte {index} is not valid UTF-8", address) from None
    return text, padded_end


def _take(data: bytes, index: int, size: int, tag: str, n: int, address: str) -> bytes:
    if index + size > len(data):
        have = len(data) - index
        raise OscParseError(
            f"argument {n + 1} (type {tag!r}) needs {size} bytes, {max(have, 0)} left: truncated",
            address,
        )
    return data[index : index + size]


def parse_message(data: bytes) -> OscMessage:
    """Parse one OSC message (not a bundle).

    Raises:
        OscParseError: anything malformed, with the reason and the address if it could be read.
    """
    if not data.startswith(b"/"):
        raise OscParseError("an OSC message must start with an address beginning with '/'")
    address, index = _string(data, 0, "address")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address) or " " in address:
        raise OscParseError("the address contains spaces or control characters", "")
    if index == len(data):
        # OSC 1.0 allows a message without a type tag string when it has no arguments.
        return OscMessage(address, "", ())
    if data[index : index + 1] != b",":
        raise OscParseError("the type tag string must start with ','", address)
    tags, index = _string(data, index, "type tag string", address)
    tags = tags[1:]
    if len(tags) > MAX_ARGS:
        raise OscParseError(f"{len(tags)} arguments; at most {MAX_ARGS} are accepted", address)
    args: list[OscArg] = []
    for n, tag in enumerate(tags):
        if tag == "i":
            args.append(struct.unpack(">i", _take(data, index, 4, tag, n, address))[0])
            index += 4
        elif tag == "h":
            args.append(struct.unpack(">q", _take(data, index, 8, tag, n, address))[0])
            index += 8
        elif tag == "f":
            args.append(struct.unpack(">f", _take(data, index, 4, tag, n, address))[0])
            index += 4
        elif tag == "d":
            args.append(struct.unpack(">d", _take(data, index, 8, tag, n, address))[0])
            index += 8
        elif tag in "sS":
            if index >= len(data):
                raise OscParseError(f"argument {n + 1} (type {tag!r}) is missing: truncated", address)
            text, index = _string(data, index, f"argument {n + 1} (string)", address)
            args.append(text)
        elif tag == "b":
            size = struct.unpack(">i", _take(data, index, 4, tag, n, address))[0]
            if size < 0:
                raise OscParseError(f"argument {n + 1} (blob) has a negative size", address)
            padded = (size + 3) // 4 * 4
            args.append(_take(data, index + 4, padded, tag, n, address)[:size])
            index += 4 + padded
        elif tag == "T":
            args.append(True)
        elif tag == "F":
            args.append(False)
        elif tag in "NI":
            args.append(None)
        else:
            raise OscParseError(
                f"unsupported argument type {tag!r}; accepted: i h f d s S b T F N I (no arrays)", address
            )
    if index != len(data):
        raise OscParseError(f"{len(data) - index} byte(s) after the last argument", address)
    return OscMessage(address, tags, tuple(args))


def parse_packet(data: bytes) -> list[OscMessage]:
    """Parse a datagram (a message or a bundle, nested) into its messages, in order.

    Bundle timetags are ignored: the messages are returned for immediate use.

    Raises:
        OscParseError: anything malformed anywhere in the packet; then no message of it is returned.
    """
    messages: list[OscMessage] = []
    _parse_into(data, 0, messages)
    return messages


def _parse_into(data: bytes, depth: int, out: list[OscMessage]) -> None:
    if not data.startswith(BUNDLE_TAG):
        if data.startswith(b"#"):
            raise OscParseError("a packet starting with '#' must be a bundle ('#bundle')")
        out.append(parse_message(data))
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise OscParseError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH} levels")
    if len(data) < 16:
        raise OscParseError("bundle header truncated: '#bundle' needs an 8-byte timetag")
    index = 16
    while index < len(data):
        if index + 4 > len(data):
            raise OscParseError(f"bundle element size at byte {index} truncated")
        size = struct.unpack(">i", data[index : index + 4])[0]
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise OscParseError(
                f"bundle element at byte {index - 4} has size {size}; "
                f"it must be a positive multiple of 4 within the {len(data) - index} byte(s) left"
            )
        _parse_into(data[index : index + size], depth + 1, out)
        index += size


# ------------------------------------------------------------------------------------------------ encode
def _pad(raw: bytes) -> bytes:
    return raw + b"\x00" * (4 - len(raw) % 4)


def encode_message(address: str, args: Sequence[OscArg] = ()) -> bytes:
    """Encode a message; Python types choose the OSC types (bool → T/F, int → i or h, float → f, str → s).

    Raises:
        ValueError: an address not starting with '/', or an argument of another type.
    """
    if not address.startswith("/"):
        raise ValueError(f"OSC address {address!r} must start with '/'")
    tags = ","
    payload = b""
    for arg in args:
        if isinstance(arg, bool):
            tags += "T" if arg else "F"
        elif isinstance(arg, int):
            if -(2**31) <= arg < 2**31:
                tags, payload = tags + "i", payload + struct.pack(">i", arg)
            else:
                tags, payload = tags + "h", payload + struct.pack(">q", arg)
        elif isinstance(arg, float):
            if math.isfinite(arg) and abs(arg) > FLOAT32_MAX:
                # Beyond float32: send a double rather than fail (the receiver decides what it accepts).
                tags, payload = tags + "d", payload + struct.pack(">d", arg)
            else:
                tags, payload = tags + "f", payload + struct.pack(">f", arg)
        elif isinstance(arg, str):
            tags, payload = tags + "s", payload + _pad(arg.encode("utf-8"))
        elif isinstance(arg, bytes):
            tags, payload = (
                tags + "b",
                payload + struct.pack(">i", len(arg)) + arg + b"\x00" * (-len(arg) % 4),
            )
        elif arg is None:
            tags += "N"
        else:
            raise ValueError(
                f"cannot send {type(arg).__name__} {arg!r} over OSC: use int, float, str or bool"
            )
    return _pad(address.encode("utf-8")) + _pad(tags.encode("ascii")) + payload


def encode_bundle(elements: Sequence[bytes], timetag: int = 1) -> bytes:
    """Encode a bundle of already encoded messages or bundles (``timetag`` 1 means "immediately")."""
    body = b"".join(struct.pack(">i", len(e)) + e for e in elements)
    return BUNDLE_TAG + struct.pack(">Q", timetag) + body

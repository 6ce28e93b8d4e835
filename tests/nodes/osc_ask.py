"""Send OSC to a latentd in this network namespace and print its replies, for the two-node tests.

``python -m tests.nodes.osc_ask PORT REPLIES JSON``: JSON is a list of ``[address, [args...]]`` (one
message is sent alone, several as one bundle, from 127.0.0.1). Prints each reply as a JSON line
``[address, [args...]]`` until ``REPLIES`` have come (or 5 s have passed).
"""

import argparse
import json
import socket

from latentd.control.osc_parse import encode_bundle, encode_message, parse_packet


def main() -> None:
    """Send, then print the replies."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int, help="the daemon's OSC port on 127.0.0.1")
    parser.add_argument("replies", type=int, help="replies to wait for")
    parser.add_argument("messages", help="JSON list of [address, [args...]]")
    args = parser.parse_args()
    messages = [encode_message(address, values) for address, values in json.loads(args.messages)]
    packet = messages[0] if len(messages) == 1 else encode_bundle(messages)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5.0)
        sock.sendto(packet, ("127.0.0.1", args.port))
        for _ in range(args.replies):
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            for message in parse_packet(data):
                print(json.dumps([message.address, list(message.args)]), flush=True)


if __name__ == "__main__":
    main()

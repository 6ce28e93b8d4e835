"""Log lines are written whole: two processes sharing one stdout never merge their lines."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys

from latentd.runtime.logs import LineLogger

LINES = 300
# Logs as the supervisor and the engine process do: JSON lines, unbuffered stdout (as in the unit).
CHILD = """
import sys
import structlog
from latentd.runtime.logs import setup_logging

setup_logging("info", "json")
log = structlog.get_logger("latentd.test")
for i in range(int(sys.argv[2])):
    log.info("test.line", proc=sys.argv[1], i=i, pad="x" * (i % 97))
"""


def test_two_processes_on_one_stdout_write_every_line_whole_in_one_write():
    # A SEQPACKET socket keeps the boundary of every write: each record received is one write() of a
    # child. A line written as message and newline apart would arrive as two records.
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, name, str(LINES)], stdout=writer, env=env)
        for name in ("supervisor", "engine")
    ]
    writer.close()  # the children hold it now: the reader sees the end once both have exited
    records = []
    with reader:
        while record := reader.recv(1 << 16):
            records.append(record)
    for child in children:
        assert child.wait() == 0
    assert all(r.endswith(b"\n") and r.count(b"\n") == 1 for r in records), "a line was split or merged"
    lines = [json.loads(r) for r in records]
    for name in ("supervisor", "engine"):
        assert [e["i"] for e in lines if e["proc"] == name] == list(range(LINES))


def test_a_stream_without_a_descriptor_gets_one_write_per_line():
    writes: list[str] = []

    class Capture(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return len(s)

    logger = LineLogger(Capture())
    logger.info("one")
    logger.error("two")
    assert writes == ["one\n", "two\n"]

"""The web process: started (spawned, niced) and stopped by the engine host, fed through one pipe.

The web server runs in its own interpreter so that serving pages never competes for a GIL with the
engine or the JACK callback; it never imports torch. :class:`WebProcess` is the owner's side;
:func:`web_main` runs in the child: it binds the socket (so the owner learns the real port, also when
``port = 0``), says ``{"ready": url}`` (or ``{"error": reason}``) through the pipe, then serves with
uvicorn until the pipe closes or a stop arrives.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

import structlog

from latentd.web.config import WebConfig

log = structlog.get_logger("latentd.web")

NICE = 10  # the page may wait; the audio may not


class WebProcess:
    """The owner's side: the child process and the engine's end of the pipe (``conn``)."""

    def __init__(self, config: WebConfig, log_level: str, log_format: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe(duplex=True)
        self._child_conn = child_conn
        self.process = context.Process(
            target=web_main,
            args=(child_conn, config.model_dump(), log_level, log_format),
            name="latentd-web",
            daemon=True,
        )

    def start(self) -> None:
        """Start the child (its ``ready`` or ``error`` message arrives on ``conn``)."""
        self.process.start()
        self._child_conn.close()  # the child's end lives in the child: its exit closes the pipe

    def stop(self, timeout_s: float = 3.0) -> None:
        """Ask the child to stop, then make sure it did."""
        if self.process.pid is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self.conn.send({"stop": 1})
        self.conn.close()
        self.process.join(timeout_s)
        if self.process.is_alive():
            log.warning("web.stop_timeout", timeout_s=timeout_s)
            self.process.kill()
            self.process.join(2.0)
        log.info("web.stopped", exit_code=self.process.exitcode)


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def web_main(conn: Connection, config: dict[str, Any], log_level: str, log_format: str) -> None:
    """The web process: serve the page until the pipe closes."""
    import uvicorn

    from latentd.runtime.logs import setup_logging
    from latentd.web.app import Feed, make_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner coordinates the stop
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    setup_logging(log_level, log_format)  # type: ignore[arg-type]
    web = WebConfig(**config)
    family = socket.AF_INET6 if ":" in web.bind else socket.AF_INET
    try:
        sock = socket.create_server((web.bind, web.port), family=family, backlog=64)
    except OSError as exc:
        conn.send(
            {"error": f"cannot listen on {web.bind} port {web.port} ([web] bind, port): {exc.strerror}"}
        )
        conn.close()
        return
    port = int(sock.getsockname()[1])
    url = _url(web.bind, port)
    feed = Feed(conn)
    app = make_app(feed, web.token, web.networks())
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            limit_concurrency=64,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=1,
            h11_max_incomplete_event_size=16 * 1024,
        )
    )

    def receive() -> None:
        feed.receive_forever()
        server.should_exit = True  # the engine process is gone or asked us to stop

    threading.Thread(target=receive, name="latentd-web-pipe", daemon=True).start()
    feed.send({"ready": url})
    log.info("web.ready", url=url, page=f"web page: {url}", torch_loaded="torch" in sys.modules)
    server.run(sockets=[sock])
    sys.stdout.flush()

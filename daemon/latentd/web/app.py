"""The web process's application: the page, JSON for scripts, server-sent events, actions, ``/metrics``.

Runs in the web process only (never imports torch or the engine). :class:`Feed` holds the latest status
the engine process sent through the pipe and the history; a reader thread receives the statuses (and
acknowledges each, so the engine side knows when to drop one) and the replies to actions. The app only
reads ``Feed``; an action goes to the engine process through the pipe and waits for its reply.

Endpoints: ``/`` the page, ``/api/status``, ``/api/history?span=hour|day``, ``/events`` (SSE, about
10 Hz), ``POST /api/action/<name>`` (needs ``Authorization: Bearer <token>``), ``/metrics``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from latentd.control.osc_config import IpNetwork, host_allowed
from latentd.web.history import History

MAX_BODY_BYTES = 1024  # an action's body is {"value": number}
MAX_STREAMS = 16  # open /events streams; more get 503
ACTION_TIMEOUT_S = 3.0
EVENT_EVERY_S = 0.1
ACTIONS = ("next", "hold", "fade_out", "fade_in", "master_gain", "record_start", "record_stop")


class Feed:
    """What the engine process sent: the latest status (and its JSON), the history, action replies."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.status: dict[str, Any] = {}
        self.text = "{}"
        self.seq = 0
        self.history = History()
        self.closed = threading.Event()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}

    def send(self, msg: dict[str, Any]) -> None:
        """Send to the engine process (any thread)."""
        with self._send_lock:
            self.conn.send(msg)

    def receive_forever(self) -> None:
        """Reader thread: statuses and replies until the engine process closes the pipe."""
        try:
            while True:
                msg = self.conn.recv()
                if not isinstance(msg, dict):
                    continue
                if "status" in msg:
                    status = msg["status"]
                    self.text = json.dumps(status, allow_nan=False, separators=(",", ":"))
                    self.status = status
                    self.seq += 1
                    self.history.add(time.time(), status)
                    self.send({"ack": 1})
                elif "reply" in msg:
                    waiting = self._pending.pop(int(msg["reply"] or 0), None)
                    if waiting is not None:
                        loop, future = waiting
                        loop.call_soon_threadsafe(_settle, future, msg)
                elif "stop" in msg:
                    break
        except (EOFError, OSError):
            pass
        finally:
            self.closed.set()

    async def act(self, name: str, value: Any, peer: str) -> dict[str, Any]:
        """Ask the engine process to apply an action; its reply ``{"ok", "reason"}``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        ident = next(self._ids)
        self._pending[ident] = (loop, future)
        try:
            self.send({"action": name, "value": value, "id": ident, "peer": peer})
            return await asyncio.wait_for(future, ACTION_TIMEOUT_S)
        except (TimeoutError, OSError):
            return {"ok": False, "reason": "the engine did not answer in time"}
        finally:
            self._pending.pop(ident, None)


def _settle(future: asyncio.Future[dict[str, Any]], msg: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(msg)


class StatusCollector(Collector):
    """``/metrics``: the latest status in Prometheus's terms."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        st = self.feed.status
        up = GaugeMetricFamily("latentd_feed_up", "1 while the engine process feeds the page")
        up.add_metric([], 0.0 if self.feed.closed.is_set() or not st else 1.0)
        yield up
        if not st:
            return
        simple = {
            "latentd_open": ("1 while the venue is open (playing or fading in)", float(bool(st.get("open")))),
            "latentd_limiter_reduction_db": ("the limiter's gain reduction, dB", st.get("limiter_db", 0.0)),
            "latentd_master_gain": ("the master gain (linear)", st.get("master_gain", 0.0)),
            "latentd_uptime_seconds": ("seconds since the engine started", st.get("uptime_s", 0.0)),
        }
        for name, (doc, value) in simple.items():
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g
        for name, key, doc in (
            ("latentd_xruns", "xruns", "JACK xruns"),
            ("latentd_underruns", "underruns", "blocks the JACK callback found missing (silence played)"),
            ("latentd_refused_commands", "refused_commands", "commands refused"),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], float(st.get(key) or 0))
            yield counter
        peak = GaugeMetricFamily("latentd_speaker_peak", "peak over the last ~100 ms", labels=["speaker"])
        rms = GaugeMetricFamily("latentd_speaker_rms", "RMS over the last ~100 ms", labels=["speaker"])
        for s in st.get("speakers", []):
            peak.add_metric([s["name"]], float(s["peak"]))
            rms.add_metric([s["name"]], float(s["rms"]))
        yield peak
        yield rms
        load = GaugeMetricFamily(
            "latentd_decode_load",
            "decode time per second of audio (1 = the real-time budget)",
            labels=["model"],
        )
        for m in st.get("models", []):
            if m.get("load") is not None:
                load.add_metric([m["name"]], float(m["load"]))
        yield load
        rec = st.get("recording") or {}
        recording = GaugeMetricFamily("latentd_recording", "1 while recording (not paused)")
        recording.add_metric([], float(rec.get("state") == "recording"))
        yield recording
        if rec.get("disk_free_bytes") is not None:
            disk = GaugeMetricFamily(
                "latentd_recording_disk_free_bytes", "free space in the recordings folder"
            )
            disk.add_metric([], float(rec["disk_free_bytes"]))
            yield disk


class AllowList:
    """ASGI middleware: hosts outside the allowed networks get 403 (and nothing else)."""

    def __init__(self, app: ASGIApp, networks: list[IpNetwork]) -> None:
        self.app = app
        self.networks = networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client is None or not host_allowed(str(client[0]), self.networks):
                await PlainTextResponse("this host may not open the page ([web] allow)", 403)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def make_app(feed: Feed, token: str, networks: list[IpNetwork]) -> ASGIApp:
    """The application: routes over ``feed``, behind the allow list."""
    page = resources.files("latentd.web").joinpath("page.html").read_text(encoding="utf-8")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(feed))
    streams = [0]

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def status(request: Request) -> Response:
        return Response(feed.text, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def history(request: Request) -> Response:
        span = request.query_params.get("span", "hour")
        if span not in ("hour", "day"):
            return JSONResponse({"error": f"span must be hour or day, got {span!r}"}, 400)
        return JSONResponse({"span": span, "columns": ["time_s", "rms_db", "peak_db", "load"],
                             "points": feed.history.points(span)})  # fmt: skip

    async def events(request: Request) -> Response:
        if streams[0] >= MAX_STREAMS:
            return PlainTextResponse(f"too many open pages (at most {MAX_STREAMS})", 503)

        async def stream() -> AsyncIterator[str]:
            # Counted inside the generator: its finally runs only once it has started.
            streams[0] += 1
            seq = -1
            try:
                while not feed.closed.is_set():
                    if feed.seq != seq:
                        seq = feed.seq
                        yield f"data: {feed.text}\n\n"
                    await asyncio.sleep(EVENT_EVERY_S)
                    if await request.is_disconnected():
                        break
            finally:
                streams[0] -= 1

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def action(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ACTIONS:
            return JSONResponse(
                {"ok": False, "reason": f"unknown action {name!r}; one of {', '.join(ACTIONS)}"}, 404
            )
        if not token:
            return JSONResponse(
                {"ok": False, "reason": "actions are off: [web] token is not set in the venue config"}, 403
            )
        given = request.headers.get("authorization", "")
        scheme, _, secret = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), token.encode()):
            return JSONResponse(
                {"ok": False, "reason": "read-only: a valid token is needed (Authorization: Bearer <token>)"},
                403,
            )
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return JSONResponse({"ok": False, "reason": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"ok": False, "reason": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
        value: Any = None
        if body.strip():
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return JSONResponse({"ok": False, "reason": 'body must be JSON like {"value": 0.5}'}, 400)
            if not isinstance(parsed, dict) or set(parsed) - {"value"}:
                return JSONResponse({"ok": False, "reason": 'body must be JSON like {"value": 0.5}'}, 400)
            value = parsed.get("value")
        peer = request.client.host if request.client else ""
        reply = await feed.act(name, value, peer)
        ok = bool(reply.get("ok"))
        return JSONResponse({"ok": ok, "action": name, "reason": reply.get("reason", "")}, 200 if ok else 422)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", status),
            Route("/api/history", history),
            Route("/events", events),
            Route("/metrics", metrics),
            Route("/api/action/{name}", action, methods=["POST"]),
        ]
    )
    return AllowList(app, networks)

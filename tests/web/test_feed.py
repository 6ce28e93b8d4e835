"""The status page's parts without a daemon: meters, actions through the OSC routes, the schedule line,
the history's bounds, ``[web]`` errors and the allow list."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from latentd.config import load_config
from latentd.control.osc_config import host_allowed
from latentd.engine.engine import Engine
from latentd.engine.remote_voices import RemoteVoices
from latentd.installation.piece import load_installation
from latentd.web.app import Feed, make_app
from latentd.web.config import WebConfig
from latentd.web.feed import ACTIONS, LevelMeter, WebFeed, action_message, schedule_line
from latentd.web.history import DAY_POINTS, HOUR_POINTS, History
from tests.control.conftest import deliver, make_server, osc_piece, play

__all__ = ["osc_piece"]


def make_engine(piece: Path) -> Engine:
    return Engine(load_installation(load_config(piece)), fade_in_s=0.0)


@pytest.fixture
def feed(osc_piece: Path):
    engine = make_engine(osc_piece)
    ours, theirs = multiprocessing.Pipe()
    web = WebFeed(
        engine, load_config(osc_piece), ours, recorder=None, counts=lambda: {"xruns": 0, "underruns": 0}
    )
    yield web
    ours.close()
    theirs.close()


def test_meters_measure_each_speaker_and_leave_the_audio_alone(osc_piece: Path, feed: WebFeed):
    engine = feed.engine
    plain = make_engine(osc_piece)
    metered = play(engine, 0.5)
    assert np.array_equal(metered, play(plain, 0.5))  # the listener only reads the blocks
    peak, rms = feed.meter.take()
    x = metered.astype(np.float64)
    # The limiter delays by one block, so its peaks and the blocks it returned are the same audio.
    assert peak == pytest.approx(np.abs(x).max(axis=1), abs=1e-5)
    assert rms == pytest.approx(np.sqrt(np.mean(x**2, axis=1)), abs=1e-5)
    assert rms[0] > 0.01 and rms[2] == 0.0  # v on FL, w on FR, nothing behind
    assert feed.meter.take() == ([0.0] * 4, [0.0] * 4)  # taken: the next window starts empty


def test_meter_take_starts_a_new_window(osc_piece: Path):
    engine = make_engine(osc_piece)
    meter = LevelMeter(engine)
    block = np.full((4, 256), 0.5, dtype=np.float32)
    meter(0, block)
    meter(1, block * 0)
    _, rms = meter.take()
    assert rms == pytest.approx([np.sqrt(0.125)] * 4, abs=1e-5)


def test_actions_are_the_osc_messages_and_refused_in_the_same_words(osc_piece: Path, feed: WebFeed):
    engine = feed.engine
    server = make_server(make_engine(osc_piece))
    (error,) = deliver(server, "/master/gain", 99.0)
    ok, reason = feed.act("master_gain", 99.0)
    assert not ok and reason == error.args[1]
    assert feed.act("master_gain", "loud") == (False, 'master_gain takes a number in "value", got str')
    assert feed.act("explode", None)[0] is False
    assert feed.act("next", None) == (True, "")
    assert feed.act("fade_out", None) == (True, "")
    play(engine, 0.05)
    assert engine.snapshot.section == "b"
    assert [c.name for c in engine.snapshot.overrides] == ["master.mute"]
    assert {name: action_message(name, 1).address for name in ACTIONS} == {  # type: ignore[union-attr]
        "next": "/section/next",
        "hold": "/section/hold",
        "fade_out": "/master/mute",
        "fade_in": "/master/mute",
        "master_gain": "/master/gain",
        "record_start": "/record/start",
        "record_stop": "/record/stop",
    }


def test_the_page_hears_the_engines_outcome(osc_piece: Path):
    engine = make_engine(osc_piece)
    ours, theirs = multiprocessing.Pipe()
    feed = WebFeed(engine, load_config(osc_piece), ours, recorder=None, counts=dict)
    try:
        theirs.send({"action": "next", "id": 7})
        theirs.send({"action": "master_gain", "value": 9.0, "id": 8})
        feed._receive()
        assert theirs.recv() == {"reply": 8, "ok": False, "reason": "gain must be in 0..4, got 9.0"}
        assert not theirs.poll(0)  # "next" is answered once the engine has applied it
        play(engine, 0.01)
        feed._receive()
        assert theirs.recv() == {"reply": 7, "ok": True, "reason": ""}
        assert engine.snapshot.section == "b"
    finally:
        ours.close()
        theirs.close()


def test_status_is_json_ready_with_schedule_and_section_time(feed: WebFeed):
    play(feed.engine, 0.2)
    st = feed.status()
    assert st["section"] == "a" and st["section_s"] == 3600.0 and 3599 < st["left_s"] < 3600
    assert st["schedule"]["state"] == "playing" and st["models"][0]["load"] > 0
    assert [s["name"] for s in st["speakers"]] == ["FL", "FR", "BL", "BR"]


def test_schedule_line_names_the_next_opening_and_closing_in_local_time(osc_piece: Path, tmp_path: Path):
    venue = osc_piece.read_text() + '\n[schedule]\ntimezone = "Europe/Berlin"\n[schedule.hours]\n'
    venue += 'tue = ["10:00-18:00"]\n'
    (tmp_path / "venue.toml").write_text(
        venue.replace('piece = "piece"', f'piece = "{osc_piece.parent}/piece"')
    )
    config = load_config(tmp_path / "venue.toml")
    tuesday_night = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)  # 21:00 in Berlin, after closing
    line = schedule_line(config, tuesday_night, snapshot_open=False, fading=False)
    assert line["state"] == "closed" and line["why"] == "outside opening hours"
    assert line["next_open"] == "2026-12-08 10:00+01:00" and line["next_close"] == "2026-12-08 18:00+01:00"
    noon = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)
    line = schedule_line(config, noon, snapshot_open=False, fading=True)
    assert line["state"] == "fading out" and line["why"] == "within opening hours"


def test_history_is_bounded_and_aggregates_by_second_and_minute():
    history = History()
    loud = {"speakers": [{"rms": 0.5, "peak": 0.9}, {"rms": 0.5, "peak": 0.1}], "models": [{"load": 0.2}]}
    start = 1_800_000_000.0
    for k in range(2 * HOUR_POINTS * 2):  # two hours at 2 statuses a second
        history.add(start + k / 2, loud)
    assert len(history.points("hour")) == HOUR_POINTS
    assert len(history.points("day")) == 119  # the minute in progress is not a point yet
    _time_s, rms_db, peak_db, load = history.points("hour")[-1]
    assert rms_db == pytest.approx(-6.0, abs=0.1) and peak_db == pytest.approx(-0.9, abs=0.1) and load == 0.2
    for k in range(DAY_POINTS + 10):
        history.add(start + 7200 + 60 * k, loud)
    assert len(history.points("day")) == DAY_POINTS


def test_web_config_errors_say_what_is_allowed():
    with pytest.raises(ValidationError, match="is not an IP address"):
        WebConfig(bind="localhost")
    with pytest.raises(ValidationError, match="CIDR"):
        WebConfig(allow=["192.168.1.1/24"])
    with pytest.raises(ValidationError):
        WebConfig(port=70000)
    assert host_allowed("192.168.1.7", WebConfig(allow=["192.168.1.0/24"]).networks())
    assert host_allowed("::ffff:127.0.0.1", WebConfig().networks())
    assert not host_allowed("10.0.0.1", WebConfig().networks())


def test_hosts_outside_the_allow_list_get_403():
    ours, theirs = multiprocessing.Pipe()

    async def get(app, host: str, method: str, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(host, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://page") as client:
            return await client.request(method, path)

    try:
        app = make_app(Feed(theirs), "token", WebConfig().networks())
        refused = asyncio.run(get(app, "10.1.2.3", "GET", "/api/status"))
        assert refused.status_code == 403 and "[web] allow" in refused.text
        assert asyncio.run(get(app, "127.0.0.1", "GET", "/api/status")).json() == {}  # nothing fed yet
        assert asyncio.run(get(app, "127.0.0.1", "POST", "/api/action/next")).status_code == 403
    finally:
        ours.close()
        theirs.close()


def test_status_lists_the_voices_of_other_machines_with_their_node(feed: WebFeed):
    engine = feed.engine
    assert feed.status()["remote_voices"] == {}  # one machine
    engine.remote = RemoteVoices({"far": "pi2"})
    engine.remote.watch(lambda: {"pi2": False})
    play(engine, 0.05)
    assert feed.status()["remote_voices"] == {"far": {"node": "pi2", "present": False}}

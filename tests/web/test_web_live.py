"""The status page of a live daemon over real HTTP on loopback: JSON, history, metrics, actions, floods."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.web.conftest import TOKEN, LiveDaemon

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_status_json_has_the_section_schedule_and_moving_meters(live: LiveDaemon):
    st = live.status()
    assert st["piece"] == "test-piece" and st["section"] in ("first", "second")
    assert [s["name"] for s in st["speakers"]] == ["FL", "FR", "BL", "BR"]
    assert st["schedule"]["state"] in ("playing", "fading in")
    assert st["schedule"]["why"] == "open around the clock (no opening hours)"
    assert st["xruns"] is not None and st["underruns"] == 0
    assert [m["name"] for m in st["models"]] == ["tone"]
    assert st["recording"]["state"] == "off" and st["recording"]["disk_free_bytes"] > 0
    (ready,) = live.events("web.ready")
    assert ready["url"] == live.url + "/" and ready["torch_loaded"] is False  # a process of its own

    def fl_levels() -> tuple[float, float] | None:
        fl = live.client.get("/api/status").json()["speakers"][0]
        return (fl["peak"], fl["rms"]) if fl["rms"] > 0.01 else None

    peak, rms = live.wait_for(fl_levels, "a tone on FL")
    assert peak >= rms > 0.01
    assert live.client.get("/api/status").json()["speakers"][2]["peak"] == 0.0  # BL plays nothing
    load = live.wait_for(lambda: live.client.get("/api/status").json()["models"][0]["load"], "a decode load")
    assert 0 < load < 1  # the small synth decodes far faster than real time


def test_the_page_shows_the_problems_of_the_jack_process_too(live: LiveDaemon):
    # The JACK process (its own process, no page of its own) could not connect BR: the page says so.
    def missing() -> list[dict] | None:
        problems = live.client.get("/api/status").json()["problems"]
        return [p for p in problems if p["event"] == "jack.port_missing"] or None

    (problem,) = live.wait_for(missing, "the JACK process's warning on the page")
    assert problem["level"] == "warning"
    assert "target=nowhere:in" in problem["details"] and "port=latweb:BR" in problem["details"]
    assert live.events("jack.port_missing")  # and, as ever, in the log


def test_history_metrics_and_the_page(live: LiveDaemon):
    hour = live.wait_for(lambda: live.client.get("/api/history?span=hour").json()["points"], "history")
    time_s, rms_db, peak_db, _load = hour[-1]
    assert time_s > 1.7e9 and rms_db is not None and peak_db >= rms_db
    assert live.client.get("/api/history?span=day").status_code == 200
    bad = live.client.get("/api/history?span=week")
    assert bad.status_code == 400 and "hour or day" in bad.json()["error"]
    metrics = live.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'latentd_speaker_rms{speaker="FL"}' in metrics.text
    assert "latentd_underruns_total 0.0" in metrics.text and "latentd_feed_up 1.0" in metrics.text
    page = live.client.get("/")
    assert (
        page.status_code == 200 and 'id="ring"' in page.text and "http" not in page.text.split("<script>")[0]
    )
    with live.client.stream("GET", "/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        line = next(ln for ln in events.iter_lines() if ln.startswith("data: "))
        assert json.loads(line[6:])["section"] in ("first", "second")


def test_actions_need_the_token_and_go_through_the_osc_checks(live: LiveDaemon):
    before = live.status()["section"]
    applied_before = len(live.events("command.applied"))
    refused = live.client.post("/api/action/next")
    assert refused.status_code == 403 and "token" in refused.json()["reason"]
    wrong = live.client.post("/api/action/next", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert live.status()["section"] == before
    assert len(live.events("command.applied")) == applied_before  # nothing applied without the token
    auth = {"Authorization": f"Bearer {TOKEN}"}
    applied = live.client.post("/api/action/next", headers=auth)
    assert applied.status_code == 200 and applied.json()["ok"], applied.text
    live.wait_for(lambda: live.client.get("/api/status").json()["section"] != before, "the next section")
    # The same range and the same words as /master/gain over OSC.
    loud = live.client.post("/api/action/master_gain", headers=auth, json={"value": 99.0})
    assert loud.status_code == 422 and "gain" in loud.json()["reason"], loud.text
    gain = live.client.post("/api/action/master_gain", headers=auth, json={"value": 0.5})
    assert gain.json()["ok"], gain.text
    live.wait_for(lambda: live.client.get("/api/status").json()["master_gain"] == 0.5, "master gain 0.5")
    assert live.client.post("/api/action/explode", headers=auth).status_code == 404
    assert live.client.post("/api/action/hold", headers=auth, content=b"{not json").status_code == 400
    huge = live.client.post("/api/action/hold", headers=auth, content=b"{" + b" " * 5000 + b"}")
    assert huge.status_code == 413
    assert live.client.post("/api/action/hold", headers=auth, json={"value": 1}).json()["ok"]
    live.wait_for(lambda: live.client.get("/api/status").json()["hold"], "the hold")
    assert live.client.post("/api/action/hold", headers=auth, json={"value": 0}).json()["ok"]
    assert live.client.post("/api/action/master_gain", headers=auth, json={"value": 1.0}).json()["ok"]
    # Logged like OSC commands: accepted, refused, and applied by the engine with its block.
    accepted = live.events("web.accepted")
    assert {e["action"] for e in accepted} >= {"next", "master_gain", "hold"}
    assert any(e["action"] == "master_gain" for e in live.events("web.refused"))
    applied = {e["cmd"] for e in live.events("command.applied")}
    assert applied >= {"section.next", "master.gain", "section.hold"}, applied
    journal = live.log.parent / "recordings" / "commands.jsonl"  # the command log beside the sessions
    logged = [json.loads(line)["cmd"] for line in journal.read_text().splitlines()]
    assert logged[applied_before : applied_before + 3] == ["section.next", "master.gain", "section.hold"]


def test_open_pages_and_a_request_flood_leave_the_audio_alone(live: LiveDaemon):
    underruns = live.status()["underruns"]
    stop = threading.Event()
    seen = [0, 0, 0]

    def page(i: int) -> None:
        with httpx.Client(base_url=live.url, timeout=10.0) as client, client.stream("GET", "/events") as ev:
            for line in ev.iter_lines():
                if line.startswith("data: "):
                    seen[i] += 1
                if stop.is_set():
                    return

    readers = [threading.Thread(target=page, args=(i,), daemon=True) for i in range(3)]
    for r in readers:
        r.start()
    codes: dict[int, int] = {}
    with httpx.Client(base_url=live.url, timeout=10.0) as client:
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            for path in ("/api/status", "/metrics", "/api/history?span=hour", "/", "/nowhere"):
                code = client.get(path).status_code
                codes[code] = codes.get(code, 0) + 1
            code = client.post("/api/action/next").status_code  # refused: no token
            codes[code] = codes.get(code, 0) + 1
    stop.set()
    for r in readers:
        r.join(5.0)
    assert set(codes) == {200, 403, 404}, codes
    assert min(seen) >= 10, seen  # each page kept receiving statuses at about 10 Hz
    assert live.process.poll() is None, live.tail()
    assert live.status()["underruns"] == underruns, live.tail()

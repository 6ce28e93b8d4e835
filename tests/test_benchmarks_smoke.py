"""The benchmarks still run: each measuring function once, with tiny sizes (no figures are judged here)."""

import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import structlog

from benchmarks import engine as bench
from benchmarks import model_files, osc_latency, real_models, soak, soak_plan, soak_probe, xruns
from benchmarks import resample as resample_bench
from benchmarks.oscload import messages
from benchmarks.xruns_child import TimedJackOutput
from latentd.control.opening import is_open
from latentd.control.schedule_config import ScheduleConfig
from latentd.engine.ring import BlockRing


def _floats(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    return []


TINY = bench.Sizes(
    seconds=0.4,
    repeats=1,
    threads=(1,),
    max_voices=2,
    batch_sizes=(1, 2),
    frames=(8,),
    minutes=0.02,
    startup_repeats=1,
)


@pytest.mark.parametrize("name", ["overhead", "voices", "batching", "blocksize", "memory"])
def test_engine_benchmark_writes_figures(name: str, tmp_path: Path) -> None:
    out = io.StringIO()
    bench.run([name], TINY, tmp_path, out)
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["benchmark"] == name
    assert f"## {name}" in out.getvalue()
    numbers = [v for row in data.get("rows", [data]) for v in _floats(row)]
    assert numbers and all(math.isfinite(v) for v in numbers), numbers


def test_max_voices_search_finds_the_last_count_above_the_goal() -> None:
    # A fake engine that runs 10× real time with one voice and slows down in proportion.
    best, points = bench._max_voices(lambda n: 10.0 / n, cap=64)
    assert best == 6  # 10/6 = 1.67 ≥ 1.5 > 10/7
    assert points[6] >= bench.REALTIME_GOAL > points[7]


def test_max_voices_stops_at_the_cap() -> None:
    best, _ = bench._max_voices(lambda n: 100.0, cap=5)
    assert best == 5


REAL_TINY = real_models.Sizes(seconds=0.3, repeats=1, voice_seconds=0.3, threads=(1,), max_voices=1)


def test_real_models_benchmark_prints_its_tables_for_the_c16_export(
    shared_models_dir: Path, tmp_path: Path
) -> None:
    out = io.StringIO()
    real_models.run(["rave-v2small-c16"], REAL_TINY, tmp_path, out)
    text = out.getvalue()
    assert "## real models" in text
    assert "| rave-v2small-c16 | 512 @ 44100 |" in text, text
    data = json.loads((tmp_path / "real_models.json").read_text())
    [row] = data["models"]
    figures = [row[k] for k in ("overhead_1v", "overhead_4v", "overhead_nn", "latentd_vs_nn", "nn_x_rt")]
    figures += [row[k] for k in ("torch_batch_nn", "torch_batch_8", "latentd_batch")]
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in figures), figures
    assert row["nn_frames"] == 8  # nn~'s 4096-sample buffer at ratio 512
    # The engine's own decode calls were seen and replayed: one voice decodes 8 frames per call.
    assert row["call_shapes"]["1 voice"] and all(s[2] == 8 for s in row["call_shapes"]["1 voice"])
    assert row["voices"]["1"] in (0, 1)


def test_piece_figure_decodes_the_models_one_and_two_at_a_time(
    shared_models_dir: Path, tmp_path: Path
) -> None:
    notes: list[str] = []
    models = model_files.find_models(["rave-v2small-c16", "vschaos2"], notes, tmp_path)
    assert [m.name for m in models] == ["vschaos2", "rave-v2small-c16"], notes
    piece = real_models.measure_piece(real_models.Workdir(tmp_path / "work"), models, REAL_TINY)
    assert piece is not None
    assert piece["models"] == ["rave-v2small-c16", "vschaos2", "vschaos2"]
    assert set(piece["x_realtime"]) == {"1", "2"} and all(v > 0 for v in piece["x_realtime"].values())
    assert math.isfinite(piece["parallel_gain"])


def test_real_models_benchmark_says_how_to_build_missing_exports(tmp_path: Path) -> None:
    notes: list[str] = []
    assert model_files.find_models(["rave-v2-c96", "rave-v2-c128"], notes, tmp_path) == []
    assert len(notes) == 2
    for note, capacity in zip(notes, (96, 128), strict=True):
        assert f"rave-v2-c{capacity}_streaming.ts not found" in note
        assert f"build-rave-v2.sh {tmp_path} {capacity}" in note and "BUILD_RAVE=1" in note


def test_osc_load_messages_are_osc_datagrams() -> None:
    datagrams = messages(["a", "b"])
    assert len(datagrams) == 2 * 3 + 2
    assert all(d.startswith(b"/") and len(d) % 4 == 0 for d in datagrams)


def test_timed_output_records_each_callback_duration() -> None:
    ring = BlockRing(4, 256, 2)
    output = TimedJackOutput(
        ring,
        client_name="timed",
        port_names=["a", "b"],
        server_name=None,
        connect_to=[],
        samplerate=48000,
        blocksize=256,
        log=structlog.get_logger(),
    )
    buffer = output.durations_ns
    for _ in range(3):
        output._process(256)  # not started: the callback plays silence, and is timed all the same
    assert output.timed == 3 and output.durations_ns is buffer
    assert (buffer[:3] > 0).all() and not buffer[3:].any()
    summary = output.summary()
    assert summary["callbacks_timed"] == 3 and summary["max_us"] >= summary["p99_us"] >= summary["p50_us"] > 0


@pytest.mark.jack
@pytest.mark.slow
def test_startup_benchmark_hears_the_demo(tmp_path: Path) -> None:
    seconds = bench.startup_once(tmp_path, timeout_s=60.0)
    assert 0.0 < seconds < 60.0


@pytest.mark.jack
@pytest.mark.slow
def test_xrun_benchmark_reports_counts_and_callback_times(tmp_path: Path) -> None:
    result = xruns.run_period(1024, minutes=0.1, work=tmp_path, osc_rate=20.0)
    assert result["exit_code"] == 0
    assert result["xruns"] >= 0 and result["underruns"] >= 0
    assert result["callback"]["callbacks_timed"] > 0
    assert result["callback"]["p99_us"] >= result["callback"]["p50_us"] > 0
    assert result["osc_sent"] > 0


@pytest.mark.jack
@pytest.mark.slow
def test_osc_latency_benchmark_sees_every_gain_change(tmp_path: Path) -> None:
    assert osc_latency.main(["--quick", "--results", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "osc_latency.json").read_text())
    assert data["benchmark"] == "osc_latency" and data["missed"] == 0
    assert data["all"]["n"] == data["repeats"] == 6
    assert data["all"]["p99_ms"] >= data["all"]["median_ms"] > 0
    assert all(r["after"] > 10 * r["before"] for r in data["sends"] if r["gain"] == 1.0)


def test_soak_closures_become_a_schedule_closed_for_one_minute_each() -> None:
    plan = soak_plan.Plan.scaled(30.0)
    ready = dt.datetime(2026, 12, 1, 15, 35, 20, tzinfo=dt.UTC).timestamp()
    spans = soak_plan.closures(plan, ready)
    assert [a.strftime("%H:%M") for a, _ in spans] == ["15:40", "15:50", "16:00"]
    schedule = ScheduleConfig.model_validate(soak_plan.schedule_table(spans, 30.0))
    minute = dt.timedelta(minutes=1)
    for start, stop in spans:
        assert not is_open(schedule, start) and not is_open(schedule, stop - minute / 60)
        assert is_open(schedule, start - minute / 60) and is_open(schedule, stop)


def test_soak_counts_underruns_during_a_jackd_outage_apart() -> None:
    def status(second: int, underruns: int) -> dict[str, Any]:
        stamp = f"2026-12-01T15:00:{second:02d}Z"
        return {"event": "status", "timestamp": stamp, "underruns": underruns, "xruns": 0}

    events: list[dict[str, Any]] = [
        status(0, 2),  # start-up
        status(5, 2),
        status(10, 5),  # jackd killed at 8 s
        {"event": "jack.reconnected", "timestamp": "2026-12-01T15:00:12Z"},
        status(15, 6),  # within the grace after the reconnection
        status(20, 7),  # outside
        {"event": "stopping", "timestamp": "2026-12-01T15:00:22Z", "underruns": 7, "xruns": 1},
    ]
    kill = dt.datetime(2026, 12, 1, 15, 0, 8, tzinfo=dt.UTC).timestamp()
    counts = soak_probe.split_counters(events, [kill])
    assert (counts["underruns_startup"], counts["underruns_outages"], counts["underruns_outside"]) == (
        2,
        4,
        1,
    )
    assert counts["xruns_outside"] == 1 and counts["reconnects"] == 1 and counts["underruns"] == 7


@pytest.mark.jack
@pytest.mark.slow
def test_soak_benchmark_kills_jackd_and_replays_a_segment(tmp_path: Path) -> None:
    # 15 s with every event scaled down: segments of 5 s, jackd killed twice; no tmpfs (no disk-full event).
    data = soak.run(
        [1024], 0.25, tmp_path / "work", mount=False, replays=1, results_dir=tmp_path, progress_every_s=5.0
    )
    [result] = json.loads((tmp_path / "soak.json").read_text())["periods"]
    assert result == json.loads(json.dumps(data["periods"][0], default=str))
    assert result["exit_code"] == 0
    assert len(result["plan"]["kills_s"]) == 2 and result["counters"]["reconnects"] == 2
    assert result["commands"]["sent"] >= 10 and result["commands"]["unanswered"] == 0
    segments = result["segments"]
    assert len(segments) >= 2 and all(s["readable"] and s["finite"] for s in segments), segments
    [replay] = result["replays"]
    assert replay["segment"] == 0 and replay["exact"], replay
    assert result["memory_mib"]["engine"]["end"] > 0 and result["open_fds"]["main"]["end"] > 0
    assert result["recording_pause"]["asked"] is False
    assert any("disk-full event is skipped" in note for note in result["notes"])


def test_resample_benchmark_measures_quality_and_cost() -> None:
    figures = resample_bench.quality(44100, 48000, tones=2)
    assert figures["ripple_db"] < 0.1 and figures["worst_image_or_alias_db"] < -80
    costs = resample_bench.cost(48000, 44100, channels=1, repeats=1)
    assert all(math.isfinite(v) and v > 0 for v in costs.values())


def test_netjack_benchmark_measures_a_round_trip() -> None:
    from tests.nodes.netns import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from benchmarks import netjack

    row = netjack.measure(period=256, latency=1, seconds=0.3, faults=False)
    assert row["round_trip_periods"] == 3 and row["exact_share"] == 1.0, row

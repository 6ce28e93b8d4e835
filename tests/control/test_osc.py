"""The OSC server's handler on a real engine: what each address does to the audio, and what it refuses."""

from __future__ import annotations

import json
import struct
import time
from typing import cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from latentd.config import load_config
from latentd.control.osc import OscServer, make_status_provider
from latentd.control.osc_config import OscConfig
from latentd.control.osc_parse import encode_bundle, encode_message, parse_packet
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.snapshot import EngineSnapshot
from latentd.installation.piece import load_installation
from tests.control.conftest import LOCAL, SR, deliver, dominant_hz, make_server, play, rms

FL, FR = 0, 1


def _id(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else type(value).__name__


def applied(engine) -> list[c.Command]:
    """Run one block so queued commands are applied; the commands the engine logged."""
    engine.next_block()
    return [cmd for _, cmd in engine.command_log]


# ------------------------------------------------------------------------------------------ the mapping
ACCEPTED = [
    (("/section/next",), c.NextSection()),
    (("/section/goto", "b"), c.GotoSection("b")),
    (("/section/hold", 1), c.HoldSection(True)),
    (("/section/hold", False), c.HoldSection(False)),
    (("/voice/v/gain", 0.25), c.SetVoiceGain("v", 0.25)),
    (("/voice/v/gain", 2), c.SetVoiceGain("v", 2.0)),  # an int where a float is expected
    (("/voice/v/mute", 1), c.SetVoiceMute("v", True)),
    (("/voice/v/mute", 0.0), c.SetVoiceMute("v", False)),  # toggles of OSC tools often send floats
    (("/voice/w/seed", 12345), c.ReseedVoice("w", 12345)),
    (("/voice/w/seed", 2**24 - 1), c.ReseedVoice("w", 2**24 - 1)),  # the largest: Pd takes it exactly
    (("/voice/w/trigger",), c.TriggerVoice("w")),
    (("/voice/v/freeze", True), c.FreezeVoice("v", True)),
    (("/voice/v/bias", 0, 1.0), c.SetLatentBias("v", 0, 1.0)),
    (("/voice/v/bias", 1.0, -0.5), c.SetLatentBias("v", 1, -0.5)),  # a whole float as a dimension
    (("/voice/v/scale", 3, 0.5), c.SetLatentScale("v", 3, 0.5)),
    (("/voice/v/clamp", 2, -1, 1.5), c.SetLatentClamp("v", 2, -1.0, 1.5)),
    (("/voice/w/param/smooth_s", 0.5), c.SetSourceParam("w", "smooth_s", 0.5)),
    (("/voice/v/pan", -45.0), c.SetVoicePan("v", -45.0)),
    (("/voice/v/rotate", 90), c.SetVoiceRotation("v", 90.0)),
    (("/master/gain", 0.5), c.SetMasterGain(0.5)),
    (("/master/mute", 1), c.SetMasterMute(True)),
    (("/reset",), c.ResetOverrides()),
    (("/record/start",), c.StartRecording("")),
    (("/record/start", "evening-1"), c.StartRecording("evening-1")),
    (("/record/stop",), c.StopRecording()),
]


@pytest.fixture(scope="module")
def recording_engine(osc_piece):
    """One engine for the mapping tests, with recording handlers that note what they get."""
    engine = Engine(load_installation(load_config(osc_piece)), fade_in_s=0.0)
    engine.recorded = []
    engine.handlers[c.StartRecording] = engine.recorded.append
    engine.handlers[c.StopRecording] = engine.recorded.append
    return engine


@pytest.mark.parametrize(("message", "expected"), ACCEPTED, ids=_id)
def test_each_address_becomes_exactly_one_logged_command(recording_engine, message, expected):
    engine = recording_engine
    server = make_server(engine)
    logged = len(engine.command_log)
    assert deliver(server, *message) == []
    assert applied(engine)[logged:] == [expected]
    assert server.counters.accepted == 1 and server.counters.refused == 0
    if isinstance(expected, c.StartRecording | c.StopRecording):
        assert engine.recorded[-1] == expected


def test_reseed_logs_the_concrete_seed_and_two_in_a_row_differ(engine):
    server = make_server(engine)
    seed = engine.voices["w"].seed
    deliver(server, "/voice/w/reseed")
    deliver(server, "/voice/w/reseed")  # before the engine applied the first one
    assert applied(engine) == [c.ReseedVoice("w", seed + 1), c.ReseedVoice("w", seed + 2)]
    deliver(server, "/voice/w/reseed")
    assert applied(engine)[-1] == c.ReseedVoice("w", seed + 3)


def test_reseed_replays_to_the_same_audio(make_engine):
    live = make_engine()
    deliver(make_server(live), "/voice/w/reseed")
    first = play(live, 0.3)
    replay = make_engine()
    for _, cmd in live.command_log:
        replay.submit(cmd)
    np.testing.assert_array_equal(play(replay, 0.3), first)


# ------------------------------------------------------------------------------------------ the audio
def test_voice_gain_zero_silences_the_voice_after_the_glide(engine):
    server = make_server(engine)
    before = play(engine, 0.3)
    assert rms(before[FL, -4800:]) > 0.01
    deliver(server, "/voice/v/gain", 0.0)
    after = play(engine, 0.3)
    assert rms(after[FL, -4800:]) < 1e-4
    assert rms(after[FR, -4800:]) > 0.01, "the other voice must keep playing"
    # It glides: the first block after the change still carries sound.
    assert rms(after[FL, :256]) > 0.001


def test_voice_mute_and_unmute(engine):
    server = make_server(engine)
    play(engine, 0.2)
    deliver(server, "/voice/v/mute", 1)
    assert rms(play(engine, 0.3)[FL, -4800:]) < 1e-4
    deliver(server, "/voice/v/mute", 0)
    assert rms(play(engine, 0.3)[FL, -4800:]) > 0.01


def test_bias_on_the_pitch_dimension_raises_the_pitch(engine):
    server = make_server(engine)
    low = dominant_hz(play(engine, 0.6)[FL, -SR // 3 :])
    deliver(server, "/voice/v/bias", 0, 1.0)
    high = dominant_hz(play(engine, 0.6)[FL, -SR // 3 :])
    assert high > 1.8 * low, f"dim 0 up should raise the pitch an octave: {low:.1f} Hz → {high:.1f} Hz"


def test_section_goto_and_next_switch_the_voices(engine):
    server = make_server(engine)
    assert rms(play(engine, 0.2)[FL, -4800:]) > 0.01
    deliver(server, "/section/goto", "b")
    block = play(engine, 0.3)
    assert engine.programme.current.name == "b"
    assert rms(block[FL, -4800:]) < 1e-4, "voice v is not in section b"
    assert rms(block[FR, -4800:]) > 0.01
    deliver(server, "/section/next")
    assert rms(play(engine, 0.3)[FL, -4800:]) > 0.01, "next after the last section loops to a"


def test_master_gain_and_mute_scale_every_speaker(engine):
    server = make_server(engine)
    ref = play(engine, 0.3)[:, -4800:]
    deliver(server, "/master/gain", 0.5)
    half = play(engine, 0.3)[:, -4800:]
    # Voice v's steady tone on FL shows the gain (w's noise on FR changes level by itself).
    assert rms(half[FL]) == pytest.approx(0.5 * rms(ref[FL]), rel=0.1)
    deliver(server, "/master/mute", 1)
    assert np.abs(play(engine, 0.3)[:, -4800:]).max() < 1e-4


def test_reset_drops_the_overrides(engine):
    server = make_server(engine)
    ref = rms(play(engine, 0.3)[FL, -4800:])
    deliver(server, "/voice/v/gain", 0.0)
    deliver(server, "/master/gain", 0.1)
    assert rms(play(engine, 0.3)[FL, -4800:]) < 1e-4
    deliver(server, "/reset")
    assert rms(play(engine, 0.3)[FL, -4800:]) == pytest.approx(ref, rel=0.25)


def test_pan_moves_the_voice_to_another_speaker(engine):
    server = make_server(engine)
    play(engine, 0.2)
    deliver(server, "/voice/v/pan", -45.0)  # FR's azimuth in the quad layout
    block = play(engine, 0.3)[:, -4800:]
    assert rms(block[FL]) < 0.1 * rms(block[FR])


def test_bundle_with_a_far_future_timetag_is_applied_at_once(engine):
    server = make_server(engine)
    builder = OscBundleBuilder(time.time() + 3600.0)  # an hour ahead
    for address, value in (("/voice/v/gain", 0.0), ("/section/hold", 1)):
        message = OscMessageBuilder(address)
        message.add_arg(value)
        builder.add_content(message.build())
    replies = server.handle_datagram(builder.build().dgram, LOCAL)
    assert replies == []
    assert applied(engine) == [c.SetVoiceGain("v", 0.0), c.HoldSection(True)]


def test_status_replies_to_the_sender_with_json(engine):
    server = make_server(engine, reply_port=9999)
    play(engine, 0.1)
    replies = server.handle_datagram(encode_message("/status"), ("127.0.0.1", 5555))
    assert len(replies) == 1
    payload, target = replies[0]
    assert target == ("127.0.0.1", 9999)
    (reply,) = parse_packet(payload)
    assert reply.address == "/status"
    status = json.loads(reply.args[0])
    assert status["section"] == "a"
    assert set(status["voices"]) == {"v", "w"}
    assert {"uptime_s", "peaks", "xruns", "recording", "master_gain"} <= set(status)
    assert engine.command_log == []


# ------------------------------------------------------------------------------------------ refusals
REFUSED = [
    (("/voice/v/gain", "loud"), "must be a number"),
    (("/voice/v/gain", float("nan")), "finite"),
    (("/voice/v/gain", float("inf")), "finite"),
    (("/voice/v/gain", 5.0), "0..4"),
    (("/voice/v/gain", -0.1), "0..4"),
    (("/voice/v/gain",), "takes 1 argument"),
    (("/voice/v/gain", 0.5, 0.5), "takes 1 argument"),
    (("/voice/v/gain", True), "must be a number"),
    (("/voice/nobody/gain", 0.5), "unknown voice 'nobody'"),
    (("/voice/*/gain", 0.0), "not supported"),
    (("/voice/{v,w}/gain", 0.0), "not supported"),
    (("/voice/v?/gain", 0.0), "not supported"),
    (("/voice/[vw]/gain", 0.0), "not supported"),
    (("/voice/v/gian", 0.5), "did you mean /voice/v/gain"),
    (("/nowhere",), "unknown address"),
    (("/voice/v/mute", 2), "0 or 1"),
    (("/voice/v/seed", -1), "0..16777215"),
    (("/voice/v/seed", 2**32 - 1), "0..16777215"),  # sent as int64
    (("/voice/v/seed", 1.5), "whole number"),
    (("/voice/v/bias", 9, 1.0), "dim 9 out of range"),
    (("/voice/v/bias", 0, 11.0), "-10..10"),
    (("/voice/v/bias", "0", 1.0), "must be a number"),
    (("/voice/v/clamp", 0, 1.0, -1.0), "above high"),
    (("/voice/w/param/speed", 1.0), "unknown source parameter 'speed'"),
    (("/voice/w/param/smooth_s", 100.0), "0..60"),
    (("/voice/v/cond/pitch", 1.0), "unknown conditioning input"),
    (("/voice/v/pan", 400.0), "-360..360"),
    (("/section/goto", "nope"), "unknown section 'nope'"),
    (("/section/goto", 3), "must be a string"),
    (("/record/start",), "recording is not available"),
    (("/record/start", "../../etc/passwd"), "label"),
    (("/master/gain", float("-inf")), "finite"),
]


@pytest.fixture(scope="module")
def plain_engine(osc_piece):
    """An engine without recording, never given a valid command."""
    return Engine(load_installation(load_config(osc_piece)), fade_in_s=0.0)


@pytest.mark.parametrize(("message", "reason"), REFUSED, ids=_id)
def test_bad_input_gets_an_error_naming_address_and_reason(plain_engine, message, reason):
    server = make_server(plain_engine)
    replies = deliver(server, *message)
    assert len(replies) == 1 and replies[0].address == "/error"
    assert replies[0].args[0] == message[0]
    assert reason in replies[0].args[1], replies[0].args[1]
    assert server.counters.refused == 1 and server.counters.accepted == 0
    assert applied(plain_engine) == [] and plain_engine.counters.refused_commands == 0


def test_bad_input_leaves_the_audio_unchanged(make_engine):
    engine, reference = make_engine(), make_engine()
    server = make_server(engine)
    first = play(engine, 0.1)
    np.testing.assert_array_equal(first, play(reference, 0.1))
    for message, _ in REFUSED:
        deliver(server, *message)
    assert server.counters.refused == len(REFUSED)
    np.testing.assert_array_equal(play(engine, 0.3), play(reference, 0.3))
    assert engine.command_log == []


class SnapshotOnly:
    """An engine as another thread may see it: its published snapshot, ``submit`` and the list where a
    sender registers to hear of refusals inside the engine, nothing else."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.refusal_listeners = engine.refusal_listeners

    @property
    def snapshot(self) -> EngineSnapshot:
        return self._engine.snapshot

    def submit(self, command: c.Command) -> None:
        self._engine.submit(command)

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the OSC server read engine.{name}, not the snapshot")


# Refusals that need what the snapshot tells of each voice (its model, attributes, parameters).
REFUSED_BY_STATE = [
    (("/voice/v/attr/warmth", 1.0), "has no attribute 'warmth'; attributes: temperature"),
    (("/voice/v/model", "nope"), "unknown model 'nope'; models of the piece: a"),
    (("/voice/v/model", "a"), "voice 'v' already plays model 'a'"),
    (("/voice/w/param/smooth_s", -1.0), "parameter 'smooth_s' must be in 0..60, got -1"),
]


def test_the_server_checks_commands_against_the_snapshot_alone(engine):
    server = OscServer(cast(Engine, SnapshotOnly(engine)), OscConfig(), make_status_provider(engine))
    for message, reason in REFUSED + REFUSED_BY_STATE:
        (reply,) = deliver(server, *message)
        assert reply.address == "/error" and reason in reply.args[1], (message, reply.args[1])
    assert deliver(server, "/voice/w/param/smooth_s", 0.5) == []
    assert deliver(server, "/section/goto", "b") == []
    assert applied(engine) == [c.SetSourceParam("w", "smooth_s", 0.5), c.GotoSection("b")]


def test_a_recording_handler_is_seen_by_the_server_once_the_engine_publishes_it(engine):
    server = make_server(engine)
    engine.handlers[c.StartRecording] = lambda command: None
    (reply,) = deliver(server, "/record/start")  # the published snapshot predates the handler
    assert "recording is not available" in reply.args[1]
    engine.next_block()
    assert deliver(server, "/record/start") == []
    assert applied(engine) == [c.StartRecording("")]


def test_truncated_float_is_refused_not_read_as_zero(engine):
    server = make_server(engine)
    packet = encode_message("/voice/v/gain", [0.75])
    for cut in (1, 2, 3, 4):
        replies = server.handle_datagram(packet[:-cut], LOCAL)
        (error,) = [m for p, _ in replies for m in parse_packet(p)]
        assert error.address == "/error" and error.args[0] == "/voice/v/gain"
        assert "truncated" in error.args[1]
    assert applied(engine) == []


def test_a_bad_message_in_a_bundle_refuses_the_whole_bundle(engine):
    server = make_server(engine)
    packet = encode_bundle(
        [encode_message("/voice/v/gain", [0.0]), encode_message("/voice/v/bias", [0, 99.0])]
    )
    replies = server.handle_datagram(packet, LOCAL)
    assert len(replies) == 1
    assert applied(engine) == []


def test_oversized_packets_are_dropped_and_counted(engine):
    server = make_server(engine, max_packet_bytes=64)
    assert server.handle_datagram(encode_message("/record/start", ["x" * 100]), LOCAL) == []
    assert server.counters.dropped_size == 1
    assert applied(engine) == []


def test_foreign_senders_are_dropped_silently(engine):
    server = make_server(engine, allow=["192.168.1.0/24"])
    assert deliver(server, "/voice/v/gain", 0.0, sender=("10.0.0.5", 9000)) == []
    assert deliver(server, "/voice/v/gain", 0.0, sender=("127.0.0.2", 9000)) == []
    assert server.counters.dropped_foreign == 2
    assert applied(engine) == []
    assert deliver(server, "/voice/v/gain", 0.5, sender=("192.168.1.20", 9000)) == []
    assert deliver(server, "/voice/v/gain", 0.25, sender=("::ffff:127.0.0.1", 9000, 0, 0)) == []
    assert applied(engine) == [c.SetVoiceGain("v", 0.5), c.SetVoiceGain("v", 0.25)]


def test_rate_limit_per_sender_refills_over_time(engine):
    now = [0.0]
    server = make_server(engine, rate_limit_per_s=10.0, rate_burst=5)
    server._clock = lambda: now[0]
    results = [deliver(server, "/voice/w/trigger") for _ in range(8)]
    assert results == [[]] * 8
    assert server.counters.accepted == 5 and server.counters.dropped_rate == 3
    # Another host has its own bucket.
    other = make_server(engine, rate_limit_per_s=10.0, rate_burst=5, allow=["10.0.0.0/8"])
    other._clock = server._clock
    other._buckets = server._buckets
    deliver(other, "/voice/w/trigger", sender=("10.0.0.9", 1))
    assert other.counters.accepted == 1
    now[0] = 0.2  # two tokens later
    for _ in range(3):
        deliver(server, "/voice/w/trigger")
    assert server.counters.accepted == 7 and server.counters.dropped_rate == 4


# ------------------------------------------------------------------------------------------ fuzzing
_VALID = [
    encode_message("/voice/v/gain", [0.5]),
    encode_message("/voice/v/bias", [0, 1.0]),
    encode_message("/record/start", ["x"]),
    encode_message("/status"),
    encode_bundle([encode_message("/voice/v/gain", [0.5]), encode_message("/section/goto", ["b"])]),
    encode_bundle([encode_bundle([encode_message("/reset")])], timetag=2**63),
]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "size"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "size" and len(data) >= pos + 4:
            data[pos : pos + 4] = struct.pack(">i", draw(st.integers(-(2**31), 2**31 - 1)))
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_server(plain_engine):
    return make_server(plain_engine, rate_limit_per_s=1e5, rate_burst=100000)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), mutated()))
def test_random_and_mutated_packets_never_raise(fuzz_server, data):
    replies = fuzz_server.handle_datagram(data, LOCAL)
    for payload, target in replies:
        assert target == LOCAL
        assert payload.startswith((b"/error\x00", b"/status\x00"))

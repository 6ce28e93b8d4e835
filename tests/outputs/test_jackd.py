"""JackServer: a private jackd that starts, serves clients, stops, and survives being killed."""

from collections.abc import Callable

import pytest

from latentd.outputs.jack_out import open_client
from latentd.outputs.jackd import JackServer, JackServerError
from tests.jackfixtures import unique_server_name

pytestmark = pytest.mark.jack


def playback_ports(server_name: str) -> list[str]:
    client = open_client("inspect", server_name)
    try:
        return [p.name for p in client.get_ports("system:", is_audio=True, is_input=True)]
    finally:
        client.close()


def test_started_server_accepts_clients_with_the_asked_ports_and_rate(
    jack_server_factory: Callable[..., JackServer],
) -> None:
    server = jack_server_factory(samplerate=44100, period=512, playback_channels=7)
    assert server.running
    assert playback_ports(server.name) == [f"system:playback_{i}" for i in range(1, 8)]
    client = open_client("inspect", server.name)
    try:
        assert (client.samplerate, client.blocksize) == (44100, 512)
    finally:
        client.close()


def test_stop_ends_the_server_and_is_idempotent() -> None:
    server = JackServer(unique_server_name())
    with server:
        assert server.running
    assert not server.running
    server.stop()
    with pytest.raises(Exception, match="cannot open JACK client"):
        open_client("inspect", server.name)


def test_a_killed_server_can_be_started_again_under_the_same_name(jack_server: JackServer) -> None:
    jack_server.kill()
    assert not jack_server.running
    jack_server.start()
    assert jack_server.running
    assert len(playback_ports(jack_server.name)) == 8


def test_a_second_server_under_a_taken_name_is_refused(jack_server: JackServer) -> None:
    twin = JackServer(jack_server.name)
    with pytest.raises(JackServerError, match="already running"):
        twin.start(timeout_s=5.0)
    assert not twin.running
    assert jack_server.running


def test_a_server_that_cannot_start_reports_jackds_own_words() -> None:
    server = JackServer(unique_server_name(), driver="alsa", device="hw:99")
    with pytest.raises(JackServerError, match=r"(?s)exited with code .*hw:99.*Failed to open server"):
        server.start(timeout_s=5.0)
    assert not server.running


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"driver": "coreaudio"}, "driver 'coreaudio' is not one of dummy, alsa"),
        ({"period": 300}, "period must be a power of two"),
        ({"playback_channels": 0}, "playback_channels must be >= 1"),
    ],
)
def test_bad_server_settings_are_refused_before_anything_runs(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        JackServer("x", **kwargs)  # type: ignore[arg-type]


def test_dummy_command_line_provides_playback_ports_only() -> None:
    cmd = JackServer("venue", samplerate=48000, period=256, playback_channels=4).command()
    assert cmd[1:] == [
        "-n",
        "venue",
        "--no-realtime",
        "-d",
        "dummy",
        "-r",
        "48000",
        "-p",
        "256",
        "-P",
        "4",
        "-C",
        "0",
    ]

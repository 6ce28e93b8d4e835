"""One set of exit codes: 0 ok, 1 the work failed, 2 invalid input, for every subcommand."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from latentd.cli import main
from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK
from latentd.control.osc_parse import parse_packet


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["config"],
        ["render", "--seconds", "1", "-o", "{tmp}/out.wav"],
        ["schedule"],
        ["replay", "{tmp}/session", "-o", "{tmp}/out.wav"],
        ["send", "--wait", "0", "/section/next"],
        ["status", "--timeout", "0.1"],
        ["run", "--duration", "1"],
    ],
    ids=lambda argv: argv[0],
)
def test_an_invalid_config_is_exit_code_2(argv, bad_venue, tmp_path, capsys):
    session = tmp_path / "session"
    session.mkdir()
    (session / "session.json").write_text(json.dumps({}))  # the config given with -c is what fails
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main([*args, "-c", str(bad_venue)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "bad.toml: audio.samplerat = 48000: unknown key; did you mean 'samplerate'?" in err


def test_a_valid_config_is_exit_code_0(venue, capsys):
    assert main(["schedule", "-c", str(venue), "--days", "1", "--from", "2026-12-01"]) == EXIT_OK
    assert "2026-12-01 Tue 10:00 +01:00  open" in capsys.readouterr().out


def test_bad_input_is_2_and_failed_work_is_1(capsys):
    assert main(["tempo", "--samplerate", "44100"]) == EXIT_INVALID
    assert main(["send", "--wait", "0", "no-slash"]) == EXIT_INVALID
    assert "must start with '/'" in capsys.readouterr().err
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound by us, so nobody answers there
        port = str(sock.getsockname()[1])
        assert main(["status", "--port", port, "--timeout", "0.1"]) == EXIT_FAIL


def test_a_malformed_command_line_is_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["schedule"])  # -c is required
    assert exit_.value.code == EXIT_INVALID
    assert "-c/--config" in capsys.readouterr().err


def test_send_reads_the_osc_port_and_host_from_the_venue_config(tmp_path, model_factory, capsys):
    from latentd.modelkit.builder import SynthSpec
    from tests.pieces import write_piece

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5.0)
        port = server.getsockname()[1]
        venue = write_piece(
            tmp_path,
            models={"a": model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))},
            voices={"v": {"model": "a", "source": {"kind": "noise"}}},
            extra_venue={"osc": {"bind": "0.0.0.0", "port": port}},
        )
        assert main(["send", "-c", str(venue), "--wait", "0", "/voice/v/gain", "0.5"]) == EXIT_OK
        data, _ = server.recvfrom(65536)
    [message] = parse_packet(data)
    assert (message.address, message.args) == ("/voice/v/gain", (0.5,))
    assert f"sent /voice/v/gain to 127.0.0.1:{port}" in capsys.readouterr().out


def test_options_win_over_the_venue_config(venue, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert (
            main(["send", "-c", str(venue), "--port", str(port), "--wait", "0", "/section/next"]) == EXIT_OK
        )
    assert f"to 127.0.0.1:{port}" in capsys.readouterr().out


def test_a_missing_config_file_is_2(tmp_path: Path, capsys):
    assert main(["status", "-c", str(tmp_path / "none.toml")]) == EXIT_INVALID
    assert "cannot read the file" in capsys.readouterr().err

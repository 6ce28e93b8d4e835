"""The places latentd writes to, and the client name, as ``latentd check`` sees them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from latentd.cli import main
from latentd.config import ConfigError, load_config
from latentd.config.writable import writable_places, writable_problems
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

NOBODY = 65534


@pytest.fixture
def model(model_factory) -> Path:
    return model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))


def venue(tmp_path: Path, model: Path, **tables) -> Path:
    voices = {"v": {"model": "m", "source": {"kind": "constant", "values": 0.0}}}
    return write_piece(tmp_path, models={"m": model}, voices=voices, extra_venue=tables)


@pytest.mark.parametrize(
    ("jack", "server"),
    [
        ({"client_name": "hall", "server_name": "hall"}, "jack.server_name"),
        ({"client_name": "latentd-test-venue", "start_server": True}, "the private server's name"),
        ({"client_name": "default"}, "the default server"),
    ],
)
def test_a_client_named_like_its_server_is_refused(tmp_path, model, jack, server) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(venue(tmp_path, model, jack=jack))
    [problem] = caught.value.problems
    assert problem.key == "jack.client_name" and problem.value == jack["client_name"]
    assert f"equals the JACK server's name ({server})" in problem.message


def test_another_client_name_on_the_same_server_is_fine(tmp_path, model) -> None:
    load_config(venue(tmp_path, model, jack={"client_name": "latentd", "server_name": "hall"}))


def test_check_refuses_a_folder_that_is_a_file_and_a_state_file_that_is_a_folder(
    tmp_path, model, capsys
) -> None:
    (tmp_path / "takes").write_text("a file where recordings should go")
    (tmp_path / "state.json").mkdir()
    (tmp_path / "blocker").write_text("a file where a folder should be made")
    config = venue(
        tmp_path,
        model,
        recording={"folder": "takes"},
        schedule={"state_file": "state.json"},
        output={"render_dir": "blocker/renders", "dc_block_hz": 0.0, "ceiling_db": 0.0},
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f'{config}: recording.folder = "takes": {tmp_path / "takes"} is a file, not a folder' in err
    assert f'{config}: schedule.state_file = "state.json": {tmp_path / "state.json"} is a folder' in err
    assert (
        f'{config}: output.render_dir = "blocker/renders": cannot make {tmp_path / "blocker/renders"}: '
        f"{tmp_path / 'blocker'} is a file"
    ) in err


def test_every_place_latentd_writes_is_listed_with_its_key(tmp_path, model) -> None:
    config = load_config(venue(tmp_path, model))
    places = {p.key: p for p in writable_places(config)}
    assert set(places) == {"schedule.state_file", "recording.folder", "output.render_dir"}
    assert places["schedule.state_file"].path == tmp_path / "state" / "latentd-state.json"
    assert places["recording.folder"].path == tmp_path / "recordings" and places["recording.folder"].folder
    assert writable_problems(config) == []  # missing folders that can be made are fine


def _problems_as_nobody(config) -> str:
    """``writable_problems`` as the service's user would see them: here a forked child become "nobody"."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, "\n".join(str(p) for p in writable_problems(config)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_folder_the_user_cannot_write_is_named_with_the_reason(model) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        root.chmod(0o755)  # others may enter and read, not write
        locked = root / "locked"
        locked.mkdir(mode=0o755)
        config = load_config(venue(root, model, recording={"folder": "locked/takes"}))
        text = _problems_as_nobody(config)
    assert f'recording.folder = "locked/takes": cannot write in {locked} (to make {locked / "takes"})' in text
    assert "permission denied for user nobody (the folder belongs to root, mode 0755)" in text
    assert "schedule.state_file" in text and "output.render_dir" in text  # in the same folder


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_folder_behind_a_closed_folder_is_named_with_the_reason(tmp_path, model) -> None:
    # pytest's own temporary folders are private to root: nobody cannot even reach them.
    config = load_config(venue(tmp_path, model))
    text = _problems_as_nobody(config)
    reach = f"cannot reach {tmp_path / 'recordings'}: permission denied for user nobody"
    assert f'recording.folder = "recordings": {reach}' in text

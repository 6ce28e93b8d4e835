"""latentd on a read-only root file system (a Raspberry Pi OS overlay, ProtectSystem=strict): it writes
only to its data folder.

The test makes ``/`` read-only in a private mount namespace (``unshare --mount``), with only the data
folder (bind-mounted onto itself) and ``/dev/shm`` (a mount of its own, as on every Linux) writable, and
runs ``latentd check``, ``render`` and ``run --record`` there.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentd.modelkit.builder import SynthSpec
from tests.jackfixtures import unique_server_name
from tests.pieces import write_piece

pytestmark = pytest.mark.jack


def _unshare_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "a mount namespace with a read-only root needs root (unshare --mount)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --mount is not permitted here: {probe.stderr.strip()}"
    return None


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_latentd_writes_only_to_its_data_folder_on_a_read_only_root(tmp_path: Path, model_factory) -> None:
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    data = tmp_path / "data"
    data.mkdir()
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    voices = {
        "v": {"model": "m", "source": {"kind": "constant", "values": 0.0}, "bias": [0.0, -2.0, -4.0, 1.0]}
    }
    config = write_piece(
        tmp_path,
        models={"m": model},
        voices=voices,
        output={"render_dir": str(data / "renders")},
        extra_venue={
            "jack": {"client_name": "lat", "server_name": unique_server_name(), "start_server": True},
            "recording": {"folder": str(data / "recordings")},
            "schedule": {"state_file": str(data / "state" / "latentd-state.json")},
            "logging": {"level": "warning", "format": "json"},
        },
    )
    # The same venue with its state file left relative: beside the config, on the read-only root.
    outside = tmp_path / "outside.toml"
    outside.write_text(config.read_text().replace(str(data / "state" / "latentd-state.json"), "state.json"))
    before = _files(tmp_path)
    latentd = f"{shlex.quote(sys.executable)} -m latentd"
    d, t = shlex.quote(str(data)), shlex.quote(str(tmp_path))
    script = f"""
        set -u
        mount --bind {d} {d} && mount -o remount,ro,bind / || exit 90
        touch {t}/probe 2>/dev/null && exit 91
        {latentd} check --config {shlex.quote(str(outside))}; echo "check-outside=$?"
        {latentd} check --config {shlex.quote(str(config))} >/dev/null; echo "check=$?"
        {latentd} render --config {shlex.quote(str(config))} --seconds 1 --output {d}/renders/r.wav >/dev/null
        echo "render=$?"
        {latentd} run --config {shlex.quote(str(config))} --duration 2 --record; echo "run=$?"
    """
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=data,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the namespace could not be set up ({proc.returncode}):\n{out}"
    assert "check-outside=2" in out
    assert f'schedule.state_file = "state.json": cannot write in {tmp_path}: read-only file system' in out
    assert "check=0" in out and "render=0" in out and "run=0" in out, out
    assert "Read-only file system" not in out, out
    assert _files(tmp_path) - before == _files(data) - before  # nothing new outside the data folder
    assert (data / "renders" / "r.wav").stat().st_size > 0
    assert (data / "state" / "latentd-state.json").is_file()
    [session] = [p for p in (data / "recordings").iterdir() if p.is_dir()]
    assert (session / "session.json").is_file() and list(session.glob("*.w64"))

"""systemd/install.sh: shellcheck-clean, and ``--dry-run`` lists every step while changing nothing."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "systemd" / "install.sh"
# Every command the installer may run to change the machine; in a dry run none of them may be called.
CHANGING_COMMANDS = (
    "apt-get",
    "debconf-set-selections",
    "dpkg-reconfigure",
    "systemctl",
    "systemd-sysusers",
    "systemd-tmpfiles",
    "install",
    "runuser",
    "rm",
    "find",
    "env",
)

supported_machine = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "aarch64"), reason="install.sh supports x86_64 and aarch64 only"
)


def run_install(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run install.sh with stand-ins for every changing command first on PATH; returns their calls."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "calls.log"
    for name in CHANGING_COMMANDS:
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=60)
    return proc, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
def test_installer_passes_shellcheck() -> None:
    proc = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@supported_machine
def test_dry_run_lists_every_step_and_changes_nothing(tmp_path: Path) -> None:
    proc, calls = run_install(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    expected = [
        "debconf-set-selections",
        "apt-get install -y -q --no-install-recommends jackd2",
        "systemd-sysusers /etc/sysusers.d/latentd.conf",
        "-m venv --clear /opt/latentd/venv",  # or "exists: upgrading in place" on an installed machine
        "pip install -q torch==2.13.0",
        "pip install -q --upgrade ",
        "/etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable jackd.service latentd.service",
        "systemctl restart jackd.service latentd.service",
    ]
    if Path("/opt/latentd/venv/bin/python").exists():
        expected.remove("-m venv --clear /opt/latentd/venv")
    position = -1
    for fragment in expected:  # each step present, in this order
        found = [i for i, step in enumerate(steps) if fragment in step and i > position]
        assert found, f"missing step {fragment!r} after step {position} in:\n" + "\n".join(steps)
        position = found[0]
    torch_step = next(step for step in steps if "torch==" in step)
    if platform.machine() == "x86_64":
        assert "--index-url https://download.pytorch.org/whl/cpu" in torch_step  # never the CUDA build
    assert "debconf-set-selections" in steps[0] and "tweak_rt_limits boolean true" in steps[0]


@supported_machine
def test_no_start_enables_without_starting(tmp_path: Path) -> None:
    proc, _ = run_install(tmp_path, "--dry-run", "--no-start")
    assert proc.returncode == 0, proc.stderr
    assert "systemctl enable jackd.service latentd.service" in proc.stdout
    assert "systemctl restart" not in proc.stdout


@supported_machine
def test_uninstall_dry_run_keeps_recordings(tmp_path: Path) -> None:
    proc, calls = run_install(tmp_path, "--uninstall", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert "systemctl disable --now latentd.service jackd.service" in steps
    assert "rm -rf /opt/latentd /etc/latentd" in steps
    assert not any("rm -rf /var/lib/latentd" in step and "recordings" not in step for step in steps)
    assert "kept: /var/lib/latentd/recordings" in proc.stdout


def test_unknown_option_is_refused_with_the_allowed_ones(tmp_path: Path) -> None:
    proc, calls = run_install(tmp_path, "--everything")
    assert proc.returncode == 2
    assert "unknown option '--everything'" in proc.stderr
    assert "--dry-run" in proc.stderr
    assert calls == []


@supported_machine
def test_real_run_refuses_without_root(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: a real run would install")
    proc, calls = run_install(tmp_path)
    assert proc.returncode == 1
    assert "run as root" in proc.stderr
    assert calls == []

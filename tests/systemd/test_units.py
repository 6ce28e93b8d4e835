"""The systemd units, sysusers/tmpfiles snippets and the installer, checked with the real tools.

Each check runs when its tool is present here and is skipped with the reason otherwise
(``systemd-analyze`` comes with the systemd package, ``shellcheck`` with its own).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNITS = ("latentd.service", "jackd.service")
EXPOSURE_LIMIT = 2.5
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt-get install systemd)"
)


def unit_settings(name: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (every value of repeated keys)."""
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def verifiable_copies(tmp_path: Path) -> Path:
    """The units in a temp folder, ExecStart pointing at a binary that exists on this machine.

    ``systemd-analyze verify`` fails when the ExecStart binary is missing, and /opt/latentd/venv exists
    only on an installed machine; every other line stays as shipped.
    """
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        text = text.replace("/opt/latentd/venv/bin/latentd", sys.executable)
        if not Path("/usr/bin/jackd").exists():
            text = text.replace("/usr/bin/jackd", "/bin/true")
        (tmp_path / name).write_text(text)
    return tmp_path


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    folder = verifiable_copies(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", *[str(folder / n) for n in UNITS]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    problems = [line for line in proc.stderr.splitlines() if str(folder) in line]
    assert problems == [], "\n".join(problems)


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_units_are_rated_ok_by_systemd_analyze_security(tmp_path: Path, name: str) -> None:
    folder = verifiable_copies(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(folder / name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= EXPOSURE_LIMIT, proc.stdout


def test_latentd_unit_reaches_jack_and_follows_jackd() -> None:
    unit = unit_settings("latentd.service")
    assert unit["Type"] == ["notify"]
    assert "WatchdogSec" in unit
    assert unit["User"] == ["latentd"]
    assert unit["ExecStart"] == ["/opt/latentd/venv/bin/latentd run --config /etc/latentd/venue.toml"]
    for key in ("After", "Wants", "PartOf"):
        assert any("jackd.service" in v for v in unit[key]), key
    # JACK 2 lives in /dev/shm: a private /tmp is fine, a sweep of the user's IPC objects is not
    # (jackd runs as the same user), nor is forbidding real-time scheduling or Unix sockets.
    assert "tmpdir /dev/shm" in subprocess.run(["jackd", "--version"], capture_output=True, text=True).stdout
    assert unit["RemoveIPC"] == ["no"]
    assert unit["RestrictRealtime"] == ["no"]
    assert "AF_UNIX" in unit["RestrictAddressFamilies"][0].split()
    assert unit["LimitRTPRIO"] == ["95"]
    jackd = unit_settings("jackd.service")
    assert jackd["User"] == unit["User"]  # same user: no JACK_PROMISCUOUS_SERVER needed
    assert jackd["Type"] == ["notify"]
    assert "char-alsa rw" in jackd["DeviceAllow"]


def test_jackd_env_fills_every_variable_of_jackd_service() -> None:
    used = set(re.findall(r"\$\{?([A-Z_]+)\}?", unit_settings("jackd.service")["ExecStart"][0]))
    defined = {
        line.split("=", 1)[0]
        for line in (SYSTEMD / "jackd.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used and used <= defined, f"not set in jackd.env: {sorted(used - defined)}"


def _conv_runs_under_mdwe() -> tuple[bool, str]:
    """Run a torch Conv1d (what RAVE decoders are made of) under the kernel's write-xor-execute."""
    script = textwrap.dedent(
        f"""
        import ctypes, mmap, sys
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
            sys.exit(77)
        import torch
        torch.set_num_threads(1)
        x = torch.randn(1, 16, 2048)
        try:
            torch.nn.Conv1d(16, 32, 7, padding=3)(x)
        except RuntimeError as exc:
            print(exc)
            sys.exit(1)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    if proc.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    return proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(platform.system() != "Linux", reason="PR_SET_MDWE is Linux only")
def test_memory_deny_write_execute_matches_what_torch_needs() -> None:
    """MemoryDenyWriteExecute=yes would break decoding whenever torch's convolutions generate code."""
    runs, output = _conv_runs_under_mdwe()
    setting = unit_settings("latentd.service")["MemoryDenyWriteExecute"]
    if not runs:
        assert setting == ["no"], f"torch Conv1d fails under W^X ({output.strip()}), the unit must not set it"


@pytest.mark.skipif(os.geteuid() != 0, reason="creating users and chowning folders needs root")
@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed")
def test_sysusers_and_tmpfiles_in_a_scratch_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\naudio:x:29:\n")
    for tool, conf in (
        ("systemd-sysusers", "latentd.sysusers.conf"),
        ("systemd-tmpfiles", "latentd.tmpfiles.conf"),
    ):
        args = [
            tool,
            f"--root={root}",
            *(["--create"] if tool == "systemd-tmpfiles" else []),
            str(SYSTEMD / conf),
        ]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    passwd = (root / "etc/passwd").read_text()
    uid = int(next(line for line in passwd.splitlines() if line.startswith("latentd:")).split(":")[2])
    assert "audio:x:29:latentd" in (root / "etc/group").read_text()
    etc = (root / "etc/latentd").stat()
    assert (etc.st_uid, oct(etc.st_mode & 0o777)) == (0, "0o750")
    for sub in ("", "recordings", "pieces", "state"):
        st = (root / "var/lib/latentd" / sub).stat()
        assert (st.st_uid, oct(st.st_mode & 0o777)) == (uid, "0o750"), sub

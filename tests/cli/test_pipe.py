"""A closed pipe ends the output quietly: ``latentd ... | head`` prints no traceback.

The console script runs in its own process with its stdout piped into a real ``head``. Each output is
larger than a pipe's buffer, so the writes after ``head`` has exited meet the closed pipe every time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentd.cli.common import EXIT_PIPE

LATENTD = Path(sys.executable).parent / "latentd"

pytestmark = [
    pytest.mark.skipif(not LATENTD.is_file(), reason=f"no console script at {LATENTD} (not installed)"),
    pytest.mark.skipif(shutil.which("head") is None, reason="no head(1)"),
]


def piped_into_head(argv: list[str], head_args: list[str]) -> tuple[int, bytes, str]:
    """Run ``latentd ARGV | head HEAD_ARGS``: latentd's exit code, what head printed, latentd's stderr."""
    latentd = subprocess.Popen(
        [str(LATENTD), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False
    )
    assert latentd.stdout is not None and latentd.stderr is not None
    head = subprocess.Popen(["head", *head_args], stdin=latentd.stdout, stdout=subprocess.PIPE)
    latentd.stdout.close()  # head holds the only read end: when it exits, the pipe is closed
    printed, _ = head.communicate(timeout=60)
    err = latentd.stderr.read().decode()
    latentd.stderr.close()
    return latentd.wait(timeout=60), printed, err


def test_schedule_into_head_ends_quietly(venue):
    code, printed, err = piped_into_head(["schedule", "-c", str(venue), "--days", "2000"], ["-1"])
    assert printed.startswith(b"time zone Europe/Berlin;") and printed.count(b"\n") == 1
    assert err == ""
    assert code == EXIT_PIPE


def test_models_inspect_json_into_head_ends_quietly(model_factory):
    from latentd.modelkit.builder import SynthSpec

    model = str(model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000)))
    code, printed, err = piped_into_head(["models", "inspect", "--json", *[model] * 80], ["-c", "10"])
    assert printed == b"[\n  {\n    "
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err == ""
    assert code == EXIT_PIPE

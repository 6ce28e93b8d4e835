"""The type checker sees first-party types across modules (no import of latentd resolves to Any)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "probe.py"
    probe.write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_wrong_argument_to_engine_from_another_module_is_reported(tmp_path: Path) -> None:
    result = _mypy(
        tmp_path,
        "from latentd.engine.engine import Engine\n\nEngine(installation=3)\nreveal_type(Engine)\n",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument "installation" to "Engine" has incompatible type "int"' in result.stdout
    assert "latentd.engine.engine.Engine" in result.stdout  # revealed as the class, not Any


def test_a_function_from_another_module_keeps_its_type(tmp_path: Path) -> None:
    result = _mypy(tmp_path, "from latentd.cli import main\n\ncode: int = main\n")
    # Assigning the function to an int is wrong: mypy must know main's type to say so.
    assert "Incompatible types in assignment" in result.stdout, result.stdout + result.stderr

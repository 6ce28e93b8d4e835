"""Atomic replacement: a reader sees the old file or the new one, whole; a failed write changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentd.atomic import open_atomic, replacing, write_atomic, write_json_atomic


def test_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    write_atomic(path, "first")
    write_json_atomic(path, {"b": 1, "a": [2]})
    assert json.loads(path.read_text(encoding="utf-8")) == {"b": 1, "a": [2]}
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "item.npy"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), open_atomic(path, "wb") as f:
        f.write(b"half")
        raise RuntimeError("disk gone")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["item.npy"]


def test_replacing_hands_out_a_hidden_path_beside_the_target(tmp_path: Path) -> None:
    path = tmp_path / "model.ts"
    with replacing(path, durable=False) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.ts.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and not tmp.exists()

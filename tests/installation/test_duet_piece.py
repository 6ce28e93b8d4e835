"""The "Duet" piece (installation/duet): a RAVE model and a vschaos2 model together, as shipped."""

import shutil
from pathlib import Path

import numpy as np

from latentd.cli import main
from latentd.cli.common import EXIT_INVALID, EXIT_OK
from latentd.config import load_config
from latentd.engine import commands as c
from latentd.offline.build import build_engine

ROOT = Path(__file__).resolve().parents[2]


def copy_piece(tmp_path: Path) -> Path:
    """The piece and its venue config copied as they are in the repository; returns the config."""
    shutil.copytree(ROOT / "installation" / "duet", tmp_path / "installation" / "duet")
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "duet.toml"
    shutil.copy(ROOT / "configs" / "duet.toml", config)
    return config


def test_check_names_the_missing_model_files_and_where_they_come_from(tmp_path, capsys):
    config = copy_piece(tmp_path)
    shutil.rmtree(tmp_path / "installation" / "duet" / "models", ignore_errors=True)
    assert main(["check", "-c", str(config)]) == EXIT_INVALID
    err = capsys.readouterr().err
    for name in ("rave", "vschaos2"):
        assert f'models.{name}.path = "models/{name}.ts": file not found' in err
    assert err.count("README.md says which model file goes here and where to get it") == 2
    readme = (ROOT / "installation" / "duet" / "README.md").read_text()
    assert "models/rave.ts" in readme and "models/vschaos2.ts" in readme


def test_the_piece_plays_both_models_with_the_shared_files(
    tmp_path, shared_models_dir, vschaos2_model, capsys
):
    config = copy_piece(tmp_path)
    models = tmp_path / "installation" / "duet" / "models"
    models.mkdir(exist_ok=True)
    shutil.copy(shared_models_dir / "rave-v2small-c16_streaming.ts", models / "rave.ts")
    shutil.copy(vschaos2_model, models / "vschaos2.ts")
    assert main(["check", "-c", str(config)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "sr 44100 (from the piece: the model declares none)" in out
    engine = build_engine(load_config(config), fade_in_s=0.0, live_loads=False)
    assert {g.name for g in engine.groups} == {"rave", "vschaos2"}
    blocks = int(0.5 * engine.samplerate / engine.blocksize)

    def alone(voice: str) -> np.ndarray:
        """The next half second with only ``voice`` unmuted (after a glide)."""
        for name in ("ground", "melody"):
            engine.submit(c.SetVoiceMute(name, name != voice))
        for _ in range(blocks // 2):
            engine.next_block()
        return np.concatenate([engine.next_block() for _ in range(blocks)], axis=1)

    rave, vschaos2 = alone("ground"), alone("melody")
    assert engine.programme.current.name == "call"  # ground and melody play, echo waits
    # The c16 test export is quiet (about -60 dBFS); silence would be exactly 0.
    assert np.sqrt(np.mean(rave**2)) > 1e-4 and np.sqrt(np.mean(vschaos2**2)) > 0.02
    assert all(g.recovery.failures == 0 for g in engine.groups)

"""The configuration reference: every key described, docs/configuration.md equal to what the code prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentd.cli import main
from latentd.config.reference import keys, reference_markdown, undocumented

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_key_has_a_description() -> None:
    missing = undocumented()
    assert not missing, "keys without a description (add Field(description=...)):\n" + "\n".join(missing)


def test_docs_configuration_md_is_the_generated_reference() -> None:
    assert DOC.read_text() == reference_markdown(), (
        "docs/configuration.md differs from the schema: "
        "run `latentd config --reference > docs/configuration.md`"
    )


@pytest.mark.parametrize(
    "path",
    [
        "schedule.exceptions[].date",
        "schedule.exceptions[].hours",
        "schedule.exceptions[].label",
        "schedule.recordings[].start",
        "schedule.recordings[].duration_s",
        "schedule.recordings[].label",
        "schedule.fade_out_s",
        "programme.morph",
        "jack.ring_blocks",
        "jack.autoconnect",
        "jack.device",
        "recording.ring_s",
        "recording.flush_s",
        "recording.latents",
        "output.limiter_release_ms",
        "output.trims.<speaker>.gain_db",
        "voices.<name>.pan.waypoints",
        "models.<name>.attributes",
        "pools.<name>.lerp_factor",
        "sections[].duration_range_s",
        "source.scale",
        "source[walk].limit",
        "source[pool].folder",
    ],
)
def test_reference_reaches_nested_keys(path: str) -> None:
    assert path in {k.path for k in keys()}


def test_reference_states_types_defaults_and_ranges() -> None:
    by_path = {k.path: k for k in keys()}
    rate = by_path["audio.samplerate"]
    assert (rate.type, rate.default) == ("integer", "`48000`")
    assert rate.allowed == "8000 to 192_000"
    assert by_path["piece"].default == "required"
    assert '`"sequence"`' in by_path["programme.order"].allowed
    assert by_path["source.scale"].name == "`scale` (or `range`)"
    assert by_path["audio.blocksize"].allowed == "a power of two from 32 to 8192"
    assert by_path["schedule.recordings[].duration_s"].allowed == "more than 0, at most 604_800"


def test_every_source_kind_has_a_table() -> None:
    text = reference_markdown()
    for kind in (
        "noise",
        "lfo",
        "walk",
        "constant",
        "table",
        "steps",
        "presets",
        "pattern",
        "file",
        "prior",
        "pool",
    ):
        assert f'### `source = {{ kind = "{kind}" }}`' in text


def test_latentd_config_reference_prints_it_without_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--reference"]) == 0
    assert capsys.readouterr().out == reference_markdown()


def test_latentd_config_without_a_config_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "-c/--config" in err and "--reference" in err

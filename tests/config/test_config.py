"""Venue config + piece loading: defaults, paths, and every problem reported at once with file and key."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from latentd.config import ConfigError, Problem, load_config, print_effective
from latentd.sources.specs import LfoSpec

VENUE = """\
name = "test-venue"
piece = "../installation/demo"
"""

PIECE = """\
name = "demo"
seed = 1234

[models.drone]
path = "models/drone.ts"

[voices.low]
model = "drone"
source = { kind = "lfo", freq_hz = 0.05 }
gain = 0.5

[voices.high]
model = "drone"
source = { kind = "walk" }
route = ["1", 3]

[[sections]]
name = "dawn"
voices = ["low", "high"]
duration_s = 60.0

[programme]
crossfade_s = 4.0
"""


class Files:
    """A venue config in ``configs/`` and a piece in ``installation/demo/`` (with one model file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venue = root / "configs" / "venue.toml"
        self.piece_dir = root / "installation" / "demo"
        self.piece = self.piece_dir / "piece.toml"
        self.venue.parent.mkdir(parents=True)
        (self.piece_dir / "models").mkdir(parents=True)
        (self.piece_dir / "models" / "drone.ts").write_bytes(b"model bytes")

    def write(self, venue: str = VENUE, piece: str = PIECE) -> Path:
        self.venue.write_text(venue)
        self.piece.write_text(piece)
        return self.venue


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def find(problems: list[Problem], key: str) -> Problem:
    matches = [p for p in problems if p.key == key]
    assert matches, f"no problem at {key!r}; got:\n" + "\n".join(map(str, problems))
    return matches[0]


# ------------------------------------------------------------------------------------------ valid files
def test_minimal_venue_config_gets_the_documented_defaults(files):
    config = load_config(files.write())
    audio, output, jack = config.venue.audio, config.venue.output, config.venue.jack
    assert (audio.samplerate, audio.blocksize, audio.layout, audio.frames_per_call) == (48000, 256, "octo", 8)
    assert (audio.torch_threads, audio.downmix) == (1, False)
    assert (output.master_gain, output.ceiling_db, output.dc_block_hz, output.limiter_release_ms) == (
        1.0, -1.0, 5.0, 200.0,
    )  # fmt: skip
    assert output.trims == {}
    assert (jack.client_name, jack.start_server, jack.ring_blocks, jack.playback_ports) == (
        "latentd",
        False,
        16,
        [],
    )
    assert config.venue.logging.level == "info"
    assert config.piece.programme.order == "sequence" and config.piece.programme.loop is True
    assert config.layout.n_channels == 8


def test_piece_values_are_read(files):
    config = load_config(files.write())
    low = config.piece.voices["low"]
    assert isinstance(low.source, LfoSpec) and low.source.freq_hz == 0.05
    assert low.gain == 0.5
    assert config.piece.voices["high"].route == ["1", 3]
    assert [s.name for s in config.piece.sections] == ["dawn"]


def test_a_voice_without_routing_pans_at_front(files):
    config = load_config(files.write())
    pan = config.piece.voices["low"].pan
    assert pan is not None and (pan.azimuth_deg, pan.spread_deg, pan.rotate_deg_s) == (0.0, 0.0, 0.0)
    assert config.piece.voices["high"].pan is None


def test_config_is_frozen(files):
    config = load_config(files.write())
    with pytest.raises(ValueError, match="frozen"):
        config.venue.audio.samplerate = 44100  # type: ignore[misc]


def test_relative_paths_are_resolved_against_the_file_that_names_them(files, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    venue = VENUE + '[output]\nrender_dir = "out/renders"\n'
    config = load_config(Path("..") / files.write(venue=venue).relative_to(tmp_path))
    assert config.venue_path == files.venue.resolve()
    assert config.piece_dir == files.piece_dir.resolve()
    assert config.model_path("drone") == (files.piece_dir / "models" / "drone.ts").resolve()
    assert config.model_path("drone").is_absolute()
    assert config.render_dir == (files.venue.parent / "out" / "renders").resolve()


def test_effective_config_prints_as_toml_with_defaults_and_absolute_paths(files):
    config = load_config(files.write())
    out = io.StringIO()
    print_effective(config, out)
    text = out.getvalue()
    data = tomllib.loads(text)
    assert data == config.to_toml_dict()
    assert data["venue"]["audio"]["blocksize"] == 256  # a default, not in the file
    assert data["venue"]["piece"] == str(files.piece_dir.resolve())
    assert data["piece"]["models"]["drone"]["path"] == str(
        (files.piece_dir / "models" / "drone.ts").resolve()
    )
    assert data["piece"]["voices"]["low"]["source"] == {
        "kind": "lfo", "freq_hz": 0.05, "shape": "cosine", "intensity": 1.0, "direction": 1,
        "scale": 1.0, "offset": 0.0, "smooth_s": 0.0,
    }  # fmt: skip
    assert data["piece"]["sections"] == [
        {"name": "dawn", "voices": ["low", "high"], "duration_s": 60.0, "weight": 1.0}
    ]
    assert "[venue.audio]" in text and "[[piece.sections]]" in text


def test_custom_layout_with_trims(files):
    venue = VENUE + (
        '[audio]\nlayout = "custom"\n'
        'speakers = [{name = "A", azimuth_deg = 30.0, port = "system:playback_2"},\n'
        '            {name = "B", azimuth_deg = -30.0}]\n'
        "[output.trims.B]\ngain_db = -3.0\ndelay_ms = 1.5\n"
    )
    piece = PIECE.replace('route = ["1", 3]', 'route = ["A", 1]')
    config = load_config(files.write(venue, piece))
    assert config.layout.names == ("A", "B")
    assert config.layout.speakers[0].port == "system:playback_2"
    assert config.venue.output.trims["B"].delay_ms == 1.5


# ---------------------------------------------------------------------------------------- single errors
def test_problem_text_names_file_key_value_and_rule(files):
    problems = problems_of(files.write(venue=VENUE + "[audio]\nblocksize = 300\n"))
    assert [str(p) for p in problems] == [
        f"{files.venue}: audio.blocksize = 300: must be a power of two between 32 and 8192"
    ]


def test_unknown_key_suggests_the_close_one(files):
    problem = find(
        problems_of(files.write(piece=PIECE.replace("crossfade_s", "crosfade_s"))), "programme.crosfade_s"
    )
    assert problem.file == files.piece
    assert "unknown key" in problem.message and "did you mean 'crossfade_s'?" in problem.message


def test_unknown_key_inside_a_source_spec_suggests_its_kind_specific_field(files):
    problems = problems_of(files.write(piece=PIECE.replace("freq_hz = 0.05", "freq_hzz = 0.05")))
    problem = find(problems, "voices.low.source.freq_hzz")
    assert "did you mean 'freq_hz'?" in problem.message
    assert len(problems) == 1


def test_unknown_source_kind_lists_the_kinds(files):
    problem = find(
        problems_of(files.write(piece=PIECE.replace('kind = "walk"', 'kind = "wlak"'))),
        "voices.high.source.kind",
    )
    assert problem.value == "wlak"
    assert "did you mean 'walk'?" in problem.message and '"noise"' in problem.message


def test_wrong_type_is_refused_even_when_it_would_parse(files):
    problem = find(
        problems_of(files.write(venue=VENUE + '[audio]\nsamplerate = "48000"\n')), "audio.samplerate"
    )
    assert problem.value == "48000"
    assert problem.message == "must be an integer between 8000 and 192000"


@pytest.mark.parametrize(
    ("section", "line", "key", "allowed"),
    [
        ("output", "master_gain = 5.0", "output.master_gain", "between 0 and 4"),
        ("output", "ceiling_db = 3.0", "output.ceiling_db", "between -60 and 0"),
        ("audio", "frames_per_call = 0", "audio.frames_per_call", "between 1 and 64"),
        ("jack", "ring_blocks = 1", "jack.ring_blocks", "between 2 and 1024"),
        ("audio", 'layout = "octa"', "audio.layout", "did you mean 'octo'?"),
        ("logging", 'level = "verbose"', "logging.level", '"debug", "info", "warning", "error"'),
    ],
)
def test_out_of_range_values_say_what_is_allowed(files, section, line, key, allowed):
    problem = find(problems_of(files.write(venue=VENUE + f"[{section}]\n{line}\n")), key)
    assert allowed in problem.message


def test_piece_values_out_of_range(files):
    piece = PIECE.replace("gain = 0.5", "gain = 7.0").replace("seed = 1234", "seed = -1")
    problems = problems_of(files.write(piece=piece))
    assert "between 0 and 4" in find(problems, "voices.low.gain").message
    assert "between 0 and 4294967295" in find(problems, "seed").message


def test_value_fitting_no_allowed_form_is_one_problem_listing_the_forms(files):
    problems = problems_of(files.write(piece=PIECE.replace("gain = 0.5", 'gain = 0.5\nbias = "x"')))
    assert len(problems) == 1
    assert problems[0].key == "voices.low.bias"
    assert "a number between -100 and 100 or a list of numbers" in problems[0].message


def test_bad_item_of_a_per_dimension_list_is_pointed_at(files):
    problems = problems_of(files.write(piece=PIECE.replace("gain = 0.5", "gain = 0.5\nscale = [1.0, 200.0]")))
    assert [p.key for p in problems] == ["voices.low.scale[1]"]
    assert problems[0].value == 200.0


def test_missing_required_key(files):
    problem = find(
        problems_of(
            files.write(
                piece=PIECE.replace(
                    'model = "drone"\nsource = { kind = "walk" }', 'source = { kind = "walk" }'
                )
            )
        ),
        "voices.high.model",
    )
    assert "required" in problem.message


def test_missing_model_file_shows_the_resolved_path(files):
    problems = problems_of(files.write(piece=PIECE.replace("models/drone.ts", "models/../models/gone.ts")))
    problem = find(problems, "models.drone.path")
    assert problem.file == files.piece
    assert problem.value == "models/../models/gone.ts"
    assert str((files.piece_dir / "models" / "gone.ts").resolve()) in problem.message


def test_unknown_voice_in_a_section(files):
    problem = find(
        problems_of(files.write(piece=PIECE.replace('voices = ["low", "high"]', 'voices = ["low", "hihg"]'))),
        "sections[0].voices[1]",
    )
    assert problem.value == "hihg"
    assert "did you mean 'high'?" in problem.message


def test_unknown_model_of_a_voice(files):
    problem = find(
        problems_of(
            files.write(
                piece=PIECE.replace(
                    'model = "drone"\nsource = { kind = "walk" }',
                    'model = "drones"\nsource = { kind = "walk" }',
                )
            )
        ),
        "voices.high.model",
    )
    assert "did you mean 'drone'?" in problem.message


def test_unknown_swap_target_of_a_voice(files):
    walk = 'source = { kind = "walk" }'
    piece = PIECE.replace(walk, walk + '\nswap_targets = ["drone", "dron"]')
    problem = find(problems_of(files.write(piece=piece)), "voices.high.swap_targets[1]")
    assert problem.value == "dron" and "did you mean 'drone'?" in problem.message
    config = load_config(files.write(piece=piece.replace(', "dron"', "")))
    assert config.piece.voices["high"].swap_targets == ["drone"]


def test_route_must_name_speakers_of_the_venue_layout(files):
    piece = PIECE.replace('route = ["1", 3]', 'route = ["FL", 9, "2", 1]')
    problems = problems_of(files.write(piece=piece))
    assert "no speaker named 'FL'" in find(problems, "voices.high.route[0]").message
    assert "out of range" in find(problems, "voices.high.route[1]").message
    assert "same speaker" in find(problems, "voices.high.route[3]").message  # index 1 is speaker "2"
    assert len(problems) == 3


def test_routing_is_route_or_matrix_or_pan(files):
    piece = PIECE.replace('route = ["1", 3]', 'route = ["1"]\npan = { azimuth_deg = 90.0 }')
    problem = find(problems_of(files.write(piece=piece)), "voices.high")
    assert "not route and pan" in problem.message


def test_matrix_needs_one_column_per_speaker(files):
    piece = PIECE.replace('route = ["1", 3]', "matrix = [[1.0, 0.0, 0.5]]")
    problem = find(problems_of(files.write(piece=piece)), "voices.high.matrix")
    assert "3 column(s)" in problem.message and "8 speakers" in problem.message


def test_clamp_low_above_high(files):
    piece = PIECE.replace("gain = 0.5", "gain = 0.5\nclamp = [3.0, -3.0]")
    assert "low <= high" in find(problems_of(files.write(piece=piece)), "voices.low.clamp").message


def test_piece_for_more_speakers_needs_an_explicit_downmix(files):
    venue = VENUE + '[audio]\nlayout = "quad"\n'
    piece = PIECE.replace("seed = 1234", 'seed = 1234\nlayout = "7.0"').replace(
        'route = ["1", 3]', "route = [3]"
    )
    problem = find(problems_of(files.write(venue, piece)), "layout")
    assert problem.file == files.piece
    assert "audio.downmix = true" in problem.message
    config = load_config(files.write(venue.replace('"quad"', '"quad"\ndownmix = true'), piece))
    assert config.piece.layout == "7.0"


def test_custom_layout_needs_speakers_and_trims_need_known_speakers(files):
    venue = VENUE + '[audio]\nlayout = "custom"\n'
    assert "required" in find(problems_of(files.write(venue)), "audio.speakers").message
    venue = VENUE + "[output.trims.9]\ngain_db = -2.0\n"
    assert "no speaker '9'" in find(problems_of(files.write(venue)), "output.trims.9").message


def test_duplicate_and_empty_sections(files):
    piece = PIECE + '\n[[sections]]\nname = "dawn"\nvoices = []\nduration_s = 10.0\n'
    problems = problems_of(files.write(piece=piece))
    assert "used twice" in find(problems, "sections[1].name").message
    assert "1 or more" in find(problems, "sections[1].voices").message


def test_piece_folder_must_exist(files):
    problem = find(problems_of(files.write(venue=VENUE.replace("demo", "nothere"))), "piece")
    assert problem.file == files.venue
    assert "no such folder" in problem.message


def test_toml_syntax_error_gives_file_and_line(files):
    problems = problems_of(files.write(piece=PIECE.replace("gain = 0.5", "gain = = 0.5")))
    assert len(problems) == 1
    assert problems[0].file == files.piece
    assert "TOML syntax error at line 10, column 8" in problems[0].message
    problems = problems_of(files.write(venue=VENUE + "[audio\n"))
    assert problems[0].file == files.venue and "line 3" in problems[0].message


def test_a_duplicate_key_or_table_names_the_key_and_both_lines(files):
    (problem,) = problems_of(files.write(piece=PIECE.replace("gain = 0.5", "gain = 0.5\ngain = 0.7")))
    assert problem.file == files.piece and problem.key == "voices.low.gain"
    assert "duplicate key 'voices.low.gain' at line 11 (first given at line 10)" in problem.message
    (problem,) = problems_of(
        files.write(venue=VENUE + "[audio]\nblocksize = 512\n[audio]\nblocksize = 256\n")
    )
    assert problem.file == files.venue and problem.key == "audio"
    assert "duplicate table 'audio' at line 5 (first given at line 3)" in problem.message


@pytest.mark.parametrize("depth", [100, 400, 5000])
def test_deeply_nested_arrays_are_a_clear_problem_not_a_crash(files, depth):
    nested = "[" * depth + "1" + "]" * depth
    (problem,) = problems_of(files.write(venue=VENUE + f"[audio]\nsamplerate = {nested}\n"))
    assert problem.file == files.venue
    assert "nested too deeply (from line 4)" in problem.message


def test_a_model_path_that_is_a_folder_says_so_and_what_it_holds(files):
    (problem,) = problems_of(files.write(piece=PIECE.replace("models/drone.ts", "models")))
    assert problem.key == "models.drone.path"
    assert "is a folder, not a model file" in problem.message and "drone.ts" in problem.message


def test_unreadable_venue_file(files):
    problems = problems_of(files.root / "configs" / "missing.toml")
    assert problems[0].file == files.root / "configs" / "missing.toml"
    assert "cannot read" in problems[0].message


# ---------------------------------------------------------------------------------- everything at once
def test_every_problem_in_both_files_is_reported_together(files):
    venue = (
        VENUE + '[audio]\nblocksize = 300\nlayout = "quad"\nsamplerat = 48000\n[logging]\nformat = "xml"\n'
    )
    piece = (
        PIECE.replace("gain = 0.5", "gain = -1.0")
        .replace('kind = "walk"', 'kind = "walk", step_std = "big"')
        .replace('voices = ["low", "high"]', 'voices = ["low", "nobody"]')
        .replace("models/drone.ts", "models/absent.ts")
        .replace("crossfade_s = 4.0", "crossfade_s = 500.0")
    )
    problems = problems_of(files.write(venue, piece))
    expected = {
        (files.venue, "audio.blocksize"),
        (files.venue, "audio.samplerat"),
        (files.venue, "logging.format"),
        (files.piece, "voices.low.gain"),
        (files.piece, "voices.high.source.step_std"),
        (files.piece, "voices.high.route[0]"),  # "1" is no quad speaker
        (files.piece, "sections[0].voices[1]"),
        (files.piece, "models.drone.path"),
        (files.piece, "programme.crossfade_s"),
    }
    assert {(p.file, p.key) for p in problems} == expected
    text = str(ConfigError(problems))
    assert len(text.splitlines()) == len(expected)
    assert f"{files.venue}: audio.samplerat = 48000: unknown key; did you mean 'samplerate'?" in text

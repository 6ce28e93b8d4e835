"""Speaker layouts: presets, speaker lookup, constant-power VBAP panning and spread."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentd.installation.layout import PRESETS, Layout, Speaker, make_layout

ALL_PRESETS = sorted(PRESETS)


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("stereo", ["L", "R"]),
        ("quad", ["FL", "FR", "BL", "BR"]),
        ("5.0", ["L", "R", "C", "Ls", "Rs"]),
        ("7.0", ["L", "R", "C", "Lss", "Rss", "Lsr", "Rsr"]),
        ("octo", ["1", "2", "3", "4", "5", "6", "7", "8"]),
    ],
)
def test_presets_have_the_documented_speakers(name, names):
    layout = make_layout(name)
    assert layout.n_channels == len(names)
    assert [s.name for s in layout.speakers] == names


def test_octo_ring_starts_at_plus_minus_22_5_and_runs_clockwise():
    azimuths = {s.name: s.azimuth_deg for s in PRESETS["octo"].speakers}
    assert azimuths == {
        "1": 22.5, "2": -22.5, "3": -67.5, "4": -112.5, "5": -157.5, "6": 157.5, "7": 112.5, "8": 67.5,
    }  # fmt: skip


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_panning_at_a_speaker_feeds_only_that_speaker(name):
    layout = PRESETS[name]
    for i, speaker in enumerate(layout.speakers):
        gains = layout.pan_gains(speaker.azimuth_deg)
        expected = np.zeros(layout.n_channels)
        expected[i] = 1.0
        np.testing.assert_allclose(gains, expected, atol=1e-6)
        assert gains.dtype == np.float32


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_power_stays_constant_over_a_full_rotation(name):
    layout = PRESETS[name]
    for azimuth in np.arange(-360.0, 360.0, 0.5):
        gains = layout.pan_gains(float(azimuth))
        assert gains.shape == (layout.n_channels,)
        assert np.all(gains >= 0)
        assert np.sum(gains.astype(np.float64) ** 2) == pytest.approx(1.0, abs=1e-5)


def test_positive_azimuth_is_to_the_left():
    quad = PRESETS["quad"]
    assert quad.index("FL") == int(np.argmax(quad.pan_gains(45.0)))
    assert quad.index("FR") == int(np.argmax(quad.pan_gains(-45.0)))
    left_of_front = quad.pan_gains(20.0)
    assert left_of_front[quad.index("FL")] > left_of_front[quad.index("FR")] > 0


def test_midway_between_two_speakers_both_get_minus_3_db():
    gains = PRESETS["quad"].pan_gains(0.0)
    np.testing.assert_allclose(gains, [2**-0.5, 2**-0.5, 0.0, 0.0], atol=1e-6)


def test_a_pair_is_panned_by_vbap_not_by_a_linear_crossfade():
    # Stereo ±30°, source at +15°: 2-D VBAP gives gL/gR = sin(45°)/sin(15°) before normalisation.
    gains = PRESETS["stereo"].pan_gains(15.0).astype(np.float64)
    assert gains[0] / gains[1] == pytest.approx(np.sin(np.radians(45)) / np.sin(np.radians(15)), rel=1e-5)


def test_stereo_clamps_outside_the_arc_between_l_and_r():
    stereo = PRESETS["stereo"]
    np.testing.assert_allclose(stereo.pan_gains(90.0), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(stereo.pan_gains(-120.0), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(stereo.pan_gains(179.0), [1.0, 0.0], atol=1e-6)


def test_ring_pans_across_the_back():
    quad = PRESETS["quad"]
    np.testing.assert_allclose(quad.pan_gains(180.0), [0.0, 0.0, 2**-0.5, 2**-0.5], atol=1e-6)


def test_spread_widens_the_source_and_keeps_power():
    octo = PRESETS["octo"]
    active = []
    for spread in (0.0, 90.0, 180.0, 360.0):
        gains = octo.pan_gains(22.5, spread)
        assert np.sum(gains.astype(np.float64) ** 2) == pytest.approx(1.0, abs=1e-5)
        active.append(int(np.sum(gains > 1e-3)))
    assert active == sorted(active)
    assert active[0] == 1
    assert active[-1] == 8
    # Spread spreads energy away from the aimed speaker.
    assert octo.pan_gains(22.5, 180.0)[0] < octo.pan_gains(22.5, 90.0)[0] < 1.0


def test_full_spread_on_a_ring_feeds_every_speaker_equally():
    gains = PRESETS["octo"].pan_gains(0.0, 360.0)
    np.testing.assert_allclose(gains, np.full(8, 8**-0.5), atol=0.01)


def test_bad_pan_arguments_are_refused():
    with pytest.raises(ValueError, match="spread_deg"):
        PRESETS["quad"].pan_gains(0.0, -10.0)
    with pytest.raises(ValueError, match="azimuth_deg"):
        PRESETS["quad"].pan_gains(float("nan"))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-179, 180), min_size=1, max_size=12, unique=True),
    st.floats(-720, 720),
    st.floats(0, 400),
)
def test_any_custom_layout_pans_at_unit_power(azimuths, azimuth, spread):
    layout = make_layout("custom", [Speaker(f"s{i}", float(a)) for i, a in enumerate(azimuths)])
    gains = layout.pan_gains(azimuth, spread).astype(np.float64)
    assert np.all(gains >= 0)
    assert np.sum(gains**2) == pytest.approx(1.0, abs=1e-5)


def test_index_by_name_or_zero_based_index():
    octo = PRESETS["octo"]
    assert octo.index("1") == 0  # octo names are 1-based names, never indices
    assert octo.index("8") == 7
    assert octo.index(0) == 0
    assert octo.index(7) == 7


def test_unknown_speaker_names_the_allowed_ones():
    with pytest.raises(KeyError) as info:
        PRESETS["quad"].index("FLL")
    text = str(info.value)
    assert "'FLL'" in text and "did you mean 'FL'" in text and "FL, FR, BL, BR" in text


@pytest.mark.parametrize("bad", [4, -1, True, 1.5])
def test_bad_speaker_index_is_refused(bad):
    with pytest.raises(ValueError, match=r"index|name"):
        PRESETS["quad"].index(bad)


def test_custom_layout_keeps_its_speakers_and_ports():
    speakers = [Speaker("A", 0.0, "system:playback_3"), Speaker("B", 180.0, "system:playback_4")]
    layout = make_layout("custom", speakers)
    assert layout.name == "custom"
    assert layout.speakers == tuple(speakers)
    assert layout.index("B") == 1


@pytest.mark.parametrize(
    ("name", "speakers", "message"),
    [
        ("custom", None, "needs its speakers"),
        ("octo", [Speaker("A", 0.0)], 'only with layout "custom"'),
        ("quadd", None, "did you mean 'quad'"),
        ("custom", [Speaker("A", 0.0), Speaker("A", 90.0)], "used twice"),
        ("custom", [Speaker("A", 10.0), Speaker("B", 370.0)], "share the azimuth"),
    ],
)
def test_make_layout_refuses_bad_requests(name, speakers, message):
    with pytest.raises(ValueError, match=message):
        make_layout(name, speakers)


def test_layout_cannot_be_empty():
    with pytest.raises(ValueError, match="at least one speaker"):
        Layout("custom", ())


def test_a_custom_layout_is_built_the_same_from_config_tables_and_from_speakers():
    from latentd.config.venue import SpeakerConfig

    tables = [
        SpeakerConfig(name="a", azimuth_deg=30.0, port="system:playback_1"),
        SpeakerConfig(name="b", azimuth_deg=-30.0),
    ]
    speakers = [Speaker("a", 30.0, "system:playback_1"), Speaker("b", -30.0)]
    assert make_layout("custom", tables) == make_layout("custom", speakers)
    assert make_layout("custom", tables).speakers == tuple(speakers)

"""Speaker layouts and pairwise constant-power (2-D VBAP) panning.

Azimuth convention: degrees in the horizontal plane, 0 = straight ahead, POSITIVE = LEFT
(counter-clockwise seen from above, as in VBAP and ambisonics); -90 is hard right, ±180 is behind.
Any real number is accepted and taken modulo 360.

Presets (speaker names are also the names of latentd's JACK output ports):

=========  ================================================================================
stereo     L +30, R -30
quad       FL +45, FR -45, BL +135, BR -135
5.0        L +30, R -30, C 0, Ls +110, Rs -110
7.0        L +30, R -30, C 0, Lss +90, Rss -90, Lsr +150, Rsr -150
octo       ring "1".."8": 1 at +22.5, 2 at -22.5, then clockwise: 3 -67.5, 4 -112.5, 5 -157.5,
           6 +157.5, 7 +112.5, 8 +67.5
=========  ================================================================================

A layout whose speakers surround the listener (every gap between neighbours below 180°) pans all the
way round. Otherwise (stereo, or a frontal arc) the widest gap is left open: a source aimed into it
is clamped to the nearer end of the arc.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

CUSTOM = "custom"
# Virtual sources per degree of spread: one every few degrees keeps the blend smooth between speakers.
_SPREAD_STEP_DEG = 5.0


class UnknownSpeakerError(KeyError):
    """A speaker name that the layout does not have (the message lists the names it does have)."""

    def __str__(self) -> str:
        # KeyError quotes its message; this error is read by people, so print it plain.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Speaker:
    """One loudspeaker.

    Attributes:
        name: Speaker name; also the name of latentd's JACK output port for it.
        azimuth_deg: Direction in degrees, 0 = front, positive = left.
        port: JACK playback port to connect to (e.g. ``system:playback_3``), or None for the default.
    """

    name: str
    azimuth_deg: float
    port: str | None = None


class SpeakerLike(Protocol):
    """Anything that names a speaker: a :class:`Speaker`, or a ``[[audio.speakers]]`` table of the config."""

    @property
    def name(self) -> str: ...

    @property
    def azimuth_deg(self) -> float: ...

    @property
    def port(self) -> str | None: ...


@dataclass(frozen=True)
class Layout:
    """An ordered set of speakers; speaker ``i`` is output channel ``i``.

    Attributes:
        name: Preset name (``stereo``, ``quad``, ``5.0``, ``7.0``, ``octo``) or ``custom``.
        speakers: The speakers in channel order.
    """

    name: str
    speakers: tuple[Speaker, ...]
    _pairs: tuple[tuple[int, int, float, float], ...] = field(init=False, repr=False, compare=False)
    _arc: tuple[int, int, float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_speakers(self.speakers)
        pairs, arc = _plan(self.speakers)
        object.__setattr__(self, "_pairs", pairs)
        object.__setattr__(self, "_arc", arc)

    @property
    def n_channels(self) -> int:
        """Number of speakers (output channels)."""
        return len(self.speakers)

    @property
    def names(self) -> tuple[str, ...]:
        """Speaker names in channel order."""
        return tuple(s.name for s in self.speakers)

    def index(self, name_or_index: str | int) -> int:
        """The channel index of a speaker given by name or by 0-based index.

        A string is always a name (the octo ring's names "1".."8" are 1-based names, not indices).

        Raises:
            UnknownSpeakerError: (a KeyError) for a name the layout does not have.
            ValueError: for an index out of range, or a value that is neither a name nor an index.
        """
        if isinstance(name_or_index, str):
            for i, s in enumerate(self.speakers):
                if s.name == name_or_index:
                    return i
            close = difflib.get_close_matches(name_or_index, self.names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownSpeakerError(
                f"no speaker named {name_or_index!r} in layout {self.name!r}{hint} "
                f"(speakers: {', '.join(self.names)}; or a 0-based index 0..{self.n_channels - 1})"
            )
        if isinstance(name_or_index, bool) or not isinstance(name_or_index, int | np.integer):
            raise ValueError(f"a speaker is a name or a 0-based index, not {name_or_index!r}")
        i = int(name_or_index)
        if not 0 <= i < self.n_channels:
            raise ValueError(
                f"speaker index {i} is out of range for layout {self.name!r}: 0..{self.n_channels - 1} "
                f"(speakers: {', '.join(self.names)})"
            )
        return i

    def pan_gains(self, azimuth_deg: float, spread_deg: float = 0.0) -> np.ndarray:
        """Speaker gains for a source at ``azimuth_deg``, widened by ``spread_deg``.

        Pairwise 2-D VBAP between the two neighbouring speakers around the direction, normalised to
        constant power (the squares of the gains sum to 1 for every azimuth). ``spread_deg`` > 0 blends
        the gains of virtual sources spaced evenly over ±spread/2 around the azimuth, then renormalises
        the power to 1; 360 or more covers the whole circle.

        Args:
            azimuth_deg: Source direction in degrees (0 = front, positive = left).
            spread_deg: Width of the source in degrees, >= 0.

        Returns:
            float32 array of shape (n_channels,).
        """
        if not math.isfinite(azimuth_deg):
            raise ValueError(f"azimuth_deg must be a finite number, not {azimuth_deg!r}")
        if not math.isfinite(spread_deg) or spread_deg < 0:
            raise ValueError(f"spread_deg must be a finite number >= 0, not {spread_deg!r}")
        if spread_deg == 0.0:
            gains = self._point_gains(azimuth_deg)
        else:
            spread = min(spread_deg, 360.0)
            n = max(3, math.ceil(spread / _SPREAD_STEP_DEG) + 1)
            # A full circle would count the direction behind twice (-180 and +180 are one place).
            offsets = np.linspace(-spread / 2, spread / 2, n, endpoint=spread < 360.0)
            gains = np.zeros(self.n_channels, dtype=np.float64)
            for off in offsets:
                gains += self._point_gains(azimuth_deg + float(off))
        power = float(np.sqrt(np.sum(gains * gains)))
        return (gains / power).astype(np.float32)

    def _point_gains(self, azimuth_deg: float) -> np.ndarray:
        """Constant-power pairwise gains for one direction (float64)."""
        gains = np.zeros(self.n_channels, dtype=np.float64)
        if self.n_channels == 1:
            gains[0] = 1.0
            return gains
        az = azimuth_deg % 360.0
        for a, b, start, width in self._pairs:
            rel = (az - start) % 360.0
            if rel <= width:
                gains[a], gains[b] = _vbap_pair(rel, width)
                return gains
        # In the open side of an arc layout: clamp to the nearer end.
        assert self._arc is not None  # the pairs cover the full circle when there is no open gap
        first, last, arc_start, arc_width = self._arc
        beyond_end = (az - (arc_start + arc_width)) % 360.0
        before_start = (arc_start - az) % 360.0
        gains[last if beyond_end <= before_start else first] = 1.0
        return gains


def _vbap_pair(rel_deg: float, width_deg: float) -> tuple[float, float]:
    """2-D VBAP gains of a source ``rel_deg`` into a pair ``width_deg`` wide, unit power."""
    # Speaker unit vectors at 0 and width; solve p = g1·l1 + g2·l2 (the inverse of the 2×2 base).
    rel, width = math.radians(rel_deg), math.radians(width_deg)
    if width_deg > 179.0:
        # Two speakers (nearly) opposite each other: the VBAP base is singular there, so cross-fade by
        # angle with the sine/cosine law, which is constant power too.
        x = rel / width * math.pi / 2
        return math.cos(x), math.sin(x)
    g2 = math.sin(rel) / math.sin(width)
    g1 = math.sin(width - rel) / math.sin(width)
    norm = math.hypot(g1, g2)
    return max(g1, 0.0) / norm, max(g2, 0.0) / norm


def _plan(speakers: Sequence[Speaker]) -> tuple[tuple[tuple[int, int, float, float], ...], tuple | None]:
    """Neighbouring speaker pairs (a, b, start_deg, width_deg) counter-clockwise, and the open arc if any."""
    if len(speakers) < 2:
        return (), None
    order = sorted(range(len(speakers)), key=lambda i: speakers[i].azimuth_deg % 360.0)
    pairs = []
    for k, a in enumerate(order):
        b = order[(k + 1) % len(order)]
        start = speakers[a].azimuth_deg % 360.0
        width = (speakers[b].azimuth_deg % 360.0 - start) % 360.0
        pairs.append((a, b, start, width))
    widest = max(range(len(pairs)), key=lambda k: pairs[k][3])
    if pairs[widest][3] < 180.0:
        return tuple(pairs), None
    # The widest gap is 180° or more: VBAP cannot pan across it (gains would go negative), so it is left
    # open and the other pairs form an arc from the speaker after the gap to the speaker before it.
    gap_a, gap_b, gap_start, gap_width = pairs[widest]
    arc = (gap_b, gap_a, (gap_start + gap_width) % 360.0, 360.0 - gap_width)
    return tuple(p for k, p in enumerate(pairs) if k != widest), arc


def _check_speakers(speakers: Sequence[Speaker]) -> None:
    """Refuse layouts that cannot be panned or addressed: no speakers, clashing names or directions."""
    if not speakers:
        raise ValueError("a layout needs at least one speaker")
    seen_names: dict[str, int] = {}
    seen_dirs: dict[float, str] = {}
    for i, s in enumerate(speakers):
        if not s.name:
            raise ValueError(f"speaker {i} has an empty name")
        if s.name in seen_names:
            raise ValueError(f"speaker name {s.name!r} is used twice (speakers {seen_names[s.name]} and {i})")
        seen_names[s.name] = i
        if not math.isfinite(s.azimuth_deg):
            raise ValueError(f"speaker {s.name!r} has azimuth {s.azimuth_deg!r}; it must be a finite number")
        direction = round(s.azimuth_deg % 360.0, 6) % 360.0
        if direction in seen_dirs:
            raise ValueError(
                f"speakers {seen_dirs[direction]!r} and {s.name!r} share the azimuth {s.azimuth_deg:g}°; "
                "panning needs one speaker per direction (route stacked speakers with a matrix instead)"
            )
        seen_dirs[direction] = s.name


def _preset(name: str, spec: Sequence[tuple[str, float]]) -> Layout:
    return Layout(name, tuple(Speaker(n, az) for n, az in spec))


PRESETS: dict[str, Layout] = {
    "stereo": _preset("stereo", [("L", 30.0), ("R", -30.0)]),
    "quad": _preset("quad", [("FL", 45.0), ("FR", -45.0), ("BL", 135.0), ("BR", -135.0)]),
    "5.0": _preset("5.0", [("L", 30.0), ("R", -30.0), ("C", 0.0), ("Ls", 110.0), ("Rs", -110.0)]),
    "7.0": _preset(
        "7.0",
        [
            ("L", 30.0),
            ("R", -30.0),
            ("C", 0.0),
            ("Lss", 90.0),
            ("Rss", -90.0),
            ("Lsr", 150.0),
            ("Rsr", -150.0),
        ],
    ),
    "octo": _preset(
        "octo",
        [
            ("1", 22.5),
            ("2", -22.5),
            ("3", -67.5),
            ("4", -112.5),
            ("5", -157.5),
            ("6", 157.5),
            ("7", 112.5),
            ("8", 67.5),
        ],
    ),
}
"""The preset layouts by name."""

LAYOUT_NAMES: tuple[str, ...] = (*PRESETS, CUSTOM)
"""Every name ``make_layout`` accepts."""


def make_layout(name: str, speakers: Sequence[SpeakerLike] | None = None) -> Layout:
    """A preset layout by name, or a custom one from its speakers: the one place a layout is built.

    Args:
        name: One of ``LAYOUT_NAMES``; ``custom`` needs ``speakers``, presets take none.
        speakers: The speakers of a custom layout, in channel order (:class:`Speaker` values or the
            venue config's speaker tables).

    Raises:
        ValueError: unknown name, speakers missing for ``custom`` or given for a preset, or speakers that
            clash (duplicate names or azimuths).
    """
    if name == CUSTOM:
        if not speakers:
            raise ValueError('layout "custom" needs its speakers listed (name, azimuth_deg, port)')
        return Layout(CUSTOM, tuple(Speaker(s.name, s.azimuth_deg, s.port) for s in speakers))
    if name not in PRESETS:
        close = difflib.get_close_matches(name, LAYOUT_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown layout {name!r}{hint} (layouts: {', '.join(LAYOUT_NAMES)})")
    if speakers:
        raise ValueError(f'speakers are listed only with layout "custom", not with the preset {name!r}')
    return PRESETS[name]

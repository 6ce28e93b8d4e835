"""Conditioning ranges: which values a voice may send to a model's conditioning inputs.

A vschaos2 model labels its conditioning inputs with integer ranges, upper bound exclusive
(``(signal) pitch label (0-12)``: pitch 0..11); it truncates each value (11.7 -> 11) and fails outside the
range. The configuration is checked here against those ranges (constants, and sources whose values are
bounded by their settings); at run time the voice clamps whatever arrives (``engine/voice.py``).
"""

from __future__ import annotations

from latentd.sources.specs import (
    ConstantSpec,
    LfoSpec,
    NoiseSpec,
    PresetsSpec,
    SourceSpec,
    StepsSpec,
    WalkSpec,
)

Range = tuple[int, int]


def range_text(name: str, bounds: Range) -> str:
    """``"pitch takes 0 <= value < 12 (the model reads whole numbers 0..11, truncating)"``."""
    low, high = bounds
    return (
        f"{name} takes {low} <= value < {high} (the model reads whole numbers {low}..{high - 1}, "
        "truncating; its label gives the upper bound exclusive)"
    )


def _flat(value: float | list[float] | list[float | list[float]]) -> list[float]:
    if isinstance(value, list):
        out: list[float] = []
        for item in value:
            out += _flat(item)
        return out
    return [float(value)]


def source_bounds(spec: SourceSpec) -> tuple[float, float] | None:
    """The lowest and highest value a source can produce with its settings, or None when unbounded.

    Bounded: ``constant``, ``presets`` (ramps stay between banks), ``steps`` (±amplitude), ``lfo``
    (±intensity), ``noise`` (±1), ``walk`` (±limit), each times ``scale`` plus ``offset``; smoothing
    stays between them. Others (interpolated tables, patterns, files, priors, pools) are only clamped
    at run time.
    """
    raw: list[float]
    if isinstance(spec, ConstantSpec):
        raw = _flat(spec.values)
    elif isinstance(spec, PresetsSpec):
        raw = _flat(spec.banks)
    elif isinstance(spec, StepsSpec):
        raw = [-spec.amplitude, spec.amplitude]
    elif isinstance(spec, LfoSpec):
        raw = [-spec.intensity, spec.intensity]
    elif isinstance(spec, NoiseSpec):
        raw = [-1.0, 1.0]
    elif isinstance(spec, WalkSpec):
        raw = [-spec.limit, spec.limit]
    else:
        return None
    scaled = [min(raw) * spec.scale, max(raw) * spec.scale]
    offsets = _flat(spec.offset)
    return min(scaled) + min(offsets), max(scaled) + max(offsets)


def constant_problem(name: str, value: float, bounds: Range | None) -> str | None:
    """Why a constant ``value`` does not fit input ``name``, or None."""
    if bounds is None or bounds[0] <= value < bounds[1]:
        return None
    return f"{value:g} is out of range: {range_text(name, bounds)}"


def source_problem(name: str, spec: SourceSpec, bounds: Range | None) -> str | None:
    """Why a source's values do not fit input ``name``, or None (unbounded sources are clamped later)."""
    reach = source_bounds(spec)
    if bounds is None or reach is None:
        return None
    low, high = reach
    if bounds[0] <= low and high < bounds[1]:
        return None
    return (
        f"the {spec.kind} source reaches {low:g}..{high:g}, out of range: {range_text(name, bounds)}; "
        "set its scale and offset (or amplitude, intensity, values) to stay inside"
    )

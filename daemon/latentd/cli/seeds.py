"""``latentd seeds``: every voice's seeds and source settings as Pd message boxes.

The same pathway can then be auditioned in a Pd patch: a noise voice's ``noise~`` seeds (one per latent
dimension), the contents of table and step sources as array messages, the LFO start phases, and each
source setting as a message box. A message box is shown as Pd's text notation ``[text(``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from latentd.cli.common import EXIT_OK, add_parser, config_arg, config_errors, guarded

if TYPE_CHECKING:
    from latentd.engine.voice import Voice
    from latentd.installation.models import ModelInfo
    from latentd.sources import NoiseSpec, Source, SourceSpec
    from latentd.sources.noise import NoiseSource


def pd_number(value: float | int | bool) -> str:
    """A number as typed into a Pd message: ints as they are, floats as the shortest 32-bit float."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def message_box(*atoms: object) -> str:
    """A Pd message box in text notation: ``[seed 3615539(``."""
    return "[" + " ".join(pd_number(a) if isinstance(a, int | float) else str(a) for a in atoms) + "("


def array_box(name: str, values: np.ndarray) -> str:
    """A message box that sizes Pd array ``name`` and fills it with ``values`` from index 0."""
    return message_box(f"; {name} resize {len(values)}; {name} 0", *(float(v) for v in values))


def seed_box(seed: int) -> str:
    """The ``seed`` message for a ``noise~`` state, with a note when Pd cannot take it exactly."""
    from latentd.sources.pd import pd_exact, pd_seed, to_int32

    signed = to_int32(seed)  # the state as noise~'s C int holds it
    box = message_box("seed", signed)
    if not pd_exact(signed):
        box += f"  (|seed| > 2^24: Pd would play {pd_seed(signed)}; no message gives this state)"
    return box


def noise_lines(name: str, source: NoiseSource, spec: NoiseSpec) -> list[str]:
    """The ``noise~`` of each dimension: its seed message, or its creation order for ``pd_instance``."""
    from latentd.sources.noise import derived_seeds, instance_numbers
    from latentd.sources.pd import pd_instance_seed, pd_seed

    instances = instance_numbers(spec, source.latent_size)
    if instances is not None:
        return [
            f"{name}.{d}: noise~ number {k} created in the Pd session, unseeded (state {pd_instance_seed(k)})"
            for d, k in enumerate(instances)
        ]
    played = pd_seed if spec.seed_from == "pd" else int
    if spec.seed_bank is not None:
        lines = []
        for i, entry in enumerate(spec.seed_bank):
            seeds = derived_seeds(played(entry), source.latent_size) if isinstance(entry, int) else entry
            lines += [f"{name}.{d} seed_bank[{i}]: {seed_box(played(s))}" for d, s in enumerate(seeds)]
        return lines
    return [f"{name}.{d}: {seed_box(s)}" for d, s in enumerate(source.current_seeds())]


def contents_lines(name: str, source: Source, spec: SourceSpec) -> list[str]:
    """What the source plays from, per dimension, as Pd messages (nothing for sources without)."""
    from latentd.sources import NoiseSpec
    from latentd.sources.lfo import LfoSource
    from latentd.sources.noise import NoiseSource
    from latentd.sources.steps import StepsSource
    from latentd.sources.table import TableSource

    dims = range(source.latent_size)
    if isinstance(source, NoiseSource) and isinstance(spec, NoiseSpec):
        return noise_lines(name, source, spec)
    if isinstance(source, TableSource | StepsSource):
        values = source.points if isinstance(source, TableSource) else source.sequence
        return [f"{name}.{d}: {array_box(f'{name}-{d}', values[d])}" for d in dims]
    if isinstance(source, LfoSource):
        return [f"{name}: {message_box('phase', *(float(p) for p in source.start_phase))}"]
    return []


def settings_lines(spec: SourceSpec) -> list[str]:
    """Each setting of the spec as a message box ``[key values(``, lists flattened, unset keys left out."""
    lines = []
    for key, value in spec.model_dump(
        exclude={"kind", "seeds", "seed_bank", "pd_instance", "seed_from"}
    ).items():
        if value is None:
            continue
        atoms = _flat(value)
        lines.append(message_box(key, *atoms) if atoms else message_box(key))
    return lines


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [atom for item in value for atom in _flat(item)]
    return [value]


def voice_lines(voice: Voice, spec: SourceSpec, info: ModelInfo) -> list[str]:
    """One voice: a header, its source's contents, its settings, then its conditioning sources."""
    lines = [
        f"# voice {voice.name}: latent_size {info.latent_size}, ratio {info.ratio}, sr {info.sr}; "
        f"source {spec.kind}; voice seed {voice.seed}"
    ]
    if spec.kind == "noise":
        lines.append(f"# one noise~ per latent dimension; nn~ reads the last sample of every {info.ratio}")
    lines += contents_lines(voice.name, voice.source, spec)
    lines += settings_lines(spec)
    return lines


def cmd_seeds(args: argparse.Namespace) -> int:
    """Print each voice's seeds and source settings as Pd message boxes."""
    import structlog

    from latentd.config import ConfigError, load_config
    from latentd.installation.piece import load_installation
    from latentd.runtime.process import quiet_torchscript_warnings

    quiet_torchscript_warnings()
    # Warnings (a seed Pd changes) go to stderr: stdout holds only the messages.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        config = load_config(args.config)
        installation = load_installation(config, warm_up=False, seed=args.seed)
    except ConfigError as exc:
        return config_errors(exc)
    blocks = []
    for name, voice in installation.voices.items():
        vc = config.piece.voices[name]
        info = installation.models[vc.model].info
        lines = voice_lines(voice, vc.source, info)
        for index, source in sorted(voice.cond_sources.items()):
            cond = voice.conditioning_names[index]
            cond_spec = vc.conditioning[cond]
            if isinstance(cond_spec, int | float):
                continue  # a constant: no source
            lines.append(f"# conditioning {cond}: source {cond_spec.kind}, seed {source.seed}")
            lines += contents_lines(f"{name}.{cond}", source, cond_spec)
            lines += settings_lines(cond_spec)
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``seeds``."""
    p = add_parser(
        sub,
        "seeds",
        help="print every voice's seeds and source settings as Pd message boxes, to audition the same "
        "pathway in a Pd patch",
    )
    config_arg(p)
    p.add_argument("--seed", type=int, default=None, help="the piece seed (default: the piece's own)")
    p.set_defaults(func=guarded("seeds", cmd_seeds))

"""Build, save and cache small synth models in the nn~ TorchScript format.

Used by the tests, the demo piece and the benchmarks. The same spec always gives a model that decodes the
same audio: weights come from a generator seeded by the spec, never from torch's global one.
"""

import dataclasses
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from latentd.atomic import replacing
from latentd.installation.torchscript import save_module, script_module
from latentd.modelkit.synth import CONDITIONING_KINDS, StreamingSynth, Synth, V1Export

# Bump when the synth's sound or interface changes, so cached and demo files are rebuilt.
BUILDER_VERSION = 2
SPEC_FILE = "latentd_spec.json"
FAULTS = ("nan", "wrong_shape")


@dataclass(frozen=True)
class SynthSpec:
    """What to build.

    Attributes:
        latent_size: latent dims (>= 1): 0 pitch, 1 brightness, 2 noise, 3 amplitude, more: partial gains.
        ratio: audio samples per latent frame.
        sr: sample rate in Hz.
        n_channels: 1 or 2.
        conditioning: conditioning inputs after the latent dims: ``pitch_class``, ``octave``.
        streaming: keep state per batch row (clean block edges) or start fresh every call.
        seed: seeds the fixed projections and the noise.
        base_hz: pitch at z0 = 0.
        fault: ``None``, ``"nan"``, ``"nan:N"`` (NaN once N decode calls have worked since load or
            reset) or ``"wrong_shape"`` (decode returns one sample short).
        v1: wrap like a RAVE v1 export (no ``get_methods``; ``sampling_rate``/``latent_size`` buffers).
        hidden: width of an extra upsampling conv stack that makes decoding cost like a real neural
            decoder (0: none); e.g. ratio 2048, latent 16, hidden 64 for RAVE v2-like benchmarks.
        min_buffer_size: when > 0, the model declares a read-only ``min_buffer_size`` attribute (vschaos2).
    """

    latent_size: int = 4
    ratio: int = 1024
    sr: int = 48000
    n_channels: int = 1
    conditioning: tuple[str, ...] = ()
    streaming: bool = True
    seed: int = 0
    base_hz: float = 220.0
    fault: str | None = None
    v1: bool = False
    hidden: int = 0
    min_buffer_size: int = 0

    def key(self) -> str:
        """A short hash naming this spec (and the builder version) for cache files."""
        data = json.dumps({"version": BUILDER_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


DEMO_MODELS: dict[str, SynthSpec] = {
    # Two models with different ratios and sample rates, so the demo exercises resampling and mixing.
    "drone": SynthSpec(latent_size=4, ratio=1024, sr=48000, n_channels=1, base_hz=110.0, seed=1),
    "bells": SynthSpec(latent_size=8, ratio=512, sr=44100, n_channels=2, base_hz=440.0, seed=2),
}


def _parse_fault(fault: str | None) -> tuple[str | None, int]:
    if fault is None:
        return None, 0
    name, _, after = fault.partition(":")
    if name not in FAULTS or (after and (name != "nan" or not after.isdigit())):
        raise ValueError(f"SynthSpec.fault={fault!r}: allowed None, 'nan', 'nan:<calls>', 'wrong_shape'")
    return name, int(after or 0)


def _validate(spec: SynthSpec) -> None:
    problems = []
    if spec.latent_size < 1:
        problems.append(f"latent_size={spec.latent_size}: must be >= 1")
    if spec.ratio < 1:
        problems.append(f"ratio={spec.ratio}: must be >= 1")
    if spec.sr < 1000:
        problems.append(f"sr={spec.sr}: must be >= 1000 Hz")
    if spec.n_channels not in (1, 2):
        problems.append(f"n_channels={spec.n_channels}: allowed 1 or 2")
    unknown = [c for c in spec.conditioning if c not in CONDITIONING_KINDS]
    if unknown:
        problems.append(f"conditioning={unknown}: allowed {sorted(CONDITIONING_KINDS)}")
    if not 0 < spec.base_hz < spec.sr * 0.4:
        problems.append(f"base_hz={spec.base_hz}: must be in (0, 0.4 * sr)")
    if spec.min_buffer_size < 0:
        problems.append(f"min_buffer_size={spec.min_buffer_size}: must be >= 0")
    if spec.hidden < 0:
        problems.append(f"hidden={spec.hidden}: must be >= 0")
    if problems:
        raise ValueError("invalid SynthSpec: " + "; ".join(problems))


def build_model(spec: SynthSpec) -> torch.jit.ScriptModule:
    """Build and script the synth described by ``spec``.

    Like nn~'s exporter, the streaming model's decode is run once on zeros before scripting, so its
    state buffers are not zero after load (as in real RAVE exports); fault models are not exercised.

    Raises:
        ValueError: if the spec is invalid (the message lists every problem).
    """
    _validate(spec)
    fault, fault_after = _parse_fault(spec.fault)
    cls = StreamingSynth if spec.streaming else Synth
    core: Synth = cls(
        latent_size=spec.latent_size,
        ratio=spec.ratio,
        sr=spec.sr,
        n_channels=spec.n_channels,
        conditioning=spec.conditioning,
        seed=spec.seed,
        base_hz=spec.base_hz,
        fault=fault,
        fault_after=fault_after,
        hidden=spec.hidden,
        min_buffer_size=spec.min_buffer_size,
    )
    core.eval()
    if fault is None:
        with torch.no_grad():
            core.decode(torch.zeros(4, spec.latent_size + len(spec.conditioning), max(1, 8192 // spec.ratio)))
    module: torch.nn.Module = V1Export(core) if spec.v1 else core
    return script_module(module)


def save_model(spec: SynthSpec, path: Path) -> Path:
    """Build ``spec`` and write it to ``path`` atomically (temporary file + rename); create parent folders.

    The spec is stored inside the archive (an extra file), so ``build_demo_models`` can tell whether an
    existing file is up to date without loading it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = build_model(spec)
    extra = {SPEC_FILE: json.dumps({"key": spec.key(), "spec": dataclasses.asdict(spec)})}
    with replacing(path, durable=False) as tmp:
        save_module(scripted, tmp, extra)
    return path


def stored_spec_key(path: Path) -> str | None:
    """The spec key stored in a model file written by ``save_model``, or None (other file, unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"/extra/{SPEC_FILE}")), None)
            if name is None:
                return None
            key = json.loads(archive.read(name)).get("key")
    except (OSError, zipfile.BadZipFile, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def cached_model(spec: SynthSpec, cache_dir: Path) -> Path:
    """The path of ``spec``'s model in ``cache_dir``, named by the spec's hash; built only if missing."""
    path = Path(cache_dir) / f"synth-{spec.key()}.ts"
    if not path.exists():
        save_model(spec, path)
    return path


def build_demo_models(folder: Path) -> list[Path]:
    """Write ``<folder>/<name>.ts`` for every entry of ``DEMO_MODELS``; skip files already up to date."""
    paths = []
    for name, spec in DEMO_MODELS.items():
        path = Path(folder) / f"{name}.ts"
        if stored_spec_key(path) != spec.key():
            save_model(spec, path)
        paths.append(path)
    return paths

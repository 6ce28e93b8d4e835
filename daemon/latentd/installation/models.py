"""The model host: loads nn~-format TorchScript models, reads their contract, decodes latents.

This is the only module that loads TorchScript. Everything else sees a ``ModelInfo`` (what the model is)
and a ``LoadedModel`` (numpy in, numpy out).

The contract is read from the file, never guessed (DESIGN §4):

- methods from ``get_methods()``, or, for RAVE v1 exports without it, every scripted method that has a
  ``<method>_params`` buffer (as nn~ does);
- ``<method>_params = [in_channels, in_ratio, out_channels, out_ratio]``;
- sample rate from ``get_sample_rate()``, else the ``sr`` or ``sampling_rate`` attribute/buffer;
- latent size from the ``latent_size`` (RAVE) or ``latent_dim`` (vschaos2) attribute/buffer: decode input
  channels beyond it are conditioning inputs, named after their labels;
- streaming: the model keeps state per batch row in buffers named like cached convolutions (a leaf name
  ending in ``pad`` or containing ``cache``) whose first dimension is the number of batch rows.
"""

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentd.installation.errors import ModelError
from latentd.tempo import bpm

DEFAULT_MAX_BATCH = 64
TEMPO_STEPS = 16
MAX_FRAMES_PER_CALL = 256  # beyond this a model's minimum buffer would add seconds of latency


@dataclass(frozen=True)
class MethodParams:
    """One ``<method>_params`` buffer: ``[in_channels, in_ratio, out_channels, out_ratio]``."""

    in_channels: int
    in_ratio: int
    out_channels: int
    out_ratio: int


@dataclass(frozen=True)
class ModelInfo:
    """What a model file offers, read from the file.

    Attributes:
        path: the model file.
        methods: callable methods (``get_methods()``, or found by their ``*_params`` buffers).
        params: every well-formed ``<method>_params`` found.
        method: the method a voice uses (``decode`` by default).
        latent_size: latent inputs of that method, without conditioning inputs.
        full_latent_size: RAVE variational exports fill the dims from ``latent_size`` up to this with
            ``torch.randn`` inside ``decode``; None when the model does not say.
        ratio: ``in_ratio`` of the method (audio samples per latent frame for ``decode``).
        sr: the model's sample rate in Hz.
        n_channels: output channels of the method (audio channels for ``decode``).
        conditioning: names of extra inputs after the latent dims (vschaos2 style), from their labels
            (``"(signal) pitch label (0-12)"`` -> ``"pitch"``); ``()`` for RAVE.
        input_labels: ``<method>_input_labels`` when the model has them, else ``latent_0``...
        streaming: the model keeps state per batch row between calls (cached convolutions).
        attributes: ``get_attributes()`` names -> value from ``get_<name>()`` (``repr`` of the error if
            the getter fails, None if there is no getter).
        cache_rows: batch rows of the streaming state (RAVE: 64); None when not streaming.
    """

    path: Path
    methods: tuple[str, ...]
    params: dict[str, MethodParams]
    method: str
    latent_size: int
    full_latent_size: int | None
    ratio: int
    sr: int
    n_channels: int
    conditioning: tuple[str, ...]
    input_labels: tuple[str, ...]
    streaming: bool
    attributes: dict[str, object] = field(default_factory=dict)
    cache_rows: int | None = None

    @property
    def latent_rate_hz(self) -> float:
        """Latent frames per second: ``sr / ratio``."""
        return self.sr / self.ratio

    @property
    def in_channels(self) -> int:
        """Input channels of the method: latent dims plus conditioning inputs."""
        return self.latent_size + len(self.conditioning)

    def tempo_table(self) -> list[tuple[int, float]]:
        """BPM of a loop of k latent frames, k = 1..16: ``60 * (sr / ratio) / k``."""
        return [(k, bpm(self.sr, self.ratio, k)) for k in range(1, TEMPO_STEPS + 1)]


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Hide exactly torch's TorchScript deprecation warnings; the nn~ contract is TorchScript."""
    with warnings.catch_warnings():
        for name in ("load", "script", "save"):
            warnings.filterwarnings(
                "ignore", message=rf".*torch\.jit\.{name}.*is deprecated", category=DeprecationWarning
            )
        yield


def _load_module(path: Path) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found (expected a TorchScript .ts file exported for nn~)")
    if not path.is_file():
        raise ModelError(f"{path}: not a file (expected a TorchScript .ts file exported for nn~)")
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: not a TorchScript archive ({reason[:160]}); expected a .ts file exported for nn~ "
            "(e.g. with `rave export` or vschaos2's export script)"
        ) from exc
    module.eval()
    return module


def _has_method(module: torch.jit.ScriptModule, name: str) -> bool:
    return bool(module._c._has_method(name))


def _attr(module: torch.jit.ScriptModule, name: str) -> Any:
    """A module attribute or buffer, or None when absent."""
    if not module._c.hasattr(name):
        return None
    return getattr(module, name)


def _as_int(value: Any) -> int | None:
    """An int from an int or a one-element integral tensor; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and float(value) == int(value):
        return int(value)
    return None


def _read_params(module: torch.jit.ScriptModule, method: str) -> MethodParams | str:
    """The method's params, or a text saying what is wrong with them."""
    raw = _attr(module, f"{method}_params")
    if raw is None:
        return f"no `{method}_params` buffer"
    if not isinstance(raw, torch.Tensor):
        return f"`{method}_params` is a {type(raw).__name__}, expected a tensor of 4 integers"
    values = raw.detach().flatten().tolist()
    if len(values) != 4:
        return (
            f"`{method}_params` has {len(values)} values {values}, "
            "expected 4 [in_channels, in_ratio, out_channels, out_ratio]"
        )
    if raw.is_floating_point() and not all(float(v).is_integer() for v in values):
        return f"`{method}_params` = {values} holds non-integers; expected 4 positive integers"
    ints = [int(v) for v in values]
    if any(v <= 0 for v in ints):
        return f"`{method}_params` = {ints} holds values <= 0; expected 4 positive integers"
    return MethodParams(*ints)


def _read_methods(module: torch.jit.ScriptModule) -> list[str]:
    if _has_method(module, "get_methods"):
        return [str(m) for m in module.get_methods()]
    # RAVE v1 exports have no get_methods: as nn~ does, keep every method that has a *_params buffer.
    return [str(n) for n in module._c._method_names() if module._c.hasattr(f"{n}_params")]


def _read_sr(module: torch.jit.ScriptModule, path: Path) -> int:
    candidates = []
    if _has_method(module, "get_sample_rate"):
        with suppress(RuntimeError):
            candidates.append(module.get_sample_rate())
    candidates += [_attr(module, "sr"), _attr(module, "sampling_rate")]
    for value in candidates:
        sr = _as_int(value)
        if sr is not None and sr > 0:
            return sr
    raise ModelError(
        f"{path}: no sample rate found (looked for get_sample_rate(), `sr` and `sampling_rate`); "
        "an nn~ model must declare a positive integer sample rate"
    )


def _clean_label(label: str) -> str:
    """``"(signal) pitch label (0-12)"`` -> ``"pitch"``: the name a config can refer to."""
    text = re.sub(r"^\(\w+\)\s*", "", label.strip())
    text = re.split(r"\s+label\b", text, maxsplit=1)[0].strip()
    return text or label


def _read_attributes(module: torch.jit.ScriptModule) -> dict[str, object]:
    if not _has_method(module, "get_attributes"):
        return {}
    values: dict[str, object] = {}
    for name in module.get_attributes():
        name = str(name)
        if not _has_method(module, f"get_{name}"):
            values[name] = None
            continue
        values[name] = _get_attribute(module, name)
    return values


def _get_attribute(module: torch.jit.ScriptModule, name: str) -> object:
    try:
        value = getattr(module, f"get_{name}")()
    except Exception as exc:  # a model's getter may fail in any way; show it, do not die
        return repr(exc)
    return list(value) if isinstance(value, tuple | list) else value


def _streaming_rows(module: torch.jit.ScriptModule) -> int | None:
    """Batch rows of the streaming state, or None: cached-convolution-like buffers (``*pad``, ``*cache*``)."""
    rows = []
    for name, buf in module.named_buffers():
        leaf = name.rsplit(".", 1)[-1].lower()
        if (leaf.endswith("pad") or "cache" in leaf) and buf.dim() >= 1 and buf.shape[0] > 0:
            rows.append(int(buf.shape[0]))
    return min(rows) if rows else None


def _build_info(module: torch.jit.ScriptModule, path: Path, method: str) -> ModelInfo:
    methods = _read_methods(module)
    params: dict[str, MethodParams] = {}
    for name in methods:
        found = _read_params(module, name)
        if isinstance(found, MethodParams):
            params[name] = found
    if method not in methods:
        listed = ", ".join(methods) if methods else "none"
        raise ModelError(f"{path}: the model has no method {method!r}; methods found: {listed}")
    found = _read_params(module, method)
    if not isinstance(found, MethodParams):
        raise ModelError(f"{path}: method {method!r}: {found}")
    sr = _read_sr(module, path)
    in_ch = found.in_channels

    latent_size = in_ch
    declared = _as_int(_attr(module, "latent_size"))
    if declared is None:
        declared = _as_int(_attr(module, "latent_dim"))
    if method == "decode" and declared is not None and 0 < declared < in_ch:
        latent_size = declared
    labels_raw = _attr(module, f"{method}_input_labels")
    labels = [str(x) for x in labels_raw] if isinstance(labels_raw, list | tuple) else []
    if len(labels) != in_ch:
        labels = [f"latent_{i}" for i in range(latent_size)]
        labels += [f"conditioning_{i}" for i in range(in_ch - latent_size)]
    conditioning = tuple(_clean_label(lbl) for lbl in labels[latent_size:])

    full = _as_int(_attr(module, "full_latent_size"))
    if full is None:
        pca = _attr(module, "latent_pca")
        if isinstance(pca, torch.Tensor) and pca.dim() == 2 and pca.shape[0] == pca.shape[1]:
            full = int(pca.shape[0])
    if full is not None and full < latent_size:
        full = None

    rows = _streaming_rows(module)
    return ModelInfo(
        path=path,
        methods=tuple(methods),
        params=params,
        method=method,
        latent_size=latent_size,
        full_latent_size=full,
        ratio=found.in_ratio,
        sr=sr,
        n_channels=found.out_channels,
        conditioning=conditioning,
        input_labels=tuple(labels),
        streaming=rows is not None,
        attributes=_read_attributes(module),
        cache_rows=rows,
    )


def check_audio_method(info: ModelInfo) -> None:
    """Check that the model's method maps latent frames to audio, as a voice needs.

    Raises:
        ModelError: the method's ``_params`` do not say latents in (``in_ratio`` > 1) and audio out
            (``out_ratio`` 1); the message names the method, its params and the methods that would do.
    """
    p = info.params[info.method]
    if p.in_ratio > 1 and p.out_ratio == 1:
        return
    fitting = [m for m, q in info.params.items() if q.in_ratio > 1 and q.out_ratio == 1]
    raise ModelError(
        f"{info.path}: method {info.method!r} does not map latents to audio: `{info.method}_params` = "
        f"[in_channels {p.in_channels}, in_ratio {p.in_ratio}, out_channels {p.out_channels}, "
        f"out_ratio {p.out_ratio}]; a voice needs in_ratio > 1 (samples per latent frame) and out_ratio 1; "
        f"methods that do: {', '.join(fitting) or 'none'}"
    )


def frames_per_call_for(info: ModelInfo, frames_per_call: int) -> int:
    """Latent frames per decode call for this model: ``frames_per_call``, raised to the smallest multiple
    whose audio (``frames × ratio``) reaches the model's ``min_buffer_size`` attribute when it has one.

    Raises:
        ModelError: ``min_buffer_size`` is not a positive integer, or needs more than
            ``MAX_FRAMES_PER_CALL`` frames per call.
    """
    if "min_buffer_size" not in info.attributes:
        return frames_per_call
    value = info.attributes["min_buffer_size"]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(
            f"{info.path}: attribute min_buffer_size = {value!r} is not a positive whole number of samples"
        )
    frames = frames_per_call * -(-value // (frames_per_call * info.ratio))
    if frames > MAX_FRAMES_PER_CALL:
        raise ModelError(
            f"{info.path}: min_buffer_size {value} needs {frames} latent frames per decode call "
            f"(ratio {info.ratio}, in multiples of frames_per_call {frames_per_call}); "
            f"at most {MAX_FRAMES_PER_CALL} are allowed"
        )
    return frames


def rng_state(seed: int) -> object:
    """A fresh state of torch's random generator seeded with ``seed`` (opaque; for ``LoadedModel.call``)."""
    return torch.Generator().manual_seed(seed % 2**64).get_state()


def read_info(path: Path, method: str = "decode") -> ModelInfo:
    """Load a model file and read its contract.

    Raises:
        ModelError: missing file, not TorchScript, no such method, malformed params, no sample rate.
    """
    path = Path(path)
    return _build_info(_load_module(path), path, method)


class LoadedModel:
    """A loaded model, ready to decode numpy latents into numpy audio.

    Not thread-safe: one caller at a time (a streaming model's state belongs to one stream per row).

    Args:
        path: the ``.ts`` file.
        method: the method a voice uses.
        max_batch: most batch rows per call (a streaming model also caps this at its state's rows).

    Raises:
        ModelError: as ``read_info``.
    """

    def __init__(self, path: Path, method: str = "decode", max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.path = Path(path)
        self._module = _load_module(self.path)
        self.info = _build_info(self._module, self.path, method)
        self._method = getattr(self._module, method)
        self.max_batch = min(max_batch, self.info.cache_rows) if self.info.cache_rows else max_batch
        # Streaming caches are not zero after load: reset restores this snapshot of every buffer.
        with torch.no_grad():
            self._snapshot = {name: buf.detach().clone() for name, buf in self._module.named_buffers()}
        full = self.info.full_latent_size
        self._max_in_channels = (
            full if full is not None and not self.info.conditioning else self.info.in_channels
        )

    # --- decoding ----------------------------------------------------------------------------------

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        info = self.info
        if z.ndim != 3:
            raise ModelError(
                f"{self.path}: {info.method} expects z of shape [batch, {info.in_channels}, n_frames], "
                f"got shape {z.shape}"
            )
        batch, channels, n_frames = z.shape
        if not info.in_channels <= channels <= self._max_in_channels:
            allowed = (
                f"{info.in_channels}"
                if self._max_in_channels == info.in_channels
                else f"{info.in_channels}..{self._max_in_channels}"
            )
            detail = (
                f" ({info.latent_size} latent + {len(info.conditioning)} conditioning)"
                if info.conditioning
                else ""
            )
            raise ModelError(
                f"{self.path}: {info.method} expects {allowed} input channels{detail}, got {channels}"
            )
        if batch < 1 or n_frames < 1:
            raise ModelError(f"{self.path}: z needs at least one row and one frame, got shape {z.shape}")
        if batch > self.max_batch:
            kind = (
                f"a streaming model keeps state for {self.max_batch} rows"
                if self.info.streaming
                else (f"max_batch is {self.max_batch}")
            )
            raise ModelError(f"{self.path}: {batch} batch rows requested, {kind}")
        return z

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decode latents into audio.

        Batch rows are positional: row i of this call continues streaming state row i, so a voice must
        keep its row for the model's lifetime. RAVE variational exports fill the dims between the
        channels passed and ``full_latent_size`` with ``torch.randn``: seed torch (``torch.manual_seed``)
        and keep the call order, or pass all ``full_latent_size`` dims, for repeatable output.

        Args:
            z: float32 ``[batch, in_channels, n_frames]`` (up to ``full_latent_size`` channels for
                variational RAVE exports).

        Returns:
            float32 ``[batch, n_channels, n_frames * ratio]``.

        Raises:
            ModelError: wrong shape or too many rows, the model failed, or it returned the wrong shape.
        """
        z = self._check_z(z)
        with torch.inference_mode():
            try:
                y = self._method(torch.from_numpy(z))
            except RuntimeError as exc:
                raise ModelError(
                    f"{self.path}: {self.info.method} failed on z of shape {z.shape}: {exc}"
                ) from exc
        expected = (z.shape[0], self.info.n_channels, z.shape[2] * self.info.ratio)
        if tuple(y.shape) != expected:
            raise ModelError(
                f"{self.path}: {self.info.method} returned shape {tuple(y.shape)} for z of shape {z.shape}; "
                f"expected {expected} = [batch, n_channels, n_frames * ratio]"
            )
        return np.ascontiguousarray(y.numpy(), dtype=np.float32)

    def warm_up(self, batch: int, n_frames: int, calls: int = 3, guard_rng: bool = True) -> None:
        """Decode zeros ``calls`` times (the first calls are slow), check the output, then reset.

        A variational decoder gets all ``full_latent_size`` dims, so it draws nothing from torch's
        random generator; with ``guard_rng`` the generator is also restored afterwards (for models that
        draw anyway). A thread loading beside a running engine passes ``guard_rng=False``: restoring
        there would rewind the engine's own draws.

        Raises:
            ModelError: wrong output shape, or NaN/Inf in the output.
        """
        channels = self.info.in_channels
        full = self.info.full_latent_size
        if full and not self.info.conditioning and full > channels:
            channels = full
        z = np.zeros((batch, channels, n_frames), dtype=np.float32)
        rng_state = torch.get_rng_state() if guard_rng else None
        try:
            for call in range(max(1, calls)):
                y = self.decode(z)
                if not np.isfinite(y).all():
                    bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
                    raise ModelError(
                        f"{self.path}: {self.info.method} returned {bad} NaN/Inf samples at warm-up call "
                        f"{call + 1} (z of zeros, shape {z.shape}); the model is broken or needs other inputs"
                    )
        finally:
            if rng_state is not None:
                torch.set_rng_state(rng_state)
            self.reset()

    def reset(self) -> None:
        """Restore every buffer to its state right after load (streaming caches included)."""
        with torch.inference_mode():
            for name, buf in self._module.named_buffers():
                saved = self._snapshot.get(name)
                if saved is None:
                    continue
                if buf.shape == saved.shape and buf.dtype == saved.dtype:
                    buf.copy_(saved)
                else:
                    owner_name, _, leaf = name.rpartition(".")
                    owner: Any = self._module.get_submodule(owner_name) if owner_name else self._module
                    owner._c.setattr(leaf, saved.clone())

    # --- attributes and encoding -------------------------------------------------------------------

    def set_attribute(self, name: str, value: object) -> None:
        """Set a model attribute through ``set_<name>``.

        Raises:
            ModelError: unknown attribute (the valid ones are listed), wrong type, or the model refused.
        """
        valid = list(self.info.attributes)
        if name not in valid or not _has_method(self._module, f"set_{name}"):
            listed = ", ".join(valid) if valid else "none"
            raise ModelError(f"{self.path}: unknown attribute {name!r}; valid attributes: {listed}")
        setter = getattr(self._module, f"set_{name}")
        try:
            try:
                result = setter(value)
            except RuntimeError:
                if isinstance(value, int) and not isinstance(value, bool):
                    result = setter(float(value))  # TorchScript does not widen int to float by itself
                else:
                    raise
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: attribute {name!r} = {value!r} refused: {reason}") from exc
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            current = self.info.attributes.get(name)
            raise ModelError(
                f"{self.path}: attribute {name!r} = {value!r} refused by the model (set_{name} returned "
                f"{result}); current value {current!r}"
            )
        if _has_method(self._module, f"get_{name}"):
            self.info.attributes[name] = _get_attribute(self._module, name)

    def call(self, method: str, x: np.ndarray, rng_state: object | None = None) -> tuple[np.ndarray, object]:
        """Call any method of the model on ``x`` [batch, in_channels, frames] (e.g. a prior's).

        Args:
            method: a method the model lists, with a ``<method>_params`` buffer.
            x: float32 input; its length is counted at the method's ``in_ratio``.
            rng_state: torch's random-generator state to run the method with (see :func:`rng_state`), so a
                model that samples (a prior) is repeatable per caller; None uses the global generator.

        Returns:
            The output ``[batch, out_channels, frames * in_ratio / out_ratio]`` and the generator state
            after the call (pass it to the next call), or None when ``rng_state`` was None.

        Raises:
            ModelError: no such method, the input has the wrong shape, or the method failed.
        """
        params = self.info.params.get(method)
        if method not in self.info.methods or params is None:
            raise ModelError(
                f"{self.path}: no usable method {method!r}; methods with params: "
                f"{', '.join(self.info.params) or 'none'}"
            )
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != params.in_channels or x.shape[0] > self.max_batch:
            raise ModelError(
                f"{self.path}: {method} expects input of shape [batch <= {self.max_batch}, "
                f"{params.in_channels}, frames], got shape {x.shape}"
            )
        saved = torch.get_rng_state() if rng_state is not None else None
        try:
            if rng_state is not None:
                torch.set_rng_state(rng_state)  # type: ignore[arg-type]
            with torch.inference_mode():
                y = getattr(self._module, method)(torch.from_numpy(x))
            after = torch.get_rng_state() if rng_state is not None else None
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: {method} failed on input of shape {x.shape}: {exc}") from exc
        finally:
            if saved is not None:
                torch.set_rng_state(saved)
        expected = (x.shape[0], params.out_channels, x.shape[2] * params.in_ratio // params.out_ratio)
        if tuple(y.shape) != expected:
            raise ModelError(
                f"{self.path}: {method} returned shape {tuple(y.shape)} for input {x.shape}; "
                f"expected {expected}"
            )
        return np.ascontiguousarray(y.numpy(), dtype=np.float32), after

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Encode audio ``[batch, channels, samples]`` into latents ``[batch, latent_size, n_frames]``.

        ``samples`` must be a multiple of the encoder's ratio (``encode_params[3]``).

        Raises:
            ModelError: the model has no ``encode`` method, or the audio has the wrong shape.
        """
        params = self.info.params.get("encode")
        if "encode" not in self.info.methods or params is None:
            raise ModelError(
                f"{self.path}: the model has no usable encode method; methods found: "
                f"{', '.join(self.info.methods) or 'none'}"
            )
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 3 or audio.shape[1] != params.in_channels:
            raise ModelError(
                f"{self.path}: encode expects audio of shape [batch, {params.in_channels}, samples], "
                f"got shape {audio.shape}"
            )
        hop = params.out_ratio
        if audio.shape[2] < hop or audio.shape[2] % hop:
            raise ModelError(
                f"{self.path}: encode needs a multiple of {hop} samples (one latent frame each), "
                f"got {audio.shape[2]}; pad or trim the audio"
            )
        if audio.shape[0] > self.max_batch:
            raise ModelError(f"{self.path}: {audio.shape[0]} batch rows requested, at most {self.max_batch}")
        with torch.inference_mode():
            try:
                z = self._module.encode(torch.from_numpy(audio))
            except RuntimeError as exc:
                raise ModelError(
                    f"{self.path}: encode failed on audio of shape {audio.shape}: {exc}"
                ) from exc
        return np.ascontiguousarray(z.numpy(), dtype=np.float32)

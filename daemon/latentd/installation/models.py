"""The model host: a loaded nn~ model that decodes numpy latents into numpy audio.

:class:`LoadedModel` decodes, warms up, resets its streaming state, sets attributes and calls other
methods (a prior's, ``encode``). Loading the file and reading its contract is
:mod:`latentd.installation.torchscript`; :func:`check_audio_method` and :func:`frames_per_call_for` are
what a voice asks of a ``ModelInfo``.
"""

from pathlib import Path

import numpy as np
import torch

from latentd.installation.errors import ModelError
from latentd.installation.torchscript import (
    CALL_ERRORS,
    MethodParams,
    MissingSampleRate,
    ModelInfo,
    buffer_snapshot,
    build_info,
    get_attribute,
    has_method,
    load_module,
    read_info,
    restore_buffers,
    setter_arguments,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "MAX_FRAMES_PER_CALL",
    "LoadedModel",
    "MethodParams",
    "MissingSampleRate",
    "ModelError",
    "ModelInfo",
    "check_audio_method",
    "frames_per_call_for",
    "read_info",
    "rng_state",
]

DEFAULT_MAX_BATCH = 64
MAX_FRAMES_PER_CALL = 256  # beyond this a model's minimum buffer would add seconds of latency


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


def _as_argument(value: object, kind: str) -> object:
    """``value`` as a setter of argument type ``kind`` takes it (TorchScript does not widen int to float)."""
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def rng_state(seed: int) -> object:
    """A fresh state of torch's random generator seeded with ``seed`` (opaque; for ``LoadedModel.call``)."""
    return torch.Generator().manual_seed(seed % 2**64).get_state()


class LoadedModel:
    """A loaded model, ready to decode numpy latents into numpy audio.

    Not thread-safe: one caller at a time (a streaming model's state belongs to one stream per row).

    Args:
        path: the ``.ts`` file.
        method: the method a voice uses.
        max_batch: most batch rows per call (a streaming model also caps this at its state's rows).
        sr: the sample rate the model plays at instead of its own (``[models.<name>] samplerate``);
            needed when the model declares none (vschaos2).

    Raises:
        ModelError: as ``read_info`` (``MissingSampleRate`` when no sample rate is known).
    """

    def __init__(
        self,
        path: Path,
        method: str = "decode",
        max_batch: int = DEFAULT_MAX_BATCH,
        *,
        sr: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._sr = sr
        self._module = load_module(self.path)
        self.info = build_info(self._module, self.path, method, sr=sr)
        # Attributes set through set_attribute: those in force at the last good decode are what a
        # reloaded copy gets back (one set since then may be what broke the model).
        self._settings: dict[str, object] = {}
        self._good_settings: dict[str, object] = {}
        self._method = getattr(self._module, method)
        self.max_batch = min(max_batch, self.info.cache_rows) if self.info.cache_rows else max_batch
        self._snapshot = buffer_snapshot(self._module)
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
            except CALL_ERRORS as exc:
                raise ModelError(
                    f"{self.path}: {self.info.method} failed on z of shape {z.shape}: {exc}"
                ) from exc
        expected = (z.shape[0], self.info.n_channels, z.shape[2] * self.info.ratio)
        if tuple(y.shape) != expected:
            raise ModelError(
                f"{self.path}: {self.info.method} returned shape {tuple(y.shape)} for z of shape {z.shape}; "
                f"expected {expected} = [batch, n_channels, n_frames * ratio]"
            )
        if len(self._good_settings) != len(self._settings) or self._good_settings != self._settings:
            self._good_settings = dict(self._settings)
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
        restore_buffers(self._module, self._snapshot)

    def buffers(self) -> dict[str, torch.Tensor]:
        """A copy of every buffer now (the streaming caches): the model's part of an engine checkpoint."""
        return buffer_snapshot(self._module)

    def set_buffers(self, buffers: dict[str, torch.Tensor]) -> None:
        """Put back what :meth:`buffers` returned."""
        restore_buffers(self._module, buffers)

    # --- attributes and encoding -------------------------------------------------------------------

    def set_attribute(self, name: str, value: object) -> None:
        """Set a model attribute through ``set_<name>``.

        Raises:
            ModelError: unknown attribute (the valid ones are listed), read-only (a setter that takes no
                value, like vschaos2's ``set_min_buffer_size()``), wrong type, or the model refused.
        """
        valid = list(self.info.attributes)
        arguments = setter_arguments(self._module, name)
        if name not in valid or arguments is None:
            listed = ", ".join(valid) if valid else "none"
            raise ModelError(f"{self.path}: unknown attribute {name!r}; valid attributes: {listed}")
        current = self.info.attributes.get(name)
        if not arguments:
            raise ModelError(
                f"{self.path}: attribute {name!r} is read-only (the model's set_{name}() takes no value); "
                f"current value {current!r}"
            )
        value = _as_argument(value, arguments[0])
        if arguments[0] == "str" and not isinstance(value, str):
            raise ModelError(f"{self.path}: attribute {name!r} takes a string, got {value!r}")
        setter = getattr(self._module, f"set_{name}")
        try:
            result = setter(value)
        except CALL_ERRORS as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: attribute {name!r} = {value!r} refused: {reason}") from exc
        if isinstance(result, int) and not isinstance(result, bool) and result != 0:
            raise ModelError(
                f"{self.path}: attribute {name!r} = {value!r} refused by the model (set_{name} returned "
                f"{result}); current value {current!r}"
            )
        self._settings[name] = value
        if has_method(self._module, f"get_{name}"):
            self.info.attributes[name] = get_attribute(self._module, name)

    def reprime(self, batch: int) -> str:
        """Clear the state a failed call leaves behind, as vschaos2 needs after a failed ``forward``.

        vschaos2's ``decode`` fails after a failed call until a successful ``encode`` or
        ``set_inversion_mode(...)``: set ``inversion_mode`` to its current value when the model has
        it, else encode ``batch`` rows of silence.

        Returns:
            What was done (for the log).

        Raises:
            ModelError: neither is possible, or the call failed.
        """
        mode = self.info.attributes.get("inversion_mode")
        if isinstance(mode, str) and setter_arguments(self._module, "inversion_mode") == ["str"]:
            try:
                self._module.set_inversion_mode(mode)
            except CALL_ERRORS as exc:
                raise ModelError(f"{self.path}: set_inversion_mode({mode!r}) failed: {exc}") from exc
            return f"set_inversion_mode({mode!r})"
        params = self.info.params.get("encode")
        if "encode" not in self.info.methods or params is None:
            raise ModelError(f"{self.path}: no way to re-prime (no inversion_mode, no encode)")
        batch = max(1, min(batch, self.max_batch))
        self.encode(np.zeros((batch, params.in_channels, params.out_ratio), dtype=np.float32))
        return "encode(silence)"

    def reloaded(self) -> tuple["LoadedModel", dict[str, object]]:
        """A fresh copy of this model from its file, with the attributes in force at its last good decode.

        Returns:
            The copy and the attributes set since that decode, which it does not get (one of them may
            be what broke this instance).

        Raises:
            ModelError: the file no longer loads, or an attribute is refused.
        """
        fresh = LoadedModel(self.path, self.info.method, self.max_batch, sr=self._sr)
        for name, value in self._good_settings.items():
            fresh.set_attribute(name, value)
        good = self._good_settings
        dropped = {k: v for k, v in self._settings.items() if k not in good or good[k] != v}
        return fresh, dropped

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
        except CALL_ERRORS as exc:
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
            except CALL_ERRORS as exc:
                raise ModelError(
                    f"{self.path}: encode failed on audio of shape {audio.shape}: {exc}"
                ) from exc
        return np.ascontiguousarray(z.numpy(), dtype=np.float32)

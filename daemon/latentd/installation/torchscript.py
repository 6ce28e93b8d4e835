"""TorchScript: loads nn~-format model files and reads their contract into a ``ModelInfo``.

This is the only module that loads, scripts or saves TorchScript, or looks inside a scripted module.
Everything else sees a ``ModelInfo`` (what the model is) and a
:class:`~latentd.installation.models.LoadedModel` (numpy in, numpy out).

The contract is read from the file, never guessed:

- methods from ``get_methods()``, or, for RAVE v1 exports without it, every scripted method that has a
  ``<method>_params`` buffer (as nn~ does);
- ``<method>_params = [in_channels, in_ratio, out_channels, out_ratio]``;
- sample rate from ``get_sample_rate()``, else the ``sr`` or ``sampling_rate`` attribute/buffer; vschaos2
  exports declare none (``sr`` None, ``get_sample_rate()`` -1): the host passes the rate it was trained at
  (``[models.<name>] samplerate``), which may also override a declared one;
- latent size from the ``latent_size`` (RAVE) or ``latent_dim`` (vschaos2) attribute/buffer: decode input
  channels beyond it are conditioning inputs, named after their labels; a label ending in ``(0-12)`` gives
  the input's integer range, upper bound exclusive (vschaos2 truncates each value and fails outside it);
- setters' signatures: a ``set_<name>()`` without a value (vschaos2's ``min_buffer_size``) is read-only;
- streaming: the model keeps state per batch row in buffers named like cached convolutions (a leaf name
  ending in ``pad`` or containing ``cache``) whose first dimension is the number of batch rows.
"""

import re
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentd.installation.errors import ModelError
from latentd.runtime.process import quiet_torchscript
from latentd.tempo import INFO_K_MAX, tempo_table

#: What a failing TorchScript call raises: torch operations raise RuntimeError, a scripted ``raise``
#: surfaces as ``torch.jit.Error`` (not a RuntimeError).
CALL_ERRORS: tuple[type[Exception], ...] = (RuntimeError, torch.jit.Error)


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
        sr: the sample rate in force in Hz: the configured one, else the model's own; 0 only in an
            info read for inspection of a model that declares none and was given none.
        n_channels: output channels of the method (audio channels for ``decode``).
        conditioning: names of extra inputs after the latent dims (vschaos2 style), from their labels
            (``"(signal) pitch label (0-12)"`` -> ``"pitch"``); ``()`` for RAVE.
        input_labels: ``<method>_input_labels`` when the model has them, else ``latent_0``...
        streaming: the model keeps state per batch row between calls (cached convolutions).
        attributes: ``get_attributes()`` names -> value from ``get_<name>()`` (``repr`` of the error if
            the getter fails, None if there is no getter).
        cache_rows: batch rows of the streaming state (RAVE: 64); None when not streaming.
        declared_sr: the sample rate the file declares, None when it declares none (vschaos2).
        conditioning_ranges: per conditioning input, its integer range ``(low, high)`` with ``high``
            exclusive, read from its label (``"(signal) pitch label (0-12)"`` -> ``(0, 12)``); None when
            the label gives none.
        read_only: attributes whose setter takes no value (``set_min_buffer_size()``).
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
    declared_sr: int | None = None
    conditioning_ranges: tuple[tuple[int, int] | None, ...] = ()
    read_only: frozenset[str] = frozenset()

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
        return [(k, one) for k, one, _ in tempo_table(self.sr, self.ratio, INFO_K_MAX)]


def load_module(path: Path) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found (expected a TorchScript .ts file exported for nn~)")
    if not path.is_file():
        raise ModelError(f"{path}: not a file (expected a TorchScript .ts file exported for nn~)")
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: not a TorchScript archive ({reason[:160]}); expected a .ts file exported for nn~ "
            "(e.g. with `rave export` or vschaos2's export script)"
        ) from exc
    module.eval()
    return module


def script_module(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """Compile ``module`` to TorchScript (the model builders of :mod:`latentd.modelkit` export this way)."""
    with quiet_torchscript():
        return torch.jit.script(module)


def save_module(
    module: torch.jit.ScriptModule, path: Path, extra_files: dict[str, str] | None = None
) -> None:
    """Write a scripted module to ``path``, with ``extra_files`` stored inside the archive."""
    with quiet_torchscript():
        torch.jit.save(module, str(path), _extra_files=extra_files or {})


def has_method(module: torch.jit.ScriptModule, name: str) -> bool:
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
    if has_method(module, "get_methods"):
        return [str(m) for m in module.get_methods()]
    # RAVE v1 exports have no get_methods: as nn~ does, keep every method that has a *_params buffer.
    return [str(n) for n in module._c._method_names() if module._c.hasattr(f"{n}_params")]


class MissingSampleRate(ModelError):
    """The model declares no sample rate and none was given (the host must know the rate it plays)."""


def _read_sr(module: torch.jit.ScriptModule) -> int | None:
    """The sample rate the file declares, or None (vschaos2: ``sr`` None, ``get_sample_rate()`` -1)."""
    candidates = []
    if has_method(module, "get_sample_rate"):
        with suppress(RuntimeError, torch.jit.Error):
            candidates.append(module.get_sample_rate())
    candidates += [_attr(module, "sr"), _attr(module, "sampling_rate")]
    for value in candidates:
        sr = _as_int(value)
        if sr is not None and sr > 0:
            return sr
    return None


def _no_sample_rate(path: Path) -> MissingSampleRate:
    return MissingSampleRate(
        f"{path}: the model declares no sample rate (get_sample_rate() gives none, `sr` and "
        "`sampling_rate` are unset; vschaos2 exports are like this); nn~ plays it at the host's rate, but "
        "latentd must know the rate the model was trained at to time its latent frames and resample its "
        "audio to the output: set `samplerate = <Hz>` in its [models.<name>] table (e.g. 44100)"
    )


_RANGE = re.compile(r"\((-?\d+)\s*-\s*(-?\d+)\)\s*$")


def _label_range(label: str) -> tuple[int, int] | None:
    """``"(signal) pitch label (0-12)"`` -> ``(0, 12)``: an integer range, upper bound exclusive."""
    found = _RANGE.search(label.strip())
    if found is None:
        return None
    low, high = int(found.group(1)), int(found.group(2))
    return (low, high) if high > low else None


def setter_arguments(module: torch.jit.ScriptModule, name: str) -> list[str] | None:
    """Argument types of ``set_<name>`` without ``self`` (``["float"]``), or None when there is no setter."""
    if not has_method(module, f"set_{name}"):
        return None
    try:
        schema = module._c._get_method(f"set_{name}").schema
    except (RuntimeError, AttributeError):
        return None
    return [str(arg.type) for arg in schema.arguments[1:]]


def _clean_label(label: str) -> str:
    """``"(signal) pitch label (0-12)"`` -> ``"pitch"``: the name a config can refer to."""
    text = re.sub(r"^\(\w+\)\s*", "", label.strip())
    text = re.split(r"\s+label\b", text, maxsplit=1)[0].strip()
    return text or label


def _read_attributes(module: torch.jit.ScriptModule) -> dict[str, object]:
    if not has_method(module, "get_attributes"):
        return {}
    values: dict[str, object] = {}
    for name in module.get_attributes():
        name = str(name)
        if not has_method(module, f"get_{name}"):
            values[name] = None
            continue
        values[name] = get_attribute(module, name)
    return values


def get_attribute(module: torch.jit.ScriptModule, name: str) -> object:
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


def build_info(
    module: torch.jit.ScriptModule,
    path: Path,
    method: str,
    *,
    sr: int | None = None,
    require_sr: bool = True,
) -> ModelInfo:
    """Read the contract of a loaded module.

    Args:
        module: the loaded model.
        path: its file (messages name it).
        method: the method a voice uses.
        sr: the sample rate to use instead of the model's own (``[models.<name>] samplerate``).
        require_sr: refuse a model that declares no sample rate when ``sr`` is None; without it (for
            inspection) such an info has ``sr`` 0.

    Raises:
        ModelError: no such method, malformed params; ``MissingSampleRate`` when no rate is known and
            ``require_sr``.
    """
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
    declared_sr = _read_sr(module)
    if sr is None and declared_sr is None and require_sr:
        raise _no_sample_rate(path)
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
    ranges = tuple(_label_range(lbl) for lbl in labels[latent_size:])

    full = _as_int(_attr(module, "full_latent_size"))
    if full is None:
        pca = _attr(module, "latent_pca")
        if isinstance(pca, torch.Tensor) and pca.dim() == 2 and pca.shape[0] == pca.shape[1]:
            full = int(pca.shape[0])
    if full is not None and full < latent_size:
        full = None

    rows = _streaming_rows(module)
    attributes = _read_attributes(module)
    return ModelInfo(
        path=path,
        methods=tuple(methods),
        params=params,
        method=method,
        latent_size=latent_size,
        full_latent_size=full,
        ratio=found.in_ratio,
        sr=sr if sr is not None else (declared_sr or 0),
        n_channels=found.out_channels,
        conditioning=conditioning,
        input_labels=tuple(labels),
        streaming=rows is not None,
        attributes=attributes,
        cache_rows=rows,
        declared_sr=declared_sr,
        conditioning_ranges=ranges,
        read_only=frozenset(name for name in attributes if setter_arguments(module, name) == []),
    )


def read_info(
    path: Path, method: str = "decode", *, sr: int | None = None, require_sr: bool = True
) -> ModelInfo:
    """Load a model file and read its contract (``sr`` and ``require_sr`` as in :func:`build_info`).

    Raises:
        ModelError: missing file, not TorchScript, no such method, malformed params, no sample rate.
    """
    path = Path(path)
    return build_info(load_module(path), path, method, sr=sr, require_sr=require_sr)


def buffer_snapshot(module: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """A copy of every buffer (streaming caches are not zero after load: this is what reset restores)."""
    with torch.no_grad():
        return {name: buf.detach().clone() for name, buf in module.named_buffers()}


def restore_buffers(module: torch.jit.ScriptModule, snapshot: dict[str, torch.Tensor]) -> None:
    """Put every buffer back as :func:`buffer_snapshot` found it (a resized one is replaced whole)."""
    with torch.inference_mode():
        for name, buf in module.named_buffers():
            saved = snapshot.get(name)
            if saved is None:
                continue
            if buf.shape == saved.shape and buf.dtype == saved.dtype:
                buf.copy_(saved)
            else:
                owner_name, _, leaf = name.rpartition(".")
                owner: Any = module.get_submodule(owner_name) if owner_name else module
                owner._c.setattr(leaf, saved.clone())

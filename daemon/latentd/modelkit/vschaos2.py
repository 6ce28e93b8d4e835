"""A stand-in for vschaos2 exports: an ``nn_tilde.Module`` with the same interface and behaviour.

Users' vschaos2 files (a spectral VAE conditioned on pitch and octave, exported by vschaos2's own script,
which builds an ``nn_tilde.Module`` and scripts it) cannot be stored here, so the tests use this small
original model instead. Seen with plain ``torch.jit.load``, it reproduces the contract measured on a real
export (``../shared/models/README.md``):

- ``get_methods()`` = encode, decode, forward; ``encode_params = [1, 1, 8, 512]``,
  ``decode_params = [10, 512, 1, 1]`` (8 latent dims, then pitch and octave); 1 output channel;
  ``forward_params = [3, 1, 1, 1]`` (audio, pitch, octave); a ``latent_dim`` attribute (8), as vschaos2's
  export sets.
- ``decode_input_labels``: ``(signal) latent dim 1`` … ``(signal) latent dim 8``,
  ``(signal) pitch label (0-12)``, ``(signal) octave label (0-9)``. The bounds are exclusive: pitch 0..11
  (A = 0), octave 0..8, read per frame and truncated (11.7 -> 11); pitch 12 or -1, octave 9 raise inside
  the model, and so does passing only the latent dims.
- No sample rate: ``sr`` is None and ``get_sample_rate()`` returns -1 (the synth assumes 44100 Hz).
- Attributes: ``inversion_mode`` (str, ``keep_input``; any name is accepted with 0, but decoding then
  works only in ``keep_input``: ``griffin_lim`` makes every later decode raise), ``temperature`` (float,
  0.0; negative refused with -1), ``dimred`` (``none``, ``PCA``, ``ICA``, ``spherical``; others refused
  with -1), ``min_buffer_size`` (read-only: ``set_min_buffer_size()`` takes no argument, returns -1).
- ``decode`` is stateful: an overlap-add (window 2048, hop 512) keeps the last 1536 samples between
  calls, and a change of batch size resets that state to zeros. With no prior ``encode`` (or after
  ``set_inversion_mode``), ``keep_input`` draws ``torch.rand_like`` phase: seed torch for repeatable audio.
  After an ``encode`` it continues the phase of the last analysed frame instead.
- ``forward`` (audio, pitch, octave in) always fails (``Tensors must have same number of dimensions``),
  and it leaves the kept input phase half-written: every later ``decode`` raises until a successful
  ``encode`` or ``set_inversion_mode(...)``.
- Every failure is a ``RuntimeError`` raised by a torch operation (a scripted ``raise`` would surface as
  ``torch.jit.Error``, which is not a ``RuntimeError``).

``min_buffer_size`` defaults to 4096 (nn~'s default buffer); the value in real exports is not recorded.
Needs the ``nn-tilde`` package, a development dependency: import this module directly, not through
:mod:`latentd.modelkit`.

The sound: the latents (after the ``dimred`` un-projection) and the one-hot labels go through a tiny
seeded network that shapes a spectral envelope, a loudness and a noise floor; pitch and octave place a
harmonic comb at ``27.5 Hz * 2**(octave + pitch / 12)``; frames are inverted with an inverse FFT and
overlap-added, then soft-clipped into [-1, 1]. It costs well under a millisecond per frame.
"""

import math
import warnings
from pathlib import Path

import nn_tilde
import torch
from torch import Tensor
from torch.nn import functional as F

from latentd.atomic import replacing
from latentd.installation.torchscript import save_module, script_module

N_FFT = 2048
HOP = 512
N_BINS = N_FFT // 2 + 1
TAIL = N_FFT - HOP  # samples an overlap-add carries from one call to the next
N_PITCHES = 12
N_OCTAVES = 9
ASSUMED_SR = 44100.0  # the rate the synth is written for; the file does not say it, as in vschaos2
A0_HZ = 27.5
N_BASIS = 8
HIDDEN = 32
ENVELOPE_DB = 12.0
LEVEL = 500.0  # spectrum norm at full loudness: an output RMS of about 0.15 before the soft clip
DIMREDS = ("PCA", "ICA", "spherical")


def _envelope_basis() -> Tensor:
    """Cosines over log frequency (20 Hz .. Nyquist), one row per basis function: [N_BASIS, N_BINS]."""
    hz = torch.arange(N_BINS, dtype=torch.float64) * ASSUMED_SR / N_FFT
    span = math.log2(ASSUMED_SR / 2.0 / 20.0)
    u = torch.clamp(torch.log2(torch.clamp(hz, min=20.0) / 20.0) / span, 0.0, 1.0)
    j = torch.arange(N_BASIS, dtype=torch.float64).unsqueeze(1)
    return torch.cos(math.pi * j * u.unsqueeze(0)).to(torch.float32)


def _orthogonal(n: int, gen: torch.Generator) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(torch.float32)


class SpectralStandin(nn_tilde.Module):
    """The stand-in model (see the module docstring); build and save it with :func:`build_vschaos2_standin`.

    Args:
        latent_size: latent dims before the two label inputs.
        seed: seeds every fixed weight (never torch's global generator).
        min_buffer_size: value of the read-only ``min_buffer_size`` attribute, in samples.
    """

    inversion_mode: tuple[str]
    temperature: tuple[float]
    dimred: tuple[str]
    min_buffer_size: tuple[int]
    ola_tail: Tensor
    analysis_tail: Tensor
    input_phase: Tensor
    window: Tensor
    bin_hz: Tensor
    basis: Tensor
    w_hidden: Tensor
    b_hidden: Tensor
    w_head: Tensor
    b_head: Tensor
    w_analysis: Tensor
    latent_mean: Tensor
    pca_basis: Tensor
    ica_mixing: Tensor
    ica_unmixing: Tensor

    def __init__(self, latent_size: int = 8, seed: int = 0, min_buffer_size: int = 4096) -> None:
        super().__init__(sr=None)
        gen = torch.Generator().manual_seed(seed)
        self.latent_dim = latent_size
        # Inversions that run in real time; another ``inversion_mode`` is accepted but cannot decode.
        self.inversions = {"keep_input": 0}
        # TorchScript reads no module-level numbers: the scripted methods see these copies.
        self.n_fft = N_FFT
        self.hop = HOP
        self.n_bins = N_BINS
        self.tail = TAIL
        self.n_pitches = N_PITCHES
        self.n_octaves = N_OCTAVES
        self.n_basis = N_BASIS
        self.assumed_sr = ASSUMED_SR
        self.a0_hz = A0_HZ
        self.envelope_db = ENVELOPE_DB
        self.level = LEVEL
        self.dimreds = list(DIMREDS)
        n_in = latent_size + N_PITCHES + N_OCTAVES
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True))
        self.register_buffer("bin_hz", torch.arange(N_BINS, dtype=torch.float32) * (ASSUMED_SR / N_FFT))
        self.register_buffer("basis", _envelope_basis())
        self.register_buffer("w_hidden", torch.randn(n_in, HIDDEN, generator=gen) * 1.5 / math.sqrt(n_in))
        self.register_buffer("b_hidden", torch.randn(HIDDEN, generator=gen) * 0.1)
        self.register_buffer("w_head", torch.randn(HIDDEN, N_BASIS + 2, generator=gen) / math.sqrt(HIDDEN))
        self.register_buffer("b_head", torch.tensor([0.0] * N_BASIS + [1.0, -1.0]))
        self.register_buffer("w_analysis", torch.randn(N_BASIS, latent_size, generator=gen) * 0.5)
        self.register_buffer("latent_mean", torch.randn(latent_size, generator=gen) * 0.1)
        self.register_buffer("pca_basis", _orthogonal(latent_size, gen))
        mixing = _orthogonal(latent_size, gen) * torch.linspace(0.5, 1.5, latent_size).unsqueeze(0)
        self.register_buffer("ica_mixing", mixing)
        self.register_buffer("ica_unmixing", torch.linalg.inv(mixing))
        self.register_buffer("ola_tail", torch.zeros(1, TAIL))
        self.register_buffer("analysis_tail", torch.zeros(1, TAIL))
        self.register_buffer("input_phase", torch.zeros(0))

        # Attributes first: registering a method tries it, and decoding reads them.
        self.register_attribute("inversion_mode", "keep_input")
        self.register_attribute("temperature", 0.0)
        self.register_attribute("dimred", "none")
        self.register_attribute("min_buffer_size", min_buffer_size)

        latents = [f"(signal) latent dim {i + 1}" for i in range(latent_size)]
        labels = [f"(signal) pitch label (0-{N_PITCHES})", f"(signal) octave label (0-{N_OCTAVES})"]
        audio = ["(signal) channel 1"]
        self.register_method("encode", 1, 1, latent_size, HOP, audio, latents)
        self.register_method("decode", latent_size + 2, HOP, 1, 1, latents + labels, audio)
        with warnings.catch_warnings():
            # forward cannot be tried (it always fails); nn_tilde then logs through the deprecated
            # logging.warn.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.register_method("forward", 3, 1, 1, 1, audio + labels, audio, test_method=False)
        self.reset_state()

    def reset_state(self) -> None:
        """Forget everything calls have left behind (registering the methods tries them once)."""
        self.ola_tail = torch.zeros(1, self.tail)
        self.analysis_tail = torch.zeros(1, self.tail)
        self.input_phase = torch.zeros(0)

    # --- attributes --------------------------------------------------------------------------------

    @torch.jit.export
    def get_inversion_mode(self) -> str:
        """How spectra become audio (only ``keep_input`` decodes)."""
        return self.inversion_mode[0]

    @torch.jit.export
    def set_inversion_mode(self, inversion_mode: str) -> int:
        """Accept any name (returns 0) and forget the kept input phase."""
        self.inversion_mode = (inversion_mode,)
        self.input_phase = torch.zeros(0)
        return 0

    @torch.jit.export
    def get_temperature(self) -> float:
        """Spread of the noise ``encode`` adds to its latents (0: none)."""
        return self.temperature[0]

    @torch.jit.export
    def set_temperature(self, temperature: float) -> int:
        """Set the encoding noise; a negative value is refused (-1)."""
        if temperature < 0.0:
            return -1
        self.temperature = (temperature,)
        return 0

    @torch.jit.export
    def get_dimred(self) -> str:
        """The latent projection: ``none``, ``PCA``, ``ICA`` or ``spherical``."""
        return self.dimred[0]

    @torch.jit.export
    def set_dimred(self, dimred: str) -> int:
        """Choose the latent projection; unknown names are refused (-1)."""
        if dimred != "none" and dimred not in self.dimreds:
            return -1
        self.dimred = (dimred,)
        return 0

    @torch.jit.export
    def get_min_buffer_size(self) -> int:
        """Samples a host should pass per call."""
        return self.min_buffer_size[0]

    @torch.jit.export
    def set_min_buffer_size(self) -> int:
        """Read-only: refuses (-1)."""
        return -1

    # --- latent projections ------------------------------------------------------------------------

    def _to_sphere(self, z: Tensor) -> Tensor:
        radius = math.sqrt(float(self.latent_dim))
        return z * (radius / torch.clamp(torch.linalg.vector_norm(z, dim=-1, keepdim=True), min=1e-6))

    def _project(self, z: Tensor) -> Tensor:
        """Latents [batch, frames, latent_dim] as ``encode`` returns them under ``dimred``."""
        mode = self.dimred[0]
        if mode == "PCA":
            return (z - self.latent_mean) @ self.pca_basis.t()
        if mode == "ICA":
            return (z - self.latent_mean) @ self.ica_unmixing
        if mode == "spherical":
            return self._to_sphere(z - self.latent_mean)
        return z

    def _unproject(self, z: Tensor) -> Tensor:
        """The inverse of :meth:`_project` (``spherical`` keeps only the direction)."""
        mode = self.dimred[0]
        if mode == "PCA":
            return z @ self.pca_basis + self.latent_mean
        if mode == "ICA":
            return z @ self.ica_mixing + self.latent_mean
        if mode == "spherical":
            return self._to_sphere(z) + self.latent_mean
        return z

    # --- analysis and synthesis --------------------------------------------------------------------

    def _analyse(self, x: Tensor) -> Tensor:
        """Audio [batch, channels, samples] -> latents [batch, frames, latent_dim].

        Keeps the last frame's raw (complex) spectrum in ``input_phase``; :meth:`encode` then turns it into
        a phase. Until it does, ``decode`` fails on it.
        """
        b = x.shape[0]
        if self.analysis_tail.shape[0] != b:
            self.analysis_tail = torch.zeros(b, self.tail, dtype=x.dtype, device=x.device)
        n_frames = x.shape[-1] // self.hop
        signal = torch.cat([self.analysis_tail, x[:, 0, : n_frames * self.hop]], 1)
        self.analysis_tail = signal[:, signal.shape[1] - self.tail :].clone()
        frames = signal.unfold(1, self.n_fft, self.hop) * self.window
        spectrum = torch.fft.rfft(frames, dim=-1)
        self.input_phase = spectrum[:, -1]
        log_mag = torch.log(torch.abs(spectrum) + 1e-5)
        bands = (log_mag - log_mag.mean(-1, keepdim=True)) @ self.basis.t() / float(self.n_bins)
        z = torch.tanh(bands @ self.w_analysis) * 2.0
        z = z + self.temperature[0] * torch.randn_like(z)
        return self._project(z)

    def _magnitude(self, z: Tensor, pitch: Tensor, octave: Tensor) -> Tensor:
        """Magnitude spectra [batch, frames, bins] from latents and label indices [batch, frames]."""
        features = torch.cat(
            [
                z,
                F.one_hot(pitch, self.n_pitches).to(z.dtype),
                F.one_hot(octave, self.n_octaves).to(z.dtype),
            ],
            -1,
        )
        head = torch.tanh(features @ self.w_hidden + self.b_hidden) @ self.w_head + self.b_head
        envelope_db = self.envelope_db * (head[..., : self.n_basis] @ self.basis)
        loudness = torch.sigmoid(head[..., self.n_basis : self.n_basis + 1])
        noise_floor = 0.2 * torch.sigmoid(head[..., self.n_basis + 1 : self.n_basis + 2])
        f0 = self.a0_hz * torch.exp2(
            octave.to(z.dtype) + pitch.to(z.dtype) / float(self.n_pitches)
        ).unsqueeze(-1)
        harmonic = self.bin_hz / f0
        distance_bins = (harmonic - torch.round(harmonic)) * f0 / (self.assumed_sr / self.n_fft)
        comb = torch.exp(-0.5 * (distance_bins / 0.75) ** 2) * (harmonic >= 0.5).to(z.dtype)
        comb = comb / torch.sqrt(torch.clamp(harmonic, min=1.0))
        magnitude = torch.exp(envelope_db * (math.log(10.0) / 20.0)) * (comb + noise_floor)
        norm = torch.sqrt((magnitude * magnitude).sum(-1, keepdim=True) + 1e-12)
        return magnitude * (self.level * loudness / norm)

    def _phase(self, magnitude: Tensor) -> Tensor:
        """Phases for magnitude spectra [batch, frames, bins] in ``keep_input`` mode.

        Without a kept input phase, uniform random phases (``torch.rand_like``). With one, each row
        continues the kept phase of row ``row % kept rows``, advanced by one hop per frame so steady
        partials stay coherent, and the last frame's phase is kept for the next call.
        """
        if self.input_phase.numel() == 0:
            return 2.0 * math.pi * torch.rand_like(magnitude)
        b, n_frames, n_bins = magnitude.shape
        rows = torch.arange(b, device=magnitude.device) % self.input_phase.shape[0]
        kept = self.input_phase[rows].unsqueeze(1)
        steps = torch.arange(1, n_frames + 1, dtype=magnitude.dtype, device=magnitude.device).view(1, -1, 1)
        bins = torch.arange(n_bins, dtype=magnitude.dtype, device=magnitude.device).view(1, 1, -1)
        phase = kept + steps * bins * (2.0 * math.pi * self.hop / self.n_fft)
        self.input_phase = torch.remainder(phase[:, -1], 2.0 * math.pi)
        return phase

    def _overlap_add(self, frames: Tensor) -> Tensor:
        """Frames [batch, frames, n_fft] -> audio [batch, frames * hop], continuing the kept tail."""
        b, n_frames, _ = frames.shape
        if self.ola_tail.shape[0] != b:
            self.ola_tail = torch.zeros(b, self.tail, dtype=frames.dtype, device=frames.device)
        total = n_frames * self.hop + self.tail
        summed = F.fold(
            frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop)
        ).reshape(b, total)
        # A periodic Hann window summed at a quarter-window hop is 2 everywhere.
        summed = 0.5 * summed
        summed = torch.cat([summed[:, : self.tail] + self.ola_tail, summed[:, self.tail :]], 1)
        self.ola_tail = summed[:, n_frames * self.hop :].clone()
        return summed[:, : n_frames * self.hop]

    def _synthesise(self, z: Tensor, pitch: Tensor, octave: Tensor) -> Tensor:
        """Latents [batch, frames, latent_dim], labels [batch, frames] -> audio [batch, 1, frames * hop].

        Every failure comes from a torch operation, so hosts see a ``RuntimeError``.
        """
        # Only the inversions listed in ``inversions`` exist: another mode fails with a KeyError here.
        inversion = self.inversions[self.inversion_mode[0]]
        # Labels are read per frame and truncated; one_hot raises for values out of range.
        magnitude = self._magnitude(self._unproject(z), pitch.to(torch.long), octave.to(torch.long))
        # A raw (complex) spectrum left by a failed forward makes the phase arithmetic raise.
        phase = self._phase(magnitude) if inversion == 0 else torch.zeros_like(magnitude)
        spectrum = torch.polar(magnitude, phase)
        frames = torch.fft.irfft(spectrum, n=self.n_fft, dim=-1) * self.window
        return torch.tanh(self._overlap_add(frames)).unsqueeze(1)

    # --- nn~ methods -------------------------------------------------------------------------------

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio [batch, 1, frames * 512] -> latents [batch, latent_dim, frames]."""
        z = self._analyse(x)
        if self.input_phase.is_complex():
            self.input_phase = torch.angle(self.input_phase)
        return z.transpose(1, 2)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """Latents and labels [batch, latent_dim + 2, frames] -> audio [batch, 1, frames * 512]."""
        # Latent dims alone (or any other channel count) fail here.
        parts = z.split([self.latent_dim, 1, 1], 1)
        return self._synthesise(parts[0].transpose(1, 2), parts[1][:, 0], parts[2][:, 0])

    def forward(self, x: Tensor) -> Tensor:
        """Audio, pitch and octave in; always fails, leaving the kept input phase half-written.

        The labels are read once per call ([batch, labels]) while the latents are per frame, so joining
        them fails, as in vschaos2's own conditioned exports.
        """
        z = self._analyse(x[:, :1])
        labels = x[:, 1:].mean(-1)
        joined = torch.cat([z, labels], -1)
        n = self.latent_dim
        return self._synthesise(joined[..., :n], joined[..., n], joined[..., n + 1])


def build_vschaos2_standin(
    path: Path, *, seed: int = 0, latent_size: int = 8, min_buffer_size: int = 4096
) -> Path:
    """Build the stand-in, script it and write it to ``path`` atomically; create parent folders.

    Args:
        path: the ``.ts`` file to write.
        seed: seeds the fixed weights: the same arguments always give the same model.
        latent_size: latent dims (vschaos2's config has 8); the two label inputs follow them.
        min_buffer_size: value of the read-only ``min_buffer_size`` attribute, in samples.

    Returns:
        ``path``.

    Raises:
        ValueError: ``latent_size`` or ``min_buffer_size`` below 1.
    """
    if latent_size < 1:
        raise ValueError(f"latent_size={latent_size}: must be >= 1")
    if min_buffer_size < 1:
        raise ValueError(f"min_buffer_size={min_buffer_size}: must be >= 1")
    path = Path(path)
    # Registering the methods tries them once; keep torch's global generator as the caller left it.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = SpectralStandin(latent_size=latent_size, seed=seed, min_buffer_size=min_buffer_size)
        model.eval()
        scripted = script_module(model)
    with replacing(path, durable=False) as tmp:
        save_module(scripted, tmp)
    return path

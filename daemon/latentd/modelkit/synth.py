"""A small differentiable synth with the nn~ model contract, written to be scripted with TorchScript.

Latent dims are musical and easy to check by ear or by FFT:

- dim 0: pitch, ``f0 = base_hz * 2**z0`` (z0 clamped to ±3 octaves);
- dim 1: brightness (how slowly the harmonics roll off);
- dim 2: noise amount (``sigmoid(2*z2 - 2)``: mostly tonal at 0);
- dim 3: amplitude (``0.5 * sigmoid(2*z3)``: 0.25 at 0, clearly audible);
- dims 4 and up: gains of the upper partials through a fixed seeded projection.

A model with fewer than four dims uses the first ones and neutral values for the rest. Conditioning inputs
(vschaos2 style) follow the latent dims in ``decode``'s input channels: ``pitch_class`` (0..11, semitones
up) and ``octave`` (-3..3). Controls are interpolated linearly per sample from the previous latent frame to
the current one. Noise is a hash of a per-row sample counter, so the output is a pure function of the
input and the state: no random generator is involved.

``StreamingSynth`` keeps its state per batch row (oscillator phases, the previous frame's controls, the
sample counter) in buffers named ``*_cache``, so decoding ``z`` in blocks of any size gives the same audio as
one call on the whole of ``z``. ``Synth`` keeps none: every call starts fresh and block edges click.
"""

import math

import torch
from torch import Tensor, nn

N_PARTIALS = 16
MAX_BATCH = 64
CONDITIONING_KINDS = {"pitch_class": 0, "octave": 1}
# As vschaos2 labels them: the upper bound is exclusive (pitch_class 0..11, octave -3..3).
CONDITIONING_LABELS = {
    "pitch_class": "(signal) pitch_class label (0-12)",
    "octave": "(signal) octave label (-3-4)",
}
LATENT_NAMES = ("pitch", "brightness", "noise", "amplitude")
# Stereo: the second channel is detuned by 7 cents for a little width.
STEREO_DETUNE = 2.0 ** (7.0 / 1200.0)
_MASK32 = 0xFFFFFFFF


def upsampling_factors(ratio: int) -> list[int]:
    """Split ``ratio`` into factors of at most 8 where its prime factors allow (larger primes stay whole)."""
    primes: list[int] = []
    n, p = ratio, 2
    while p * p <= n:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    if n > 1:
        primes.append(n)
    factors: list[int] = []
    for prime in sorted(primes, reverse=True):
        for i, f in enumerate(factors):
            if f * prime <= 8:
                factors[i] = f * prime
                break
        else:
            factors.append(prime)
    return factors


class NnTildeModule(nn.Module):
    """The nn~ metadata every model here shares: its attributes, its sample rate and a ``temperature``.

    Subclasses set ``sr``, ``attributes`` and ``temperature`` (a one-element tuple, so TorchScript lets
    ``set_temperature`` replace it) and export their own ``get_methods``.
    """

    sr: int
    attributes: list[str]
    temperature: tuple[float]

    @torch.jit.export
    def get_attributes(self) -> list[str]:
        """Attributes with a getter and a setter."""
        return self.attributes

    @torch.jit.export
    def get_sample_rate(self) -> int:
        """The model's sample rate in Hz (a prior's: that of the models it feeds)."""
        return self.sr

    @torch.jit.export
    def get_temperature(self) -> float:
        """Gain of the noise (1.0 by default)."""
        return self.temperature[0]

    @torch.jit.export
    def set_temperature(self, temperature: float) -> int:
        """Set the noise gain; refuses (returns -1) a negative value, as vschaos2 does."""
        if temperature < 0.0:
            return -1
        self.temperature = (temperature,)
        return 0


class Synth(NnTildeModule):
    """Stateless synth with the nn~ contract (``encode``, ``decode``, ``forward``, ``*_params``).

    Args:
        latent_size: latent dims (>= 1).
        ratio: audio samples per latent frame.
        sr: sample rate in Hz.
        n_channels: 1 (mono) or 2 (stereo, second channel slightly detuned).
        conditioning: names of conditioning inputs after the latent dims (``pitch_class``, ``octave``).
        seed: seeds the fixed projections and the noise stream.
        base_hz: pitch at z0 = 0.
        fault: ``None``, ``"nan"`` (decode returns NaN once ``fault_after`` calls have been made since load
            or reset) or ``"wrong_shape"`` (decode returns one sample short).
        fault_after: decode calls that work before a ``"nan"`` fault starts.
        hidden: width of an extra stateless upsampling conv stack (0: none) that makes decoding as costly as
            a real neural decoder; its output is a quiet texture added to the synth.
        min_buffer_size: when > 0, a read-only ``min_buffer_size`` attribute (samples a host must pass per
            call, as vschaos2 exports declare); decoding itself accepts any size.
    """

    conditioning_kinds: list[int]
    decode_input_labels: list[str]
    decode_output_labels: list[str]
    encode_input_labels: list[str]
    encode_output_labels: list[str]
    forward_input_labels: list[str]
    forward_output_labels: list[str]
    methods: list[str]
    attributes: list[str]
    encode_params: Tensor
    decode_params: Tensor
    forward_params: Tensor
    temperature_params: Tensor
    detune: Tensor
    extra_projection: Tensor
    encode_projection: Tensor
    fault_calls: Tensor
    # Registered by StreamingSynth only; declared here because TorchScript reads the annotations of the
    # scripted class itself, and a subclass's own annotations would hide these.
    phase_cache: Tensor
    control_cache: Tensor
    started_cache: Tensor
    counter_cache: Tensor

    def __init__(
        self,
        latent_size: int = 4,
        ratio: int = 1024,
        sr: int = 48000,
        n_channels: int = 1,
        conditioning: tuple[str, ...] = (),
        seed: int = 0,
        base_hz: float = 220.0,
        fault: str | None = None,
        fault_after: int = 0,
        hidden: int = 0,
        min_buffer_size: int = 0,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.latent_size = latent_size
        self.full_latent_size = latent_size
        self.n_conditioning = len(conditioning)
        self.conditioning_kinds = [CONDITIONING_KINDS[c] for c in conditioning]
        self.ratio = ratio
        self.sr = sr
        self.n_channels = n_channels
        self.base_hz = float(base_hz)
        self.fault = fault or ""
        self.fault_after = fault_after
        self.hidden = hidden
        self.n_partials = N_PARTIALS
        self.n_controls = 3 + N_PARTIALS
        self.seed_offset = (seed * 0x9E3779B1) & _MASK32
        # Keep f0 between 20 Hz and 0.4 * sr whatever the latents and conditioning say.
        self.log2_f0_min = math.log2(20.0 / base_hz)
        self.log2_f0_max = math.log2(0.4 * sr / base_hz)
        detune = [1.0, STEREO_DETUNE][:n_channels]
        self.register_buffer("detune", torch.tensor(detune, dtype=torch.float64))
        # nn~ attributes are tuples, read by get_<name> and replaced by set_<name> (which returns 0 or -1).
        self.temperature = (1.0,)
        self.register_buffer("temperature_params", torch.tensor([2]))  # nn~ type code of a float
        self.attributes = ["temperature"]
        self.min_buffer_size = (min_buffer_size,)
        if min_buffer_size > 0:
            self.attributes.append("min_buffer_size")
        self.methods = ["encode", "decode", "forward"]

        in_channels = latent_size + len(conditioning)
        self.register_buffer("encode_params", torch.tensor([1, 1, latent_size, ratio]))
        self.register_buffer("decode_params", torch.tensor([in_channels, ratio, n_channels, 1]))
        self.register_buffer("forward_params", torch.tensor([1, 1, n_channels, 1]))
        names = [
            f"(signal) latent {i + 1} ({LATENT_NAMES[i]})"
            if i < len(LATENT_NAMES)
            else f"(signal) latent {i + 1}"
            for i in range(latent_size)
        ]
        channels = [f"(signal) channel {i + 1}" for i in range(n_channels)]
        self.decode_input_labels = names + [CONDITIONING_LABELS[c] for c in conditioning]
        self.decode_output_labels = channels
        self.encode_input_labels = ["(signal) channel 1"]
        self.encode_output_labels = names
        self.forward_input_labels = ["(signal) channel 1"]
        self.forward_output_labels = channels

        n_extra = max(latent_size - 4, 0)
        self.register_buffer("extra_projection", torch.randn(n_extra, N_PARTIALS - 1, generator=gen))
        self.register_buffer("encode_projection", torch.randn(n_extra, 4, generator=gen) * 0.5)
        self.register_buffer("fault_calls", torch.zeros(1, dtype=torch.long))
        self.stack = self._make_stack(in_channels, hidden, n_channels, ratio, gen)

    @staticmethod
    def _make_stack(
        in_channels: int, hidden: int, n_channels: int, ratio: int, gen: torch.Generator
    ) -> nn.Module:
        """Non-overlapping transposed convs (kernel = stride): costly, yet with no context across frames."""
        if hidden <= 0:
            return nn.Sequential()
        layers: list[nn.Module] = [nn.Conv1d(in_channels, hidden, 1), nn.LeakyReLU(0.2)]
        for factor in upsampling_factors(ratio):
            layers += [nn.ConvTranspose1d(hidden, hidden, factor, stride=factor), nn.LeakyReLU(0.2)]
        layers += [nn.Conv1d(hidden, n_channels, 1), nn.Tanh()]
        stack = nn.Sequential(*layers)
        with torch.no_grad():
            for layer in stack:
                if isinstance(layer, nn.ConvTranspose1d | nn.Conv1d):
                    # A kernel = stride transposed conv feeds each output from in_channels taps only.
                    fan_in = layer.in_channels * (
                        1 if isinstance(layer, nn.ConvTranspose1d) else layer.kernel_size[0]
                    )
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) / math.sqrt(fan_in))
                    assert layer.bias is not None
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.1)
        stack.requires_grad_(False)
        return stack

    # --- nn~ metadata ------------------------------------------------------------------------------

    @torch.jit.export
    def get_methods(self) -> list[str]:
        """Methods a host may call."""
        return self.methods

    @torch.jit.export
    def get_min_buffer_size(self) -> int:
        """Samples a host must decode per call (0: no minimum)."""
        return self.min_buffer_size[0]

    @torch.jit.export
    def set_min_buffer_size(self, size: int) -> int:
        """Read-only: always refuses (returns -1)."""
        return -1

    # --- rendering ---------------------------------------------------------------------------------

    def _controls(self, z: Tensor) -> Tensor:
        """Per-frame controls [batch, 3 + N_PARTIALS, frames]: log2 f0, amplitude, noise, partial gains."""
        lat = z[:, : self.latent_size]
        log2_f0 = torch.clamp(lat[:, 0:1], -3.0, 3.0)
        for i, kind in enumerate(self.conditioning_kinds):
            value = torch.round(z[:, self.latent_size + i : self.latent_size + i + 1])
            if kind == 0:
                log2_f0 = log2_f0 + torch.clamp(value, 0.0, 11.0) / 12.0
            else:
                log2_f0 = log2_f0 + torch.clamp(value, -3.0, 3.0)
        log2_f0 = torch.clamp(log2_f0, self.log2_f0_min, self.log2_f0_max)
        neutral = torch.zeros_like(log2_f0)
        brightness = torch.sigmoid(lat[:, 1:2]) if self.latent_size > 1 else neutral + 0.5
        noise = (
            torch.sigmoid(2.0 * lat[:, 2:3] - 2.0) if self.latent_size > 2 else torch.sigmoid(neutral - 2.0)
        )
        amp = 0.5 * torch.sigmoid(2.0 * lat[:, 3:4]) if self.latent_size > 3 else neutral + 0.25
        k = torch.arange(1, self.n_partials + 1, dtype=z.dtype, device=z.device).view(1, self.n_partials, 1)
        exponent = 3.0 - 2.5 * brightness
        gains = torch.exp(-exponent * torch.log(k))
        if self.latent_size > 4:
            extra = torch.einsum("bet,ep->bpt", lat[:, 4:], self.extra_projection)
            upper = gains[:, 1:] * torch.exp(0.5 * torch.tanh(extra))
            gains = torch.cat([gains[:, :1], upper], 1)
        gains = gains / gains.sum(1, keepdim=True)
        return torch.cat([log2_f0, amp, noise, gains], 1)

    def _interpolate(self, controls: Tensor, previous: Tensor) -> Tensor:
        """Linear ramps from each frame's predecessor to the frame, one value per sample."""
        b, n_controls, t = controls.shape
        before = torch.cat([previous.unsqueeze(-1), controls[:, :, :-1]], -1)
        w = torch.arange(1, self.ratio + 1, dtype=controls.dtype, device=controls.device) / float(self.ratio)
        ramp = before.unsqueeze(-1) + (controls - before).unsqueeze(-1) * w
        return ramp.reshape(b, n_controls, t * self.ratio)

    def _noise(self, counter: Tensor, n_samples: int) -> Tensor:
        """White noise in [-1, 1) per row and channel: a 32-bit hash of (sample index, row, channel)."""
        b = counter.shape[0]
        index = counter.unsqueeze(-1) + torch.arange(n_samples, dtype=torch.long, device=counter.device)
        rows = torch.arange(b, dtype=torch.long, device=counter.device).view(b, 1, 1) * 0x2545F491
        chans = (
            torch.arange(self.n_channels, dtype=torch.long, device=counter.device).view(1, -1, 1) * 0x5BD1E995
        )
        x = (index.unsqueeze(1) + rows + chans + self.seed_offset) & 0xFFFFFFFF
        x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
        x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
        x = (x >> 16) ^ x
        return x.to(torch.float32) / 2147483648.0 - 1.0

    def _render(
        self, z: Tensor, phase: Tensor, previous: Tensor, started: Tensor, counter: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Render ``z`` from a given state; return audio and the state after the last sample.

        Args:
            z: [batch, in_channels, frames] float32.
            phase: [batch, n_channels] float64 oscillator phases in cycles.
            previous: [batch, n_controls] controls of the frame before ``z`` (used where ``started`` > 0).
            started: [batch] int64, 0 for a row that has rendered nothing yet.
            counter: [batch] int64 samples rendered so far per row.
        """
        b, _, t = z.shape
        n = t * self.ratio
        controls = self._controls(z)
        previous = torch.where(started.view(b, 1) > 0, previous, controls[:, :, 0])
        ramp = self._interpolate(controls, previous)
        f0 = self.base_hz * torch.exp2(ramp[:, 0:1].to(torch.float64)) * self.detune.view(1, -1, 1)
        # Phases accumulate in float64 so a block-wise decode matches a one-shot decode.
        cycles = phase.unsqueeze(-1) + torch.cumsum(f0 / float(self.sr), -1)
        cycles = cycles - torch.floor(cycles)
        nyquist_edge = 0.45 * self.sr
        fade_width = 0.05 * self.sr
        harmonic = torch.zeros(b, self.n_channels, n, dtype=torch.float32, device=z.device)
        for k in range(1, self.n_partials + 1):
            partial = cycles * float(k)
            partial = (partial - torch.floor(partial)).to(torch.float32)
            alias_gain = torch.clamp((nyquist_edge - f0 * float(k)) / fade_width, 0.0, 1.0).to(torch.float32)
            harmonic = harmonic + ramp[:, 2 + k : 3 + k] * alias_gain * torch.sin(2.0 * math.pi * partial)
        amp = ramp[:, 1:2]
        noise_mix = ramp[:, 2:3]
        noise = self._noise(counter, n) * self.temperature[0]
        y = amp * ((1.0 - noise_mix) * harmonic + noise_mix * noise)
        if self.hidden > 0:
            y = y + amp * 0.1 * self.stack(z)
        new_phase = cycles[:, :, -1]
        return y, new_phase, controls[:, :, -1], counter + n

    def _apply_fault(self, y: Tensor) -> Tensor:
        if self.fault == "nan":
            if int(self.fault_calls[0]) >= self.fault_after:
                y = y * float("nan")
            self.fault_calls.add_(1)
        elif self.fault == "wrong_shape":
            y = y[:, :, :-1]
        return y

    def _check_input(self, z: Tensor) -> None:
        expected = self.latent_size + self.n_conditioning
        if z.dim() != 3 or z.shape[1] != expected:
            raise ValueError(f"decode expects z of shape [batch, {expected}, frames], got {list(z.shape)}")

    # --- nn~ methods -------------------------------------------------------------------------------

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """Latents [batch, in_channels, frames] -> audio [batch, n_channels, frames * ratio], from silence."""
        self._check_input(z)
        b = z.shape[0]
        n_controls = self.n_controls
        zeros_long = torch.zeros(b, dtype=torch.long, device=z.device)
        y, _, _, _ = self._render(
            z,
            torch.zeros(b, self.n_channels, dtype=torch.float64, device=z.device),
            torch.zeros(b, n_controls, dtype=z.dtype, device=z.device),
            zeros_long,
            zeros_long,
        )
        return self._apply_fault(y)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio [batch, channels, frames * ratio] -> crude latents [batch, latent_size, frames].

        dim 0 from the zero-crossing rate (pitch), dim 1 from the slope-to-level ratio (brightness), dim 2
        from the zero crossings of the slope (noise), dim 3 from the RMS level (amplitude); further dims are
        a fixed projection of these four.
        """
        if x.dim() != 3:
            raise ValueError(f"encode expects audio of shape [batch, channels, samples], got {list(x.shape)}")
        b = x.shape[0]
        t = x.shape[-1] // self.ratio
        frames = x.mean(1)[:, : t * self.ratio].reshape(b, t, self.ratio)
        signs = frames >= 0.0
        crossings = (signs[:, :, 1:] != signs[:, :, :-1]).sum(-1).to(torch.float32)
        f_est = torch.clamp(crossings * self.sr / (2.0 * self.ratio), min=1.0)
        z0 = torch.clamp(torch.log2(f_est / self.base_hz), -3.0, 3.0)
        rms = torch.sqrt((frames * frames).mean(-1) + 1e-12)
        slope = frames[:, :, 1:] - frames[:, :, :-1]
        slope_rms = torch.sqrt((slope * slope).mean(-1) + 1e-12)
        expected_slope = rms * 2.0 * math.pi * f_est / self.sr
        z1 = torch.clamp(2.0 * torch.log(slope_rms / (expected_slope + 1e-9) + 1e-6), -4.0, 4.0)
        slope_signs = slope >= 0.0
        slope_crossings = (slope_signs[:, :, 1:] != slope_signs[:, :, :-1]).sum(-1).to(torch.float32)
        z2 = torch.clamp(torch.log2((slope_crossings + 1.0) / (crossings + 1.0)), -3.0, 3.0)
        amp = torch.clamp(rms * 2.0, 1e-4, 0.4999)
        z3 = 0.5 * torch.log(amp / (0.5 - amp))
        features = torch.stack([z0, z1, z2, z3], 1)
        if self.latent_size <= 4:
            return features[:, : self.latent_size]
        extra = torch.tanh(torch.einsum("bft,ef->bet", features, self.encode_projection))
        return torch.cat([features, extra], 1)

    def forward(self, x: Tensor) -> Tensor:
        """Audio in, audio out: ``decode(encode(x))`` with conditioning inputs at 0."""
        z = self.encode(x)
        if self.n_conditioning > 0:
            z = torch.cat([z, torch.zeros(z.shape[0], self.n_conditioning, z.shape[2], dtype=z.dtype)], 1)
        return self.decode(z)


class StreamingSynth(Synth):
    """The synth with its state kept per batch row (at most ``MAX_BATCH`` rows) between ``decode`` calls.

    Row ``i`` of a call continues row ``i`` of the previous call, as cached convolutions do in streaming
    RAVE exports. Buffers are updated in place.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        n_controls = self.n_controls
        self.register_buffer("phase_cache", torch.zeros(MAX_BATCH, self.n_channels, dtype=torch.float64))
        self.register_buffer("control_cache", torch.zeros(MAX_BATCH, n_controls))
        self.register_buffer("started_cache", torch.zeros(MAX_BATCH, dtype=torch.long))
        self.register_buffer("counter_cache", torch.zeros(MAX_BATCH, dtype=torch.long))

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """Latents [batch, in_channels, frames] -> audio, continuing each batch row's state."""
        self._check_input(z)
        b = z.shape[0]
        if b > self.phase_cache.shape[0]:
            raise ValueError(f"streaming decode keeps state for {self.phase_cache.shape[0]} rows, got {b}")
        y, phase, last, counter = self._render(
            z, self.phase_cache[:b], self.control_cache[:b], self.started_cache[:b], self.counter_cache[:b]
        )
        self.phase_cache[:b].copy_(phase)
        self.control_cache[:b].copy_(last)
        self.started_cache[:b].fill_(1)
        self.counter_cache[:b].copy_(counter)
        return self._apply_fault(y)


class V1Export(nn.Module):
    """A synth wrapped like a RAVE v1 export: no ``get_methods``/``get_attributes``, tensor metadata.

    ``sampling_rate`` and ``latent_size`` are tensor buffers; hosts find the methods by scanning for
    ``<method>_params`` buffers.
    """

    sampling_rate: Tensor
    latent_size: Tensor
    encode_params: Tensor
    decode_params: Tensor
    forward_params: Tensor

    def __init__(self, core: Synth) -> None:
        super().__init__()
        self.core = core
        self.register_buffer("sampling_rate", torch.tensor(core.sr))
        self.register_buffer("latent_size", torch.tensor(core.latent_size))
        self.register_buffer("encode_params", core.encode_params.clone())
        self.register_buffer("decode_params", core.decode_params.clone())
        self.register_buffer("forward_params", core.forward_params.clone())

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio -> latents (see ``Synth.encode``)."""
        return self.core.encode(x)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """Latents -> audio (see ``Synth.decode``)."""
        return self.core.decode(z)

    def forward(self, x: Tensor) -> Tensor:
        """Audio in, audio out."""
        return self.core.forward(x)

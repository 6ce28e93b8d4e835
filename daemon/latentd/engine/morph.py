"""Section morphs: during a crossfade, an entering voice's latents glide from a leaving voice's of the
same model, so one sound turns into the other instead of two sounds crossing (``programme.morph``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import structlog

from latentd.engine.decode import ModelGroup

if TYPE_CHECKING:
    from latentd.engine.engine import Engine

log = structlog.get_logger("latentd.engine")

MORPH_HANDOVER_S = 0.05  # a morphing pair hands the sound over this fast; the latents glide for the rest


class Morph:
    """Pairs the voices of a section change and glides their latents (engine thread).

    Installed on the engine's programme (``pair_voices``) and on every model group (``shape_latents``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.programme.pair_voices = self.pairs
        engine.programme.morph_handover = int(MORPH_HANDOVER_S * engine.samplerate)

    def pairs(self, leaving: frozenset[str], entering: frozenset[str]) -> dict[str, str]:
        """Pair each entering voice with a leaving voice of the same model (each used once)."""
        group_of = self.engine.group_of
        pairs: dict[str, str] = {}
        free = sorted(leaving)
        for name in sorted(entering):
            partner = next((x for x in free if group_of(x) is group_of(name)), None)
            if partner is not None:
                free.remove(partner)
                pairs[name] = partner
        if pairs:
            log.info("section.morph", section=self.engine.programme.current.name, pairs=pairs)
        return pairs

    def latents(self, group: ModelGroup, z: np.ndarray) -> None:
        """During a morphing crossfade, glide each entering voice's latents from its partner's, in ``z``."""
        programme = self.engine.programme
        pairs = programme.morph_pairs
        if not pairs or not programme.fading:
            return
        frames = z.shape[2]
        samples_per_frame = self.engine.samplerate / group.info.latent_rate_hz
        # Decoding runs ahead of the mix by what the FIFO holds and the calls decoding ahead: place the
        # glide where it will be heard.
        ahead = group.ahead_samples + samples_per_frame * np.arange(1, frames + 1)
        p = np.array([programme.morph_progress(int(a)) for a in ahead], dtype=np.float32)
        size = group.info.latent_size
        voices = self.engine.voices
        for entering, leaving in pairs.items():
            a, b = voices[entering], voices[leaving]
            if a not in group.voices or b not in group.voices:
                continue
            z[a.row, :size] = (1.0 - p) * z[b.row, :size] + p * z[a.row, :size]
            a.last_z = z[a.row, :size].copy()

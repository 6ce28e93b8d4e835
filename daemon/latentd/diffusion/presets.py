"""Architectures of RAVE-Latent-Diffusion UNets: the Flex'ed fork's presets, one per latent length, and
the original's single architecture.

The presets are those of RAVE-Latent-Diffusion (Flex'ed), ``model_config.py``
(https://github.com/devstermarts/RAVE-Latent-Diffusion-Flex-ed), which stores ``latent_length`` in its
checkpoints and builds the net of that length's preset. The original RAVE-Latent-Diffusion
(https://github.com/moiseshorta/RAVE-Latent-Diffusion) builds one architecture — the Flex'ed 4096 preset —
whatever latent length it trains or generates at, and stores no length. Each architecture holds the
``UNetV0`` keyword arguments besides ``in_channels`` (the RAVE latent dims).
"""

from __future__ import annotations

from typing import Any

#: UNetV0 arguments per latent length (frames of one item).
ARCHITECTURE_PRESETS: dict[int, dict[str, Any]] = {
    256: {
        "channels": [256, 256, 256, 512, 512],
        "factors": [1, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 4],
        "attentions": [0, 0, 0, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    512: {
        "channels": [256, 256, 256, 256, 512, 512],
        "factors": [1, 2, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 4],
        "attentions": [0, 0, 0, 0, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    1024: {
        "channels": [256, 256, 256, 256, 512, 512, 512],
        "factors": [1, 4, 4, 4, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 2, 4],
        "attentions": [0, 0, 0, 0, 1, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    2048: {
        "channels": [256, 256, 256, 256, 512, 512, 512, 768],
        "factors": [1, 4, 4, 4, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 2, 2, 4],
        "attentions": [0, 0, 0, 0, 0, 1, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    4096: {
        "channels": [256, 256, 256, 256, 512, 512, 512, 768, 768],
        "factors": [1, 4, 4, 4, 2, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 2, 2, 4, 4],
        "attentions": [0, 0, 0, 0, 0, 1, 1, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    8192: {
        "channels": [256, 256, 256, 256, 512, 512, 512, 768, 768, 768],
        "factors": [1, 4, 4, 4, 2, 2, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 2, 2, 4, 4, 4],
        "attentions": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
    16384: {
        "channels": [256, 256, 256, 256, 512, 512, 512, 768, 768, 768, 768],
        "factors": [1, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2],
        "items": [1, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4],
        "attentions": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        "attention_heads": 12,
        "attention_features": 64,
    },
}


#: The preset that is also the original RAVE-Latent-Diffusion's only architecture.
ORIGINAL_PRESET = 4096


def original_architecture() -> dict[str, Any]:
    """The original RAVE-Latent-Diffusion's architecture, used for every latent length (a copy)."""
    return get_architecture(ORIGINAL_PRESET)


def length_multiple(architecture: dict[str, Any]) -> int:
    """The latent lengths a net of ``architecture`` can take are multiples of this: its factors' product.

    Each layer divides the length by its factor on the way down and multiplies it on the way up; a length
    that does not divide evenly comes back shorter, and the skip connections no longer match.
    """
    multiple = 1
    for factor in architecture.get("factors", []):
        multiple *= int(factor)
    return max(multiple, 1)


def get_architecture(latent_length: int) -> dict[str, Any]:
    """The preset for ``latent_length`` (a copy: callers may change it).

    Raises:
        ValueError: no preset for that length; the message lists the lengths that have one.
    """
    preset = ARCHITECTURE_PRESETS.get(latent_length)
    if preset is None:
        known = ", ".join(str(n) for n in sorted(ARCHITECTURE_PRESETS))
        raise ValueError(
            f"no architecture preset for latent_length {latent_length}; presets exist for {known} "
            "(pass `architecture=` with the UNetV0 arguments the checkpoint was trained with)"
        )
    return {key: list(value) if isinstance(value, list) else value for key, value in preset.items()}

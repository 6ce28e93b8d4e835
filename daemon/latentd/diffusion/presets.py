"""Architecture presets of RAVE-Latent-Diffusion UNets, one per latent length.

The values are those of RAVE-Latent-Diffusion (Flex'ed), ``model_config.py``
(https://github.com/devstermarts/RAVE-Latent-Diffusion-Flex-ed); the 4096 preset is also the single
architecture of the original RAVE-Latent-Diffusion (https://github.com/moiseshorta/RAVE-Latent-Diffusion).
Each preset holds the ``UNetV0`` keyword arguments besides ``in_channels`` (the RAVE latent dims).
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

"""Building blocks of every config model: the strict base, names, gains, latent numbers, errors."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from latentd.sources.specs import LATENT_LIMIT

NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _check_name(value: str) -> str:
    """1 to 64 letters, digits, `_`, `-` or `.`."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "names use 1..64 letters, digits, '_', '-' or '.' (they appear in file names and OSC)"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Gain = Annotated[float, Field(ge=0.0, le=4.0)]
LatentNumber = Annotated[float, Field(ge=-LATENT_LIMIT, le=LATENT_LIMIT)]


def fail(field: str | None, value: object, message: str) -> PydanticCustomError:
    """An error raised from a model validator that still names the field (and value) it is about."""
    return PydanticCustomError("latentd", "{message}", {"field": field, "value": value, "message": message})


class Strict(BaseModel):
    """Base of every config model: unknown keys refused, values frozen, types strict, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

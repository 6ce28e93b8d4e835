"""Pure Data's arithmetic where it decides a ``noise~`` seed (as Pd 0.53 on x86-64 does it).

Two facts of Pd, both measured against ``pd -batch``:

* A ``seed N`` message carries its argument as a 32-bit float (``t_float``), and ``noise~`` takes it as
  its int state with C's ``(int)f``: integers beyond 2^24 round to the nearest float (ties to even), the
  fraction is cut off, and a float outside the int range gives -2^31 (x86-64's ``cvttss2si``). So
  ``seed 16777217`` plays 16777216's stream and ``seed 3000000000`` plays -2147483648's.
* An unseeded ``noise~`` is not random: each new one sets ``init *= 1319`` on a static ``int init = 307``
  (32-bit, wrapping) and starts from the result, so the k-th ``noise~`` created in a Pd session always
  starts from the same state.
"""

from __future__ import annotations

import numpy as np

#: Every integer of magnitude up to 2^24 is a 32-bit float exactly: such a seed means the same in Pd.
PD_EXACT_LIMIT = 2**24
NOISE_INIT = 307  # noise~'s static seed before the first noise~ is created
NOISE_INIT_MUL = 1319  # what each new noise~ multiplies it by
INT32_MIN = -(2**31)


def to_int32(value: int) -> int:
    """``value`` wrapped to a signed 32-bit int, as C's ``int`` holds it (e.g. 2^32 - 1 → -1)."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def pd_float(value: float) -> float:
    """``value`` as Pd holds a message argument: the nearest 32-bit float (ties to even)."""
    return float(np.float32(value))


def pd_seed(value: float) -> int:
    """The int state ``noise~`` takes from the message ``seed value``.

    The argument becomes a 32-bit float, then ``(int)f`` cuts the fraction off; a float outside the int
    range becomes -2^31, as on x86-64 (where ``puredata`` packages are built and measured).
    """
    f = pd_float(value)
    if not -(2.0**31) <= f < 2.0**31:
        return INT32_MIN
    return int(f)  # int() of a float truncates towards zero, as C's (int) does


def pd_exact(seed: int) -> bool:
    """Whether the message ``seed <seed>`` typed into Pd gives ``noise~`` exactly ``seed``."""
    return pd_seed(seed) == seed


def pd_instance_seed(k: int) -> int:
    """The state the k-th ``noise~`` of a Pd session starts from (k from 1), as a signed 32-bit int.

    Every ``noise~`` counts, seeded or not, in the order Pd creates them (a patch's objects in file
    order, an abstraction's when it loads): the k-th has ``307 * 1319**k`` wrapped to 32 bits.

    Raises:
        ValueError: ``k`` is below 1.
    """
    if k < 1:
        raise ValueError(f"noise~ instances count from 1, got {k}")
    return to_int32(NOISE_INIT * pow(NOISE_INIT_MUL, k, 2**32))

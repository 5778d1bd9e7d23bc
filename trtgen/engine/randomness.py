"""Counter-based random numbers: every draw is a pure function of (utterance key, counter).

Why not a stateful generator: an utterance's dropout masks and Griffin-Lim phase must not depend on
which batch, shard or resume point it was decoded in. Hashing (key, counter) gives each utterance its
own stream that any batch can index directly, on the CPU (numpy) or the GPU (CuPy: same code, ``xp``).
The mixer is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes BigCrush on counters.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["utterance_key", "uniform", "keep_masks", "GOLDEN_GAMMA"]

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_FLOAT24 = np.float32(1.0 / (1 << 24))


def utterance_key(copy_seed: int, utterance_id: str, stream: str) -> int:
    """A 64-bit key for one utterance's random stream (``stream`` names its use, e.g. "prenet")."""
    digest = hashlib.blake2b(f"{int(copy_seed)}\x1f{utterance_id}\x1f{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def uniform(keys: Any, counters: Any, xp: Any = np) -> Any:
    """Uniform float32 in [0, 1) for each broadcast pair of uint64 ``keys`` and ``counters``."""
    z = xp.asarray(counters, dtype=xp.uint64) * xp.uint64(GOLDEN_GAMMA) + xp.asarray(keys, dtype=xp.uint64)
    return (_mix(z, xp) >> xp.uint64(40)).astype(xp.float32) * _FLOAT24


def _mix(z: Any, xp: Any) -> Any:
    """SplitMix64 finaliser, in place on a fresh uint64 array."""
    z ^= z >> xp.uint64(30)
    z *= xp.uint64(_MIX1)
    z ^= z >> xp.uint64(27)
    z *= xp.uint64(_MIX2)
    z ^= z >> xp.uint64(31)
    return z


def keep_masks(keys: Any, steps: Any, rates: Any, widths: tuple[int, ...], xp: Any = np) -> list[Any]:
    """Scaled prenet dropout keep-masks for ``steps`` decoder steps of each utterance.

    keys: [B] uint64 utterance keys; steps: [K, B] decoder step index of each utterance; rates: [B]
    dropout rates. Returns one float32 array [K, B, width] per prenet layer with values 0 or
    ``1 / (1 - rate)``, the inverted-dropout scaling of ``tf.layers.dropout`` (docs/openseq2seq-notes.md §0.2).

    Each 64-bit hash yields four 16-bit draws (a unit is kept when its draw >= rate * 2**16): the
    rate is thereby quantised to 1/65536, and the masks cost a quarter of the hashing.
    """
    keys = xp.asarray(keys, dtype=xp.uint64)
    steps = xp.asarray(steps, dtype=xp.uint64)
    rates = xp.asarray(rates, dtype=xp.float32)
    total = sum(widths)
    hashes_per_step = -(-total // 4)
    counters = steps[:, :, None] * xp.uint64(hashes_per_step) + xp.arange(hashes_per_step, dtype=xp.uint64)
    z = counters * xp.uint64(GOLDEN_GAMMA)
    z += keys[None, :, None]
    draws = _mix(z, xp).astype("<u8").view("<u2")[:, :, :total]
    thresholds = xp.rint(rates * 65536.0).astype(xp.int32)[None, :, None]
    scale = xp.where(rates < 1.0, 1.0 / (1.0 - rates), 0.0).astype(xp.float32)[None, :, None]
    masks = []
    offset = 0
    for width in widths:
        keep = draws[:, :, offset : offset + width] >= thresholds
        masks.append(keep * scale)
        offset += width
    return masks

"""Counter-based random numbers: every draw is a pure function of (utterance key, counter).

Why not a stateful generator: an utterance's dropout masks and Griffin-Lim phase must not depend on
which batch, shard or resume point it was decoded in. Hashing (key, counter) gives each utterance its
own stream that any batch can index directly, on the CPU (numpy) or the GPU (CuPy: same code, ``xp``).
The mixer is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes BigCrush on counters.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np

__all__ = ["utterance_key", "draws16", "unit_phasors", "keep_masks", "GOLDEN_GAMMA"]

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def utterance_key(copy_seed: int, utterance_id: str, stream: str) -> int:
    """A 64-bit key for one utterance's random stream (``stream`` names its use, e.g. "prenet")."""
    digest = hashlib.blake2b(f"{int(copy_seed)}\x1f{utterance_id}\x1f{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def draws16(keys: Any, rows: Any, width: int, xp: Any = np) -> Any:
    """``width`` uniform 16-bit draws (uint16) per row for each broadcast pair of uint64 ``keys`` and ``rows``.

    Row ``r`` hashes the counters ``r * ceil(width / 4) + j`` and splits each 64-bit hash into four
    16-bit words, low to high (little-endian, whatever the machine): a quarter of the hashing of one
    draw per hash, which is where the time goes in numpy. Shape ``broadcast(keys, rows) + (width,)``.
    """
    per_row = -(-width // 4)
    counters = xp.asarray(rows, dtype=xp.uint64)[..., None] * xp.uint64(per_row) + xp.arange(per_row, dtype=xp.uint64)
    z = counters * xp.uint64(GOLDEN_GAMMA) + xp.asarray(keys, dtype=xp.uint64)[..., None]
    return _mix(z, xp).astype("<u8").view("<u2")[..., :width]


@functools.cache
def _unit_phasors_np() -> np.ndarray:
    angles = np.arange(1 << 16, dtype=np.float64) * (2.0 * np.pi / (1 << 16))
    table = np.exp(1j * angles).astype(np.complex64)
    table.setflags(write=False)
    return table


def unit_phasors(xp: Any = np) -> Any:
    """``exp(2πi k / 65536)`` for k in 0..65535 (complex64): a 16-bit draw as a random phase, looked
    up instead of computing a cosine and a sine per value (phase steps of 1e-4 rad)."""
    return _unit_phasors_np() if xp is np else xp.asarray(_unit_phasors_np())


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
    draws = draws16(keys[None, :], steps, total, xp)
    thresholds = xp.rint(rates * 65536.0).astype(xp.int32)[None, :, None]
    scale = xp.where(rates < 1.0, 1.0 / (1.0 - rates), 0.0).astype(xp.float32)[None, :, None]
    masks = []
    offset = 0
    for width in widths:
        keep = draws[:, :, offset : offset + width] >= thresholds
        masks.append(keep * scale)
        offset += width
    return masks

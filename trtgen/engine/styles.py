"""Style variety: how an utterance's style embedding is made, drawn per (seed, utterance id).

OpenSeq2Seq's recipe speaks each transcript in one M-AILABS clip's style (``clip``); the variety it gets
beyond its few clips is prenet dropout. A GST model holds more: every convex mix of the clips'
embeddings lies between voices it knows (``blend``), and its token bank spans a whole style space that
the reference encoder's attention weights index (``tokens``). Each mode is a pure function of the row,
the copy's seed and the utterance id, so a copy stays reproducible and resumable:

* ``clip``: the row's clip, as OpenSeq2Seq does (the default);
* ``blend``: ``w * e(row clip) + (1 - w) * e(partner)``; the partner is another clip of the list chosen by
  rendezvous hashing of (seed, id, clip digest), so adding clips to a list moves few partners, and ``w``
  is uniform in [0, 1);
* ``tokens``: per attention head, token weights drawn from a Dirichlet centred on the clip's own
  weights with ``concentration`` (larger: nearer the clip), turned into an embedding by the model's
  ``style_tokens`` graph (trtgen/engine/artifact.py, ``ModelCard.has_style_tokens``).

The variety each mode adds and what it costs: ``benchmarks/bench_variety.py``, docs/quality.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trtgen.engine.randomness import utterance_key
from trtgen.errors import UsageError

__all__ = [
    "STYLE_MODES", "DEFAULT_CONCENTRATION", "StyleBlend", "StyleTokens", "draw_style", "blend_partner", "blend_weight", "draw_token_weights",
]

STYLE_MODES = ("clip", "blend", "tokens")
DEFAULT_CONCENTRATION = 5.0
"""Dirichlet concentration of ``tokens``. Measured on the shipped voice (benchmarks/results/variety.md):
5 widens the speaking rate and spectral centroid a clip's utterances get by about a tenth and a third,
20 by a twentieth and a seventh; neither made a gross failure or cost throughput."""


@dataclass(frozen=True)
class StyleBlend:
    """A style made of two clips' embeddings: ``weight * e(first) + (1 - weight) * e(second)``."""

    first: Path
    second: Path
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {"clips": [str(self.first), str(self.second)], "weight": round(self.weight, 6)}


@dataclass(frozen=True)
class StyleTokens:
    """A style made from GST token weights ``[heads, tokens]`` drawn around ``clip``'s own."""

    clip: Path
    concentration: float
    key: int
    """The draw's random key (:func:`draw_token_weights`), from (seed, utterance id)."""

    def to_json(self, weights: np.ndarray | None = None) -> dict[str, Any]:
        drawn: dict[str, Any] = {"clip": str(self.clip), "concentration": self.concentration}
        if weights is not None:
            drawn["weights"] = np.round(np.asarray(weights, dtype=np.float64), 6).tolist()
        return drawn


def blend_partner(seed: int, utterance_id: str, clip_sha256: str, pool: Mapping[str, Path]) -> Path:
    """The partner of ``blend``: the clip of ``pool`` (digest -> path) other than the row's own that
    ranks highest for (seed, id) (rendezvous hashing: a clip added to the list takes over only the rows
    it ranks highest for); the row's own clip when it is the only one."""
    others = sorted(d for d in pool if d != clip_sha256)
    if not others:
        return pool[clip_sha256]

    def rank(digest: str) -> bytes:
        return hashlib.blake2b(f"{int(seed)}\x1f{utterance_id}\x1f{digest}".encode(), digest_size=8).digest()

    return pool[max(others, key=rank)]


def blend_weight(seed: int, utterance_id: str) -> float:
    """The row clip's weight in ``blend``: uniform in [0, 1) from (seed, id)."""
    return utterance_key(seed, utterance_id, "style-blend") / 2.0**64


def draw_token_weights(clip_weights: np.ndarray, concentration: float, key: int) -> np.ndarray:
    """Token weights ``[heads, tokens]`` for ``tokens``: per head, Dirichlet(concentration x the clip's
    weights), drawn from a generator seeded by ``key`` (float64 draws, returned as float32)."""
    if not concentration > 0:
        raise UsageError(f"--style-concentration {concentration}: must be above 0")
    weights = np.asarray(clip_weights, dtype=np.float64)
    if weights.ndim != 2:
        raise UsageError(f"token weights of shape {weights.shape}: expected [heads, tokens]")
    rng = np.random.Generator(np.random.PCG64(key))
    alpha = np.maximum(concentration * weights, 1e-3)  # a token the clip ignores may still be drawn a little
    return np.stack([rng.dirichlet(a) for a in alpha]).astype(np.float32)


def draw_style(
    mode: str,
    clip: Path,
    seed: int,
    utterance_id: str,
    *,
    clip_sha256: str | None = None,
    pool: Mapping[str, Path] | None = None,
    concentration: float = DEFAULT_CONCENTRATION,
) -> Path | StyleBlend | StyleTokens:
    """The style an utterance gets in a copy of ``mode`` (module docstring): ``trtgen generate`` draws
    every row's with it, and a :class:`~trtgen.engine.rows.Row` takes what it returns as its ``style``.
    ``blend`` needs the row clip's digest and the pool of the list's clips (digest -> path)."""
    if mode == "clip":
        return clip
    if mode == "blend":
        if pool is None or clip_sha256 is None:
            raise UsageError("a blend draws its partner from the list's clips: give clip_sha256 and pool")
        return StyleBlend(clip, blend_partner(seed, utterance_id, clip_sha256, pool), blend_weight(seed, utterance_id))
    if mode == "tokens":
        if not concentration > 0:
            raise UsageError(f"--style-concentration {concentration}: must be above 0")
        return StyleTokens(clip, float(concentration), utterance_key(seed, utterance_id, "style-tokens"))
    raise UsageError(f"style mode {mode!r}: choose {', '.join(STYLE_MODES)}")

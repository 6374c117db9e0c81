"""Detect the galvo fly-back band of a slice.

During the galvo fly-back the camera keeps recording ``n_extra`` A-lines per
B-scan. They form a band of constant (dark or bright) signal at the same
circular offset in every B-scan of every tile of a slice. Decoding rolls the
A-line axis so the band comes last and drops it (:func:`serialoct.io.raw.decode_frames`);
this module finds where the band starts and how sure we are.

Method
------
For each sampled tile, the depth-averaged intensity of each A-line is taken
per B-scan, and its circular first difference ``d`` gives the edges. A band
starting at ``s`` makes a step of one sign at ``s`` and of the opposite sign
at ``s + n_extra``; its score is ``min(-d[s], d[s + n_extra])`` (dark band)
or the same with signs swapped (bright band), so both edges must be sharp.
The median over B-scans keeps only what every B-scan shares (the band),
not tissue edges, which vary from B-scan to B-scan. Each tile's scores are
normalised by their maximum and averaged over tiles, so tissue edges that are
not at the same offset in every tile fade.

The confidence is ``C(s*) * (1 - C2 / C(s*))`` where ``C(s*)`` is the
averaged normalised score of the best start (1 when every tile agrees) and
``C2`` the best score at least two A-lines away from it (how much a
competitor stands out). A slice without a band, or with one lost in noise,
has no start that every tile agrees on and scores near 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy

__all__ = ["GalvoDetection", "band_scores", "detect_galvo_band"]


@dataclass(frozen=True)
class GalvoDetection:
    """Where a slice's fly-back band starts and how sure the detector is.

    Attributes
    ----------
    band_start : int
        First fly-back A-line in the raw B-scan of ``nx + n_extra`` A-lines
        (the band may wrap around the end).
    confidence : float
        In [0, 1]; the fix is applied when it reaches ``galvo_confidence_threshold``.
    n_tiles : int
        Tiles the estimate pooled.
    """

    band_start: int
    confidence: float
    n_tiles: int

    def should_fix(self, threshold: float) -> bool:
        """Whether the confidence is high enough to roll the band away."""
        return self.confidence >= threshold


def band_scores(frames: np.ndarray, n_extra: int, *, backend: Backend | None = None) -> np.ndarray:
    """Edge-pair score of every candidate band start in one tile.

    Parameters
    ----------
    frames : ndarray, shape (n_z, nx + n_extra, n_frames)
        Raw frames of one tile (see :func:`serialoct.io.raw.read_raw_frames`).
    n_extra : int
        Fly-back A-lines per B-scan.
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    ndarray, shape (nx + n_extra,), float64, on the host
        Median over B-scans of the score of a band starting at each A-line.
    """
    xp = (backend or get_backend(False)).xp
    profile = xp.asarray(frames).mean(axis=0, dtype=xp.float64)  # (A-lines, B-scans), summed in float64 without a copy
    edges = profile - xp.roll(profile, 1, axis=0)  # d[a] = p[a] - p[a-1], circular
    closing = xp.roll(edges, -n_extra, axis=0)  # d[a + n_extra]
    dark = xp.minimum(-edges, closing)
    bright = xp.minimum(edges, -closing)
    return to_numpy(xp.median(xp.maximum(xp.maximum(dark, bright), 0.0), axis=1))


def detect_galvo_band(tile_frames: Iterable[np.ndarray], n_extra: int, *, backend: Backend | None = None) -> GalvoDetection:
    """Find a slice's galvo band start from the raw frames of a few tissue tiles.

    Parameters
    ----------
    tile_frames : iterable of ndarray, each (n_z, nx + n_extra, n_frames)
        Raw frames of the sampled tiles of one slice, used one at a time, in one pass (a generator may
        read each tile into the buffer of the one before).
    n_extra : int
        Fly-back A-lines per B-scan; 0 means there is no band.
    backend : Backend, optional
        NumPy (default) or CuPy for the per-tile scores.

    Returns
    -------
    GalvoDetection
        With confidence 0 when ``n_extra`` is 0 or no tile carries signal.
    """
    if n_extra <= 0:
        return GalvoDetection(band_start=0, confidence=0.0, n_tiles=sum(1 for _ in tile_frames))
    normalised, n_tiles = [], 0
    for frames in tile_frames:
        n_tiles += 1
        scores = band_scores(frames, n_extra, backend=backend)
        peak = scores.max()
        if peak > 0:
            normalised.append(scores / peak)
    if not normalised:
        return GalvoDetection(band_start=0, confidence=0.0, n_tiles=n_tiles)
    combined = np.mean(normalised, axis=0)
    best = int(np.argmax(combined))
    n = combined.size
    distance = np.abs((np.arange(n) - best + n // 2) % n - n // 2)  # circular
    runner_up = combined[distance >= 2].max(initial=0.0)
    confidence = float(combined[best] * (1.0 - runner_up / combined[best]))
    return GalvoDetection(band_start=best, confidence=round(confidence, 6), n_tiles=n_tiles)

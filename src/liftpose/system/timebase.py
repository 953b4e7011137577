"""Time: confidence gaps filled by interpolation, and resampling to the lifter's frame rate.

:func:`fill_gaps`: a joint whose confidence is below a threshold (or that is absent) in a frame
is filled by linear interpolation between the nearest confident frames of the same joint when
the gap is at most ``max_gap`` frames long (at the ends of a track: the nearest confident
value, within ``max_gap`` too). Longer gaps keep the detector's own estimate where it gave one
(its confidence stays low) and are refused where it gave none. :func:`resample` moves a sequence
sampled at times ``t`` to a uniform grid (the lifter's rate) and back, linearly (or by holding
the last sample, which looks at no later frame, for causal lifting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Filled:
    """Result of :func:`fill_gaps`: ``values (T, J, C)``, ``filled (T, J)`` bool (interpolated),
    ``low (T, J)`` bool (below the threshold and kept as detected)."""

    values: np.ndarray
    filled: np.ndarray
    low: np.ndarray

    @property
    def num_filled(self) -> int:
        return int(self.filled.sum())


class TrackError(ValueError):
    """A track that cannot be lifted (too little valid data); the message says why."""


def fill_gaps(
    values: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    max_gap: int,
    min_valid: float = 0.5,
    names: Sequence[str] | None = None,
    frame_names: Sequence[str] | None = None,
) -> Filled:
    """Fill low-confidence joints of ``values (T, J, C)`` with ``scores (T, J)``.

    ``names`` (``J``) and ``frame_names`` (``T``) only word the error.

    Raises :class:`TrackError` when less than ``min_valid`` of the joint-frames are confident
    or when an absent (non-finite) joint lies in a gap longer than ``max_gap``.
    """
    v = np.array(values, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    t, j = s.shape
    finite = np.isfinite(v).all(-1)
    ok = finite & (s >= threshold)
    if ok.mean() < min_valid:
        raise TrackError(
            f"only {ok.mean():.0%} of the joints are above the confidence threshold "
            f"{threshold} (at least {min_valid:.0%} needed)"
        )
    filled = np.zeros((t, j), bool)
    frames = np.arange(t)
    for k in range(j):
        good = np.flatnonzero(ok[:, k])
        bad = np.flatnonzero(~ok[:, k])
        if not len(bad):
            continue
        if not len(good):
            continue  # kept as detected (or refused below when absent)
        nxt = np.searchsorted(good, bad)  # index of the next confident frame
        prev_f = np.where(nxt > 0, good[np.maximum(nxt - 1, 0)], -(10**9))
        next_f = np.where(nxt < len(good), good[np.minimum(nxt, len(good) - 1)], 10**9)
        inner = (prev_f >= 0) & (next_f < t)
        gap = np.where(inner, next_f - prev_f - 1, np.minimum(bad - prev_f, next_f - bad))
        fill = gap <= max_gap
        for c in range(v.shape[-1]):
            v[bad[fill], k, c] = np.interp(frames[bad[fill]], good, v[good, k, c])
        filled[bad[fill], k] = True
    absent = ~np.isfinite(v).all(-1)
    if absent.any():
        f, k = np.argwhere(absent)[0]
        joint = names[k] if names is not None else f"joint {k}"
        frame = frame_names[f] if frame_names is not None else str(f)
        if t == 1:
            raise TrackError(f"{joint} is missing at frame {frame} (one frame: nothing to fill it)")
        raise TrackError(
            f"{joint} is missing at frame {frame} and has no confident value within "
            f"{max_gap} frames (the gap limit)"
        )
    return Filled(v, filled, ~ok & ~filled)


def uniform_times(t0: float, t1: float, fps: float) -> np.ndarray:
    """Times ``t0, t0 + 1/fps, ...`` up to ``t1`` (inclusive within half a step)."""
    n = int(np.floor((t1 - t0) * fps + 0.5)) + 1
    return t0 + np.arange(max(n, 1)) / fps


def resample(
    times: np.ndarray, values: np.ndarray, new_times: np.ndarray, hold: bool = False
) -> np.ndarray:
    """``values (T, ...)`` sampled at increasing ``times (T,)`` onto ``new_times (T',)``:
    linear interpolation (held at the ends), or with ``hold`` the last sample at or before
    each new time (zero-order hold: no look-ahead, for causal use)."""
    times = np.asarray(times, np.float64)
    if hold:
        idx = np.searchsorted(times, np.asarray(new_times) + 1e-9, side="right") - 1
        return np.asarray(values)[np.clip(idx, 0, len(times) - 1)]
    flat = np.asarray(values, np.float64).reshape(len(times), -1)
    if len(times) == 1:
        out = np.repeat(flat, len(new_times), axis=0)
    else:
        out = np.stack([np.interp(new_times, times, flat[:, i]) for i in range(flat.shape[1])], 1)
    return out.reshape((len(new_times),) + np.shape(values)[1:])

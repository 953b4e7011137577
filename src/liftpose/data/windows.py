"""Window gathering and horizontal flips, vectorised over the batch.

All sequences of a split live in one contiguous array ``(N, J, C)``; sequence ``s`` occupies rows
``start[s] : start[s] + length[s]``. A window of ``T = 2 * pad + 1`` frames centred on local frame
``i`` reads rows ``start[s] + clip(i + [-pad..pad], 0, length[s] - 1)``: edge padding by index
arithmetic, one fancy-indexing gather per batch, no per-sample Python.

A *causal* window (``window="causal"``, for online lifting) ends at its target frame instead:
offsets ``[-(T - 1)..0]``, so a prediction for frame ``i`` reads frames ``i - T + 1 .. i`` only
(no look-ahead); its target is the last window frame.
"""

from __future__ import annotations

import numpy as np
import torch

#: Window alignments: ``centred`` (the target frame in the middle) or ``causal`` (at the end).
WINDOWS: tuple[str, ...] = ("centred", "causal")


def window_offsets(
    receptive_field: int, allow_even: bool = False, *, window: str = "centred"
) -> torch.Tensor:
    """Offsets ``(T,)`` of a window relative to its target frame. ``centred``: the target is
    frame ``T // 2``, offsets ``-T // 2 .. T - 1 - T // 2``; ``causal``: the target is the last
    frame, offsets ``-(T - 1) .. 0``. ``T`` must be odd unless ``allow_even`` (a
    sequence-to-sequence window, whose "centre" is only its bookkeeping frame: the later of the
    two middle frames)."""
    if receptive_field < 1 or (receptive_field % 2 == 0 and not allow_even):
        raise ValueError(f"receptive_field must be a positive odd number, got {receptive_field}")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if window == "causal":
        return torch.arange(-(receptive_field - 1), 1)
    pad = receptive_field // 2
    return torch.arange(-pad, receptive_field - pad)


def target_position(length: int, window: str = "centred") -> int:
    """Index of the target frame in a window (or a sequence output) of ``length`` frames."""
    return length - 1 if window == "causal" else length // 2


def window_indices(
    start: torch.Tensor, length: torch.Tensor, centre: torch.Tensor, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global row indices ``(B, T)`` and clamped local frames ``(B, T)`` of windows.

    ``start``, ``length``: ``(B,)`` row offset and length of each sample's sequence;
    ``centre``: ``(B,)`` local centre frame; ``offsets``: ``(T,)``.
    """
    local = centre[:, None] + offsets[None, :]
    local = torch.minimum(local.clamp_min(0), (length - 1)[:, None])
    return start[:, None] + local, local


def flip_pose(x: torch.Tensor, permutation: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mirror poses ``(..., J, C)`` horizontally: negate x and swap left/right joints.

    Works for normalised 2-D (centred screen coordinates) and camera-frame 3-D alike.
    """
    perm = torch.as_tensor(permutation, device=x.device, dtype=torch.long)
    y = x.index_select(-2, perm).clone()
    y[..., 0] = -y[..., 0]
    return y

"""Background attention: the share of keypoint -> image attention spent outside the person.

lifting-by-image.txt (section "Ablation study on Pose-guide Transformer Layer", appendix
"Definition of Background", Fig. 10) takes a 30-pixel-radius disc around each keypoint; the
image outside every disc is "background". For one sample with attention ``A (H, N, M)`` (heads,
keypoints, image tokens; each row sums to one) the background attention is

    bg = mean over heads and keypoints of  sum_{m outside all discs} A[h, n, m]

(the paper averages the heads, and the keypoints' attention over the test set). Token ``m``
of an ``h x w`` grid over an ``H x W`` crop counts as inside when its cell centre
``((j + 0.5) W / w - 0.5, (i + 0.5) H / h - 0.5)`` (crop pixels) is within the radius of a
keypoint.

The radius is in pixels of the paper's 256-pixel-high crops and scales with the crop height
(15 px at 128x96): the rule is the same part of the person at every crop size.

Where the body mask is known (rendered data), :func:`mask_background_attention` uses it
instead: each token weighs ``1 - coverage``, the share of its cell outside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "REFERENCE_HEIGHT",
    "background_attention",
    "keypoint_disc_mask",
    "mask_background_attention",
    "token_centres",
]

#: crop height (pixels) the paper's 30-pixel radius refers to
REFERENCE_HEIGHT = 256


def token_centres(
    grid: tuple[int, int], crop: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """Crop-pixel centres ``(h * w, 2)`` (x, y) of the cells of a ``grid = (h, w)`` token map over a
    ``crop = (H, W)`` image, in raster order."""
    h, w = grid
    ch, cw = crop
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * (ch / h) - 0.5
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * (cw / w) - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def keypoint_disc_mask(
    keypoints: torch.Tensor, grid: tuple[int, int], crop: tuple[int, int], radius: float
) -> torch.Tensor:
    """``(B, M)`` bool: whether each token's cell centre lies within ``radius`` crop pixels of
    any of the keypoints ``(B, N, 2)`` (crop pixels)."""
    centres = token_centres(grid, crop, keypoints.device)  # (M, 2)
    d2 = (centres[None, :, None, :] - keypoints[:, None, :, :].float()).square().sum(-1)
    return (d2 <= radius * radius).any(dim=-1)


def background_attention(
    attn: torch.Tensor,
    keypoints: torch.Tensor,
    grid: tuple[int, int],
    crop: tuple[int, int],
    radius: float = 30.0,
    reference_height: float | None = REFERENCE_HEIGHT,
) -> torch.Tensor:
    """Per-sample background attention of the disc rule (module docstring), in ``[0, 1]``.

    Args:
        attn: ``(B, H, N, M)`` keypoint -> image attention, rows summing to one.
        keypoints: ``(B, N, 2)`` keypoint positions in crop pixels.
        grid: ``(h, w)`` of the tokens (``M = h * w``).
        crop: ``(H, W)`` of the crop, pixels.
        radius: disc radius in pixels of a ``reference_height``-high crop (paper: 30 at 256).
        reference_height: scale the radius by ``crop[0] / reference_height`` (None: use it as
            given).

    Returns:
        ``(B,)`` float32.

    Raises:
        ValueError: shapes that do not fit together.
    """
    if attn.ndim != 4 or attn.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f"attention {tuple(attn.shape)} does not fit a {grid} token grid")
    if keypoints.shape[0] != attn.shape[0] or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints {tuple(keypoints.shape)} do not fit {tuple(attn.shape)}")
    r = radius * (crop[0] / reference_height if reference_height else 1.0)
    outside = ~keypoint_disc_mask(keypoints, grid, crop, r)  # (B, M)
    return (attn.float() * outside[:, None, None, :]).sum(-1).mean(dim=(1, 2))


def mask_background_attention(
    attn: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Per-sample background attention outside a body mask, in ``[0, 1]``.

    Args:
        attn: ``(B, H, N, M)`` attention, rows summing to one.
        mask: ``(B, Hc, Wc)`` bool body mask of the crop.
        grid: ``(h, w)`` of the tokens; each token weighs the share of its cell outside the mask
            (area average of the mask over the cell).

    Returns:
        ``(B,)`` float32.
    """
    cover = F.adaptive_avg_pool2d(mask[:, None].float(), grid).flatten(1)  # (B, M)
    return (attn.float() * (1.0 - cover)[:, None, None, :]).sum(-1).mean(dim=(1, 2))

"""Top-down 2-D pose geometry: person boxes to crops, Gaussian heatmap targets and their decoding.

Conventions
-----------
* Points are pixel coordinates ``(x, y)`` in which integer values are pixel centres (the
  convention of ``cv2.warpAffine``).
* A person crop is described by a ``centre`` ``(x, y)`` and a ``scale`` ``(w, h)``, both in
  pixels of the source image: the crop shows the ``w x h`` rectangle around ``centre``
  (rotated by ``rotation`` degrees), resized to the output size. Scales keep the aspect ratio
  of the network input (``w / h = 192 / 256``) so that the resize is isotropic.
* Sizes are ``(width, height)`` where a function takes an image-like size argument
  (``output_size``, ``heatmap_size``) and the arrays are ``(..., H, W)``.
* Heatmaps are ``(B, K, H, W)`` with ``H, W`` a quarter of the network input; a joint at input
  pixel ``p`` sits at heatmap pixel ``p / stride``.

The heatmap decoder is the standard top-down rule: the arg-max pixel, moved a quarter pixel
towards the higher of its two neighbours along each axis, with the peak value as the joint's
confidence. Flip testing averages the heatmaps with the un-mirrored heatmaps of the mirrored
crop, shifted one pixel to the right (the usual correction of the mirrored pixel grid).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from liftpose.data.skeleton import Skeleton
from liftpose.system.joints import COCO17 as COCO17_LAYOUT

#: The 17 COCO keypoints as a tree rooted at the nose (shoulders hang from the nose, hips from
#: the shoulders), with their left/right pairs.
COCO17 = Skeleton(
    names=COCO17_LAYOUT.names,
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    left=COCO17_LAYOUT.left,
    right=COCO17_LAYOUT.right,
)
COCO_KEYPOINT_NAMES = COCO17_LAYOUT.names

#: ``x[..., COCO_FLIP_PERMUTATION, :]`` swaps each left keypoint with its right twin.
COCO_FLIP_PERMUTATION: tuple[int, ...] = tuple(int(i) for i in COCO17.flip_permutation)

#: Keypoints of the upper and the lower body (half-body augmentation).
COCO_UPPER_BODY: tuple[int, ...] = tuple(range(11))
COCO_LOWER_BODY: tuple[int, ...] = tuple(range(11, 17))

#: Per-keypoint OKS constants of the COCO keypoint benchmark.
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

#: ImageNet RGB statistics on a ``[0, 1]`` scale.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------- boxes
def box_to_centre_scale(
    boxes: np.ndarray, aspect: float = 192 / 256, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes to crop centres and scales of a fixed aspect ratio.

    The shorter side (relative to ``aspect``) is extended until ``w / h == aspect``, then both
    sides are multiplied by ``padding``.

    Args:
        boxes: ``(N, 4)`` or ``(4,)`` COCO boxes ``(x, y, w, h)`` in pixels.
        aspect: crop width over height (``192 / 256`` for the 256x192 input).
        padding: context factor around the box.

    Returns:
        ``centre (N, 2)`` and ``scale (N, 2)`` (or ``(2,)`` each for one box), float32.
    """
    b = np.asarray(boxes, dtype=np.float64)
    x, y, w, h = np.moveaxis(b, -1, 0)
    centre = np.stack([x + 0.5 * w, y + 0.5 * h], axis=-1)
    w, h = np.maximum(w, h * aspect), np.maximum(h, w / aspect)
    scale = np.stack([w, h], axis=-1) * padding
    return centre.astype(np.float32), scale.astype(np.float32)


def points_to_centre_scale(
    points: np.ndarray, aspect: float = 192 / 256, padding: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of the box around ``points (K, 2)`` (half-body crops), ``(2,)`` each."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    box = np.concatenate([lo, hi - lo])
    return box_to_centre_scale(box, aspect, padding)


# ------------------------------------------------------------------------------ affine warping
def affine_matrix(
    centre: np.ndarray | torch.Tensor,
    scale: np.ndarray | torch.Tensor,
    rotation: np.ndarray | torch.Tensor | float,
    output_size: tuple[int, int],
    inverse: bool = False,
) -> np.ndarray | torch.Tensor:
    """The affine map from source pixels to crop pixels (or back, with ``inverse``).

    ``centre`` goes to the crop centre ``(W / 2, H / 2)``; the ``scale = (w, h)`` rectangle
    around it fills the ``output_size = (W, H)`` crop; a positive ``rotation`` (degrees) turns
    the crop's content counter-clockwise on screen (the image y axis points down).

    Args:
        centre: ``(..., 2)``; scale: ``(..., 2)``; rotation: ``(...)`` or a number.
        output_size: ``(W, H)`` of the crop (or heatmap).
        inverse: return the map from crop pixels to source pixels.

    Returns:
        ``(..., 2, 3)`` matrices ``M`` with ``p_out = M[:, :2] @ p + M[:, 2]``; numpy float32 or
        a torch tensor of ``centre``'s dtype, following the type of ``centre``.
    """
    if isinstance(centre, torch.Tensor):
        scale = torch.as_tensor(scale, dtype=centre.dtype, device=centre.device)
        rot = torch.as_tensor(rotation, dtype=centre.dtype, device=centre.device)
        rot = torch.deg2rad(rot).expand(centre.shape[:-1])
        cos, sin = torch.cos(rot), torch.sin(rot)
        stack, xp = torch.stack, torch
        out = torch.tensor(output_size, dtype=centre.dtype, device=centre.device)
    else:
        centre = np.asarray(centre, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        rot = np.broadcast_to(np.deg2rad(np.asarray(rotation, dtype=np.float64)), centre.shape[:-1])
        cos, sin = np.cos(rot), np.sin(rot)
        stack, xp = np.stack, np
        out = np.asarray(output_size, dtype=np.float64)
    sx = out[0] / scale[..., 0]
    sy = out[1] / scale[..., 1]
    half_x, half_y = out[0] / 2, out[1] / 2
    cx, cy = centre[..., 0], centre[..., 1]
    if not inverse:
        # p_out = diag(sx, sy) @ R @ (p - c) + out / 2,  R = [[cos, sin], [-sin, cos]]
        a, b, c, d = sx * cos, sx * sin, -sy * sin, sy * cos
        tx = half_x - (a * cx + b * cy)
        ty = half_y - (c * cx + d * cy)
    else:
        # p = R^T @ diag(1/sx, 1/sy) @ (p_out - out / 2) + c
        a, b, c, d = cos / sx, -sin / sy, sin / sx, cos / sy
        tx = cx - (a * half_x + b * half_y)
        ty = cy - (c * half_x + d * half_y)
    m = stack([stack([a, b, tx], -1), stack([c, d, ty], -1)], -2)
    return m.astype(np.float32) if xp is np else m


def transform_points(
    points: np.ndarray | torch.Tensor, matrix: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """Apply ``matrix (..., 2, 3)`` to ``points (..., K, 2)`` (extra columns, such as a
    visibility, are carried over unchanged): returns the same shape as ``points``."""
    xy = points[..., :2]
    out = xy @ matrix[..., :2].swapaxes(-1, -2) + matrix[..., None, :, 2]
    if points.shape[-1] == 2:
        return out
    if isinstance(points, torch.Tensor):
        return torch.cat([out.to(points.dtype), points[..., 2:]], dim=-1)
    return np.concatenate([out.astype(points.dtype), points[..., 2:]], axis=-1)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Crop ``image (H, W, C)`` with ``matrix (2, 3)`` (from :func:`affine_matrix`) into
    ``(output_size[1], output_size[0], C)``, bilinear, black outside the image."""
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def flip_matrix(matrix: np.ndarray, width: int) -> np.ndarray:
    """``matrix (..., 2, 3)`` followed by a horizontal mirror of a ``width``-pixel-wide crop."""
    out = np.array(matrix, dtype=np.float32, copy=True)
    out[..., 0, :] *= -1
    out[..., 0, 2] += width - 1
    return out


def flip_points(
    points: np.ndarray | torch.Tensor, width: int, permutation: tuple[int, ...] | list[int]
) -> np.ndarray | torch.Tensor:
    """Mirror ``points (..., K, C)`` (``C >= 2``) in a ``width``-pixel-wide image and swap each
    left joint with its right twin (``permutation``); applying it twice is the identity."""
    perm = list(permutation)
    out = points[..., perm, :]
    out = out.clone() if isinstance(out, torch.Tensor) else out.copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


# --------------------------------------------------------------------------------- heatmaps
def gaussian_heatmaps(
    joints: np.ndarray,
    visibility: np.ndarray,
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets centred on sub-pixel joint positions, with target weights.

    Each map is ``exp(-d^2 / (2 sigma^2))`` around the joint, cut to the square of radius
    ``3 sigma``. A joint is weighted 0 (and its map left empty) when it is not labelled
    (``visibility == 0``) or its cut Gaussian lies wholly outside the heatmap.

    Args:
        joints: ``(..., K, 2)`` joint positions in heatmap pixels.
        visibility: ``(..., K)`` COCO visibility flags (0 unlabelled, 1 occluded, 2 visible).
        heatmap_size: ``(W, H)``.
        sigma: Gaussian standard deviation in heatmap pixels (2 at 64x48).

    Returns:
        ``heatmaps (..., K, H, W)`` and ``weights (..., K)``, float32.
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    joints = np.asarray(joints, dtype=np.float32)
    mx, my = joints[..., 0, None], joints[..., 1, None]  # (..., K, 1)
    radius = 3.0 * sigma
    inside = (mx[..., 0] + radius >= 0) & (mx[..., 0] - radius <= w - 1)
    inside &= (my[..., 0] + radius >= 0) & (my[..., 0] - radius <= h - 1)
    weights = ((np.asarray(visibility) > 0) & inside & np.isfinite(joints).all(-1)).astype(
        np.float32
    )
    dx = np.arange(w, dtype=np.float32) - np.nan_to_num(mx)  # (..., K, W)
    dy = np.arange(h, dtype=np.float32) - np.nan_to_num(my)  # (..., K, H)
    gx = np.where(np.abs(dx) <= radius, np.exp(-(dx**2) / (2 * sigma**2)), 0.0)
    gy = np.where(np.abs(dy) <= radius, np.exp(-(dy**2) / (2 * sigma**2)), 0.0)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
    return heatmaps.astype(np.float32), weights


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint positions and confidences from heatmaps (vectorised over batch and joints).

    The arg-max pixel is moved 0.25 px along each axis towards its higher neighbour (pixels on
    the border are not moved along the axis that leaves the map). Joints whose peak is not
    positive are put at ``(0, 0)``.

    Args:
        heatmaps: ``(..., K, H, W)``.

    Returns:
        ``coords (..., K, 2)`` in heatmap pixels ``(x, y)`` (float32) and ``maxvals (..., K)``.
    """
    *lead, h, w = heatmaps.shape
    hm = heatmaps.reshape(-1, h * w).float()
    maxvals, idx = hm.max(dim=-1)
    x, y = idx % w, torch.div(idx, w, rounding_mode="floor")
    rows = torch.arange(hm.shape[0], device=hm.device)

    def at(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return hm[rows, yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)]

    dx = torch.sign(at(x + 1, y) - at(x - 1, y)) * ((x > 0) & (x < w - 1))
    dy = torch.sign(at(x, y + 1) - at(x, y - 1)) * ((y > 0) & (y < h - 1))
    coords = torch.stack([x.float() + 0.25 * dx, y.float() + 0.25 * dy], dim=-1)
    coords = coords * (maxvals > 0)[:, None]
    return coords.reshape(*lead, 2), maxvals.reshape(*lead)


def flip_heatmaps(heatmaps: torch.Tensor, permutation: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Mirror ``heatmaps (B, K, H, W)`` left-right and swap the left/right joint channels."""
    return heatmaps.flip(-1)[:, list(permutation)]


def flip_images(images: torch.Tensor) -> torch.Tensor:
    """Mirror ``images (B, C, H, W)`` left-right."""
    return images.flip(-1)


def flip_test_average(
    heatmaps: torch.Tensor,
    flipped_output: torch.Tensor,
    permutation: tuple[int, ...] | list[int],
    shift: bool = True,
) -> torch.Tensor:
    """Average ``heatmaps (B, K, H, W)`` with the network output for the mirrored images.

    ``flipped_output`` is un-mirrored (joints swapped back) and, with ``shift``, moved one pixel
    to the right (the leftmost column repeats) before averaging.
    """
    back = flip_heatmaps(flipped_output, permutation)
    if shift:
        back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return 0.5 * (heatmaps + back)


def heatmap_to_image(
    coords: torch.Tensor,
    centre: torch.Tensor,
    scale: torch.Tensor,
    heatmap_size: tuple[int, int],
) -> torch.Tensor:
    """Map ``coords (B, K, 2)`` in heatmap pixels back to source-image pixels of unrotated
    crops with ``centre (B, 2)`` and ``scale (B, 2)``."""
    m = affine_matrix(centre.to(coords.dtype), scale.to(coords.dtype), 0.0, heatmap_size, True)
    return transform_points(coords, m)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB -> float32 ``(3, H, W)`` with ImageNet mean and std."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0)
    out = (image.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(out.transpose(2, 0, 1))

"""Pictures of keypoint -> image attention over a crop (lifting-by-image.txt, Figs. 3, 4, 9, 10).

:func:`attention_figure` lays out one frame as a row of panels, each the crop scaled up:

1. the crop with its 2-D keypoints (the model's input) and the skeleton;
2. the attention of all keypoints (mean over keypoints and heads, Fig. 3), with the discs of the
   background rule drawn as circles (Fig. 10);
3. one panel per chosen keypoint: its attention (mean over heads, Fig. 4), the keypoint ringed;
4. optionally the image tokens AFSM kept, in red over the darkened crop (Fig. 9).

Heatmaps are each panel's attention stretched from its minimum to its maximum, bilinearly
upsampled, coloured with the JET map and blended half-and-half with the crop; the label gives
the peak as a multiple of uniform attention (``x1.0``: flat), since the stretch hides how flat
a map is. Everything is drawn with OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from liftpose.data.skeleton import H36M17, Skeleton
from liftpose.utils.io import atomic_path

__all__ = ["attention_figure", "attention_overlay", "write_png"]


def _label(img: np.ndarray, text: str) -> None:
    """White text with a black outline. The outline is the same thin text shifted by one pixel:
    a thicker stroke would also widen OpenCV's glyph advance and misalign the two strings."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.42
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)):
        cv2.putText(img, text, (4 + dx, 14 + dy), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, (4, 14), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def attention_overlay(image: np.ndarray, attn: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image (H, W, 3)`` uint8 RGB blended with ``attn (h, w)`` as a JET heatmap (stretched
    from its minimum to its maximum, upsampled bilinearly): ``(H, W, 3)`` uint8 RGB."""
    h, w = image.shape[:2]
    a = np.asarray(attn, np.float32)
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
    up = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((up * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (alpha * heat + (1 - alpha) * image).astype(np.uint8)


def attention_figure(
    image: np.ndarray,
    keypoints: np.ndarray,
    attn: np.ndarray,
    grid: tuple[int, int],
    joints: Sequence[int],
    kept: np.ndarray | None = None,
    radius: float | None = None,
    skeleton: Skeleton = H36M17,
    min_height: int = 256,
) -> np.ndarray:
    """One frame's attention panels side by side (module docstring).

    Args:
        image: ``(H, W, 3)`` uint8 RGB crop.
        keypoints: ``(N, 2)`` crop pixels.
        attn: ``(heads, N, h * w)`` attention of the keypoints over the image tokens.
        grid: ``(h, w)``.
        joints: keypoints with a panel of their own.
        kept: raster indices of the image tokens AFSM kept (None: no panel).
        radius: background-rule disc radius in crop pixels (None: no circles).
        skeleton: joint names and bones.
        min_height: panels are scaled up by an integer factor to at least this height.

    Returns:
        ``(S * H, P * S * W, 3)`` uint8 RGB, ``S`` the scale and ``P`` the panel count.
    """
    h, w = grid
    s = max(1, int(np.ceil(min_height / image.shape[0])))
    big = cv2.resize(image, (image.shape[1] * s, image.shape[0] * s), interpolation=cv2.INTER_CUBIC)
    pts = (np.asarray(keypoints, np.float64) + 0.5) * s - 0.5
    a = np.asarray(attn, np.float32).mean(0).reshape(-1, h, w)  # (N, h, w), mean over heads

    panels = []
    inp = big.copy()
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            cv2.line(inp, _pt(pts[j]), _pt(pts[p]), (255, 255, 255), 1, cv2.LINE_AA)
    for j, q in enumerate(pts):
        colour = (
            (255, 60, 60)
            if j in skeleton.left
            else (60, 220, 60)
            if j in skeleton.right
            else (255, 220, 0)
        )
        cv2.circle(inp, _pt(q), 3, colour, -1, cv2.LINE_AA)
    _label(inp, "input 2-D")
    panels.append(inp)

    allp = attention_overlay(big, a.mean(0))
    if radius is not None:
        for q in pts:
            cv2.circle(allp, _pt(q), int(round(radius * s)), (200, 200, 200), 1, cv2.LINE_AA)
    _label(allp, f"all keypoints x{a.mean(0).max() * h * w:.1f}")
    panels.append(allp)

    for j in joints:
        pj = attention_overlay(big, a[j])
        cv2.circle(pj, _pt(pts[j]), 6, (255, 255, 255), 2, cv2.LINE_AA)
        _label(pj, f"{skeleton.names[j]} x{a[j].max() * h * w:.1f}")
        panels.append(pj)

    if kept is not None:
        keep = np.zeros(h * w, np.float32)
        keep[np.asarray(kept, np.int64)] = 1.0
        up = cv2.resize(
            keep.reshape(h, w), (big.shape[1], big.shape[0]), interpolation=cv2.INTER_NEAREST
        )
        red = np.array([230, 30, 30], np.float32)
        kp = (0.35 * big).astype(np.float32)
        kp = np.where(up[..., None] > 0, 0.45 * big + 0.55 * red, kp).astype(np.uint8)
        _label(kp, f"kept {int(keep.sum())}/{h * w}")
        panels.append(kp)
    return np.concatenate(panels, axis=1)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image (H, W, 3)`` uint8 RGB as a PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    with atomic_path(path, suffix=".tmp.png") as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)

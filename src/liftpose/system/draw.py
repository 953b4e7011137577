"""Pictures of the result, drawn with matplotlib (Agg, off-screen): the 2-D skeleton over the
frame, and the 3-D skeleton beside the frame.

Colours: left limbs blue, right limbs red, the trunk and head grey; Human3.6M-17 joints are
white dots, faded where the confidence is low or the joint was filled by interpolation; the
detector's own keypoints are small yellow dots, faded by their confidence. The 3-D view is the
camera's: x right, depth into the picture, up; each person root-relative, several people side
by side one metre apart. Every picture is an RGB ``uint8`` array, with even sides for video
(what H.264 needs).

Speed: matplotlib draws only what changes. The skeleton layer is rasterised on a transparent
canvas and blended over the frame with numpy (no resampling of the photo inside matplotlib);
the 3-D axes (panes, grid, labels) are drawn once and restored from a saved background for
every frame, and only the skeleton lines are drawn over them (blitting).
"""

from __future__ import annotations

import cv2
import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from liftpose.system.joints import H36M17_LAYOUT, KeypointLayout  # noqa: E402

LEFT, RIGHT, MIDDLE = "#1f6fd1", "#d62728", "#7f7f7f"


def edge_colours(layout: KeypointLayout) -> list[str]:
    """One colour per edge of ``layout``: by the side of its end joints."""
    left, right = set(layout.left), set(layout.right)
    out = []
    for a, b in layout.edges:
        is_l, is_r = a in left or b in left, a in right or b in right
        out.append(LEFT if is_l and not is_r else RIGHT if is_r and not is_l else MIDDLE)
    return out


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width x height``, centred on black (letterbox)."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


class OverlayDrawer:
    """The 2-D skeletons over an image, at most ``max_side`` pixels on the long side.

    :meth:`draw` takes the image and per person ``(pose_2d (17, 2), alpha (17,))`` in the
    image's pixels (Human3.6M-17) and, optionally, the detector's keypoints with their scores
    and layout. ``size`` ``(width, height)``: the frame the coordinates refer to, when the
    image is a smaller copy of it (a blank canvas for a keypoint file of huge frames).
    """

    def __init__(self, max_side: int = 960, even: bool = True) -> None:
        self.max_side = max_side
        self.even = even  # even sides for video; a photo's overlay keeps the photo's size
        self._key: tuple | None = None

    def _setup(self, h: int, w: int) -> None:
        self.scale = min(1.0, self.max_side / max(h, w))
        side = _even if self.even else (lambda v: max(1, int(round(v))))
        self.size = (side(w * self.scale), side(h * self.scale))
        dpi = 100
        self.fig = Figure(figsize=(self.size[0] / dpi, self.size[1] / dpi), dpi=dpi)
        self.fig.patch.set_alpha(0.0)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        self.ax.patch.set_alpha(0.0)
        self.ax.set_xlim(-0.5, w - 0.5)
        self.ax.set_ylim(h - 0.5, -0.5)
        self._key = (h, w)

    def draw(
        self,
        image: np.ndarray,
        people: list[tuple[np.ndarray, np.ndarray]],
        keypoints: list[tuple[np.ndarray, np.ndarray, KeypointLayout]] | None = None,
        label: str | None = None,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        w, h = size if size is not None else (image.shape[1], image.shape[0])
        if self._key != (h, w):
            self._setup(h, w)
        for art in list(self.ax.collections) + list(self.ax.texts):
            art.remove()
        lw = max(1.5, 2.5 * self.size[0] / 960)
        for kp, sc, _layout in keypoints or []:
            ok = np.isfinite(kp).all(-1)
            rgba = np.tile([1.0, 0.84, 0.0, 1.0], (int(ok.sum()), 1))
            rgba[:, 3] = np.clip(sc[ok], 0.2, 1.0)
            self.ax.scatter(kp[ok, 0], kp[ok, 1], s=lw * 5, c=rgba, edgecolors="none", zorder=2)
        colours = edge_colours(H36M17_LAYOUT)
        for pose, alpha in people:
            segs = [pose[[a, b]] for a, b in H36M17_LAYOUT.edges]
            self.ax.add_collection(
                LineCollection(segs, colors=colours, linewidths=lw, zorder=3, capstyle="round")
            )
            rgba = np.ones((17, 4))
            rgba[:, 3] = np.clip(alpha, 0.15, 1.0)
            self.ax.scatter(pose[:, 0], pose[:, 1], s=lw * 8, c=rgba, edgecolors="k",
                            linewidths=0.5, zorder=4)  # fmt: skip
        if label:
            self.ax.text(
                0.01, 0.99, label, transform=self.ax.transAxes, va="top", ha="left",
                color="white", fontsize=9, bbox={"facecolor": "black", "alpha": 0.5, "pad": 2},
            )  # fmt: skip
        self.canvas.draw()
        layer = np.asarray(self.canvas.buffer_rgba())[: self.size[1], : self.size[0]]
        shape = (image.shape[1], image.shape[0])
        base = image if self.size == shape else cv2.resize(image, self.size, cv2.INTER_AREA)
        drawn = layer[..., 3] > 0  # blend only where the layer has something
        a = layer[drawn, 3:4].astype(np.uint16)
        out = base.copy()
        out[drawn] = ((base[drawn] * (255 - a) + layer[drawn, :3] * a + 127) // 255).astype(
            np.uint8
        )
        return out


class Skeleton3DDrawer:
    """The frame (with its overlay) on the left and the 3-D skeletons on the right.

    :meth:`draw` takes the overlay picture (letterboxed into a 4:3 panel) and per person the
    root-relative 3-D pose ``(17, 3)`` in metres, camera frame (x right, y down, z forward),
    or ``None`` where that person is not in the frame.
    """

    def __init__(self, height: int = 480, radius: float = 1.0) -> None:
        self.height = _even(height)
        self.radius = radius
        self._n: int | None = None

    def _setup(self, n: int) -> None:
        dpi = 100
        self.left_w = _even(self.height * 4 / 3)
        self.right_w = _even(self.height * (1 + 0.5 * (n - 1)))
        self.fig = Figure(figsize=(self.right_w / dpi, self.height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_axes((0, 0.02, 1, 0.96), projection="3d")
        ax.view_init(elev=12, azim=-65)
        ax.set_xlabel("x (m)", fontsize=7, labelpad=-8)
        ax.set_ylabel("depth (m)", fontsize=7, labelpad=-8)
        ax.set_zlabel("up (m)", fontsize=7, labelpad=-8)
        ax.tick_params(labelsize=6, pad=-3)
        r = self.radius
        ax.set_xlim(-r, r + (n - 1))
        ax.set_ylim(-r, r)
        ax.set_zlim(-r, r)
        ax.set_box_aspect((2 * r + n - 1, 2 * r, 2 * r))
        colours = edge_colours(H36M17_LAYOUT)
        self.lines = [
            [ax.plot([], [], [], color=c, lw=2.5, animated=True)[0] for c in colours]
            for _ in range(n)
        ]
        self.ax3 = ax
        self.canvas.draw()  # the static axes, once
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._n = n

    def draw(self, frame_rgb: np.ndarray, poses: list[np.ndarray | None]) -> np.ndarray:
        n = max(1, len(poses))
        if self._n != n:
            self._setup(n)
        self.canvas.restore_region(self.background)
        for i in range(n):
            pose = poses[i] if i < len(poses) else None
            if pose is None:
                continue
            for (a, b), line in zip(H36M17_LAYOUT.edges, self.lines[i]):
                p = pose[[a, b]]
                line.set_data_3d(p[:, 0] + i, p[:, 2], -p[:, 1])
                self.ax3.draw_artist(line)
        right = np.asarray(self.canvas.buffer_rgba())[: self.height, : self.right_w, :3]
        left = fit_image(frame_rgb, self.left_w, self.height)
        return np.concatenate([left, right], axis=1)

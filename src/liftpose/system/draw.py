"""Pictures of the result, drawn with matplotlib (Agg, off-screen): the 2-D skeleton over the
frame, and the 3-D skeleton beside the frame.

Colours: left limbs blue, right limbs red, the trunk and head grey; a joint's dot is faded
where its confidence is low (the detector's keypoints) or where it was filled by
interpolation. The 3-D view is the camera's: x right, depth into the picture, up; each person
root-relative, several people side by side one metre apart. Every picture is an RGB
``uint8`` array with even sides (what H.264 needs).
"""

from __future__ import annotations

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
        if a in left or b in left:
            out.append(LEFT if not (a in right or b in right) else MIDDLE)
        elif a in right or b in right:
            out.append(RIGHT)
        else:
            out.append(MIDDLE)
    return out


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def _canvas_rgb(fig: Figure, canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class OverlayDrawer:
    """The 2-D skeletons over an image, at most ``max_side`` pixels on the long side.

    :meth:`draw` takes the image and per person ``(pose_2d (17, 2), alpha (17,))`` in the
    image's pixels (Human3.6M-17) and, optionally, the detector's keypoints with their layout.
    """

    def __init__(self, max_side: int = 960) -> None:
        self.max_side = max_side
        self._key: tuple | None = None

    def _setup(self, h: int, w: int) -> None:
        s = min(1.0, self.max_side / max(h, w))
        self.size = (_even(w * s), _even(h * s))
        dpi = 100
        self.fig = Figure(figsize=(self.size[0] / dpi, self.size[1] / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        self.im = self.ax.imshow(np.zeros((h, w, 3), np.uint8), interpolation="bilinear")
        self.ax.set_xlim(-0.5, w - 0.5)
        self.ax.set_ylim(h - 0.5, -0.5)
        self._key = (h, w)

    def draw(
        self,
        image: np.ndarray,
        people: list[tuple[np.ndarray, np.ndarray]],
        keypoints: list[tuple[np.ndarray, np.ndarray, KeypointLayout]] | None = None,
        label: str | None = None,
    ) -> np.ndarray:
        h, w = image.shape[:2]
        if self._key != (h, w):
            self._setup(h, w)
        self.im.set_data(image)
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
            rgba = np.zeros((17, 4))
            rgba[:, :3] = 1.0
            rgba[:, 3] = np.clip(alpha, 0.15, 1.0)
            self.ax.scatter(pose[:, 0], pose[:, 1], s=lw * 8, c=rgba, edgecolors="k",
                            linewidths=0.5, zorder=4)  # fmt: skip
        if label:
            self.ax.text(
                0.01, 0.99, label, transform=self.ax.transAxes, va="top", ha="left",
                color="white", fontsize=9, bbox={"facecolor": "black", "alpha": 0.5, "pad": 2},
            )  # fmt: skip
        rgb = _canvas_rgb(self.fig, self.canvas)
        return rgb[: self.size[1], : self.size[0]]


class Skeleton3DDrawer:
    """The frame (with its overlay) on the left and the 3-D skeletons on the right.

    :meth:`draw` takes the overlay picture and per person the root-relative 3-D pose
    ``(17, 3)`` in metres, camera frame (x right, y down, z forward).
    """

    def __init__(self, height: int = 480, radius: float = 1.0) -> None:
        self.height = _even(height)
        self.radius = radius
        self._key: tuple | None = None

    def _setup(self, h: int, w: int, n: int) -> None:
        dpi = 100
        left_w = self.height * w / h
        total_w = _even(left_w + self.height * max(1, n) ** 0.5)
        self.size = (total_w, self.height)
        self.fig = Figure(figsize=(total_w / dpi, self.height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        frac = left_w / total_w
        self.ax_img = self.fig.add_axes((0, 0, frac, 1))
        self.ax_img.set_axis_off()
        self.im = self.ax_img.imshow(np.zeros((h, w, 3), np.uint8))
        self.ax3 = self.fig.add_axes((frac, 0.02, 1 - frac, 0.96), projection="3d")
        self.ax3.view_init(elev=12, azim=-65)
        self.ax3.set_xlabel("x (m)", fontsize=7, labelpad=-8)
        self.ax3.set_ylabel("depth (m)", fontsize=7, labelpad=-8)
        self.ax3.set_zlabel("up (m)", fontsize=7, labelpad=-8)
        self.ax3.tick_params(labelsize=6, pad=-3)
        r = self.radius
        self.ax3.set_xlim(-r, r + (n - 1))
        self.ax3.set_ylim(-r, r)
        self.ax3.set_zlim(-r, r)
        self.ax3.set_box_aspect((2 * r + n - 1, 2 * r, 2 * r))
        self.lines = []
        colours = edge_colours(H36M17_LAYOUT)
        for _ in range(n):
            self.lines.append([self.ax3.plot([], [], [], color=c, lw=2.5)[0] for c in colours])
        self._key = (h, w, n)

    def draw(self, frame_rgb: np.ndarray, poses: list[np.ndarray | None]) -> np.ndarray:
        h, w = frame_rgb.shape[:2]
        n = max(1, len(poses))
        if self._key != (h, w, n):
            self._setup(h, w, n)
        self.im.set_data(frame_rgb)
        for i, pose in enumerate(poses):
            for (a, b), line in zip(H36M17_LAYOUT.edges, self.lines[i]):
                if pose is None:
                    line.set_data_3d([], [], [])
                    continue
                p = pose[[a, b]]
                line.set_data_3d(p[:, 0] + i, p[:, 2] - pose[0, 2], -p[:, 1])
        rgb = _canvas_rgb(self.fig, self.canvas)
        return rgb[: self.size[1], : self.size[0]]

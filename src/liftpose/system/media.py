"""Images, folders of images and videos: frames as RGB ``uint8`` ``(H, W, 3)`` with their
times and sizes (OpenCV decodes; a video's frame rate is read from its container).

A folder of images is a set of unrelated photos unless a frame rate is given (then it is the
frames of a video, in file-name order). Every image keeps its own size, so a folder of photos
of different sizes is fine.

FFmpeg's own log (``moov atom not found`` for a broken video, ...) is silenced: liftpose says
in one line what is wrong. OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` once, when it first opens a
video, so importing this module sets it to quiet (-8) unless it is set already (set it to 24
to see FFmpeg's warnings).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from liftpose.errors import DataError  # noqa: E402
from liftpose.system.person import Frame  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB ``uint8`` ``(H, W, 3)``; ``DataError`` when it cannot be decoded."""
    p = Path(path)
    data = np.fromfile(p, dtype=np.uint8) if p.is_file() else None
    img = None if data is None or not len(data) else cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise DataError(p, "image", "empty or not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class MediaSource:
    """The frames of an image, a folder of images or a video.

    ``frames`` lists every frame (index, time, size, name) after a cheap check of the whole
    input; :meth:`images` decodes them again, in order, as often as needed (the system reads a
    video twice, once to detect and once to draw, rather than holding it in memory).
    """

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(self.path, "input", "not found")
        self.kind = "video" if self.path.suffix.lower() in VIDEO_SUFFIXES else "images"
        if self.path.is_dir():
            self.files = sorted(
                f for f in self.path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self.files:
                raise DataError(
                    self.path, "images", f"no image files ({', '.join(IMAGE_SUFFIXES)})"
                )
        elif self.kind == "images":
            if self.path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(self.path, "input", "not an image, a video or a keypoint file")
            self.files = [self.path]
        if self.kind == "video":
            self.fps, self.frames = _probe_video(self.path, fps)
        else:
            self.fps = fps
            self.frames = []
            for i, f in enumerate(self.files):
                h, w = _image_size(f)
                t = None if fps is None else i / fps
                self.frames.append(Frame(i, t, w, h, f.name))

    def images(self, only: set[int] | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
        """``(frame, RGB image)`` for every frame (or those whose index is in ``only``), in
        order; image files outside ``only`` are not read."""
        if self.kind == "images":
            for frame, f in zip(self.frames, self.files):
                if only is None or frame.index in only:
                    yield frame, read_image(f)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            for frame in self.frames:
                ok, img = cap.read()
                if not ok:
                    raise DataError(self.path, f"frame {frame.index}", "could not be decoded")
                if only is None or frame.index in only:
                    yield frame, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file (decoded: a truncated file is caught here, before any work)."""
    img = read_image(path)
    return img.shape[0], img.shape[1]


def _probe_video(path: Path, fps: float | None) -> tuple[float, list[Frame]]:
    """The frame rate (the container's unless ``fps`` is given) and the frames of a video,
    counted by decoding (container frame counts are often wrong)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(path, "video", "cannot be opened (not a video OpenCV decodes)")
        rate = float(fps) if fps else float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not rate > 0 or not np.isfinite(rate):
            raise DataError(path, "fps", "the container has no frame rate; pass --fps")
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0 or w <= 0 or h <= 0:
        raise DataError(path, "video", "no decodable frames")
    return rate, [Frame(i, i / rate, w, h, f"frame_{i:06d}") for i in range(n)]

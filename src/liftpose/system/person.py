"""People found in a frame, and what a frame is: the shared types of the system."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Person:
    """One person in one frame.

    Attributes:
        keypoints: ``(K, 2)`` pixels of the frame (x right, y down; NaN where absent).
        scores: ``(K,)`` confidences in ``[0, 1]`` (0 where absent).
        box: ``(4,)`` ``[x1, y1, x2, y2]`` pixels.
        track_id: an identity given by the source (e.g. AlphaPose's ``idx``), else ``None``.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    track_id: int | None = None

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


@dataclass
class Frame:
    """A frame of the input: its index, its time in seconds (``None`` for unrelated photos),
    its size in pixels and a name (the image file, or ``frame_000123``)."""

    index: int
    time: float | None
    width: int
    height: int
    name: str


@dataclass
class Detections:
    """People per frame of a whole input.

    Attributes:
        frames: one :class:`Frame` per input frame.
        people: per frame, the people found in it.
        layout: the keypoint layout name (:data:`liftpose.system.joints.LAYOUTS`).
        fps: frames per second of a sequence, ``None`` for unrelated photos.
        source: what produced the keypoints (a detector's name, or the file read).
    """

    frames: list[Frame]
    people: list[list[Person]]
    layout: str
    fps: float | None
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def is_sequence(self) -> bool:
        return self.fps is not None


def box_of(keypoints: np.ndarray, scores: np.ndarray | None = None, min_score: float = 0.0):
    """Tight box ``[x1, y1, x2, y2]`` of the finite keypoints ``(K, 2)`` whose score exceeds
    ``min_score`` (all finite ones when none does); ``None`` when no keypoint is finite."""
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = np.isfinite(kp).all(-1)
    if scores is not None:
        good = ok & (np.asarray(scores) > min_score)
        if good.any():
            ok = good
    if not ok.any():
        return None
    return np.concatenate([kp[ok].min(0), kp[ok].max(0)])

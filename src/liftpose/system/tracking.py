"""People over time: one track per person across frames, by box IoU.

Each frame's people are matched to the tracks alive in the previous frames greedily, the pair
with the largest box IoU first (at least ``min_iou``); an unmatched person starts a new track,
and a track unseen for more than ``max_gap`` frames ends. People that carry an identity from
their source (AlphaPose ``idx``, OpenPose ``person_id``, a one-person array) keep it instead.
Tracks are numbered in order of their first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftpose.system.person import Detections


@dataclass
class Track:
    """One person over time: ``frames (N,)`` indices into the input's frames (increasing),
    ``keypoints (N, K, 2)`` pixels, ``scores (N, K)``, ``boxes (N, 4)``."""

    id: int
    frames: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    @property
    def total_area(self) -> float:
        """Box area summed over the track's frames (pixels^2 x frames): size and duration."""
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return float((wh[:, 0] * wh[:, 1]).sum())


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``(N, M)`` of boxes ``a (N, 4)`` and ``b (M, 4)`` given as ``[x1, y1, x2, y2]``."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (
        np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)
    )
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def track_people(dets: Detections, min_iou: float = 0.3, max_gap: int = 10) -> list[Track]:
    """Tracks of the people of ``dets`` (see the module docstring)."""
    rows: dict[int, list[tuple[int, object]]] = {}
    if all(p.track_id is not None for people in dets.people for p in people):
        for f, people in enumerate(dets.people):
            for p in people:
                rows.setdefault(int(p.track_id), []).append((f, p))
    else:
        last_box: dict[int, np.ndarray] = {}
        last_seen: dict[int, int] = {}
        next_id = 0
        for f, people in enumerate(dets.people):
            alive = [t for t in last_box if f - last_seen[t] <= max_gap + 1]
            free = list(range(len(people)))
            if alive and people:
                iou = box_iou(
                    np.stack([p.box for p in people]), np.stack([last_box[t] for t in alive])
                )
                while True:
                    i, j = np.unravel_index(np.argmax(iou), iou.shape)
                    if iou[i, j] < min_iou:
                        break
                    t = alive[j]
                    rows[t].append((f, people[i]))
                    last_box[t], last_seen[t] = people[i].box, f
                    free.remove(i)
                    iou[i, :] = -1
                    iou[:, j] = -1
            for i in free:
                rows[next_id] = [(f, people[i])]
                last_box[next_id], last_seen[next_id] = people[i].box, f
                next_id += 1
    tracks = []
    for new_id, (_, items) in enumerate(sorted(rows.items(), key=lambda kv: (kv[1][0][0], kv[0]))):
        items = sorted(items, key=lambda fp: fp[0])
        tracks.append(
            Track(
                id=new_id,
                frames=np.array([f for f, _ in items], dtype=np.int64),
                keypoints=np.stack([p.keypoints for _, p in items]),
                scores=np.stack([p.scores for _, p in items]),
                boxes=np.stack([p.box for _, p in items]),
            )
        )
    return tracks


def select_tracks(tracks: list[Track], person: str) -> list[Track]:
    """``largest`` (the largest box area summed over its frames: the person seen biggest and
    longest), ``all``, or one track id; ``ValueError`` otherwise."""
    if not tracks:
        return []
    if person == "all":
        return tracks
    if person == "largest":
        return [max(tracks, key=lambda t: (t.total_area, -t.id))]
    try:
        tid = int(person)
    except ValueError:
        raise ValueError(f"--person must be largest, all or a track id, got {person!r}") from None
    found = [t for t in tracks if t.id == tid]
    if not found:
        raise ValueError(f"--person {tid}: no such track (tracks 0..{len(tracks) - 1})")
    return found

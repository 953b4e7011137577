"""2-D detectors behind one small interface: an RGB image in, people out.

A detector is a callable ``detector(image, frame) -> list[Person]`` with ``image`` RGB
``uint8`` ``(H, W, 3)``, ``frame`` the :class:`~liftpose.system.person.Frame` it comes from, and
each :class:`~liftpose.system.person.Person` holding ``(K, 2)`` pixels, ``(K,)`` confidences
and a box; its ``layout`` names the keypoints and ``name`` says what it is.

* :class:`BlazePose`: MediaPipe's BlazePose (``mediapipe==0.10.21``, 33 keypoints, one person
  per image). Only model complexity 1 (``pose_landmark_full``) ships inside the wheel, with the
  person detector ``pose_detection``; complexities 0 and 2 download their model at run time,
  so they are refused. Confidences are MediaPipe's landmark visibilities. On a video it runs in
  tracking mode (the previous frame's landmarks seed the next), on photos image by image.
* :class:`HeatmapTopDown`: a liftpose heatmap network (HRNet, HRNet + channel attention; a
  ``module=heatmap`` checkpoint, or official COCO weights converted by
  ``liftpose-convert hrnet``) run top-down on person boxes: from BlazePose, from a COCO-format
  detections json (``[{image_id, bbox: [x, y, w, h], score}]``; a frame's image id is its
  file name's number, or its index for a video), or from the previous frame's keypoints (the
  first frame starts from the whole image and is refined twice). Flip test on; confidences
  are the heatmap peaks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from liftpose.errors import DataError
from liftpose.system.person import Frame, Person, box_of


class Detector(Protocol):
    """An RGB image -> people."""

    name: str
    layout: str

    def __call__(self, image: np.ndarray, frame: Frame) -> list[Person]: ...


def make_detector(spec: str, video: bool, boxes: str | None = None, device: str = "cpu"):
    """The detector named by ``--detector``: ``blazepose``, ``blazepose:1``, ``hrnet:<ckpt>``.

    ``boxes`` (heatmap networks only): ``blazepose`` (the default), ``previous``, or a COCO
    detections json. ``DataError`` for an unknown name or a refused setting.
    """
    name, _, arg = check_detector(spec)
    if name == "blazepose":
        complexity = int(arg) if arg.isdigit() else (1 if not arg else -1)
        return BlazePose(complexity=complexity, video=video)
    box_source = boxes or "blazepose"
    return HeatmapTopDown(arg, box_source, video=video, device=device)


def check_detector(spec: str) -> tuple[str, str, str]:
    """``(name, ":", argument)`` of a ``--detector`` value; ``DataError`` for an unknown name or
    a heatmap network without its checkpoint (nothing is loaded)."""
    name, colon, arg = spec.partition(":")
    if name == "hrnet" and not arg:
        raise DataError(None, "--detector", "hrnet needs a checkpoint: hrnet:<ckpt>")
    if name not in ("blazepose", "hrnet"):
        raise DataError(None, "--detector", f"unknown detector {spec!r} (blazepose, hrnet:<ckpt>)")
    return name, colon, arg


# --------------------------------------------------------------------------- BlazePose
class BlazePose:
    """MediaPipe BlazePose, model complexity 1 (see the module docstring).

    Args:
        complexity: must be 1 (0 and 2 are not in the wheel).
        video: tracking mode over consecutive frames.
        min_confidence: MediaPipe's person-detection and tracking confidence.
    """

    layout = "blazepose33"

    def __init__(self, complexity: int = 1, video: bool = False, min_confidence: float = 0.5):
        if complexity != 1:
            raise DataError(
                None,
                "--detector",
                f"blazepose model complexity {complexity} is not shipped in the mediapipe wheel "
                "(it would download its model); use blazepose (complexity 1)",
            )
        try:
            import mediapipe as mp
        except ImportError as e:
            raise DataError(
                None, "--detector", f"blazepose needs mediapipe: run `make install-mediapipe` ({e})"
            ) from e
        self.name = f"mediapipe {mp.__version__} BlazePose (complexity 1)"
        self.video = video
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=not video,
            model_complexity=1,
            smooth_landmarks=video,
            enable_segmentation=False,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def __call__(self, image: np.ndarray, frame: Frame) -> list[Person]:
        res = self._pose.process(np.ascontiguousarray(image))
        if res.pose_landmarks is None:
            return []
        h, w = image.shape[:2]
        lm = res.pose_landmarks.landmark
        xy = np.array([[p.x * w, p.y * h] for p in lm], dtype=np.float64)
        s = np.clip(np.array([p.visibility for p in lm], dtype=np.float64), 0.0, 1.0)
        box = box_of(xy, s, 0.5)
        box[:2] = np.maximum(box[:2], 0)
        box[2:] = np.minimum(box[2:], [w - 1, h - 1])
        return [Person(xy, s, box)]

    def close(self) -> None:
        self._pose.close()


# --------------------------------------------------------------------------- heatmap networks
class HeatmapTopDown:
    """A liftpose heatmap network on person boxes (see the module docstring).

    Args:
        ckpt: a ``module=heatmap`` checkpoint.
        boxes: ``blazepose``, ``previous`` or a COCO detections json.
        video: whether frames follow each other (``previous`` boxes need it).
        device: where the network runs.
        min_box_score: detections below this score are ignored (json boxes).
    """

    layout = "coco17"

    def __init__(
        self,
        ckpt: str | Path,
        boxes: str = "blazepose",
        video: bool = False,
        device: str = "cpu",
        min_box_score: float = 0.3,
    ) -> None:
        from liftpose.data.detect import load_detector

        p = Path(ckpt)
        if not p.is_file():
            raise DataError(p, "--detector", "detector checkpoint not found")
        try:
            self.model, self.info = load_detector(p, device)
        except DataError:
            raise
        except Exception as e:
            raise DataError(p, "--detector", f"unreadable checkpoint ({type(e).__name__})") from e
        self.device = device
        self.name = f"heatmap network {p} (top-down, boxes: {boxes})"
        self.box_source = boxes
        self._boxer = None
        self._json_boxes: dict[int, list[np.ndarray]] | None = None
        self._previous: list[np.ndarray] = []
        if boxes == "blazepose":
            self._boxer = BlazePose(video=video)
        elif boxes == "previous":
            if not video:
                raise DataError(None, "--boxes", "previous-frame boxes need a video")
        else:
            self._json_boxes = _read_box_json(Path(boxes), min_box_score)

    def _boxes(self, image: np.ndarray, frame: Frame) -> list[np.ndarray]:
        h, w = image.shape[:2]
        if self._boxer is not None:
            return [p.box for p in self._boxer(image, frame)]
        if self._json_boxes is not None:
            stem = Path(frame.name).stem
            key = int(stem) if stem.isdigit() else frame.index
            return self._json_boxes.get(key, [])
        return list(self._previous) or [np.array([0.0, 0.0, w - 1.0, h - 1.0])]

    def keypoints(self, image: np.ndarray, boxes: list[np.ndarray]) -> list[Person]:
        """COCO-17 keypoints of the people in ``boxes`` (image pixels, heatmap peaks)."""
        from liftpose.data.detect import detect_crops
        from liftpose.data.render import crop_affine

        if not boxes:
            return []
        hc, wc = self.info["image_size"]
        affines = crop_affine(np.stack(boxes), (hc, wc))
        crops = np.stack(
            [cv2.warpAffine(image, a, (wc, hc), flags=cv2.INTER_LINEAR) for a in affines]
        )
        xy, peaks = detect_crops(self.model, crops, self.info, 32, True, self.device)
        people = []
        for box, a, k, s in zip(boxes, affines, xy, peaks):
            inv = cv2.invertAffineTransform(a)
            img_xy = k @ inv[:, :2].T + inv[:, 2]
            s = np.clip(s.astype(np.float64), 0.0, 1.0)
            # the person's box is the box it was found in (stabler than its keypoints' extent)
            people.append(Person(img_xy.astype(np.float64), s, np.asarray(box, np.float64)))
        return people

    def __call__(self, image: np.ndarray, frame: Frame) -> list[Person]:
        first = self.box_source == "previous" and not self._previous
        people = self.keypoints(image, self._boxes(image, frame))
        if first:  # the whole image is a poor crop: refine on the box it gave, twice
            for _ in range(2):
                people = self.keypoints(image, [_keypoint_box(p) for p in people])
        if self.box_source == "previous":
            self._previous = [_keypoint_box(p) for p in people if p.scores.mean() > 0.2]
        return people


def _keypoint_box(p: Person) -> np.ndarray:
    """The extent of a person's confident keypoints (the next crop of ``previous`` boxes)."""
    box = box_of(p.keypoints, p.scores, 0.2)
    return p.box if box is None else box


def _read_box_json(p: Path, min_score: float) -> dict[int, list[np.ndarray]]:
    """COCO detections ``[{image_id, bbox: [x, y, w, h], score, category_id}]`` by image id."""
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(p, "--boxes", f"not a COCO detections json ({type(e).__name__})") from e
    if not isinstance(doc, list):
        raise DataError(p, "--boxes", "expected a list of {image_id, bbox, score}")
    out: dict[int, list[np.ndarray]] = {}
    for i, d in enumerate(doc):
        try:
            if d.get("category_id", 1) != 1 or float(d.get("score", 1.0)) < min_score:
                continue
            x, y, w, h = (float(v) for v in d["bbox"])
            out.setdefault(int(d["image_id"]), []).append(np.array([x, y, x + w, y + h]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(p, f"[{i}]", f"expected {{image_id, bbox: [x, y, w, h]}} ({e})") from e
    return out

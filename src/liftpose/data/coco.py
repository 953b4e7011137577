"""Top-down COCO keypoints: person crops from ground-truth or detected boxes, heatmap targets.

Expected layout (the official COCO 2017 download)::

    <root>/annotations/person_keypoints_<split>.json
    <root>/<split>/<file_name>              # e.g. <root>/val2017/000000397133.jpg

Each sample is one person: the crop around its box (fixed aspect, 1.25x padding) warped to the
network input, normalised with the ImageNet statistics, and, in training, augmented with the
standard HRNet recipe (mirror with joint swap, random scale and rotation, half-body crops).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import lightning as L
import numpy as np
import torch
from pydantic import ConfigDict, Field, PositiveInt
from torch.utils.data import DataLoader, Dataset
from typing_extensions import NotRequired, TypedDict

from liftpose.data.jsonfile import read_json
from liftpose.data.transforms2d import (
    COCO17,
    COCO_FLIP_PERMUTATION,
    COCO_LOWER_BODY,
    COCO_UPPER_BODY,
    affine_matrix,
    box_to_centre_scale,
    flip_matrix,
    gaussian_heatmaps,
    normalise_image,
    points_to_centre_scale,
    transform_points,
    warp_image,
)
from liftpose.errors import ConfigError, DataError

NUM_KEYPOINTS = 17
PERSON_CATEGORY = 1


def annotation_file(root: str | Path, split: str) -> Path:
    """``<root>/annotations/person_keypoints_<split>.json``."""
    return Path(root) / "annotations" / f"person_keypoints_{split}.json"


#: pixel coordinates (and keypoint visibilities): finite and within +-1e6
_Pixel = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
_Box = tuple[_Pixel, _Pixel, _Pixel, _Pixel]
_Keypoints = Annotated[
    list[_Pixel], Field(min_length=3 * NUM_KEYPOINTS, max_length=3 * NUM_KEYPOINTS)
]
_Count = Annotated[int, Field(ge=0)]
_Area = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Image(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    id: int
    file_name: str
    width: PositiveInt
    height: PositiveInt


class _Annotation(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    id: int
    image_id: int
    category_id: int
    bbox: _Box
    keypoints: _Keypoints
    num_keypoints: _Count
    area: _Area
    iscrowd: NotRequired[Literal[0, 1]]


class _Category(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    id: int


class CocoKeypointsFile(TypedDict):
    """Schema of ``person_keypoints_<split>.json`` as this module and ``COCOeval`` read it."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


class _Detection(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    image_id: int
    category_id: int
    bbox: _Box
    score: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


#: Schema of a detections file in the COCO results format.
DetectionsFile = list[_Detection]


def load_coco(path: str | Path) -> Any:
    """A ``pycocotools.coco.COCO`` index of a keypoint annotation file, checked for the fields
    this module and ``COCOeval`` read (:data:`CocoKeypointsFile`; a clear :class:`DataError`
    naming the field otherwise); quiet."""
    from pycocotools.coco import COCO

    path = Path(path)
    data = read_json(path, CocoKeypointsFile, top="<top level>")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@dataclass
class PersonRecords:
    """All persons of a split, one row each (arrays are stacked over persons)."""

    image_id: np.ndarray  # (N,) int64
    file: list[Path]  # (N,) image files
    box: np.ndarray  # (N, 4) float32 xywh
    score: np.ndarray  # (N,) float32 box scores (1 for ground-truth boxes)
    joints: np.ndarray  # (N, K, 3) float32 image pixels and visibility (0 for detections)

    def __len__(self) -> int:
        return len(self.image_id)


def _clip_box(box: list[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A COCO box clipped to the image, ``(x, y, w, h)`` (``w`` or ``h`` may come out 0)."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x + max(0.0, w - 1.0)), min(height - 1.0, y + max(0.0, h - 1.0))
    return x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)


def gt_records(coco: Any, image_dir: Path, skip_empty: bool = True) -> PersonRecords:
    """Persons of the ground truth: non-crowd, with a non-empty box and (``skip_empty``) at
    least one labelled keypoint."""
    ids, files, boxes, joints = [], [], [], []
    for img_id in sorted(coco.imgs):
        img = coco.imgs[img_id]
        for ann in coco.imgToAnns.get(img_id, []):
            if ann["category_id"] != PERSON_CATEGORY or ann.get("iscrowd", 0):
                continue
            if skip_empty and ann["num_keypoints"] == 0:
                continue
            box = _clip_box(ann["bbox"], img["width"], img["height"])
            if ann.get("area", 1) <= 0 or box[2] <= 0 or box[3] <= 0:
                continue
            ids.append(img_id)
            files.append(image_dir / img["file_name"])
            boxes.append(box)
            joints.append(np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3))
    n = len(ids)
    return PersonRecords(
        image_id=np.asarray(ids, dtype=np.int64),
        file=files,
        box=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
        score=np.ones(n, dtype=np.float32),
        joints=np.asarray(joints, dtype=np.float32).reshape(n, NUM_KEYPOINTS, 3),
    )


def det_records(
    coco: Any, image_dir: Path, det_file: str | Path, score_threshold: float = 0.0
) -> PersonRecords:
    """Persons from a detection file in the COCO results format (``image_id``, ``bbox``,
    ``score``, ``category_id``; only category 1 is kept, and boxes scoring above
    ``score_threshold``)."""
    path = Path(det_file)
    dets = read_json(path, DetectionsFile, top="<top level>")
    ids, files, boxes, scores = [], [], [], []
    for i, d in enumerate(dets):
        if d["category_id"] != PERSON_CATEGORY or d["score"] <= score_threshold:
            continue
        img = coco.imgs.get(d["image_id"])
        if img is None:
            raise DataError(path, f"[{i}].image_id", f"image {d['image_id']} not in the split")
        box = _clip_box(d["bbox"], img["width"], img["height"])
        if box[2] <= 0 or box[3] <= 0:
            continue
        ids.append(d["image_id"])
        files.append(image_dir / img["file_name"])
        boxes.append(box)
        scores.append(d["score"])
    n = len(ids)
    return PersonRecords(
        image_id=np.asarray(ids, dtype=np.int64),
        file=files,
        box=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
        score=np.asarray(scores, dtype=np.float32),
        joints=np.zeros((n, NUM_KEYPOINTS, 3), dtype=np.float32),
    )


def read_image(path: Path) -> np.ndarray:
    """An RGB ``uint8 (H, W, 3)`` image (EXIF orientation ignored, as in the COCO labels)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DataError(path, "image", "cannot read or decode the image file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class CocoKeypoints(Dataset):
    """One COCO person per sample, cropped for a top-down heatmap network.

    Args:
        root: COCO folder (``annotations/`` and the image folders).
        split: ``train2017``, ``val2017``...
        train: apply the training augmentation.
        image_size: network input ``(height, width)``.
        heatmap_size: heatmap ``(height, width)`` (default a quarter of ``image_size``).
        sigma: Gaussian standard deviation in heatmap pixels.
        use_gt_boxes: crop ground-truth boxes; otherwise the boxes of ``det_file``.
        det_file: detections in the COCO results format (when not ``use_gt_boxes``).
        det_score_threshold: drop detections scoring at most this.
        padding: box padding factor.
        flip_prob / scale_factor / rotation_factor / rotation_prob / half_body_prob /
        half_body_min_joints: augmentation, HRNet's recipe by default: mirror with probability
            0.5; scale by ``clip(1 + 0.35 N(0, 1), 0.65, 1.35)``; with probability 0.6 rotate by
            ``clip(45 N(0, 1), -90, 90)`` degrees; with probability 0.3, for persons with more
            than 8 labelled joints, crop the upper or the lower body (box of its labelled
            joints, 1.5x padding).

    A sample is a dict: ``image (3, H, W)`` float32, ``heatmaps (K, h, w)``, ``target_weight
    (K,)``, ``joints (K, 3)`` (crop pixels and visibility), ``centre (2,)``, ``scale (2,)``
    (image pixels), ``rotation ()`` degrees, ``score ()`` box score, ``area ()`` crop area in
    image pixels, ``image_id ()`` int64.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val2017",
        train: bool = False,
        image_size: tuple[int, int] | list[int] = (256, 192),
        heatmap_size: tuple[int, int] | list[int] | None = None,
        sigma: float = 2.0,
        use_gt_boxes: bool = True,
        det_file: str | Path | None = None,
        det_score_threshold: float = 0.0,
        padding: float = 1.25,
        flip_prob: float = 0.5,
        scale_factor: float = 0.35,
        rotation_factor: float = 45.0,
        rotation_prob: float = 0.6,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.train = train
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if heatmap_size is None:
            heatmap_size = (self.image_size[0] // 4, self.image_size[1] // 4)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.stride = (
            self.image_size[1] / self.heatmap_size[1],
            self.image_size[0] / self.heatmap_size[0],
        )  # (x, y) input pixels per heatmap pixel
        self.sigma = float(sigma)
        self.padding = float(padding)
        self.aspect = self.image_size[1] / self.image_size[0]
        self.aug = {
            "flip_prob": flip_prob,
            "scale_factor": scale_factor,
            "rotation_factor": rotation_factor,
            "rotation_prob": rotation_prob,
            "half_body_prob": half_body_prob,
            "half_body_min_joints": half_body_min_joints,
        }
        self.ann_file = annotation_file(self.root, split)
        self.image_dir = self.root / split
        self.coco = load_coco(self.ann_file)
        if use_gt_boxes or train:
            self.records = gt_records(self.coco, self.image_dir, skip_empty=True)
        else:
            if det_file is None:
                raise ConfigError("data.use_gt_boxes=false needs data.det_file (COCO results)")
            self.records = det_records(self.coco, self.image_dir, det_file, det_score_threshold)
        self.centre, self.scale = box_to_centre_scale(self.records.box, self.aspect, self.padding)

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------ augmentation
    def _augment(
        self, rng: np.random.Generator, centre: np.ndarray, scale: np.ndarray, joints: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """Random (centre, scale, rotation, flip) of a training crop."""
        a = self.aug
        labelled = joints[:, 2] > 0
        if labelled.sum() > a["half_body_min_joints"] and rng.random() < a["half_body_prob"]:
            upper = [j for j in COCO_UPPER_BODY if labelled[j]]
            lower = [j for j in COCO_LOWER_BODY if labelled[j]]
            part = upper if (rng.random() < 0.5 and len(upper) > 2) else lower
            part = part if len(part) > 2 else upper
            if len(part) > 1:
                c, s = points_to_centre_scale(joints[part, :2], self.aspect, 1.5)
                if s[0] > 1 and s[1] > 1:
                    centre, scale = c, s
        sf, rf = a["scale_factor"], a["rotation_factor"]
        scale = scale * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        rotation = 0.0
        if rng.random() < a["rotation_prob"]:
            rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
        flip = bool(rng.random() < a["flip_prob"])
        return centre, scale, rotation, flip

    # ------------------------------------------------------------------ samples
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rec = self.records
        centre, scale = self.centre[index], self.scale[index]
        joints = rec.joints[index]
        rotation, flip = 0.0, False
        if self.train:
            # numpy generator seeded from torch: distinct per loader worker and reproducible
            # under seed_everything, also with num_workers=0
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
            centre, scale, rotation, flip = self._augment(rng, centre, scale, joints)
        h, w = self.image_size
        matrix = affine_matrix(centre, scale, rotation, (w, h))
        if flip:
            matrix = flip_matrix(matrix, w)
        image = warp_image(read_image(rec.file[index]), matrix, (w, h))
        crop_joints = transform_points(joints, matrix)
        if flip:  # the matrix mirrors the crop already: swap left and right joints
            crop_joints = crop_joints[list(COCO_FLIP_PERMUTATION)]
        hm_joints = crop_joints[:, :2] / np.asarray(self.stride, dtype=np.float32)
        heatmaps, weight = gaussian_heatmaps(
            hm_joints, crop_joints[:, 2], (self.heatmap_size[1], self.heatmap_size[0]), self.sigma
        )
        return {
            "image": torch.from_numpy(normalise_image(image)),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(weight),
            "joints": torch.from_numpy(crop_joints.astype(np.float32)),
            "centre": torch.from_numpy(np.asarray(centre, dtype=np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            "rotation": torch.tensor(rotation, dtype=torch.float32),
            "score": torch.tensor(float(rec.score[index]), dtype=torch.float32),
            "area": torch.tensor(float(scale[0] * scale[1]), dtype=torch.float32),
            "image_id": torch.tensor(int(rec.image_id[index]), dtype=torch.int64),
        }


class CocoDataModule(L.LightningDataModule):
    """COCO keypoints for top-down heatmap training and COCO evaluation.

    Args:
        root: COCO folder (``annotations/person_keypoints_<split>.json``, ``<split>/`` images).
        train_split / val_split / test_split: split names (``test_split`` defaults to
            ``val_split``; test-dev has no public keypoints).
        image_size: network input ``(height, width)``.
        heatmap_size: heatmap ``(height, width)`` (default a quarter of ``image_size``).
        sigma: heatmap Gaussian standard deviation in heatmap pixels.
        batch_size / test_batch_size / num_workers: loader settings.
        use_gt_boxes: evaluate on ground-truth boxes; otherwise on ``det_file``'s detections.
        det_file: person detections in the COCO results format.
        det_score_threshold: drop detections scoring at most this.
        padding: box padding factor.
        flip_prob ... half_body_min_joints: training augmentation (see :class:`CocoKeypoints`).
        render: build ``root`` from the packaged HDM05 sample (unless built with these settings):
            keyword arguments of :func:`liftpose.data.render.write_rendered_coco` (``None``: a
            real COCO folder, never written to).
    """

    def __init__(
        self,
        root: str,
        train_split: str = "train2017",
        val_split: str = "val2017",
        test_split: str | None = None,
        image_size: tuple[int, int] | list[int] = (256, 192),
        heatmap_size: tuple[int, int] | list[int] | None = None,
        sigma: float = 2.0,
        batch_size: int = 32,
        test_batch_size: int = 64,
        num_workers: int = 0,
        use_gt_boxes: bool = True,
        det_file: str | None = None,
        det_score_threshold: float = 0.0,
        padding: float = 1.25,
        flip_prob: float = 0.5,
        scale_factor: float = 0.35,
        rotation_factor: float = 45.0,
        rotation_prob: float = 0.6,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        render: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        self.skeleton = COCO17
        self.datasets: dict[str, CocoKeypoints] = {}
        if len(image_size) != 2 or image_size[0] % 4 or image_size[1] % 4:
            raise ConfigError(
                f"data.image_size must be [height, width], multiples of 4: {image_size}"
            )
        if not use_gt_boxes and not det_file:
            raise ConfigError("data.use_gt_boxes=false needs data.det_file (COCO results json)")

    @property
    def num_joints(self) -> int:
        return NUM_KEYPOINTS

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(height, width)`` of the heatmaps."""
        hp = self.hparams
        if hp.heatmap_size is not None:
            return int(hp.heatmap_size[0]), int(hp.heatmap_size[1])
        return int(hp.image_size[0]) // 4, int(hp.image_size[1]) // 4

    def split_name(self, stage: str) -> str:
        """The split that ``stage`` (``train``/``val``/``test``) reads."""
        hp = self.hparams
        return {
            "train": hp.train_split,
            "val": hp.val_split,
            "test": hp.test_split or hp.val_split,
        }[stage]

    def annotation_file(self, stage: str) -> Path:
        """The keypoint annotation file of ``stage``'s split (the ground truth of COCOeval)."""
        return annotation_file(self.root, self.split_name(stage))

    def prepare_data(self) -> None:
        """Render the embedded images if asked, then check that the annotation files exist
        (a clear error before anything starts)."""
        render = self.hparams.render
        if render is not None:  # kept as it is when built with the same settings
            from liftpose.data.render import write_rendered_coco

            write_rendered_coco(self.root, **dict(render))
        for stage in ("train", "val", "test"):
            path = self.annotation_file(stage)
            if not path.is_file():
                raise DataError(path, "file", f"COCO keypoint annotations of {stage} not found")

    def dataset(self, stage: str) -> CocoKeypoints:
        """The (cached) dataset of ``stage``."""
        if stage not in self.datasets:
            hp = self.hparams
            train = stage == "train"
            self.datasets[stage] = CocoKeypoints(
                self.root,
                self.split_name(stage),
                train=train,
                image_size=hp.image_size,
                heatmap_size=self.heatmap_size,
                sigma=hp.sigma,
                use_gt_boxes=hp.use_gt_boxes or train,
                det_file=hp.det_file,
                det_score_threshold=hp.det_score_threshold,
                padding=hp.padding,
                flip_prob=hp.flip_prob,
                scale_factor=hp.scale_factor,
                rotation_factor=hp.rotation_factor,
                rotation_prob=hp.rotation_prob,
                half_body_prob=hp.half_body_prob,
                half_body_min_joints=hp.half_body_min_joints,
            )
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: ("train", "val", "test"),
        }.get(stage, ("train", "val", "test"))
        for s in wanted:
            self.dataset(s)

    def data_fingerprint(self) -> str:
        """Hash of the annotation files' contents (and of the detection file, if used)."""
        h = hashlib.sha1()
        files = [self.annotation_file(s) for s in ("train", "val", "test")]
        if not self.hparams.use_gt_boxes and self.hparams.det_file:
            files.append(Path(self.hparams.det_file))
        for p in files:
            if p.is_file():
                h.update(p.read_bytes())
        return h.hexdigest()[:16]

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        nw = int(self.hparams.num_workers)
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=nw,
            persistent_workers=nw > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), self.hparams.test_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.hparams.test_batch_size, shuffle=False)

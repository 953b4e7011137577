"""Person crops with their 2-D and 3-D poses: the data of image-conditioned lifters.

A crop cache holds, for every chosen frame of every (subject, action, camera) sequence of a
dataset in the VideoPose3D layout (:mod:`liftpose.data.h36m`), the person crop and what the
lifter needs beside it. Frames come from one of two sources:

* :class:`RenderedFrames`: the embedded default. Each frame's camera-frame 3-D pose is rendered
  by :mod:`liftpose.data.render` (one look and background per sequence), so a fresh clone has
  images with exactly known 3-D, camera and body mask.
* :class:`VideoFrames`: the original Human3.6M videos, ``<video_root>/<subject>/Videos/
  <action>.<camera>.mp4`` (read with OpenCV). Where the VideoPose3D action name differs from the
  video's (``Photo`` / ``TakingPhoto``, ``WalkDog`` / ``WalkingDog``) both are tried.

Crops (the paper's protocol, lifting-by-image.txt "Implementation Details"): the ground-truth
box, i.e. the tight box of the projected 3-D joints, widened to the crop's aspect ratio and
padded by ``padding`` (1.25) about its centre, warped to ``image_size`` (256x192) with the
affine ``A (2, 3)`` (image pixels -> crop pixels, :func:`liftpose.data.render.crop_affine`).
Frames: every ``every``-th frame of each sequence (10 = 5 fps at 50 Hz, the paper's training
rate); with ``stagger`` the cameras of a sequence start at different offsets (camera ``c`` of
``C`` at ``c * every // C``), so sparse sampling sees more distinct poses.

Cache layout (HDF5, one file, written to a temporary name and renamed; keyed by a hash of the
settings and of the input files). Groups ``train`` and ``test``, ``N`` rows each:

=================  ====================  =====================================================
``image``          ``(N,)`` vlen uint8   JPEG bytes of the crop (RGB, ``jpeg_quality``)
``mask``           ``(N, ceil(HW/8))``   the body mask, ``np.packbits`` (rendered frames only)
``pose_2d``        ``(N, 17, 2)`` f32    2-D source (``keypoints``) in crop pixels
``pose_2d_image``  ``(N, 17, 2)`` f32    the same, normalised image coordinates (x in [-1, 1])
``pose_3d``        ``(N, 17, 3)`` f32    camera frame, metres, root joint at zero
``affine``         ``(N, 2, 3)`` f32     image pixels -> crop pixels
``seq``, ``frame`` ``(N,)`` int64        sequence index and frame within the sequence
=================  ====================  =====================================================

The file attribute ``liftpose`` is liftpose's marker (:func:`liftpose.utils.io.marker`). Groups
carry the attributes ``seq_names`` (``subject/action/camera``), ``seq_action`` and ``seq_subject``
(indices into ``action_names`` / ``subject_names``), all JSON.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import h5py
import numpy as np

from liftpose.data.camera import Camera, image_coordinates, normalize_screen_coordinates
from liftpose.data.h36m import (
    action_group,
    dataset_cameras,
    dataset_files,
    file_fingerprint,
    load_sequences,
    read_npz_dict,
)
from liftpose.data.render import box_from_keypoints, crop_affine, random_style, render_person
from liftpose.data.skeleton import reduce_32_to_17
from liftpose.errors import ConfigError, DataError
from liftpose.utils.io import MARKER_KEY, atomic_path, marker

__all__ = [
    "CACHE_VERSION",
    "VIDEO_ACTION_ALIASES",
    "CropSettings",
    "RenderedFrames",
    "VideoFrames",
    "build_crop_cache",
    "crop_cache_path",
    "frame_indices",
    "video_path",
]

CACHE_VERSION = 1
#: VideoPose3D action groups whose Human3.6M video files carry another name
VIDEO_ACTION_ALIASES: dict[str, str] = {"Photo": "TakingPhoto", "WalkDog": "WalkingDog"}


@dataclass(frozen=True)
class CropSettings:
    """What a crop cache is made of (every field is in its hash).

    ``image_size``: crop ``(H, W)``; ``padding``: box padding factor; ``train_every`` /
    ``test_every``: frame step per split; ``stagger``: staggered camera offsets;
    ``jpeg_quality``: of the stored crops; ``render_seed``: the renderer's looks.
    """

    image_size: tuple[int, int] = (256, 192)
    padding: float = 1.25
    train_every: int = 10
    test_every: int = 10
    stagger: bool = False
    jpeg_quality: int = 95
    render_seed: int = 0

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 8 or w < 8 or h % 32 or w % 32:
            raise ConfigError(f"data.image_size must be [H, W] divisible by 32, got {[h, w]}")
        if self.train_every < 1 or self.test_every < 1:
            raise ConfigError("data.train_every and data.test_every must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"data.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.padding < 1.0:
            raise ConfigError(f"data.padding must be >= 1, got {self.padding}")


def frame_indices(length: int, every: int, offset: int = 0) -> np.ndarray:
    """``offset, offset + every, ...`` below ``length`` (``offset`` taken modulo ``every``)."""
    return np.arange(offset % every, length, every, dtype=np.int64)


# --------------------------------------------------------------------------- frame sources
class FrameSource(Protocol):
    """Gives the crops of chosen frames of one sequence."""

    kind: str

    def crops(
        self,
        subject: str,
        action: str,
        camera: Camera,
        frames: np.ndarray,
        joints_cam: np.ndarray,
        affines: np.ndarray,
        size: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(crops (F, H, W, 3) uint8 RGB, masks (F, H, W) bool or None)`` of ``frames``."""
        ...

    def fingerprint(self, subjects: Sequence[str]) -> str:
        """What the frames depend on beyond the pose files (video files, renderer)."""
        ...


def _sequence_seed(seed: int, subject: str, action: str, camera: str) -> int:
    return zlib.crc32(f"{seed}/{subject}/{action}/{camera}".encode())


@dataclass
class RenderedFrames:
    """Frames rendered from the camera-frame 3-D (:func:`liftpose.data.render.render_person`),
    one :func:`~liftpose.data.render.random_style` per sequence (seeded by ``seed``, subject,
    action and camera)."""

    seed: int = 0
    kind: str = field(default="render", init=False)

    def crops(self, subject, action, camera, frames, joints_cam, affines, size):
        style = random_style(
            np.random.default_rng(_sequence_seed(self.seed, subject, action, camera.id))
        )
        out = np.empty((len(frames), size[0], size[1], 3), np.uint8)
        masks = np.empty((len(frames), size[0], size[1]), bool)
        for i, f in enumerate(frames):
            r = render_person(joints_cam[f], camera, size, affines[i], style)
            out[i], masks[i] = r.image, r.mask
        return out, masks

    def fingerprint(self, subjects: Sequence[str]) -> str:
        from liftpose.data import render

        return hashlib.sha1(Path(render.__file__).read_bytes()).hexdigest()[:12]


def video_path(video_root: str | Path, subject: str, action: str, camera: str) -> Path:
    """``<root>/<subject>/Videos/<action>.<camera>.mp4``, or the file of the action's
    :data:`VIDEO_ACTION_ALIASES` name when only that exists."""
    folder = Path(video_root) / subject / "Videos"
    path = folder / f"{action}.{camera}.mp4"
    group, _, rest = action.partition(" ")
    if not path.exists() and group in VIDEO_ACTION_ALIASES:
        alias = VIDEO_ACTION_ALIASES[group] + (f" {rest}" if rest else "")
        other = folder / f"{alias}.{camera}.mp4"
        if other.exists():
            return other
    return path


@dataclass
class VideoFrames:
    """Frames read from the dataset's videos (:func:`video_path`) and warped with the affines
    (bilinear, black outside the image)."""

    video_root: str
    kind: str = field(default="video", init=False)

    def crops(self, subject, action, camera, frames, joints_cam, affines, size):
        path = video_path(self.video_root, subject, action, camera.id)
        if not path.is_file():
            raise DataError(
                path, "file", f"video of {subject} {action} camera {camera.id} not found"
            )
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(path, "file", "cannot open the video (corrupt or unknown codec)")
        out = np.empty((len(frames), size[0], size[1], 3), np.uint8)
        wanted = {int(f): i for i, f in enumerate(frames)}
        last, f = int(frames[-1]) if len(frames) else -1, 0
        try:
            while f <= last:
                ok = cap.grab()
                if not ok:
                    raise DataError(
                        path,
                        f"frame {f}",
                        f"the video ends after {f} frames but the 3-D has "
                        f"{len(joints_cam)} (2-D and image frame counts disagree)",
                    )
                if f in wanted:
                    ok, bgr = cap.retrieve()
                    if not ok or bgr is None:
                        raise DataError(path, f"frame {f}", "cannot decode the frame")
                    if bgr.shape[:2] != (camera.res_h, camera.res_w):
                        raise DataError(
                            path,
                            "resolution",
                            f"{bgr.shape[1]}x{bgr.shape[0]}, but camera {camera.id} is "
                            f"{camera.res_w}x{camera.res_h}",
                        )
                    i = wanted[f]
                    crop = cv2.warpAffine(
                        bgr, affines[i].astype(np.float64), (size[1], size[0]),
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
                    )  # fmt: skip
                    out[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
                f += 1
        finally:
            cap.release()
        return out, None

    def fingerprint(self, subjects: Sequence[str]) -> str:
        files = []
        for s in subjects:
            folder = Path(self.video_root) / s / "Videos"
            if folder.is_dir():
                files += sorted(folder.glob("*.mp4"))
        return file_fingerprint(files)


# --------------------------------------------------------------------------- the cache
def crop_cache_path(
    cache_dir: str | Path,
    root: str | Path,
    name: str,
    keypoints: str,
    splits: dict[str, Sequence[str]],
    settings: CropSettings,
    source: FrameSource,
    actions: Sequence[str] | None = None,
    cameras: Sequence[str] | None = None,
) -> Path:
    """``<cache_dir>/crops-<name>-<keypoints>-<hash>.h5``; the hash covers the settings, the
    selection, the source and the input files (names, sizes, times)."""
    files = [p for p in dataset_files(root, name, keypoints).values() if p.exists()]
    subjects = sorted({s for v in splits.values() for s in v})
    spec = {
        "v": CACHE_VERSION,
        "root": str(Path(root).resolve()),
        "name": name,
        "keypoints": keypoints,
        "splits": {k: list(v) for k, v in splits.items()},
        "actions": None if actions is None else list(actions),
        "cameras": None if cameras is None else [str(c) for c in cameras],
        "settings": asdict(settings),
        "source": [source.kind, source.fingerprint(subjects)],
        "files": file_fingerprint(files),
    }
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cache_dir) / f"crops-{name}-{keypoints}-{digest[:16]}.h5"


def _world_3d(root: Path, name: str) -> tuple[dict, Path]:
    path = dataset_files(root, name, "gt")["3d"]
    data, _ = read_npz_dict(path, "positions_3d")
    return data, path


def _split_rows(
    root: Path,
    name: str,
    keypoints: str,
    subjects: Sequence[str],
    every: int,
    settings: CropSettings,
    actions: Sequence[str] | None,
    cameras: Sequence[str] | None,
) -> Iterator[dict[str, Any]]:
    """Per sequence: its poses, camera, chosen frames and affines (no images yet)."""
    seqs = load_sequences(root, name, keypoints, list(subjects), actions, cameras)
    world, path_3d = _world_3d(root, name)
    cams = dataset_cameras(root, name)
    path_2d = dataset_files(root, name, keypoints)["2d"]
    for seq in seqs:
        cam_list = list(cams[seq.subject])
        cam = cams[seq.subject][seq.camera]
        w = np.asarray(world[seq.subject][seq.action], dtype=np.float64)
        if w.shape[1] == 32:
            w = reduce_32_to_17(w)
        joints_cam = cam.world_to_camera(w)
        offset = cam_list.index(seq.camera) * every // len(cam_list) if settings.stagger else 0
        frames = frame_indices(len(joints_cam), every, offset)
        if len(frames) == 0:
            continue
        field = f"positions_3d[{seq.subject}][{seq.action}]"
        if np.any(joints_cam[frames, :, 2] <= 0.2):
            bad = int(frames[np.nonzero((joints_cam[frames, :, 2] <= 0.2).any(-1))[0][0]])
            raise DataError(path_3d, field, f"frame {bad}: joints behind camera {cam.id}")
        gt_px = cam.project(joints_cam[frames])  # (F, 17, 2)
        boxes = box_from_keypoints(gt_px)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        outside = (
            (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
            | (boxes[:, 0] > cam.res_w) | (boxes[:, 1] > cam.res_h)
            | (centre[:, 0] < 0) | (centre[:, 1] < 0)
            | (centre[:, 0] > cam.res_w) | (centre[:, 1] > cam.res_h)
        )  # fmt: skip
        if outside.any():
            bad = int(frames[np.nonzero(outside)[0][0]])
            raise DataError(
                path_3d,
                field,
                f"frame {bad}: the person box {np.round(boxes[outside][0], 1).tolist()} lies "
                f"outside the {cam.res_w}x{cam.res_h} image of camera {cam.id}",
            )
        affines = crop_affine(boxes, settings.image_size, settings.padding)  # (F, 2, 3)
        src_px = image_coordinates(seq.pose_2d[frames].astype(np.float64), cam.res_w, cam.res_h)
        crop_2d = np.einsum("fij,fkj->fki", affines[:, :, :2], src_px) + affines[:, None, :, 2]
        if not np.isfinite(crop_2d).all():
            raise DataError(path_2d, f"positions_2d[{seq.subject}][{seq.action}]", "NaN 2-D")
        yield {
            "subject": seq.subject,
            "action": seq.action,
            "camera": cam,
            "frames": frames,
            "joints_cam": joints_cam,
            "affines": affines,
            "pose_2d": crop_2d.astype(np.float32),
            "pose_2d_image": normalize_screen_coordinates(src_px, cam.res_w, cam.res_h).astype(
                np.float32
            ),
            "pose_3d": seq.pose_3d[frames].astype(np.float32),
        }


def _append(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + len(values), axis=0)
    ds[n:] = values


def _encode_jpeg(crops: np.ndarray, quality: int) -> list[np.ndarray]:
    out = []
    for c in crops:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out.append(np.frombuffer(buf.tobytes(), np.uint8))
    return out


def build_crop_cache(
    path: str | Path,
    root: str | Path,
    name: str,
    keypoints: str,
    splits: dict[str, Sequence[str]],
    settings: CropSettings,
    source: FrameSource,
    actions: Sequence[str] | None = None,
    cameras: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write the crop cache of ``splits`` (``{"train": subjects, "test": subjects}``) to ``path``.

    The file is written under a temporary name and renamed when complete; an interrupted or
    failed build leaves nothing behind. Progress goes to ``log`` (default: stderr), one line per
    tenth of the sequences.

    Raises:
        DataError: a missing or unreadable pose, camera or video file, a video shorter than the
            3-D, a person box outside the image; the message names the file and the field.
    """
    root, path = Path(root), Path(path)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    size = tuple(int(v) for v in settings.image_size)
    with atomic_path(path, suffix=".tmp.h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs[MARKER_KEY] = marker("crop-cache")
        f.attrs["version"] = CACHE_VERSION
        f.attrs["settings"] = json.dumps(asdict(settings))
        f.attrs["source"] = source.kind
        f.attrs["keypoints"] = keypoints
        content = hashlib.sha1()
        for split, subjects in splits.items():
            every = settings.train_every if split == "train" else settings.test_every
            rows = list(
                _split_rows(root, name, keypoints, subjects, every, settings, actions, cameras)
            )
            g = f.create_group(split)
            n_px = size[0] * size[1]
            ds = {
                "image": g.create_dataset(
                    "image", (0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8)
                ),
                "pose_2d": g.create_dataset(
                    "pose_2d", (0, 17, 2), np.float32, maxshape=(None, 17, 2)
                ),
                "pose_2d_image": g.create_dataset(
                    "pose_2d_image", (0, 17, 2), np.float32, maxshape=(None, 17, 2)
                ),
                "pose_3d": g.create_dataset(
                    "pose_3d", (0, 17, 3), np.float32, maxshape=(None, 17, 3)
                ),
                "affine": g.create_dataset("affine", (0, 2, 3), np.float32, maxshape=(None, 2, 3)),
                "seq": g.create_dataset("seq", (0,), np.int64, maxshape=(None,)),
                "frame": g.create_dataset("frame", (0,), np.int64, maxshape=(None,)),
            }
            mask_ds = None
            actions_seen = sorted({action_group(r["action"]) for r in rows})
            subjects_seen = sorted({r["subject"] for r in rows})
            seq_names, seq_action, seq_subject = [], [], []
            total = sum(len(r["frames"]) for r in rows)
            done, step = 0, max(1, len(rows) // 10)
            for s, r in enumerate(rows):
                crops, masks = source.crops(
                    r["subject"], r["action"], r["camera"], r["frames"], r["joints_cam"],
                    r["affines"], size,
                )  # fmt: skip
                jpeg = _encode_jpeg(crops, settings.jpeg_quality)
                n = ds["image"].shape[0]
                ds["image"].resize(n + len(jpeg), axis=0)
                for i, buf in enumerate(jpeg):
                    ds["image"][n + i] = buf
                if masks is not None:
                    if mask_ds is None:
                        mask_ds = g.create_dataset(
                            "mask", (0, (n_px + 7) // 8), np.uint8, maxshape=(None, (n_px + 7) // 8)
                        )
                    _append(mask_ds, np.packbits(masks.reshape(len(masks), -1), axis=1))
                for key in ("pose_2d", "pose_2d_image", "pose_3d"):
                    _append(ds[key], r[key])
                    content.update(np.ascontiguousarray(r[key]).data)
                _append(ds["affine"], r["affines"].astype(np.float32))
                _append(ds["seq"], np.full(len(r["frames"]), s, np.int64))
                _append(ds["frame"], r["frames"])
                seq_names.append(f"{r['subject']}/{r['action']}/{r['camera'].id}")
                seq_action.append(actions_seen.index(action_group(r["action"])))
                seq_subject.append(subjects_seen.index(r["subject"]))
                done += len(r["frames"])
                if (s + 1) % step == 0 or s + 1 == len(rows):
                    log(f"liftpose: {split} crops {done}/{total} ({s + 1}/{len(rows)} sequences)")
            g.attrs["seq_names"] = json.dumps(seq_names)
            g.attrs["seq_action"] = json.dumps(seq_action)
            g.attrs["seq_subject"] = json.dumps(seq_subject)
            g.attrs["action_names"] = json.dumps(actions_seen)
            g.attrs["subject_names"] = json.dumps(subjects_seen)
            content.update(json.dumps(seq_names).encode())
        f.attrs["content_hash"] = content.hexdigest()[:16]
    return path

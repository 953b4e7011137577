"""A trained 2-D detector as a keypoint source of a lifting dataset (attn-2d3d-system, Table V).

:func:`detect_dataset` films every sequence of a dataset in the VideoPose3D layout (its world
3-D poses and calibrated cameras) with the renderer of :mod:`liftpose.data.render`, runs a
heatmap detector trained by ``module=heatmap`` over the person crops, and writes the keypoints as
one more 2-D source, ``data_2d_<name>_<source>.npz``, beside ``gt`` and ``det``. A lifter then
reads it like any other source (``data.keypoints=<source>``), so a table over 2-D sources is a
sweep over ``data.keypoints``.

Choices the paper leaves open, and what liftpose does:

* **Person boxes.** The paper runs AlphaPose's person detector; here each crop is the tight box
  of the projected ground-truth joints, widened to the detector's aspect ratio and padded by 1.25
  (the "ground-truth box" protocol of top-down COCO evaluation).
* **Flip test.** On by default (``flip_test``), with the one-pixel shift of HRNet's evaluation.
* **COCO to Human3.6M joints.** The detector predicts the 17 COCO keypoints. The 12 limb joints
  are Human3.6M joints already (:data:`~liftpose.system.joints.COCO_FROM_H36M`); the other five
  (Hip, Spine, Thorax, Neck/Nose, Head) are affine combinations of the 17 COCO keypoints
  (weights summing to one, so the map commutes with moving and scaling the image) fitted by
  least squares on the exact 2-D of the training subjects (:func:`fit_h36m_from_coco`). The
  weights are stored in the file's metadata.
* **Frame rate.** ``every=k`` runs the detector on every k-th frame (and the last) and fills
  the frames between by linear interpolation, to bound the cost on a CPU; ``every=1`` detects
  every frame.

A file is rebuilt only when it was written by a different detector or setting (the ``key`` in
its metadata); a 2-D file that no detector wrote (``gt``, ``det``, real CPN detections) is never
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liftpose.data.camera import Camera
from liftpose.data.h36m import (
    action_group,
    dataset_cameras,
    dataset_clip_cameras,
    dataset_files,
    read_npz_dict,
    sequence_cameras,
)
from liftpose.data.render import box_from_keypoints, coco_keypoints_3d, render_frames
from liftpose.data.skeleton import H36M17
from liftpose.data.transforms2d import (
    COCO_FLIP_PERMUTATION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    decode_heatmaps,
    flip_images,
    flip_test_average,
)
from liftpose.errors import ConfigError, DataError
from liftpose.system.joints import COCO_FROM_H36M
from liftpose.utils.io import MARKER_KEY, atomic_path, marker

__all__ = [
    "DERIVED_H36M_JOINTS",
    "DetectorSettings",
    "detect_dataset",
    "ensure_detected",
    "exact_coco_pairs",
    "fit_h36m_from_coco",
    "h36m_from_coco",
    "crop_to_h36m",
    "load_detector",
]

#: Human3.6M joints with no COCO counterpart: Hip, Spine, Thorax, Neck/Nose, Head.
DERIVED_H36M_JOINTS: tuple[int, ...] = (0, 7, 8, 9, 10)


@dataclass(frozen=True)
class DetectorSettings:
    """How a detector source is made (``data.detector`` of the lifting data configs).

    ``ckpt``: a ``module=heatmap`` checkpoint; ``every``: detect every k-th frame and
    interpolate between; ``flip_test``: average with the mirrored crop; ``batch_size``: crops per
    forward pass; ``device``: where the detector runs (``cpu``, ``cuda``); ``seed``: the
    renderer's look of each sequence.
    """

    ckpt: str
    every: int = 1
    flip_test: bool = True
    batch_size: int = 32
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ConfigError(f"data.detector.every must be >= 1, got {self.every}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"data.detector.batch_size must be >= 1, got {self.batch_size}")


# --------------------------------------------------------------------------- joint mapping
def fit_h36m_from_coco(coco: np.ndarray, h36m: np.ndarray, ridge: float = 1e-4) -> np.ndarray:
    """Weights ``W (17, 17)`` with ``h36m ~= W @ coco`` per sample, each row summing to one.

    Args:
        coco: ``(N, 17, 2)`` COCO keypoints; h36m: ``(N, 17, 2)`` the Human3.6M joints of the
            same poses (same pixels).
        ridge: Tikhonov weight on the free weights (in units of the pose scale).

    The 12 shared joints get one-hot rows; each joint of :data:`DERIVED_H36M_JOINTS` is an affine
    combination of the 17 COCO keypoints, fitted by least squares after dividing every pose by
    its size (so large and small people count alike).
    """
    coco = np.asarray(coco, dtype=np.float64)
    h36m = np.asarray(h36m, dtype=np.float64)
    if coco.ndim != 3 or coco.shape[1:] != (17, 2) or h36m.shape != coco.shape:
        raise ValueError(f"expected (N, 17, 2) twice, got {coco.shape} and {h36m.shape}")
    w = np.zeros((17, 17))
    for i, j in enumerate(COCO_FROM_H36M):
        w[j, 5 + i] = 1.0
    # h_j - c_0 = sum_{k>0} w_k (c_k - c_0), w_0 = 1 - sum_{k>0} w_k  (rows sum to one)
    size = np.linalg.norm(coco.max(1) - coco.min(1), axis=-1)[:, None, None]
    size = np.maximum(size, 1e-6)
    base = coco[:, :1]
    a = ((coco[:, 1:] - base) / size).transpose(0, 2, 1).reshape(-1, 16)  # (N*2, 16)
    gram = a.T @ a + ridge * len(coco) * np.eye(16)
    for j in DERIVED_H36M_JOINTS:
        b = ((h36m[:, j] - base[:, 0]) / size[:, 0]).reshape(-1)  # (N*2,)
        free = np.linalg.solve(gram, a.T @ b)
        w[j, 1:] = free
        w[j, 0] = 1.0 - free.sum()
    return w


def h36m_from_coco(coco: np.ndarray | torch.Tensor, weights: np.ndarray) -> np.ndarray:
    """``(..., 17, 2)`` COCO keypoints -> ``(..., 17, 2)`` Human3.6M joints with ``weights``
    ``(17, 17)`` of :func:`fit_h36m_from_coco`."""
    c = np.asarray(coco, dtype=np.float64)
    return np.einsum("jk,...kc->...jc", np.asarray(weights, np.float64), c)


# --------------------------------------------------------------------------- the detector
def load_detector(ckpt: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The heatmap network of a ``module=heatmap`` checkpoint (eval mode) and its crop settings
    ``{"image_size": (H, W), "heatmap_size": (h, w), "flip_permutation": [...]}``."""
    from hydra.utils import instantiate

    from liftpose.utils.checkpoint import load_run_checkpoint

    state, cfg = load_run_checkpoint(ckpt)
    if getattr(cfg.module, "_target_", "").rsplit(".", 1)[-1] != "HeatmapModule":
        raise DataError(ckpt, "liftpose_config.module", "not a 2-D detector (module=heatmap)")
    model = instantiate(cfg.model)
    weights = {k[6:]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    image_size = tuple(int(v) for v in cfg.data.image_size)
    hm = cfg.data.get("heatmap_size")
    heatmap_size = (
        tuple(int(v) for v in hm) if hm is not None else (image_size[0] // 4, image_size[1] // 4)
    )
    perm = cfg.module.get("flip_permutation") or list(COCO_FLIP_PERMUTATION)
    info = {"image_size": image_size, "heatmap_size": heatmap_size, "flip_permutation": perm}
    return model.to(device).eval(), info


@torch.inference_mode()
def detect_crops(
    model: torch.nn.Module,
    crops: np.ndarray,
    info: dict,
    batch_size: int = 32,
    flip_test: bool = True,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of person crops: ``(N, H, W, 3)`` uint8 RGB -> ``(N, K, 2)`` crop pixels and
    ``(N, K)`` heatmap peaks (bf16 autocast on CUDA)."""
    cuda = str(device).startswith("cuda")
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    h, w = info["image_size"]
    hh, hw = info["heatmap_size"]
    stride = torch.tensor([w / hw, h / hh], device=device)
    xy, score = [], []
    for s in range(0, len(crops), batch_size):
        x = torch.from_numpy(crops[s : s + batch_size]).to(device).permute(0, 3, 1, 2).float()
        x = (x - mean) / std
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            heatmaps = model(x).float()
            if flip_test:
                flipped = model(flip_images(x)).float()
        if flip_test:
            heatmaps = flip_test_average(heatmaps, flipped, info["flip_permutation"])
        coords, peaks = decode_heatmaps(heatmaps)
        xy.append((coords * stride).cpu())
        score.append(peaks.cpu())
    return torch.cat(xy).numpy(), torch.cat(score).numpy()


def _invert_affine(a: np.ndarray) -> np.ndarray:
    """``(F, 2, 3)`` image->crop maps to crop->image maps."""
    lin = np.linalg.inv(a[:, :, :2])
    return np.concatenate([lin, -lin @ a[:, :, 2:]], axis=-1)


def crop_to_h36m(xy: np.ndarray, affines: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """COCO keypoints in crop pixels ``(F, 17, 2)`` of crops cut by ``affines (F, 2, 3)``
    (image -> crop) to Human3.6M joints in image pixels ``(F, 17, 2)``."""
    inv = _invert_affine(np.asarray(affines, dtype=np.float64))
    img = np.einsum("fij,fkj->fki", inv[:, :, :2], np.asarray(xy, np.float64)) + inv[:, None, :, 2]
    return h36m_from_coco(img, weights)


def _interpolate(frames: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation over frames: ``values (n, J, 2)`` at sorted ``frames (n,)`` ->
    ``(length, J, 2)``."""
    if len(frames) == 1:
        return np.repeat(values, length, axis=0)
    t = np.arange(length)
    hi = np.clip(np.searchsorted(frames, t), 1, len(frames) - 1)
    lo = hi - 1
    span = (frames[hi] - frames[lo]).astype(np.float64)
    a = ((t - frames[lo]) / span)[:, None, None]
    return (1 - a) * values[lo] + a * values[hi]


def _sequence_seed(seed: int, subject: str, action: str, camera: str) -> int:
    return zlib.crc32(f"{seed}/{subject}/{action}/{camera}".encode())


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _selection(
    positions_3d: dict, subjects: Sequence[str] | None, actions: Sequence[str] | None
) -> dict[str, list[str]]:
    """Subjects -> action names to detect (``actions`` filters by group, as the loader does)."""
    out = {}
    for subject in subjects if subjects is not None else sorted(positions_3d):
        if subject not in positions_3d:
            raise ConfigError(f"subject {subject!r} is not in the 3-D file")
        names = sorted(positions_3d[subject])
        if actions is not None:
            names = [a for a in names if action_group(a) in set(actions)]
        out[subject] = names
    return out


def detection_key(
    settings: DetectorSettings,
    root: str | Path,
    name: str,
    train_subjects: Sequence[str],
    selection: dict[str, list[str]],
) -> str:
    """What a detector file depends on: the checkpoint's bytes, the settings, the frames."""
    spec = {
        "ckpt": _file_digest(Path(settings.ckpt)),
        "every": int(settings.every),
        "flip": bool(settings.flip_test),
        "seed": int(settings.seed),
        "train": sorted(train_subjects),
        "selection": selection,
        "data_3d": _file_digest(dataset_files(root, name, "gt")["3d"]),
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def detect_dataset(
    root: str | Path,
    name: str,
    source: str,
    settings: DetectorSettings,
    train_subjects: Sequence[str],
    subjects: Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
    log: Any = print,
) -> Path:
    """Detect the 2-D keypoints of a dataset and write ``data_2d_<name>_<source>.npz``.

    Args:
        root, name: the dataset (``data_3d_<name>.npz``, ``cameras_<name>.json``).
        source: the new 2-D source's name (not ``gt`` or ``det``).
        settings: the detector and how it runs (:class:`DetectorSettings`).
        train_subjects: subjects whose exact 2-D fits the COCO -> Human3.6M map.
        subjects / actions: which sequences to detect (default all; ``actions`` are groups, as
            in ``data.actions``). Every camera of a subject is detected.

    Returns the written path: per subject and action, one ``(F, 17, 2)`` float32 array in image
    pixels per camera of the subject, in the order of ``cameras_<name>.json``.
    """
    if not Path(settings.ckpt).is_file():
        raise DataError(settings.ckpt, "ckpt", "detector checkpoint not found")
    positions_3d, selection, key = _inputs(root, name, settings, train_subjects, subjects, actions)
    return _detect(root, name, source, settings, train_subjects, positions_3d, selection, key, log)


def _inputs(
    root: str | Path,
    name: str,
    settings: DetectorSettings,
    train_subjects: Sequence[str],
    subjects: Sequence[str] | None,
    actions: Sequence[str] | None,
) -> tuple[dict, dict[str, list[str]], str]:
    """The world 3-D poses, the sequences to detect and the key of the file to write."""
    positions_3d, _ = read_npz_dict(dataset_files(root, name, "gt")["3d"], "positions_3d")
    selection = _selection(positions_3d, subjects, actions)
    return positions_3d, selection, detection_key(settings, root, name, train_subjects, selection)


def exact_coco_pairs(
    positions_3d: dict,
    gt_2d: dict,
    cameras: dict[str, dict[str, Camera]],
    subjects: Sequence[str],
    action_step: int = 3,
    frame_step: int = 5,
    clip_cameras: dict[str, dict[str, dict[str, Camera]]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected COCO keypoints (the renderer's, :func:`coco_keypoints_3d`) and the exact
    Human3.6M 2-D of the same frames: ``(N, 17, 2)`` each, from every ``action_step``-th action
    and ``frame_step``-th frame of ``subjects``, every camera (``clip_cameras``: those placed per
    clip, :func:`liftpose.data.h36m.sequence_cameras`)."""
    coco, h36m = [], []
    for subject in subjects:
        for action in sorted(positions_3d[subject])[::action_step]:
            world = np.asarray(positions_3d[subject][action])[::frame_step]
            cams = sequence_cameras(cameras, clip_cameras or {}, subject, action)
            for ci, cam in enumerate(cams):
                joints = cam.world_to_camera(world)
                coco.append(cam.project(np.stack([coco_keypoints_3d(j) for j in joints])))
                h36m.append(np.asarray(gt_2d[subject][action][ci])[::frame_step])
    if not coco:
        raise ConfigError("data.train_subjects is empty: nothing to fit the joint map on")
    return np.concatenate(coco), np.concatenate(h36m)


def _detect(
    root: str | Path,
    name: str,
    source: str,
    settings: DetectorSettings,
    train_subjects: Sequence[str],
    positions_3d: dict,
    selection: dict[str, list[str]],
    key: str,
    log: Any,
) -> Path:
    """The body of :func:`detect_dataset` once its inputs are read."""
    if source in ("gt", "det"):
        raise ConfigError(f"data.keypoints={source!r} is a built-in source, not a detector's")
    files = dataset_files(root, name, source)
    gt_2d, gt_meta = read_npz_dict(dataset_files(root, name, "gt")["2d"], "positions_2d")
    all_cams = dataset_cameras(root, name)
    clip_cams = dataset_clip_cameras(root, name)
    # the COCO -> H36M map from the training subjects' exact 2-D
    weights = fit_h36m_from_coco(
        *exact_coco_pairs(positions_3d, gt_2d, all_cams, train_subjects, clip_cameras=clip_cams)
    )

    model, info = load_detector(settings.ckpt, settings.device)
    every = int(settings.every)
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    n_crops = 0
    for subject, names in selection.items():
        out[subject] = {}
        for action in names:
            cams: list[Camera] = sequence_cameras(all_cams, clip_cams, subject, action)
            world = np.asarray(positions_3d[subject][action], dtype=np.float64)
            f = len(world)
            idx = np.unique(np.r_[np.arange(0, f, every), f - 1])
            per_cam = []
            for cam in cams:
                j_cam = cam.world_to_camera(world[idx])
                boxes = box_from_keypoints(cam.project(j_cam))
                crops, affines = render_frames(
                    j_cam,
                    cam,
                    boxes,
                    crop_size=info["image_size"],
                    seed=_sequence_seed(settings.seed, subject, action, cam.id),
                )
                xy, _ = detect_crops(
                    model, crops, info, settings.batch_size, settings.flip_test, settings.device
                )
                kp = crop_to_h36m(xy, affines, weights)
                if not np.isfinite(kp).all():
                    raise DataError(files["2d"], f"positions_2d[{subject}][{action}]", "NaN output")
                per_cam.append(_interpolate(idx, kp, f).astype(np.float32))
                n_crops += len(idx)
            out[subject][action] = per_cam
        log(f"liftpose: detected {subject} ({len(names)} sequences, {n_crops} crops so far)")

    meta = dict(gt_meta or {})
    meta.setdefault("layout_name", "h36m")
    meta.setdefault("num_joints", 17)
    meta.setdefault("keypoints_symmetry", [list(H36M17.left), list(H36M17.right)])
    meta["detector"] = {
        "key": key,
        **asdict(settings),
        "h36m_from_coco": weights.tolist(),
        "boxes": "ground truth",
    }
    path = files["2d"]
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez_compressed(
            tmp,
            positions_2d=np.array(out, dtype=object),
            metadata=np.array(meta, dtype=object),
            **{MARKER_KEY: np.array(marker("dataset-2d", name=name, source=source))},
        )
    return path


def ensure_detected(
    root: str | Path,
    name: str,
    source: str,
    settings: DetectorSettings,
    train_subjects: Sequence[str],
    subjects: Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
) -> Path:
    """:func:`detect_dataset` unless the file was written with the same key already."""
    path = dataset_files(root, name, source)["2d"]
    if not Path(settings.ckpt).is_file():
        raise DataError(settings.ckpt, "data.detector.ckpt", "detector checkpoint not found")
    written_key = None
    if path.exists():
        _, meta = read_npz_dict(path, "positions_2d")
        det = (meta or {}).get("detector")
        if det is None:
            raise ConfigError(
                f"{path} exists and was not written by a detector; choose another "
                f"data.keypoints for the detector's source or move the file"
            )
        written_key = det.get("key")
    positions_3d, selection, key = _inputs(root, name, settings, train_subjects, subjects, actions)
    if written_key == key:
        return path
    print(f"liftpose: running the detector {settings.ckpt} over {root} -> {path.name}")
    return _detect(
        root, name, source, settings, train_subjects, positions_3d, selection, key, print
    )

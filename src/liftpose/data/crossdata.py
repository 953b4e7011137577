"""A cross-dataset test set in the MPI-INF-3DHP layout, filmed from Bandai-Namco motion capture.

:func:`build_bandai_3dhp` turns the BVH clips of Bandai-Namco-Research-Motiondataset-1 (a motion
source, skeleton and studio unlike HDM05's) into ``data_test_3dhp.npz`` as
:mod:`liftpose.data.mpi3dhp` reads it, so a model trained on the embedded HDM05 virtual capture is
tested on unseen actors, motions and cameras exactly as on the real 3DHP test set (PCK/AUC on 14
joints, valid frames only, per-scene results):

1. ``num_clips`` clips, evenly spaced over the sorted file names (so over the motion contents),
   are read with :func:`~liftpose.data.mocap.retarget.load_bandai_clip` (Human3.6M 17 joints,
   metres, Z up), resampled from 30 Hz to ``fps`` and recentred (mean pelvis x, y = 0).
2. Clip ``k`` goes to ``TS{k % 6 + 1}`` (with fewer than six clips, clips are reused so every
   sequence has one). The clips of a sequence are joined by a linear blend of ``blend_frames``
   frames; blend frames are marked invalid.
3. Each sequence is filmed by one pinhole camera: TS1-TS4 2048 x 2048 (focal 1500 px), TS5-TS6
   1920 x 1080 (focal 1680 px), like the 3DHP test cameras. Azimuth, height and distance come
   from a seeded generator; the distance frames 75 % of the motion's horizontal reach, so
   the widest excursions leave the image.
4. A frame is invalid when a joint is outside the image or behind the camera, when it is a
   blend frame, or in a seeded random block (``invalid_blocks`` x ``block_frames``, about 5 % of
   the frames).

The file stores pixels, camera-frame millimetres (absolute, 3DHP joint order) and ``valid``,
plus a JSON ``meta`` entry (clips, cameras, invalid-frame counts). The Bandai data are
CC BY-NC 4.0: the built file is for local evaluation and is not shipped with the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liftpose.data.camera import Camera, look_at
from liftpose.data.mocap.retarget import load_bandai_clip, resample
from liftpose.data.mpi3dhp import (
    MPI3DHP_TEST_RESOLUTION,
    MPI3DHP_TEST_SCENES,
    MPI3DHP_TO_H36M,
    TEST_FILE,
    write_3dhp_test,
)
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError
from liftpose.utils.io import check_overwrite

__all__ = [
    "H36M_TO_MPI3DHP",
    "TEST_FOCAL",
    "bandai_clips",
    "build_bandai_3dhp",
    "film_sequence",
    "invalid_blocks",
    "join_clips",
]

#: ``mpi3dhp[..., i, :] = h36m[..., H36M_TO_MPI3DHP[i], :]`` (inverse of ``MPI3DHP_TO_H36M``).
H36M_TO_MPI3DHP: tuple[int, ...] = tuple(int(i) for i in np.argsort(MPI3DHP_TO_H36M))

#: Focal length (pixels) of the virtual camera of each test sequence.
TEST_FOCAL: dict[str, float] = {
    "TS1": 1500.0, "TS2": 1500.0, "TS3": 1500.0, "TS4": 1500.0, "TS5": 1680.0, "TS6": 1680.0,
}  # fmt: skip

_NAMES = tuple(MPI3DHP_TEST_SCENES)  # TS1 .. TS6


def bandai_clips(src: str | Path, num_clips: int | None = None) -> list[Path]:
    """``num_clips`` BVH files of ``src``, evenly spaced over the sorted names (None: all)."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, "folder", "Bandai BVH folder not found")
    files = sorted(src.glob("*.bvh"))
    if not files:
        raise DataError(src, "folder", "no *.bvh files")
    if num_clips is None or num_clips >= len(files):
        return files
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    idx = np.unique(np.round(np.linspace(0, len(files) - 1, num_clips)).astype(int))
    return [files[i] for i in idx]


def join_clips(clips: list[np.ndarray], blend_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate clips ``(T_k, J, 3)`` with linear blends of ``blend_frames`` frames between
    them. Returns the joined motion ``(F, J, 3)`` and a ``(F,)`` bool mask of blend frames."""
    parts, blend = [clips[0]], [np.zeros(len(clips[0]), bool)]
    for nxt in clips[1:]:
        if blend_frames > 0:
            w = (np.arange(1, blend_frames + 1) / (blend_frames + 1))[:, None, None]
            parts.append((1 - w) * parts[-1][-1] + w * nxt[0])
            blend.append(np.ones(blend_frames, bool))
        parts.append(nxt)
        blend.append(np.zeros(len(nxt), bool))
    return np.concatenate(parts), np.concatenate(blend)


def invalid_blocks(frames: int, blocks: int, block_frames: int, rng: np.random.Generator):
    """``(frames,)`` bool mask with ``blocks`` random runs of ``block_frames`` frames set."""
    mask = np.zeros(frames, bool)
    if frames <= block_frames or blocks <= 0:
        return mask
    for s in rng.integers(0, frames - block_frames, size=blocks):
        mask[s : s + block_frames] = True
    return mask


def film_sequence(
    world: np.ndarray, name: str, rng: np.random.Generator, fit_quantile: float = 75.0
) -> tuple[Camera, np.ndarray, np.ndarray]:
    """Place the camera of test sequence ``name`` around ``world`` ``(F, 17, 3)`` (metres, Z
    up) and film it. Returns the camera, pixels ``(F, 17, 2)`` and camera-frame metres
    ``(F, 17, 3)`` (Human3.6M joint order)."""
    w, h = MPI3DHP_TEST_RESOLUTION[name]
    f = TEST_FOCAL[name]
    target = np.array([0.0, 0.0, 0.9])
    pts = world.reshape(-1, 3)
    reach = float(np.percentile(np.linalg.norm(pts[:, :2] - target[:2], axis=1), fit_quantile))
    top = max(float(np.abs(pts[:, 2] - target[2]).max()), 0.5)
    half = min(w, h) * 0.45
    dist = max(3.0, reach + max(reach, top) * f / half) + abs(rng.normal(0.0, 0.3))
    az = np.deg2rad(60.0 * _NAMES.index(name) + rng.normal(0.0, 15.0))
    pos = target + np.array([dist * np.cos(az), dist * np.sin(az), 0.0])
    pos[2] = rng.uniform(0.8, 1.8)
    cam = Camera(
        id=name,
        res_w=w,
        res_h=h,
        center=np.array([w / 2.0, h / 2.0]),
        focal_length=np.array([f, f]),
        orientation=look_at(pos, target),
        translation=pos,
    )
    x_cam = cam.world_to_camera(world.astype(np.float64))
    return cam, cam.project(x_cam, distort=False), x_cam


def build_bandai_3dhp(
    src: str | Path,
    root: str | Path,
    *,
    file: str = TEST_FILE,
    num_clips: int = 30,
    fps: float = 50.0,
    seed: int = 0,
    blend_frames: int = 10,
    block_frames: int = 10,
    invalid_rate: float = 0.05,
) -> Path:
    """Build ``root/file`` (``data_test_3dhp.npz`` layout) from the Bandai BVH clips in ``src``.

    See the module docstring for the steps. Deterministic for given arguments; written
    atomically. Returns the path written.
    """
    src, root = Path(src), Path(root)
    check_overwrite(root / file)  # before the work: a user's file of that name stays as it is
    paths = bandai_clips(src, num_clips)
    motions = []
    for p in paths:
        pos, src_fps = load_bandai_clip(p)
        pos = resample(pos.astype(np.float64), src_fps, fps, H36M17)
        pos[..., :2] -= pos[:, 0, :2].mean(axis=0)
        motions.append(pos)
    per_seq: dict[str, list[int]] = {n: [] for n in _NAMES}
    for k in range(max(len(motions), len(_NAMES))):
        per_seq[_NAMES[k % len(_NAMES)]].append(k % len(motions))
    rng = np.random.default_rng(seed)
    sequences, meta_seqs = {}, {}
    for name in _NAMES:
        world, blend = join_clips([motions[i] for i in per_seq[name]], blend_frames)
        cam, px, x_cam = film_sequence(world, name, rng)
        inside = (
            (px[..., 0] >= 0)
            & (px[..., 0] < cam.res_w)
            & (px[..., 1] >= 0)
            & (px[..., 1] < cam.res_h)
            & (x_cam[..., 2] > 0.1)
        ).all(axis=1)
        n = len(world)
        blocks = invalid_blocks(n, int(round(invalid_rate * n / block_frames)), block_frames, rng)
        valid = inside & ~blend & ~blocks
        order = list(H36M_TO_MPI3DHP)
        sequences[name] = {
            "data_2d": px[:, order].astype(np.float32),
            "data_3d": (x_cam[:, order] * 1000.0).astype(np.float32),
            "valid": valid.astype(np.float32),
        }
        meta_seqs[name] = {
            "scene": MPI3DHP_TEST_SCENES[name],
            "clips": [paths[i].name for i in per_seq[name]],
            "frames": int(n),
            "valid_frames": int(valid.sum()),
            "invalid": {
                "out_of_image": int((~inside).sum()),
                "blend": int(blend.sum()),
                "random_blocks": int(blocks.sum()),
            },
            "camera": {
                "res": [cam.res_w, cam.res_h],
                "focal_length": cam.focal_length.tolist(),
                "center": cam.center.tolist(),
                "orientation_wxyz": cam.orientation.tolist(),
                "translation_m": cam.translation.tolist(),
            },
        }
    meta = {
        "source": "Bandai-Namco-Research-Motiondataset-1 (CC BY-NC 4.0), retargeted to H36M-17",
        "layout": "MPI-INF-3DHP data_test_3dhp.npz (pixels, camera-frame mm, 3DHP joint order)",
        "fps": fps,
        "seed": seed,
        "num_clips": len(paths),
        "sequences": meta_seqs,
    }
    return write_3dhp_test(root / file, sequences, meta=meta)

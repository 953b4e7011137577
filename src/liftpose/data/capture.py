"""Virtual capture: film any 3-D motion collection with Human3.6M-like cameras.

A motion collection ``{subject: {action: (T, 17, 3) world metres, Z up}}`` becomes a dataset in
the VideoPose3D file layout, so the loader that reads the real Human3.6M files reads it unchanged:

* ``data_3d_<name>.npz``: ``positions_3d[subject][action] -> (T, 17, 3)`` world metres;
* ``data_2d_<name>_<source>.npz``: ``positions_2d[subject][action] -> [n_cams x (T, 17, 2)]``
  pixels, plus ``metadata`` (layout, joint count, symmetry);
* ``cameras_<name>.json``: per-subject extrinsics and the per-camera intrinsics.

Sources: ``gt`` is the exact projection (with the Human3.6M lens distortion); ``det`` is a
simulated 2-D detector (:class:`DetectorNoise`): per-joint Gaussian noise of a few pixels that is
temporally correlated, occasional outliers lasting a few frames, and occasional left/right swaps.
Every random choice comes from one seeded generator, so a build is reproducible.

Camera placement (:class:`RigConfig`): four cameras with the four Human3.6M intrinsics, on a
circle around the capture volume at azimuths of +-45 and +-135 degrees (like the four corners of
the Human3.6M studio), at a height of ``height`` metres,
looking at ``target``; the distance is the larger of ``min_distance`` and the distance at which
the subject's whole motion volume fits in the image with ``margin`` to spare. Small seeded jitter
of azimuth, height and distance makes each subject's rig differ, as in the real recordings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liftpose.data.camera import H36M_CAMERA_IDS, Camera, load_cameras, look_at
from liftpose.data.skeleton import H36M17

Collection = dict[str, dict[str, np.ndarray]]


@dataclass
class RigConfig:
    """Where the virtual cameras stand (metres, degrees)."""

    azimuths: tuple[float, ...] = (45.0, -45.0, 135.0, -135.0)
    height: float = 1.6
    target: tuple[float, float, float] = (0.0, 0.0, 0.9)
    min_distance: float = 4.5
    margin: float = 0.1  # fraction of the image kept free at each border
    jitter_azimuth: float = 8.0
    jitter_height: float = 0.15
    jitter_distance: float = 0.3


@dataclass
class DetectorNoise:
    """Parameters of the simulated 2-D detector (pixels, frames, probabilities per frame)."""

    sigma_px: float = 3.0  # base per-joint noise
    limb_scale: float = 1.6  # extra factor for wrists and feet, which detectors miss most
    correlation_frames: float = 4.0  # std of the Gaussian temporal smoothing kernel
    outlier_rate: float = 0.004  # probability that an outlier starts at a joint in a frame
    outlier_px: float = 40.0  # typical outlier displacement
    outlier_frames: int = 4  # how long an outlier lasts
    swap_rate: float = 0.002  # probability that a left/right swap starts in a frame
    swap_frames: int = 6  # how long a swap lasts


@dataclass
class CaptureConfig:
    rig: RigConfig = field(default_factory=RigConfig)
    det: DetectorNoise = field(default_factory=DetectorNoise)
    seed: int = 0


def _intrinsics() -> list[Camera]:
    cams = load_cameras()["S1"]
    return [cams[c] for c in H36M_CAMERA_IDS]


def place_cameras(
    motions: dict[str, np.ndarray], rig: RigConfig, rng: np.random.Generator
) -> list[Camera]:
    """Four cameras around the volume swept by ``motions`` (each ``(T, J, 3)``, world metres)."""
    pts = np.concatenate([m.reshape(-1, 3) for m in motions.values()])
    target = np.asarray(rig.target, dtype=np.float64)
    reach = np.linalg.norm(pts[:, :2] - target[:2], axis=1).max()
    top = max(np.abs(pts[:, 2] - target[2]).max(), 0.5)
    cams = []
    for base, intr in zip(rig.azimuths, _intrinsics()):
        half = min(intr.res_w, intr.res_h) * (0.5 - rig.margin)
        focal = float(np.max(intr.focal_length))
        fit = reach + max(reach, top) * focal / half  # distance at which the volume fits
        dist = max(rig.min_distance, fit) + abs(rng.normal(0, rig.jitter_distance))
        az = np.deg2rad(base + rng.normal(0, rig.jitter_azimuth))
        pos = target + np.array([dist * np.cos(az), dist * np.sin(az), 0.0])
        pos[2] = rig.height + rng.normal(0, rig.jitter_height)
        cams.append(
            Camera(
                id=intr.id,
                res_w=intr.res_w,
                res_h=intr.res_h,
                center=intr.center,
                focal_length=intr.focal_length,
                radial_distortion=intr.radial_distortion,
                tangential_distortion=intr.tangential_distortion,
                orientation=look_at(pos, target),
                translation=pos,
            )
        )
    return cams


def _smooth(noise: np.ndarray, std_frames: float) -> np.ndarray:
    """Gaussian-smooth white noise ``(T, ...)`` along time and restore unit variance."""
    if std_frames <= 0:
        return noise
    r = int(np.ceil(3 * std_frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / std_frames) ** 2)
    k /= np.sqrt(np.sum(k**2))  # unit variance of the output for unit-variance input
    padded = np.pad(noise, [(r, r)] + [(0, 0)] * (noise.ndim - 1), mode="reflect")
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=0)  # (T, ..., K)
    return win @ k


def _spans(start: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask ``(T, ...)``: True for ``length`` frames after each True in ``start``."""
    if length <= 0:
        return np.zeros(start.shape, dtype=bool)
    c = np.cumsum(start, axis=0)
    shifted = np.zeros_like(c)
    shifted[length:] = c[:-length]
    return (c - shifted) > 0


def simulate_detector(gt: np.ndarray, cfg: DetectorNoise, rng: np.random.Generator) -> np.ndarray:
    """Detector-like 2-D keypoints ``(T, J, 2)`` pixels from exact projections ``gt (T, J, 2)``."""
    t, j, _ = gt.shape
    scale = np.full(j, cfg.sigma_px)
    scale[[3, 6, 13, 16]] *= cfg.limb_scale  # feet and wrists
    det = gt + _smooth(rng.standard_normal((t, j, 2)), cfg.correlation_frames) * scale[:, None]
    # outliers: a displacement held for a few frames
    start = rng.random((t, j)) < cfg.outlier_rate
    on = _spans(start, cfg.outlier_frames)
    jump = rng.standard_normal((t, j, 2)) * cfg.outlier_px
    jump = np.where(start[..., None], jump, 0.0)
    held = np.maximum.accumulate(np.where(start, np.arange(t)[:, None], 0), axis=0)
    det = det + np.where(on[..., None], jump[held, np.arange(j)[None, :]], 0.0)
    # left/right swaps of the whole body for a few frames
    swap = _spans(rng.random(t) < cfg.swap_rate, cfg.swap_frames)
    perm = H36M17.flip_permutation
    det[swap] = det[swap][:, perm]
    return det


def capture(
    collection: Collection, cfg: CaptureConfig | None = None
) -> tuple[dict[str, list[Camera]], dict[str, dict[str, dict[str, list[np.ndarray]]]]]:
    """Film ``collection``: returns cameras per subject and 2-D per source and camera.

    Returns ``(cameras, positions_2d)`` where ``positions_2d[source][subject][action]`` is a list
    of ``(T, 17, 2)`` pixel arrays, one per camera, for the sources ``gt`` and ``det``.
    """
    cfg = cfg or CaptureConfig()
    rng = np.random.default_rng(cfg.seed)
    cameras: dict[str, list[Camera]] = {}
    out: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {"gt": {}, "det": {}}
    for subject in sorted(collection):
        motions = collection[subject]
        cams = place_cameras(motions, cfg.rig, rng)
        cameras[subject] = cams
        out["gt"][subject], out["det"][subject] = {}, {}
        for action in sorted(motions):
            world = motions[action].astype(np.float64)
            gts, dets = [], []
            for cam in cams:
                px = cam.project(cam.world_to_camera(world))
                gts.append(px.astype(np.float32))
                dets.append(simulate_detector(px, cfg.det, rng).astype(np.float32))
            out["gt"][subject][action] = gts
            out["det"][subject][action] = dets
    return cameras, out

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

Camera placement (:class:`RigConfig`), ``mode="ring"``: four cameras with the four Human3.6M
intrinsics, on a circle around the capture volume at azimuths of +-45 and +-135 degrees (like the
four corners of the Human3.6M studio), at a height of ``height`` metres, looking at ``target``.
The distance is, without ``person_height_px``, the larger of ``min_distance`` and the distance
at which the ``fit_quantile`` percentile of the motion's horizontal reach (100: all of it) fits
in the image with ``margin`` to spare; with ``person_height_px``, the distance at which the
subject's stature (the 95th percentile over all its frames of the Head joint's height above the
lower ankle) spans that many pixels at the target, whatever the motion's reach (a long walk then
leaves the picture at its ends rather than shrinking the person). Small seeded jitter of azimuth,
height and distance makes each rig differ, as in the real recordings. ``placement="subject"``
gives each subject one rig fitted to all its clips (the Human3.6M way: cameras per subject);
``placement="clip"`` gives each clip its own rig, fitted to that clip.

``mode="random"`` (for lifters that must not depend on a few camera positions): each clip (or
subject) gets ``random_views`` cameras drawn at random: an image size from
``random_resolutions``, a focal length of ``random_focal`` times the image's larger side, a
uniform azimuth, a horizontal distance from ``random_distance`` (at least the motion's reach plus
0.5 m, so the person never walks behind the camera, and far enough for the person's stature plus
0.3 m to fit in 90 % of the image's shorter side), a height from ``random_height``, looking at
the target and then tilted by a pitch from ``random_pitch`` (degrees, positive up: the person
sits off the image centre); no lens distortion. Ranges are ``[low, high]``, drawn uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liftpose.data.camera import (
    H36M_CAMERA_IDS,
    Camera,
    load_cameras,
    look_at,
    matrix_to_quat,
    quat_to_matrix,
)
from liftpose.data.skeleton import H36M17
from liftpose.errors import ConfigError

Collection = dict[str, dict[str, np.ndarray]]
PLACEMENTS = ("subject", "clip")
RIG_MODES = ("ring", "random")
_HEAD, _RFOOT, _LFOOT = 10, 3, 6
#: The Human3.6M joints no COCO keypoint is: Hip, Spine, Thorax, Neck/Nose, Head.
DERIVED_JOINTS: tuple[int, ...] = (0, 7, 8, 9, 10)


@dataclass
class RigConfig:
    """Where the virtual cameras stand (metres, degrees, pixels; see the module docstring)."""

    azimuths: tuple[float, ...] = (45.0, -45.0, 135.0, -135.0)
    height: float = 1.6
    target: tuple[float, float, float] = (0.0, 0.0, 0.9)
    min_distance: float = 4.5
    margin: float = 0.1  # fraction of the image kept free at each border
    jitter_azimuth: float = 8.0
    jitter_height: float = 0.15
    jitter_distance: float = 0.3
    placement: str = "subject"  # subject: one rig per subject; clip: one per clip
    person_height_px: float | None = None  # stature in pixels at the target (None: fit motion)
    fit_quantile: float = 100.0  # percentile of the horizontal reach that must fit the image
    mode: str = "ring"  # ring: the Human3.6M-like rig; random: cameras drawn per clip/subject
    random_views: int = 4
    random_height: tuple[float, float] = (0.3, 2.5)
    random_distance: tuple[float, float] = (2.5, 8.0)
    random_pitch: tuple[float, float] = (-5.0, 5.0)
    random_focal: tuple[float, float] = (0.6, 1.6)  # focal length / the image's larger side
    random_resolutions: tuple[tuple[int, int], ...] = (
        (1000, 1002), (1920, 1080), (1080, 1920), (1280, 960),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"data.capture.rig.placement={self.placement!r}: expected one of {PLACEMENTS}"
            )
        if self.mode not in RIG_MODES:
            raise ConfigError(f"data.capture.rig.mode={self.mode!r}: expected one of {RIG_MODES}")
        if self.person_height_px is not None and not self.person_height_px > 0:
            raise ConfigError(
                f"data.capture.rig.person_height_px={self.person_height_px}: must be > 0 or null"
            )
        if not 0 < self.fit_quantile <= 100:
            raise ConfigError(
                f"data.capture.rig.fit_quantile={self.fit_quantile}: must be in (0, 100]"
            )
        for key in ("random_height", "random_distance", "random_pitch", "random_focal"):
            lo_hi = tuple(getattr(self, key))
            if len(lo_hi) != 2 or not lo_hi[0] <= lo_hi[1]:
                raise ConfigError(f"data.capture.rig.{key}={list(lo_hi)}: expected [low, high]")
        if self.random_views < 1 or not self.random_resolutions:
            raise ConfigError("data.capture.rig.random_views/random_resolutions: need >= 1")


@dataclass
class DetectorNoise:
    """Parameters of the simulated 2-D detector (pixels, frames, probabilities per frame).

    The last three fields (off by default) make the 2-D look like a real detector's mapped to
    Human3.6M-17 (:func:`simulate_detector`): pixel sizes given for a person ``relative_to_px``
    pixels tall and scaled with each sequence's person; a constant per-sequence offset of each
    joint (``bias_px``, a detector's systematic disagreement with the mocap joint centres); and
    the five joints no COCO detector has (Hip, Spine, Thorax, Neck/Nose, Head) moved a random
    fraction in ``[0, coco_blend]`` of the way to where the COCO-17 map of ``liftpose-infer``
    puts them (:data:`liftpose.system.joints.COCO17`: mean of the hips, mean of the shoulders,
    their midpoint, the nose, the mean of the eyes), which differs from the mocap joints
    (:mod:`liftpose.data.mocap.retarget`): a lifter trained so learns to depend on neither.
    """

    sigma_px: float = 3.0  # base per-joint noise
    limb_scale: float = 1.6  # extra factor for wrists and feet, which detectors miss most
    correlation_frames: float = 4.0  # std of the Gaussian temporal smoothing kernel
    outlier_rate: float = 0.004  # probability that an outlier starts at a joint in a frame
    outlier_px: float = 40.0  # typical outlier displacement
    outlier_frames: int = 4  # how long an outlier lasts
    swap_rate: float = 0.002  # probability that a left/right swap starts in a frame
    swap_frames: int = 6  # how long a swap lasts
    relative_to_px: float | None = None  # pixel sizes are for a person this tall (None: as is)
    bias_px: float = 0.0  # std of a constant per-sequence offset of each joint
    coco_blend: float = 0.0  # derived joints moved up to this fraction towards COCO rules


@dataclass
class CaptureConfig:
    rig: RigConfig = field(default_factory=RigConfig)
    det: DetectorNoise = field(default_factory=DetectorNoise)
    seed: int = 0


def _intrinsics() -> list[Camera]:
    cams = load_cameras()["S1"]
    return [cams[c] for c in H36M_CAMERA_IDS]


def stature(motions: dict[str, np.ndarray] | list[np.ndarray]) -> float:
    """A person's standing height (metres) as the rig sees it: the 95th percentile over all
    frames of the Head joint's height above the lower ankle (``(T, 17, 3)`` world, Z up)."""
    arrays = motions.values() if isinstance(motions, dict) else motions
    z = np.concatenate([np.asarray(m, dtype=np.float64)[..., 2] for m in arrays])
    return float(np.percentile(z[:, _HEAD] - np.minimum(z[:, _RFOOT], z[:, _LFOOT]), 95))


def place_cameras(
    motions: dict[str, np.ndarray],
    rig: RigConfig,
    rng: np.random.Generator,
    height_m: float | None = None,
) -> list[Camera]:
    """The cameras of one rig around the volume swept by ``motions`` (each ``(T, J, 3)``, world
    metres, Z up), by ``rig.mode`` (module docstring).

    Args:
        height_m: the person's stature for ``rig.person_height_px`` (default: from ``motions``
            with :func:`stature`; pass the subject's when ``motions`` is one clip).
    """
    pts = np.concatenate([m.reshape(-1, 3) for m in motions.values()])
    target = np.asarray(rig.target, dtype=np.float64)
    reach_all = np.linalg.norm(pts[:, :2] - target[:2], axis=1)
    if rig.mode == "random":
        tall = stature(motions) if height_m is None else height_m
        return [_random_camera(k, target, float(reach_all.max()), tall, rig, rng)
                for k in range(rig.random_views)]  # fmt: skip
    reach = float(np.percentile(reach_all, rig.fit_quantile))
    top = max(float(np.abs(pts[:, 2] - target[2]).max()), 0.5)
    if rig.person_height_px is not None and height_m is None:
        height_m = stature(motions)
    cams = []
    for base, intr in zip(rig.azimuths, _intrinsics()):
        focal = float(np.max(intr.focal_length))
        if rig.person_height_px is not None:
            base_dist = max(focal * height_m / rig.person_height_px, float(reach_all.max()) + 0.5)
        else:
            half = min(intr.res_w, intr.res_h) * (0.5 - rig.margin)
            fit = reach + max(reach, top) * focal / half  # distance at which the volume fits
            base_dist = max(rig.min_distance, fit)
        dist = base_dist + abs(rng.normal(0, rig.jitter_distance))
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


def _random_camera(
    k: int,
    target: np.ndarray,
    reach: float,
    height_m: float,
    rig: RigConfig,
    rng: np.random.Generator,
) -> Camera:
    """One camera of ``mode="random"`` (module docstring); ``id`` is ``"rand<k>"``. ``reach``
    (the motion's horizontal reach from the target) and ``height_m`` (the person's stature)
    bound the distance from below."""
    w, h = (int(v) for v in rig.random_resolutions[rng.integers(len(rig.random_resolutions))])
    focal = rng.uniform(*rig.random_focal) * max(w, h)
    az = rng.uniform(0.0, 2 * np.pi)
    fits = focal * (height_m + 0.3) / (0.9 * min(w, h))  # the person within 90 % of the image
    dist = max(rng.uniform(*rig.random_distance), reach + 0.5, fits)
    pos = target + np.array([dist * np.cos(az), dist * np.sin(az), 0.0])
    pos[2] = rng.uniform(*rig.random_height)
    r = quat_to_matrix(look_at(pos, target))  # columns: camera x (right), y (down), z (forward)
    pitch = np.deg2rad(rng.uniform(*rig.random_pitch))  # positive: the camera looks up
    c, s_ = np.cos(pitch), np.sin(pitch)
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])  # columns: new x, y, z
    return Camera(
        id=f"rand{k}",
        res_w=w,
        res_h=h,
        center=np.array([w / 2.0, h / 2.0]),
        focal_length=np.array([focal, focal]),
        orientation=matrix_to_quat(r @ tilt),
        translation=pos,
    )


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


def simulate_detector(
    gt: np.ndarray,
    cfg: DetectorNoise,
    rng: np.random.Generator,
    coco_px: np.ndarray | None = None,
) -> np.ndarray:
    """Detector-like 2-D keypoints ``(T, J, 2)`` pixels from exact projections ``gt (T, J, 2)``.

    Args:
        gt: exact Human3.6M-17 projections, pixels.
        cfg: the noise (:class:`DetectorNoise`).
        rng: the generator every draw comes from.
        coco_px: ``(T, 17, 2)`` COCO-17 keypoints of the same frames, pixels; needed when
            ``cfg.coco_blend > 0``.
    """
    t, j, _ = gt.shape
    size = 1.0
    if cfg.relative_to_px is not None:
        size = float(np.median(np.ptp(gt[..., 1], axis=1))) / cfg.relative_to_px
    scale = np.full(j, cfg.sigma_px * size)
    scale[[3, 6, 13, 16]] *= cfg.limb_scale  # feet and wrists
    noise = _smooth(rng.standard_normal((t, j, 2)), cfg.correlation_frames) * scale[:, None]
    # outliers: a displacement held for a few frames
    start = rng.random((t, j)) < cfg.outlier_rate
    on = _spans(start, cfg.outlier_frames)
    jump = rng.standard_normal((t, j, 2)) * cfg.outlier_px * size
    jump = np.where(start[..., None], jump, 0.0)
    held = np.maximum.accumulate(np.where(start, np.arange(t)[:, None], 0), axis=0)
    outliers = np.where(on[..., None], jump[held, np.arange(j)[None, :]], 0.0)
    # left/right swaps of the whole body for a few frames
    swap = _spans(rng.random(t) < cfg.swap_rate, cfg.swap_frames)
    base = gt
    if cfg.coco_blend > 0:
        if coco_px is None:
            raise ValueError("DetectorNoise.coco_blend > 0 needs the COCO keypoints (coco_px)")
        from liftpose.system.joints import to_h36m

        alpha = rng.uniform(0.0, cfg.coco_blend)
        base = np.array(gt, dtype=np.float64)
        mapped = to_h36m(coco_px, None, "coco17")[0]
        d = list(DERIVED_JOINTS)
        base[:, d] += alpha * (mapped[:, d] - base[:, d])
    det = base + noise
    det = det + outliers
    if cfg.bias_px > 0:
        det = det + rng.standard_normal((j, 2)) * cfg.bias_px * size
    perm = H36M17.flip_permutation
    det[swap] = det[swap][:, perm]
    return det


def _coco_keypoints(world: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints ``(T, 17, 3)`` of Human3.6M-17 poses ``(T, 17, 3)`` (the renderer's
    face model, :func:`liftpose.data.render.coco_keypoints_3d`)."""
    from liftpose.data.render import coco_keypoints_3d

    return np.stack([coco_keypoints_3d(p) for p in world])


@dataclass
class Filmed:
    """The cameras and 2-D of a filmed collection.

    ``cameras[subject]`` (``placement="subject"``) or ``clip_cameras[subject][action]``
    (``placement="clip"``) hold the cameras, in the order of the views of
    ``positions_2d[source][subject][action]`` (a list of ``(T, 17, 2)`` pixel arrays).
    """

    cameras: dict[str, list[Camera]]
    clip_cameras: dict[str, dict[str, list[Camera]]]
    positions_2d: dict[str, dict[str, dict[str, list[np.ndarray]]]]

    def cameras_of(self, subject: str, action: str) -> list[Camera]:
        """The cameras that filmed one clip."""
        clip = self.clip_cameras.get(subject, {}).get(action)
        return clip if clip is not None else self.cameras[subject]


def film(collection: Collection, cfg: CaptureConfig | None = None) -> Filmed:
    """Film ``collection`` ``{subject: {action: (T, 17, 3) world metres, Z up}}``: cameras by
    ``cfg.rig`` and the 2-D sources ``gt`` (exact projection) and ``det`` (simulated detector).
    Every random draw comes from one generator seeded with ``cfg.seed``."""
    cfg = cfg or CaptureConfig()
    rng = np.random.default_rng(cfg.seed)
    out = Filmed({}, {}, {"gt": {}, "det": {}})
    for subject in sorted(collection):
        motions = collection[subject]
        height_m = stature(motions) if cfg.rig.person_height_px is not None else None
        if cfg.rig.placement == "subject":
            out.cameras[subject] = place_cameras(motions, cfg.rig, rng, height_m)
        else:
            out.clip_cameras[subject] = {}
        out.positions_2d["gt"][subject], out.positions_2d["det"][subject] = {}, {}
        for action in sorted(motions):
            world = motions[action].astype(np.float64)
            if cfg.rig.placement == "clip":
                out.clip_cameras[subject][action] = place_cameras(
                    {action: world}, cfg.rig, rng, height_m
                )
            coco_3d = _coco_keypoints(world) if cfg.det.coco_blend > 0 else None
            gts, dets = [], []
            for cam in out.cameras_of(subject, action):
                px = cam.project(cam.world_to_camera(world))
                coco = None if coco_3d is None else cam.project(cam.world_to_camera(coco_3d))
                gts.append(px.astype(np.float32))
                dets.append(simulate_detector(px, cfg.det, rng, coco).astype(np.float32))
            out.positions_2d["gt"][subject][action] = gts
            out.positions_2d["det"][subject][action] = dets
    return out


def capture(
    collection: Collection, cfg: CaptureConfig | None = None
) -> tuple[dict[str, list[Camera]], dict[str, dict[str, dict[str, list[np.ndarray]]]]]:
    """Film ``collection`` with one rig per subject (:func:`film`, ``placement="subject"``).

    Returns ``(cameras, positions_2d)`` where ``positions_2d[source][subject][action]`` is a list
    of ``(T, 17, 2)`` pixel arrays, one per camera, for the sources ``gt`` and ``det``.

    Raises:
        ConfigError: ``cfg.rig.placement`` is ``"clip"`` (use :func:`film`).
    """
    cfg = cfg or CaptureConfig()
    if cfg.rig.placement != "subject":
        raise ConfigError("capture() films one rig per subject; use film() for placement=clip")
    filmed = film(collection, cfg)
    return filmed.cameras, filmed.positions_2d

"""Loader of the VideoPose3D file layout: real Human3.6M and every virtual-capture dataset.

Files under ``root`` for a dataset ``name`` (``h36m`` for Human3.6M):

* ``data_3d_<name>.npz`` with ``positions_3d[subject][action] -> (T, 32 | 17, 3)`` world metres
  (32 joints are reduced to the 17 scored ones);
* ``data_2d_<name>_<source>.npz`` with ``positions_2d[subject][action] -> [cams x (T, J, 2)]``
  pixels and ``metadata``; ``source`` is e.g. ``cpn_ft_h36m_dbb``, ``gt``, ``det``;
* ``cameras_<name>.json`` (:func:`liftpose.data.camera.load_cameras`); for ``h36m`` the
  calibration shipped with the package is used when the file is absent. A virtual capture whose
  cameras were placed per clip keeps them in the file's ``clips`` entry
  (:func:`liftpose.data.camera.load_clip_cameras`); they take precedence over the subject's.

Each (subject, action, camera) becomes one :class:`Sequence` with camera-space, root-relative
3-D (the root joint is kept, at zero) and normalised 2-D. Some Human3.6M videos have a few more
2-D frames than mocap frames; like the reference pipeline, the extra 2-D frames are dropped. Fewer
2-D frames than 3-D frames is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftpose.data.camera import (
    Camera,
    load_cameras,
    load_clip_cameras,
    normalize_screen_coordinates,
    save_cameras,
)
from liftpose.data.skeleton import H36M17, reduce_32_to_17
from liftpose.errors import DataError
from liftpose.utils.io import MARKER_KEY, atomic_path, check_overwrite, marker

#: Sequences known to be corrupted in the Human3.6M release (video of one camera broken).
H36M_SKIP: frozenset[tuple[str, str]] = frozenset({("S11", "Directions")})


@dataclass
class Sequence:
    """One filmed sequence: a subject performing an action, seen by one camera.

    ``group`` (optional) overrides the action group, e.g. the scene of an MPI-INF-3DHP test
    sequence; ``valid`` (optional, ``(T,)`` bool) marks the frames to score (None: all).
    """

    subject: str
    action: str
    camera: str
    pose_2d: np.ndarray  # (T, J, 2) normalised screen coordinates
    pose_3d: np.ndarray  # (T, J, 3) camera frame, metres, root joint at zero
    group: str | None = None
    valid: np.ndarray | None = None  # (T,) bool
    #: (T, 3) camera-frame position of the root joint, metres (None: unknown)
    root: np.ndarray | None = None
    #: (4,) pinhole intrinsics f_x, f_y, c_x, c_y in the normalised screen coordinates of
    #: ``pose_2d`` (f / w * 2, c normalised like the keypoints); None: unknown
    intrinsics: np.ndarray | None = None

    @property
    def action_group(self) -> str:
        """``group`` if set, else the action name before the first space (``"Walking 1"`` ->
        ``"Walking"``)."""
        return self.group if self.group is not None else action_group(self.action)


def action_group(action: str) -> str:
    """The group of an action name: the part before the first space (``"Walking 1"`` ->
    ``"Walking"``); ``data.actions`` selects groups."""
    return action.split(" ")[0]


#: where a missing dataset file is looked for, per command that reads datasets
MISSING_FILE_HINT = (
    "point data.root (liftpose-train), data=<folder> (liftpose-eval) or --root (liftpose-data) "
    "at its folder"
)


def read_npz_dict(path: Path, key: str) -> tuple[dict, dict | None]:
    """``(f[key] as {subject: {action: ...}}, f["metadata"] or None)`` of a VideoPose3D npz."""
    if not path.exists():
        raise DataError(path, "file", f"not found ({MISSING_FILE_HINT})")
    try:
        with np.load(path, allow_pickle=True) as f:
            if key not in f.files:
                raise DataError(path, key, f"missing key; the file has {sorted(f.files)}")
            obj = f[key]
            meta = f["metadata"].item() if "metadata" in f.files else None
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, pickle errors
        raise DataError(path, key, f"unreadable or truncated file ({type(e).__name__}: {e})") from e
    try:
        data = obj.item()
    except ValueError:
        raise DataError(path, key, "expected a pickled dict {subject: {action: ...}}") from None
    if not isinstance(data, dict):
        raise DataError(path, key, f"expected a dict, got {type(data).__name__}")
    for subject, actions in data.items():
        if not isinstance(subject, str):
            raise DataError(path, f"{key}[{subject!r}]", "subject names must be strings")
        if not isinstance(actions, dict):
            what = type(actions).__name__
            raise DataError(path, f"{key}[{subject}]", f"expected {{action: ...}}, got a {what}")
        bad = [a for a in actions if not isinstance(a, str)]
        if bad:
            raise DataError(path, f"{key}[{subject}][{bad[0]!r}]", "action names must be strings")
    if meta is not None and not isinstance(meta, dict):
        raise DataError(path, "metadata", f"expected a dict, got {type(meta).__name__}")
    return data, meta


def _float_array(x: object, path: Path, field: str) -> np.ndarray:
    """``x`` as a float64 array, or a DataError for anything but real numbers."""
    try:
        a = np.asarray(x)
        if a.dtype.kind not in "iufO":
            raise TypeError(f"dtype {a.dtype}")
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(path, field, f"not an array of real numbers ({e})") from None


def _check_finite(arr: np.ndarray, path: Path, field: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        frames = np.unique(np.nonzero(bad)[0])
        raise DataError(
            path, field, f"{bad.sum()} NaN/inf values, first frames {frames[:5].tolist()}"
        )


def file_fingerprint(paths: list[Path]) -> str:
    """Cheap fingerprint of input files: names, sizes and modification times."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def dataset_files(root: str | Path, name: str, keypoints: str) -> dict[str, Path]:
    root = Path(root)
    return {
        "3d": root / f"data_3d_{name}.npz",
        "2d": root / f"data_2d_{name}_{keypoints}.npz",
        "cameras": root / f"cameras_{name}.json",
    }


def dataset_cameras(root: str | Path, name: str) -> dict[str, dict[str, Camera]]:
    """``cameras_<name>.json`` of ``root``; for ``h36m`` without one, the packaged calibration."""
    path = Path(root) / f"cameras_{name}.json"
    return load_cameras(None if name == "h36m" and not path.exists() else path)


def dataset_clip_cameras(root: str | Path, name: str) -> dict[str, dict[str, dict[str, Camera]]]:
    """The cameras placed per clip in ``cameras_<name>.json`` (``{}`` when none)."""
    path = Path(root) / f"cameras_{name}.json"
    return load_clip_cameras(path) if path.exists() else {}


def sequence_cameras(
    cams: dict[str, dict[str, Camera]],
    clip_cams: dict[str, dict[str, dict[str, Camera]]],
    subject: str,
    action: str,
) -> list[Camera]:
    """The cameras of one (subject, action), in the order of its 2-D views: the clip's own when
    the dataset placed cameras per clip, else the subject's (KeyError when neither exists)."""
    clip = clip_cams.get(subject, {}).get(action)
    return list((clip if clip is not None else cams[subject]).values())


def load_sequences(
    root: str | Path,
    name: str,
    keypoints: str,
    subjects: list[str],
    actions: list[str] | None = None,
    cameras: list[str] | None = None,
) -> list[Sequence]:
    """Read the sequences of ``subjects`` (all actions, or those whose group is in ``actions``)."""
    files = dataset_files(root, name, keypoints)
    p3, p2, pc = files["3d"], files["2d"], files["cameras"]
    pos3d, _ = read_npz_dict(p3, "positions_3d")
    pos2d, meta = read_npz_dict(p2, "positions_2d")
    joints = 17 if meta is None else meta.get("num_joints", 17)
    if not isinstance(joints, (int, np.integer)) or isinstance(joints, bool) or joints != 17:
        raise DataError(p2, "metadata.num_joints", f"expected 17, got {joints!r}")
    cams = dataset_cameras(root, name)
    clip_cams = dataset_clip_cameras(root, name)
    cameras = None if cameras is None else [str(c) for c in cameras]
    actions = None if actions is None else [str(a) for a in actions]
    out: list[Sequence] = []
    groups_seen: set[str] = set()
    for subject in subjects:
        if subject not in pos3d:
            raise DataError(
                p3, f"positions_3d[{subject}]", f"unknown subject; the file has {sorted(pos3d)}"
            )
        if subject not in pos2d:
            raise DataError(
                p2, f"positions_2d[{subject}]", f"unknown subject; the file has {sorted(pos2d)}"
            )
        if subject not in cams and subject not in clip_cams:
            raise DataError(pc, f"extrinsics.{subject}", "no cameras for this subject")
        if cameras is not None:
            per_clip = [_camera_ids(cams, clip_cams, subject, a) for a in pos3d[subject]]
            ids = {c for clip in per_clip for c in clip}
            known = ids | {str(i) for i in range(max(map(len, per_clip), default=0))}
            unknown = sorted(set(cameras) - known)
            if unknown:
                raise DataError(
                    pc,
                    f"extrinsics.{subject}",
                    f"unknown cameras {unknown}; {subject} has {sorted(ids)} (or indices)",
                )
        groups_seen |= {action_group(a) for a in pos3d[subject]}
        for action in sorted(pos3d[subject]):
            if (subject, action) in H36M_SKIP and name == "h36m":
                continue
            if actions is not None and action_group(action) not in actions:
                continue
            field3 = f"positions_3d[{subject}][{action}]"
            world = _float_array(pos3d[subject][action], p3, field3)
            if world.ndim != 3 or world.shape[-1] != 3 or world.shape[1] not in (17, 32):
                raise DataError(p3, field3, f"expected shape (T, 17 or 32, 3), got {world.shape}")
            if world.shape[0] == 0:
                raise DataError(p3, field3, "no frames")
            if world.shape[1] == 32:
                world = reduce_32_to_17(world)
            _check_finite(world, p3, field3)
            if action not in pos2d[subject]:
                raise DataError(
                    p2,
                    f"positions_2d[{subject}][{action}]",
                    "missing action (present in the 3-D file)",
                )
            views = pos2d[subject][action]
            if not isinstance(views, (list, tuple, np.ndarray)) or (
                isinstance(views, np.ndarray) and views.ndim == 0
            ):
                raise DataError(
                    p2,
                    f"positions_2d[{subject}][{action}]",
                    f"expected a list of camera views, got {type(views).__name__}",
                )
            try:
                cam_list = sequence_cameras(cams, clip_cams, subject, action)
            except KeyError:
                raise DataError(
                    pc, f"clips.{subject}.{action}", "no cameras for this clip"
                ) from None
            if len(views) != len(cam_list):
                raise DataError(
                    p2,
                    f"positions_2d[{subject}][{action}]",
                    f"{len(views)} camera views, but the cameras file has "
                    f"{len(cam_list)} cameras for {subject}",
                )
            for ci, (cam, kp) in enumerate(zip(cam_list, views)):
                if cameras is not None and cam.id not in cameras and str(ci) not in cameras:
                    continue
                field2 = f"positions_2d[{subject}][{action}][{ci}]"
                kp = _float_array(kp, p2, field2)
                if kp.ndim != 3 or kp.shape[1:] != (17, 2):
                    raise DataError(p2, field2, f"expected shape (T, 17, 2), got {kp.shape}")
                if kp.shape[0] < world.shape[0]:
                    raise DataError(
                        p2,
                        field2,
                        f"{kp.shape[0]} 2-D frames but {world.shape[0]} 3-D frames in {p3.name}",
                    )
                kp = kp[: world.shape[0]]
                _check_finite(kp, p2, field2)
                pose_cam = cam.world_to_camera(world)
                pose_2d = _normalise_2d(kp, cam)
                with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                    pose_3d = (pose_cam - pose_cam[:, :1]).astype(np.float32)
                    root = pose_cam[:, 0].astype(np.float32)
                # values beyond float32 (1e300 in a file, say) are errors, not infinities
                _check_finite(pose_2d, p2, f"{field2} (normalised)")
                _check_finite(pose_3d, p3, f"{field3} (camera {cam.id})")
                _check_finite(root, p3, f"{field3} (camera {cam.id}, root)")
                out.append(
                    Sequence(
                        subject,
                        action,
                        cam.id,
                        pose_2d,
                        pose_3d,
                        root=root,
                        intrinsics=normalised_intrinsics(cam),
                    )
                )
    if actions is not None and set(actions) - groups_seen:
        missing = sorted(set(actions) - groups_seen)
        raise DataError(
            p3, "positions_3d", f"unknown actions {missing}; the file has {sorted(groups_seen)}"
        )
    if not out:
        raise DataError(
            p3,
            "positions_3d",
            f"no sequences selected for subjects {subjects}, actions {actions}, cameras {cameras}",
        )
    return out


def _camera_ids(cams, clip_cams, subject: str, action: str) -> list[str]:
    try:
        return [c.id for c in sequence_cameras(cams, clip_cams, subject, action)]
    except KeyError:
        return []


def _normalise_2d(kp: np.ndarray, cam: Camera) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond float32: inf, reported by the caller's check
        return normalize_screen_coordinates(kp.astype(np.float64), cam.res_w, cam.res_h).astype(
            np.float32
        )


def normalised_intrinsics(cam: Camera) -> np.ndarray:
    """``(4,)`` float32 ``[f_x, f_y, c_x, c_y]`` of ``cam`` in normalised screen coordinates
    (the image width maps to [-1, 1], as the 2-D keypoints): ``f / w * 2`` and the centre
    normalised like a keypoint, as the Strided Transformer's code prepares them."""
    c = normalize_screen_coordinates(np.asarray(cam.center, np.float64), cam.res_w, cam.res_h)
    f = np.asarray(cam.focal_length, np.float64) / cam.res_w * 2.0
    return np.concatenate([f, c]).astype(np.float32)


def subset_sequence(seq: Sequence, fraction: float, downsample: int = 1) -> Sequence:
    """A contiguous part of ``seq``: ``round(T // downsample * fraction) * downsample`` frames
    starting at a position fixed by ``T`` alone, so that every camera view of a take keeps the
    same frames (the official Strided Transformer's ``--subset``, which the paper used to train
    on a third of Human3.6M). ``fraction >= 1`` keeps ``seq``.
    """
    if fraction >= 1.0:
        return seq
    n = len(seq.pose_2d)
    keep = max(1, int(round(n // downsample * fraction)) * downsample)
    keep = min(keep, n)
    digest = hashlib.sha256(str(n).encode()).digest()
    start = int.from_bytes(digest[:4], "little") % (n - keep + 1)
    part = slice(start, start + keep)

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[part]

    return dataclasses.replace(
        seq,
        pose_2d=seq.pose_2d[part],
        pose_3d=seq.pose_3d[part],
        valid=cut(seq.valid),
        root=cut(seq.root),
    )


def write_dataset(
    root: str | Path,
    name: str,
    positions_3d: dict[str, dict[str, np.ndarray]],
    positions_2d: dict[str, dict[str, dict[str, list[np.ndarray]]]],
    cameras: dict[str, list[Camera]],
    clip_cameras: dict[str, dict[str, list[Camera]]] | None = None,
    metadata: dict | None = None,
) -> dict[str, Path]:
    """Write a dataset in the layout :func:`load_sequences` reads (each file atomically).

    Each file carries a liftpose marker; an existing file of the same name without one (a
    user's data) is never replaced: :class:`DataError` before anything is written.
    ``clip_cameras[subject][action]`` are cameras placed per clip (the file's ``clips``);
    ``metadata`` is added to the 2-D files' ``metadata`` entry.
    """
    root = Path(root)
    for path in [
        root / f"data_3d_{name}.npz",
        *(root / f"data_2d_{name}_{source}.npz" for source in positions_2d),
        root / f"cameras_{name}.json",
    ]:
        check_overwrite(path, "it is not a dataset liftpose built; build into another folder")
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [list(H36M17.left), list(H36M17.right)],
        **(metadata or {}),
    }
    written = {}
    p3 = root / f"data_3d_{name}.npz"
    with atomic_path(p3, suffix=".tmp.npz") as tmp:
        np.savez_compressed(
            tmp,
            positions_3d=np.array(positions_3d, dtype=object),
            **{MARKER_KEY: np.array(marker("dataset-3d", name=name))},
        )
    written["3d"] = p3
    for source, data in positions_2d.items():
        p2 = root / f"data_2d_{name}_{source}.npz"
        with atomic_path(p2, suffix=".tmp.npz") as tmp:
            np.savez_compressed(
                tmp,
                positions_2d=np.array(data, dtype=object),
                metadata=np.array(meta, dtype=object),
                **{MARKER_KEY: np.array(marker("dataset-2d", name=name, source=source))},
            )
        written[source] = p2
    pc = root / f"cameras_{name}.json"
    clips = {
        s: {a: {c.id: c for c in cams} for a, cams in acts.items()}
        for s, acts in (clip_cameras or {}).items()
    }
    save_cameras({s: {c.id: c for c in cams} for s, cams in cameras.items()}, pc, clips)
    written["cameras"] = pc
    return written


def mix_keypoints(base: list[Sequence], other: list[Sequence], m: float) -> list[Sequence]:
    """2-D keypoints moved a fraction ``m`` of the way from ``base`` to ``other`` (TMT eq. 2).

    ``P2 = base + m * (other - base)``, written ``(1 - m) * base + m * other`` so that ``m = 0``
    gives ``base`` and ``m = 1`` gives ``other`` exactly. Both lists must hold the same
    sequences in the same order (they come from two 2-D sources of one dataset);
    ``pose_2d``: ``(T, J, 2)`` each.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"keypoint mixing factor m must be in [0, 1], got {m}")
    if len(base) != len(other):
        raise DataError(None, "keypoints_mix", f"{len(base)} vs {len(other)} sequences")
    out = []
    for a, b in zip(base, other):
        key_a, key_b = (a.subject, a.action, a.camera), (b.subject, b.action, b.camera)
        if key_a != key_b or a.pose_2d.shape != b.pose_2d.shape:
            raise DataError(
                None,
                "keypoints_mix",
                f"sequence {key_a} {a.pose_2d.shape} does not match "
                f"{key_b} {b.pose_2d.shape} of the other 2-D source",
            )
        mixed = ((1.0 - m) * a.pose_2d + m * b.pose_2d).astype(a.pose_2d.dtype)
        out.append(dataclasses.replace(a, pose_2d=mixed))
    return out

"""MPI-INF-3DHP (Mehta et al., 3DV 2017) in the widely used ``npz`` layout, as :class:`Sequence`.

Two files, each with one key ``data`` holding a pickled dict:

* ``data_train_3dhp.npz``: ``data["S<s> Seq<q>"] -> [cams, fps]`` (a 2-element list or object
  array) where ``cams`` is ``{camera_index: {"data_2d": (F, 17, 2) pixels, "data_3d": (F, 17, 3)
  camera-frame millimetres}}``. The training cameras are 2048 x 2048.
* ``data_test_3dhp.npz``: ``data["TS1" .. "TS6"] -> {"data_2d": (F, 17, 2) pixels, "data_3d":
  (F, 17, 3) camera-frame millimetres, "valid": (F,)}``. Images are 2048 x 2048 for TS1-TS4 and
  1920 x 1080 for TS5-TS6 (:data:`MPI3DHP_TEST_RESOLUTION`). Only the frames with ``valid``
  non-zero are scored; their values must be finite. Non-finite values in invalid frames are
  replaced by those of the nearest valid frame (so a window reaching into them stays finite).

Joint order of both files (the 17 "relevant" joints of the MPI-INF-3DHP annotation)::

    0 head_top  1 neck  2 r_shoulder  3 r_elbow  4 r_wrist  5 l_shoulder  6 l_elbow  7 l_wrist
    8 r_hip  9 r_knee  10 r_ankle  11 l_hip  12 l_knee  13 l_ankle  14 pelvis  15 spine  16 head

The root is the pelvis (joint 14). :data:`MPI3DHP_TO_H36M` reorders it to the Human3.6M 17-joint
order of :mod:`liftpose.data.skeleton` (``h36m = mpi[..., MPI3DHP_TO_H36M, :]``)::

    H36M joint     3DHP joint        H36M joint      3DHP joint
    0  Hip         14 pelvis         9  Neck/Nose    16 head
    1  RHip        8  r_hip          10 Head         0  head_top
    2  RKnee       9  r_knee         11 LShoulder    5  l_shoulder
    3  RFoot       10 r_ankle        12 LElbow       6  l_elbow
    4  LHip        11 l_hip          13 LWrist       7  l_wrist
    5  LKnee       12 l_knee         14 RShoulder    2  r_shoulder
    6  LFoot       13 l_ankle        15 RElbow       3  r_elbow
    7  Spine       15 spine          16 RWrist       4  r_wrist
    8  Thorax      1  neck

The official protocol scores PCK (150 mm) and AUC (0-150 mm) on 14 joints: head top, neck,
shoulders, elbows, wrists, hips, knees and ankles (pelvis, spine and head excluded);
:data:`MPI3DHP_PCK_JOINTS` lists them in the Human3.6M order.

Every sequence becomes a :class:`~liftpose.data.h36m.Sequence` with camera-space, root-relative
3-D in metres (the root kept, at zero) and 2-D normalised with
:func:`~liftpose.data.camera.normalize_screen_coordinates`. A test sequence carries its per-frame
``valid`` mask and its scene (:data:`MPI3DHP_TEST_SCENES`: ``GS`` green screen, ``noGS``,
``Outdoor``) as its action group, so the per-action metrics are per-scene metrics.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.data.h36m import Sequence
from liftpose.errors import DataError
from liftpose.utils.io import MARKER_KEY, atomic_path, check_overwrite, marker

__all__ = [
    "MPI3DHP_JOINT_NAMES",
    "MPI3DHP_PCK_JOINTS",
    "MPI3DHP_ROOT",
    "MPI3DHP_TEST_RESOLUTION",
    "MPI3DHP_TEST_SCENES",
    "MPI3DHP_TO_H36M",
    "MPI3DHP_TRAIN_RESOLUTION",
    "TEST_FILE",
    "TRAIN_FILE",
    "load_3dhp_test",
    "load_3dhp_train",
    "read_3dhp",
    "to_h36m_order",
    "write_3dhp_test",
    "write_3dhp_train",
]

TRAIN_FILE = "data_train_3dhp.npz"
TEST_FILE = "data_test_3dhp.npz"

MPI3DHP_JOINT_NAMES: tuple[str, ...] = (
    "head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head",
)  # fmt: skip

#: Root joint (pelvis) in the 3DHP order.
MPI3DHP_ROOT = 14

#: ``h36m[..., i, :] = mpi3dhp[..., MPI3DHP_TO_H36M[i], :]`` (see the module docstring).
MPI3DHP_TO_H36M: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)

#: The 14 joints of the official PCK/AUC protocol, as indices in the Human3.6M 17-joint order:
#: RHip RKnee RFoot LHip LKnee LFoot Thorax(neck) Head(head top) LShoulder LElbow LWrist
#: RShoulder RElbow RWrist.
MPI3DHP_PCK_JOINTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)

#: Scene of each test sequence.
MPI3DHP_TEST_SCENES: dict[str, str] = {
    "TS1": "GS", "TS2": "GS", "TS3": "noGS", "TS4": "noGS", "TS5": "Outdoor", "TS6": "Outdoor",
}  # fmt: skip

#: Image size ``(width, height)`` of each test sequence.
MPI3DHP_TEST_RESOLUTION: dict[str, tuple[int, int]] = {
    "TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048), "TS4": (2048, 2048),
    "TS5": (1920, 1080), "TS6": (1920, 1080),
}  # fmt: skip

#: Image size ``(width, height)`` of every training camera.
MPI3DHP_TRAIN_RESOLUTION: tuple[int, int] = (2048, 2048)

_TRAIN_KEY = re.compile(r"^(S\d+) (Seq\d+)$")


# ------------------------------------------------------------------------------------ reading
def read_3dhp(path: str | Path) -> dict:
    """The pickled dict under key ``data`` of a 3DHP ``npz`` file, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file", "not found")
    try:
        with np.load(path, allow_pickle=True) as f:
            if "data" not in f.files:
                raise DataError(path, "data", f"missing key; the file has {sorted(f.files)}")
            obj = f["data"]
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, pickle errors
        why = f"unreadable or truncated file ({type(e).__name__}: {e})"
        raise DataError(path, "data", why) from e
    try:
        data = obj.item()
    except ValueError:
        raise DataError(path, "data", "expected a pickled dict {sequence: ...}") from None
    if not isinstance(data, dict):
        raise DataError(path, "data", f"expected a dict, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise DataError(path, f"data[{bad[0]!r}]", "sequence names must be strings")
    return data


def to_h36m_order(x: np.ndarray) -> np.ndarray:
    """Reorder ``(..., 17, C)`` arrays from the 3DHP joint order to the Human3.6M 17-joint order."""
    return x[..., list(MPI3DHP_TO_H36M), :]


def _array(entry: Any, key: str, path: Path, field: str, shape: tuple) -> np.ndarray:
    """``entry[key]`` as a float64 array of ``shape`` (``None`` matches any size), e.g.
    ``(F, 17, 2)`` for ``data_2d``; ``field`` names the entry in errors."""
    if not isinstance(entry, dict):
        raise DataError(path, field, f"expected a dict of arrays, got {type(entry).__name__}")
    if key not in entry:
        raise DataError(
            path, f'{field}["{key}"]', f"missing key; the entry has {sorted(map(str, entry))}"
        )
    try:
        arr = np.asarray(entry[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(path, f'{field}["{key}"]', "not a numeric array") from None
    ok = arr.ndim == len(shape) and all(s is None or a == s for a, s in zip(arr.shape, shape))
    if not ok:
        want = "(" + ", ".join("F" if s is None else str(s) for s in shape) + ")"
        raise DataError(path, f'{field}["{key}"]', f"expected shape {want}, got {arr.shape}")
    return arr


def _check_frames(path: Path, field: str, *arrays: tuple[str, np.ndarray]) -> int:
    """The common frame count ``F`` of named arrays ``(F, ...)``, or a DataError listing them."""
    n = {name: len(a) for name, a in arrays}
    if len(set(n.values())) != 1:
        raise DataError(path, field, f"mismatched frame counts {n}")
    return next(iter(n.values()))


def _check_finite(arr: np.ndarray, valid: np.ndarray, path: Path, field: str) -> None:
    """Raise if a valid frame of ``arr (F, J, C)`` holds a NaN/inf; ``valid``: ``(F,)`` bool."""
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1) & valid
    if bad.any():
        frames = np.flatnonzero(bad)
        raise DataError(
            path, field, f"NaN/inf in {len(frames)} valid frames, first {frames[:5].tolist()}"
        )


def _fill_invalid(arr: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace the frames of ``arr (F, J, C)`` that are invalid and not finite by the nearest
    valid frame (zeros when no frame is valid)."""
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    if not bad.any():
        return arr
    out = arr.copy()
    good = np.flatnonzero(valid & ~bad)
    if good.size == 0:
        out[bad] = 0.0
        return out
    idx = np.flatnonzero(bad)
    pos = np.searchsorted(good, idx)
    left = good[np.clip(pos - 1, 0, good.size - 1)]
    right = good[np.clip(pos, 0, good.size - 1)]
    out[idx] = arr[np.where(np.abs(idx - left) <= np.abs(right - idx), left, right)]
    return out


def _root_relative_m(data_3d: np.ndarray) -> np.ndarray:
    """Camera-frame millimetres ``(F, 17, 3)`` in 3DHP order -> root-relative metres, H36M order."""
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are checked
        x = (data_3d - data_3d[:, MPI3DHP_ROOT : MPI3DHP_ROOT + 1]) / 1000.0
        return to_h36m_order(x).astype(np.float32)


def _normalised(data_2d: np.ndarray, res: tuple[int, int]) -> np.ndarray:
    """Pixels ``(F, 17, 2)`` in 3DHP order -> normalised screen coordinates, H36M order."""
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are checked
        x = normalize_screen_coordinates(data_2d, res[0], res[1])
        return to_h36m_order(x).astype(np.float32)


def load_3dhp_test(path: str | Path, sequences: list[str] | None = None) -> list[Sequence]:
    """The test sequences (``TS1``..``TS6``, or those in ``sequences``) of ``data_test_3dhp.npz``.

    Each :class:`Sequence` has ``subject = action = "TS<k>"``, ``camera = "0"``, ``group`` = its
    scene, ``pose_2d (F, 17, 2)`` normalised, ``pose_3d (F, 17, 3)`` root-relative metres (both
    in the Human3.6M order) and ``valid (F,)`` bool.
    """
    path = Path(path)
    data = read_3dhp(path)
    unknown = sorted(set(data) - set(MPI3DHP_TEST_SCENES))
    if unknown:
        known = sorted(MPI3DHP_TEST_SCENES)
        raise DataError(path, "data", f"unknown test sequences {unknown}; expected {known}")
    names = sorted(data) if sequences is None else [str(s) for s in sequences]
    out = []
    for name in names:
        if name not in data:
            raise DataError(path, f'data["{name}"]', f"missing; the file has {sorted(data)}")
        field = f'data["{name}"]'
        entry = data[name]
        p2 = _array(entry, "data_2d", path, field, (None, 17, 2))
        p3 = _array(entry, "data_3d", path, field, (None, 17, 3))
        v = _array(entry, "valid", path, field, (None,))
        n = _check_frames(path, field, ("data_2d", p2), ("data_3d", p3), ("valid", v))
        if n == 0:
            raise DataError(path, field, "no frames")
        if not np.isfinite(v).all():
            raise DataError(path, f'{field}["valid"]', "NaN/inf in the valid mask")
        valid = v != 0
        # checked as they come out (float32): 1e300 in a file is an error, not an infinity
        pose_2d = _normalised(p2, MPI3DHP_TEST_RESOLUTION[name])
        pose_3d = _root_relative_m(p3)
        _check_finite(pose_2d, valid, path, f'{field}["data_2d"]')
        _check_finite(pose_3d, valid, path, f'{field}["data_3d"]')
        out.append(
            Sequence(
                subject=name,
                action=name,
                camera="0",
                pose_2d=_fill_invalid(pose_2d, valid),
                pose_3d=_fill_invalid(pose_3d, valid),
                group=MPI3DHP_TEST_SCENES[name],
                valid=valid,
            )
        )
    if not out:
        raise DataError(path, "data", "no test sequences selected")
    return out


def load_3dhp_train(
    path: str | Path,
    subjects: list[str] | None = None,
    cameras: list[str] | None = None,
    actions: list[str] | None = None,
) -> list[Sequence]:
    """The training sequences of ``data_train_3dhp.npz`` (subjects ``S1``..``S8`` by default).

    One :class:`Sequence` per (subject, sequence, camera): ``subject = "S<s>"``, ``action =
    "Seq<q>"``, ``camera = str(camera_index)``, ``pose_2d (F, 17, 2)`` normalised (2048 x 2048)
    and ``pose_3d (F, 17, 3)`` root-relative metres, both in the Human3.6M order. ``cameras``
    and ``actions`` (``Seq1``, ``Seq2``) restrict the selection.
    """
    path = Path(path)
    data = read_3dhp(path)
    by_subject: dict[str, list[str]] = {}
    for key in data:
        m = _TRAIN_KEY.match(str(key))
        if m is None:
            raise DataError(path, f'data["{key}"]', "expected a key 'S<s> Seq<q>'")
        by_subject.setdefault(m.group(1), []).append(str(key))
    subjects = sorted(by_subject) if subjects is None else [str(s) for s in subjects]
    wanted_cams = None if cameras is None else {str(c) for c in cameras}
    wanted_actions = None if actions is None else {str(a) for a in actions}
    out = []
    for subject in subjects:
        if subject not in by_subject:
            known = sorted(by_subject)
            raise DataError(
                path, f'data["{subject} ..."]', f"unknown subject; the file has {known}"
            )
        for key in sorted(by_subject[subject]):
            action = key.split(" ", 1)[1]
            if wanted_actions is not None and action not in wanted_actions:
                continue
            field = f'data["{key}"]'
            entry = data[key]
            if isinstance(entry, np.ndarray) and entry.dtype == object:
                entry = list(entry)
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise DataError(path, field, "expected a 2-element list [cameras dict, fps]")
            cams = entry[0]
            if not isinstance(cams, dict) or not cams:
                raise DataError(path, f"{field}[0]", "expected a non-empty dict {camera: arrays}")
            for cam in sorted(cams, key=lambda c: (len(str(c)), str(c))):
                if wanted_cams is not None and str(cam) not in wanted_cams:
                    continue
                cfield = (
                    f"{field}[0][{cam}]"
                    if isinstance(cam, (int, np.integer))
                    else f'{field}[0]["{cam}"]'
                )
                p2 = _array(cams[cam], "data_2d", path, cfield, (None, 17, 2))
                p3 = _array(cams[cam], "data_3d", path, cfield, (None, 17, 3))
                n = _check_frames(path, cfield, ("data_2d", p2), ("data_3d", p3))
                if n == 0:
                    raise DataError(path, cfield, "no frames")
                all_valid = np.ones(n, dtype=bool)
                pose_2d = _normalised(p2, MPI3DHP_TRAIN_RESOLUTION)
                pose_3d = _root_relative_m(p3)
                _check_finite(pose_2d, all_valid, path, f'{cfield}["data_2d"]')
                _check_finite(pose_3d, all_valid, path, f'{cfield}["data_3d"]')
                out.append(
                    Sequence(
                        subject=subject,
                        action=action,
                        camera=str(cam),
                        pose_2d=pose_2d,
                        pose_3d=pose_3d,
                    )
                )
    if not out:
        raise DataError(
            path,
            "data",
            f"no sequences selected for subjects {subjects}, cameras {cameras}, actions {actions}",
        )
    return out


# ------------------------------------------------------------------------------------ writing
def _save(path: Path, data: dict, meta: dict | None) -> Path:
    """Write ``data`` (and ``meta``) with a liftpose marker; a file of the same name without
    one is never replaced."""
    check_overwrite(path)
    extra = {} if meta is None else {"meta": np.array(json.dumps(meta))}
    extra[MARKER_KEY] = np.array(marker("3dhp", file=path.name))
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez_compressed(tmp, data=np.array(data, dtype=object), **extra)
    return path


def _arrays(entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one entry as written: poses as float32, anything else as given (so that
    tests can write malformed files too)."""
    return {
        k: np.asarray(v, dtype=np.float32 if k in ("data_2d", "data_3d") else None)
        for k, v in entry.items()
    }


def write_3dhp_test(
    path: str | Path, sequences: dict[str, dict[str, np.ndarray]], meta: dict | None = None
) -> Path:
    """Write ``data_test_3dhp.npz`` atomically.

    Args:
        path: the file to write.
        sequences: ``{"TS<k>": {"data_2d": (F, 17, 2) pixels, "data_3d": (F, 17, 3) camera mm,
            "valid": (F,)}}``, joints in the 3DHP order.
        meta: optional JSON-able description stored under key ``meta`` (ignored by the loader).
    """
    data = {str(name): _arrays(s) for name, s in sequences.items()}
    return _save(Path(path), data, meta)


def write_3dhp_train(
    path: str | Path,
    sequences: dict[str, dict[Any, dict[str, np.ndarray]]],
    fps: float | dict[str, float] = 50.0,
    meta: dict | None = None,
) -> Path:
    """Write ``data_train_3dhp.npz`` atomically.

    Args:
        path: the file to write.
        sequences: ``{"S<s> Seq<q>": {camera_index: {"data_2d": (F, 17, 2) pixels,
            "data_3d": (F, 17, 3) camera mm}}}``, joints in the 3DHP order.
        fps: frame rate stored beside each sequence (one value, or one per sequence).
        meta: optional JSON-able description stored under key ``meta`` (ignored by the loader).
    """
    data = {}
    for name, cams in sequences.items():
        rate = fps[name] if isinstance(fps, dict) else fps
        data[str(name)] = [{cam: _arrays(a) for cam, a in cams.items()}, float(rate)]
    return _save(Path(path), data, meta)

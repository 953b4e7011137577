"""Cameras: Human3.6M intrinsics and extrinsics, projection with distortion, world <-> camera.

Conventions (those of the Human3.6M release and of the VideoPose3D file layout):

* A camera's ``orientation`` is a unit quaternion ``(w, x, y, z)`` that rotates camera axes into
  world axes, and ``translation`` is the camera centre in world coordinates. Hence
  ``X_cam = rot(conj(q), X_world - t)`` and ``X_world = rot(q, X_cam) + t``.
* Camera axes: x right, y down, z forward (optical axis).
* Distortion follows the Human3.6M model: ``r2 = |xy|^2``,
  ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``, ``tan = p . xy``,
  ``xy' = xy (radial + tan) + p r2``, pixel ``= f xy' + c``.
* Screen normalisation maps ``[0, w]`` to ``[-1, 1]`` and keeps the aspect ratio:
  ``x_n = x / w * 2 - [1, h / w]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ConfigDict, PositiveInt
from typing_extensions import NotRequired, TypedDict

from liftpose.data.jsonfile import FiniteFloat, PositiveFloat, read_json
from liftpose.errors import DataError

H36M_CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
CAMERAS_FORMAT = "liftpose-cameras/1"


# --------------------------------------------------------------------------- quaternions
def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions ``(..., 4)`` in ``(w, x, y, z)`` order."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def qinverse(q: np.ndarray) -> np.ndarray:
    """Inverse of unit quaternions ``(..., 4)`` (the conjugate)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q`` broadcastable to ``(..., 4)``."""
    q = np.broadcast_to(q, v.shape[:-1] + (4,))
    w, u = q[..., :1], q[..., 1:]
    uv = np.cross(u, v)
    return v + 2.0 * (w * uv + np.cross(u, uv))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of unit quaternions ``(..., 4)``."""
    eye = np.eye(3, dtype=np.float64)
    return np.stack([qrot(q, eye[i]) for i in range(3)], axis=-1)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(4,)`` with ``w >= 0`` of a rotation matrix ``(3, 3)``."""
    m = np.asarray(m, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def world_to_camera(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """World points ``(..., 3)`` to camera coordinates (same units as ``translation``)."""
    return qrot(qinverse(np.asarray(orientation)), x - translation)


def camera_to_world(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Camera points ``(..., 3)`` to world coordinates."""
    return qrot(np.asarray(orientation), x) + translation


# --------------------------------------------------------------------------- screen space
def normalize_screen_coordinates(x: np.ndarray, w: float, h: float) -> np.ndarray:
    """Pixels ``(..., 2)`` -> normalised coordinates with ``[0, w]`` mapped to ``[-1, 1]``."""
    if x.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) pixel coordinates, got shape {x.shape}")
    return x / w * 2.0 - np.array([1.0, h / w], dtype=x.dtype)


def image_coordinates(x: np.ndarray, w: float, h: float) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`: ``(..., 2)`` -> pixels."""
    if x.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) normalised coordinates, got shape {x.shape}")
    return (x + np.array([1.0, h / w], dtype=x.dtype)) * w / 2.0


# --------------------------------------------------------------------------- camera model
@dataclass
class Camera:
    """One calibrated camera. Distances in metres, focal length and centre in pixels."""

    id: str
    res_w: int
    res_h: int
    center: np.ndarray  # (2,)
    focal_length: np.ndarray  # (2,)
    radial_distortion: np.ndarray = field(default_factory=lambda: np.zeros(3))  # k1, k2, k3
    tangential_distortion: np.ndarray = field(default_factory=lambda: np.zeros(2))  # p1, p2
    orientation: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))  # (4,)
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) metres

    def project(self, x_cam: np.ndarray, distort: bool = True) -> np.ndarray:
        """Camera-frame points ``(..., 3)`` (z > 0) to pixels ``(..., 2)``."""
        return project_to_2d(
            x_cam,
            self.focal_length,
            self.center,
            self.radial_distortion if distort else np.zeros(3),
            self.tangential_distortion if distort else np.zeros(2),
        )

    def back_project(self, px: np.ndarray, depth: np.ndarray, distort: bool = True) -> np.ndarray:
        """Pixels ``(..., 2)`` at camera-frame depths ``(...)`` back to points ``(..., 3)``.

        Inverts :meth:`project` (the lens distortion by fixed-point iteration).
        """
        xy = (np.asarray(px, dtype=np.float64) - self.center) / self.focal_length
        if distort:
            xy = undistort_normalised(xy, self.radial_distortion, self.tangential_distortion)
        z = np.asarray(depth, dtype=np.float64)[..., None]
        return np.concatenate([xy * z, z], axis=-1)

    def world_to_camera(self, x: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to this camera's frame."""
        return world_to_camera(x, self.orientation, self.translation)

    def camera_to_world(self, x: np.ndarray) -> np.ndarray:
        """Points ``(..., 3)`` in this camera's frame to world coordinates."""
        return camera_to_world(x, self.orientation, self.translation)


def project_to_2d(
    x: np.ndarray,
    focal_length: np.ndarray,
    center: np.ndarray,
    radial: np.ndarray,
    tangential: np.ndarray,
) -> np.ndarray:
    """Project camera-frame points ``(..., 3)`` to pixels ``(..., 2)`` with distortion."""
    if x.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) camera-frame points, got shape {x.shape}")
    xy = x[..., :2] / np.clip(x[..., 2:], 1e-6, None)
    xy = distort_normalised(xy, radial, tangential)
    return np.asarray(focal_length) * xy + np.asarray(center)


def distort_normalised(xy: np.ndarray, radial: np.ndarray, tangential: np.ndarray) -> np.ndarray:
    """Apply the Human3.6M lens model to normalised image points ``(..., 2)``."""
    k, p = np.asarray(radial), np.asarray(tangential)
    r2 = np.sum(xy**2, axis=-1, keepdims=True)
    radial_f = 1.0 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = np.sum(p * xy, axis=-1, keepdims=True)
    return xy * (radial_f + tan) + p * r2


def undistort_normalised(
    xy_d: np.ndarray, radial: np.ndarray, tangential: np.ndarray, iters: int = 20
) -> np.ndarray:
    """Invert :func:`distort_normalised` on ``(..., 2)`` by fixed-point iteration.

    Converges to well below 1e-6 inside the field of view of the Human3.6M cameras.
    """
    k, p = np.asarray(radial), np.asarray(tangential)
    xy = xy_d.copy()
    for _ in range(iters):
        r2 = np.sum(xy**2, axis=-1, keepdims=True)
        radial_f = 1.0 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
        tan = np.sum(p * xy, axis=-1, keepdims=True)
        xy = (xy_d - p * r2) / (radial_f + tan)
    return xy


# --------------------------------------------------------------------------- files
class _Intrinsics(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    res_w: PositiveInt
    res_h: PositiveInt
    center: tuple[FiniteFloat, FiniteFloat]
    focal_length: tuple[PositiveFloat, PositiveFloat]
    radial_distortion: NotRequired[tuple[FiniteFloat, FiniteFloat, FiniteFloat]]
    tangential_distortion: NotRequired[tuple[FiniteFloat, FiniteFloat]]


class _Extrinsics(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    orientation: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]
    translation: tuple[FiniteFloat, FiniteFloat, FiniteFloat]


class _Units(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    translation: NotRequired[Literal["mm", "m"]]


class _ClipCamera(_Intrinsics, _Extrinsics):
    """One camera placed for one clip: its intrinsics and extrinsics in one entry."""


class CamerasFile(TypedDict):
    """Schema of a cameras file (:func:`load_cameras`, :func:`load_clip_cameras`); other
    fields are allowed."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    intrinsics: dict[str, _Intrinsics]
    extrinsics: dict[str, dict[str, _Extrinsics]]
    units: NotRequired[_Units]
    clips: NotRequired[dict[str, dict[str, dict[str, _ClipCamera]]]]


def _read_camera_doc(path: str | Path | None) -> tuple[dict, Path, float]:
    """``(checked json document, path, metres per translation unit)`` of a cameras file."""
    if path is None:
        p = Path(str(resources.files("liftpose.data") / "assets" / "h36m_cameras.json"))
    else:
        p = Path(path)
        if not p.exists():
            raise DataError(p, "file", "cameras file not found")
    doc = read_json(p, CamerasFile)
    scale = {"mm": 1e-3, "m": 1.0}[doc.get("units", {}).get("translation", "mm")]
    return doc, p, scale


def _camera(cam_id: str, i: dict, ext: dict, p: Path, where: str, scale: float) -> Camera:
    """A :class:`Camera` from a checked intrinsics entry ``i`` and extrinsics entry ``ext``
    (``where``: the extrinsics' key path, named when the orientation is not a unit
    quaternion)."""
    q = np.asarray(ext["orientation"], dtype=np.float64)
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise DataError(
            p, f"{where}.orientation", f"not a unit quaternion (norm {np.linalg.norm(q):.6g})"
        )
    return Camera(
        id=cam_id,
        res_w=i["res_w"],
        res_h=i["res_h"],
        center=np.asarray(i["center"], dtype=np.float64),
        focal_length=np.asarray(i["focal_length"], dtype=np.float64),
        radial_distortion=np.asarray(i.get("radial_distortion", (0, 0, 0)), np.float64),
        tangential_distortion=np.asarray(i.get("tangential_distortion", (0, 0)), np.float64),
        orientation=q / np.linalg.norm(q),
        translation=np.asarray(ext["translation"], dtype=np.float64) * scale,
    )


def load_cameras(path: str | Path | None = None) -> dict[str, dict[str, Camera]]:
    """Read a cameras file: ``{subject: {camera_id: Camera}}`` with translations in metres.

    ``path=None`` reads the Human3.6M calibration shipped with the package. The file holds
    ``intrinsics[camera_id]`` (``res_w``, ``res_h`` > 0 pixels, ``center``, ``focal_length`` >
    0, optional ``radial_distortion`` (3) and ``tangential_distortion`` (2)) and
    ``extrinsics[subject][camera_id]`` (``orientation``: a unit quaternion ``(w, x, y, z)``,
    ``translation``); ``units.translation`` is ``"mm"`` (default) or ``"m"``. Cameras placed
    per clip (the optional ``clips`` entry) are read by :func:`load_clip_cameras`.

    Raises:
        DataError: naming the file and the field (missing, wrong type, not finite, not a unit
            quaternion, a camera without intrinsics).
    """
    doc, p, scale = _read_camera_doc(path)
    intr, extr = doc["intrinsics"], doc["extrinsics"]
    out: dict[str, dict[str, Camera]] = {}
    for subject, cams in extr.items():
        out[subject] = {}
        for cam_id, ext in cams.items():
            if cam_id not in intr:
                raise DataError(
                    p, f"intrinsics.{cam_id}", f"camera of subject {subject} has no intrinsics"
                )
            out[subject][cam_id] = _camera(
                cam_id, intr[cam_id], ext, p, f"extrinsics.{subject}.{cam_id}", scale
            )
    return out


def load_clip_cameras(path: str | Path) -> dict[str, dict[str, dict[str, Camera]]]:
    """The cameras placed per clip in a cameras file: ``{subject: {action: {camera_id:
    Camera}}}`` from its optional ``clips`` entry (each camera with its own intrinsics and
    extrinsics, the fields of :func:`load_cameras`); ``{}`` when the file has none.

    Raises:
        DataError: naming the file and the field, as :func:`load_cameras`.
    """
    doc, p, scale = _read_camera_doc(path)
    out: dict[str, dict[str, dict[str, Camera]]] = {}
    for subject, actions in (doc.get("clips") or {}).items():
        out[subject] = {}
        for action, cams in actions.items():
            out[subject][action] = {
                cam_id: _camera(cam_id, c, c, p, f"clips.{subject}.{action}.{cam_id}", scale)
                for cam_id, c in cams.items()
            }
    return out


def _intrinsics_dict(c: Camera) -> dict:
    return {
        "center": list(map(float, c.center)),
        "focal_length": list(map(float, c.focal_length)),
        "radial_distortion": list(map(float, c.radial_distortion)),
        "tangential_distortion": list(map(float, c.tangential_distortion)),
        "res_w": int(c.res_w),
        "res_h": int(c.res_h),
    }


def _extrinsics_dict(c: Camera) -> dict:
    return {
        "orientation": list(map(float, c.orientation)),
        "translation": list(map(float, np.asarray(c.translation) * 1000.0)),
    }


def save_cameras(
    cameras: dict[str, dict[str, Camera]],
    path: str | Path,
    clips: dict[str, dict[str, dict[str, Camera]]] | None = None,
) -> None:
    """Write cameras in the format :func:`load_cameras` reads (translation in mm); ``clips``
    (``{subject: {action: {camera_id: Camera}}}``) adds cameras placed per clip, read back by
    :func:`load_clip_cameras`."""
    intr: dict[str, dict] = {}
    extr: dict[str, dict] = {}
    for subject, cams in cameras.items():
        extr[subject] = {}
        for cam_id, c in cams.items():
            intr[cam_id] = _intrinsics_dict(c)
            extr[subject][cam_id] = _extrinsics_dict(c)
    doc = {
        "format": CAMERAS_FORMAT,
        "units": {"translation": "mm"},
        "intrinsics": intr,
        "extrinsics": extr,
    }
    if clips:
        doc["clips"] = {
            subject: {
                action: {cid: _intrinsics_dict(c) | _extrinsics_dict(c) for cid, c in cams.items()}
                for action, cams in actions.items()
            }
            for subject, actions in clips.items()
        }
    from liftpose.utils.io import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=1))


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Orientation quaternion ``(4,)`` of a camera at ``position`` looking at ``target`` (Z up)."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    z = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return matrix_to_quat(np.stack([x, y, z], axis=1))  # columns: camera axes in world frame

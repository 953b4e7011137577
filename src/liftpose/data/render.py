"""A small software renderer of people, and a COCO keypoint dataset rendered from motion capture.

It lets a 2-D keypoint detector (HRNet) be trained and evaluated on a fresh clone, from the
packaged HDM05 motion sample alone (:func:`liftpose.data.embedded.load_sample`).

Body model
    Every body part is a capsule (a segment with a radius, i.e. a cylinder with round caps) or a
    sphere, placed on the 17 Human3.6M joints in the camera frame (metres): a torso of five wide
    capsules (Hip->Spine->Thorax, the pelvis bar, two flank capsules from the hips to the
    shoulders and a shoulder bar), a neck, a head sphere, upper arms, forearms, hands, thighs,
    shins and feet, plus small spheres for the nose, eyes and ears. Each pixel's ray is
    intersected with the parts analytically (numpy, one part's bounding box at a time); parts
    are composited far-to-near (painter's algorithm) with a depth buffer, Lambert shading from
    the surface normal and a per-image light, and an anti-aliased silhouette (the coverage comes
    from the distance of the ray to the part's axis, in pixels). Rays go through the camera's
    Human3.6M lens distortion, so the rendered body lies exactly under :meth:`Camera.project`.

Style
    :func:`random_style` draws skin, hair (colour and how far it covers the head), shirt (short or
    long sleeves), trousers (or shorts), shoes, girth, light direction and a background from a
    seeded generator. Backgrounds: ``room`` (a textured floor plane at world Z = 0 seen in true
    perspective through the camera's extrinsics, cylindrical walls with panels and a skirting
    board), or ``flat`` (a vertical gradient with a wall/floor split, random rectangles and smooth
    noise). Backgrounds are functions of the pixel's ray or image position, so a crop renders the
    same scene as the full image.

COCO keypoints from the Human3.6M joints (:func:`coco_keypoints_3d`)
    Shoulders, elbows, wrists, hips, knees and ankles are the Human3.6M joints (H36M ``RFoot`` /
    ``LFoot`` are the ankles; the H36M hip joints, the femoral heads, stand in for the COCO hips).
    The face points are synthesised, because the motion capture has no face: a head frame has
    ``up`` = Neck/Nose (9) -> Head (10) (Head is the top of the head), ``left`` = RShoulder ->
    LShoulder made orthogonal to ``up`` and ``forward`` = ``left x up`` (the way the chest faces).
    The head is a sphere of radius ``R = 0.65 |Head - Neck/Nose|`` (clipped to 7-12 cm) whose top
    is the Head joint; the nose is on the sphere in the direction ``forward - 0.25 up``, the eyes
    in the directions ``0.8 forward + 0.12 up +- 0.42 left``, the ears at ``+-left - 0.15 forward
    - 0.05 up``, each a few millimetres outside the sphere. The renderer draws small spheres at
    exactly these points, so the synthesised keypoints are where the picture shows a nose, eyes
    and ears; the approximation is that a real face is not a sphere and a real head turns
    relative to the chest, which this head never does.

Visibility (:func:`visibility`)
    COCO ``v``: 2 when the point is in the image and the first surface on its ray belongs to a
    part that contains the point; 1 when another part is nearer (an arm behind the torso, the
    far ear, the face seen from behind); 0 when it projects outside the image (or the crop).

Crops (:func:`crop_affine`, :func:`box_from_keypoints`, :func:`render_frames`)
    A person box is the extent of the projected 17 joints, widened to the crop's aspect ratio
    (3:4 for 256x192) about its centre and then scaled by 1.25 (the HRNet rule). The affine
    ``A (2, 3)`` maps image pixels to crop pixels: ``[u, v] = A @ [x, y, 1]``.

Colours: images are RGB ``uint8``; the JPEG files are written with OpenCV (which stores BGR,
converted here), so they read back as RGB with any image library.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from liftpose.data.camera import Camera, quat_to_matrix, undistort_normalised
from liftpose.data.capture import RigConfig, place_cameras
from liftpose.errors import ConfigError, DataError
from liftpose.system.joints import COCO_FROM_H36M, COCO_KEYPOINT_NAMES, COCO_SKELETON
from liftpose.utils.io import current_umask

# --------------------------------------------------------------------------- COCO layout
# (the names, the skeleton and the limb correspondence live with the other keypoint layouts)
#: Index of the H36M joint per COCO keypoint, -1 for the synthesised face points.
COCO_H36M_INDEX: tuple[int, ...] = (-1, -1, -1, -1, -1, *COCO_FROM_H36M)


CATEGORY = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
    "skeleton": [list(e) for e in COCO_SKELETON],
}


# --------------------------------------------------------------------------- head frame
def head_frame(joints: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Head sphere of a 17-joint H36M pose ``(17, 3)`` (metres, any right-handed frame).

    Returns ``(centre (3,), radius, axes (3, 3))`` with ``axes`` rows ``forward, left, up``.
    """
    j = np.asarray(joints, dtype=np.float64)
    up = j[10] - j[9]
    n = np.linalg.norm(up)
    up = up / n if n > 1e-6 else _unit(j[10] - j[8])
    left = j[11] - j[14]
    if np.linalg.norm(left - (left @ up) * up) < 1e-6:
        left = j[4] - j[1]
    left = _unit(left - (left @ up) * up)
    fwd = _unit(np.cross(left, up))
    left = np.cross(up, fwd)
    radius = float(np.clip(0.65 * n, 0.07, 0.12))
    return j[10] - radius * up, radius, np.stack([fwd, left, up])


_FACE_DIRS = np.array(
    [  # (forward, left, up) weights of nose, left eye, right eye, left ear, right ear
        [1.0, 0.0, -0.25],
        [0.8, 0.42, 0.12],
        [0.8, -0.42, 0.12],
        [-0.15, 1.0, -0.05],
        [-0.15, -1.0, -0.05],
    ]
)
_FACE_RADII = np.array([0.02, 0.012, 0.012, 0.022, 0.022])  # metres, the drawn face spheres
_FACE_OUT = np.array([0.004, 0.003, 0.003, 0.006, 0.006])  # centre outside the head sphere


def coco_keypoints_3d(joints: np.ndarray) -> np.ndarray:
    """The 17 COCO keypoints ``(17, 3)`` of a 17-joint H36M pose ``(17, 3)`` (see module doc)."""
    j = np.asarray(joints, dtype=np.float64)
    centre, radius, axes = head_frame(j)
    dirs = _FACE_DIRS @ axes
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    face = centre + dirs * (radius + _FACE_OUT)[:, None]
    return np.concatenate([face, j[list(COCO_FROM_H36M)]])


# --------------------------------------------------------------------------- style
_SKIN = (
    np.array(
        [
            [255, 224, 196],
            [241, 194, 150],
            [224, 172, 125],
            [198, 134, 90],
            [141, 85, 50],
            [92, 58, 40],
        ]
    )
    / 255.0
)
_HAIR = np.array([[20, 15, 12], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150]])


@dataclass
class Style:
    """How one person and the scene look (colours are RGB in ``[0, 1]``)."""

    skin: np.ndarray
    hair: np.ndarray
    hair_top: float  # hair where the head normal's up component exceeds this
    hair_back: float  # ... or its forward component is below this
    shirt: np.ndarray
    trousers: np.ndarray
    shoes: np.ndarray
    long_sleeves: bool
    long_trousers: bool
    girth: float
    light: np.ndarray  # (3,) camera frame, towards the light
    ambient: float
    background: dict = field(default_factory=dict)


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]):
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def random_style(rng: np.random.Generator, background: str | None = None) -> Style:
    """A random :class:`Style`; ``background`` forces ``"room"`` or ``"flat"``."""
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.92, 1.05), 0, 1)
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] / 255.0 * rng.uniform(0.8, 1.2), 0, 1)
    light = _unit(
        np.array([rng.uniform(-0.7, 0.7), rng.uniform(-1.0, -0.2), rng.uniform(-1, -0.3)])
    )
    kind = background or ("room" if rng.random() < 0.6 else "flat")
    if kind == "room":
        f0, f1 = _colour(rng, (0.0, 0.5), (0.25, 0.8)), _colour(rng, (0.0, 0.5), (0.25, 0.8))
        bg = {
            "kind": "room",
            "tile": float(rng.uniform(0.4, 1.2)),
            "floor": [f0.tolist(), np.clip(f0 * rng.uniform(0.65, 0.9) + 0.05 * f1, 0, 1).tolist()],
            "wall": _colour(rng, (0.0, 0.45), (0.35, 0.95)).tolist(),
            "panel": float(rng.uniform(0.6, 2.5)),
            "radius": float(rng.uniform(7.0, 11.0)),
            "ceiling": float(rng.uniform(4.0, 8.0)),
            "top": _colour(rng, (0.0, 0.3), (0.5, 0.95)).tolist(),
        }
    elif kind == "flat":
        rects = []
        for _ in range(int(rng.integers(0, 7))):
            x0, y0 = rng.uniform(-0.1, 0.9, 2)
            w, h = rng.uniform(0.05, 0.5, 2)
            rects.append(
                [x0, y0, x0 + w, y0 + h, *_colour(rng, (0, 0.8), (0.1, 0.95)), rng.uniform(0.3, 1)]
            )
        bg = {
            "kind": "flat",
            "top": _colour(rng, (0, 0.6), (0.3, 1.0)).tolist(),
            "bottom": _colour(rng, (0, 0.6), (0.2, 0.9)).tolist(),
            "split": float(rng.uniform(0.45, 1.1)),
            "floor": _colour(rng, (0, 0.6), (0.15, 0.8)).tolist(),
            "rects": rects,
            "noise": (rng.standard_normal((int(rng.integers(3, 12)),) * 2 + (3,)) * 0.08).tolist(),
        }
    else:
        raise ConfigError(f"render background must be 'room' or 'flat', got {kind!r}")
    return Style(
        skin=skin,
        hair=hair,
        hair_top=float(rng.uniform(0.0, 0.55)),
        hair_back=float(rng.uniform(-0.6, 0.1)),
        shirt=_colour(rng, (0.0, 0.9), (0.15, 0.95)),
        trousers=_colour(rng, (0.0, 0.7), (0.1, 0.8)),
        shoes=_colour(rng, (0.0, 0.5), (0.05, 0.6)),
        long_sleeves=bool(rng.random() < 0.6),
        long_trousers=bool(rng.random() < 0.75),
        girth=float(rng.uniform(0.85, 1.2)),
        light=light,
        ambient=float(rng.uniform(0.3, 0.55)),
        background=bg,
    )


# --------------------------------------------------------------------------- primitives
def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


@dataclass
class _Parts:
    pa: np.ndarray  # (K, 3) segment starts, camera frame metres
    pb: np.ndarray  # (K, 3) segment ends (== pa for spheres)
    radius: np.ndarray  # (K,)
    colour: np.ndarray  # (K, 3) RGB
    head: int  # index of the head sphere (hair texture)
    head_axes: np.ndarray  # (3, 3) forward, left, up


def body_parts(joints: np.ndarray, style: Style) -> _Parts:
    """The capsules and spheres of a 17-joint H36M pose ``(17, 3)`` in the camera frame."""
    j = np.asarray(joints, dtype=np.float64)
    g = style.girth
    centre, hr, axes = head_frame(j)
    left = _unit(j[4] - j[1])
    fwd_body = _unit(np.cross(left, j[8] - j[0]))
    segs: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = []
    shirt, pants, skin = style.shirt, style.trousers, style.skin
    arm_lo = shirt if style.long_sleeves else skin
    leg_lo = pants if style.long_trousers else skin
    add = lambda a, b, r, c: segs.append((np.asarray(a), np.asarray(b), r, c))
    add(j[0], j[7], 0.115 * g, shirt)
    add(j[7], j[8], 0.125 * g, shirt)
    add(j[1], j[4], 0.095 * g, pants)
    add(j[1], j[14], 0.075 * g, shirt)
    add(j[4], j[11], 0.075 * g, shirt)
    add(j[14], j[11], 0.065 * g, shirt)
    add(j[8], centre, 0.048, skin)
    head = len(segs)
    add(centre, centre, hr, skin)
    for sh, el, wr in ((11, 12, 13), (14, 15, 16)):
        add(j[sh], j[el], 0.05 * g, shirt)
        add(j[el], j[wr], 0.04 * g, arm_lo)
        add(j[wr], j[wr] + 0.085 * _unit(j[wr] - j[el]), 0.034, skin)
    for hip, kn, an in ((1, 2, 3), (4, 5, 6)):
        add(j[hip], j[kn], 0.078 * g, pants)
        add(j[kn], j[an], 0.056 * g, leg_lo)
        shin = _unit(j[an] - j[kn])
        foot = fwd_body - (fwd_body @ shin) * shin
        foot = _unit(foot) if np.linalg.norm(foot) > 1e-6 else fwd_body
        base = j[an] + 0.05 * shin
        add(base - 0.035 * foot, base + 0.13 * foot, 0.042, style.shoes)
    face = coco_keypoints_3d(j)[:5]
    for i, p in enumerate(face):
        add(p, p, float(_FACE_RADII[i]), style.skin if i in (0, 3, 4) else np.array([0.08] * 3))
    pa, pb, r, c = (np.array(x, dtype=np.float64) for x in zip(*segs))
    return _Parts(pa, pb, r, c, head, axes)


def _ray_hits(d: np.ndarray, pa: np.ndarray, pb: np.ndarray, r: np.ndarray):
    """Rays from the origin along unit ``d (..., 3)`` against capsules ``pa, pb (..., 3)``, ``r``.

    Returns ``(t, dist, s, cd)`` (each ``(...)``): the depth along the ray of the first hit (the
    closest approach when it misses), the ray-to-axis distance, the axis parameter in [0, 1] of
    the closest approach and the ray depth there. The hit uses the sphere of radius ``r`` at the
    closest axis point, which is exact for spheres and for capsules seen side-on.
    """
    ba = pb - pa
    a = np.sum(pa * d, axis=-1)
    b = np.sum(ba * d, axis=-1)
    pa2 = np.sum(pa * pa, axis=-1)
    papb = np.sum(pa * ba, axis=-1)
    ba2 = np.sum(ba * ba, axis=-1)
    den = ba2 - b * b
    s = np.clip(-(papb - a * b) / np.where(den > 1e-12, den, 1.0), 0.0, 1.0)
    s = np.where(den > 1e-12, s, 0.0)
    dist2 = np.maximum(pa2 - a * a + 2 * s * (papb - a * b) + s * s * den, 0.0)
    cd = a + s * b
    t = cd - np.sqrt(np.maximum(r * r - dist2, 0.0))
    return t, np.sqrt(dist2), s, cd


def visibility(points: np.ndarray, parts: _Parts) -> np.ndarray:
    """Occlusion test of camera-frame points ``(N, 3)`` against ``parts``: ``(N,)`` bool visible.

    A point is visible when the first surface on its ray belongs to a part containing it (or,
    when no part contains it, when no surface lies in front of it).
    """
    p = np.asarray(points, dtype=np.float64)
    depth = np.linalg.norm(p, axis=-1)
    d = (p / depth[:, None])[:, None, :]
    t, dist, _, _ = _ray_hits(d, parts.pa[None], parts.pb[None], parts.radius[None])
    hit = dist < parts.radius[None]
    # does part k contain point n?
    ba = parts.pb - parts.pa
    ba2 = np.maximum(np.sum(ba * ba, axis=-1), 1e-12)
    s = np.clip(np.einsum("nkc,kc->nk", p[:, None] - parts.pa[None], ba) / ba2, 0, 1)
    axis = parts.pa[None] + s[..., None] * ba[None]
    inside = np.linalg.norm(p[:, None] - axis, axis=-1) <= parts.radius[None] + 1e-6
    own = np.where(inside & hit, t, np.inf).min(axis=1)
    own = np.where(np.isfinite(own), own, depth - 1e-4)
    other = np.where(~inside & hit, t, np.inf).min(axis=1)
    return other >= own


# --------------------------------------------------------------------------- rays, background
def _rays(camera: Camera, affine: np.ndarray, size: tuple[int, int], step: int = 4):
    """Unit camera-frame rays ``(H, W, 3)`` of the output pixels and their image positions.

    Output pixel ``(u, v)`` sits at image pixel ``A^-1 [u, v]``; the lens distortion is inverted
    on a grid every ``step`` pixels and interpolated bilinearly (exact to far below a pixel).
    """
    h, w = size
    inv = cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64))
    gu = np.arange(0, w + step, step, dtype=np.float64)
    gv = np.arange(0, h + step, step, dtype=np.float64)
    uu, vv = np.meshgrid(gu, gv)
    img = np.stack([uu, vv], -1) @ inv[:, :2].T + inv[:, 2]
    xy = (img - camera.center) / camera.focal_length
    und = undistort_normalised(xy, camera.radial_distortion, camera.tangential_distortion, 8)
    coarse = np.concatenate([und, img], -1).astype(np.float32)  # (gh, gw, 4)
    mu, mv = np.meshgrid(
        np.arange(w, dtype=np.float32) / step, np.arange(h, dtype=np.float32) / step
    )
    fine = cv2.remap(coarse, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    d = np.concatenate([fine[..., :2], np.ones((h, w, 1), np.float32)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return d, fine[..., 2:]


def _has_extrinsics(camera: Camera) -> bool:
    q = np.asarray(camera.orientation, dtype=np.float64)
    up = quat_to_matrix(q).T @ np.array([0.0, 0.0, 1.0])  # world up in the camera frame
    return abs(up[2]) < 0.9 and float(camera.translation[2]) > 0.2


def _smooth_noise(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(H, W, C)`` of a small grid ``(g, g, C)`` at normalised ``x, y``."""
    g = grid.shape[0] - 1
    return cv2.remap(
        grid.astype(np.float32),
        (np.clip(x, 0, 1) * g).astype(np.float32),
        (np.clip(y, 0, 1) * g).astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _background(style: Style, camera: Camera, rays: np.ndarray, img_xy: np.ndarray) -> np.ndarray:
    """Background ``(H, W, 3)`` float RGB of the output pixels (rays ``(H, W, 3)``)."""
    bg = style.background
    x = img_xy[..., 0] / camera.res_w
    y = img_xy[..., 1] / camera.res_h
    if bg.get("kind") == "room" and _has_extrinsics(camera):
        rot = quat_to_matrix(np.asarray(camera.orientation, dtype=np.float64)).astype(np.float32)
        dw = rays @ rot.T  # world directions
        o = np.asarray(camera.translation, dtype=np.float32)
        dz = dw[..., 2]
        t_floor = np.where(dz < -1e-4, -o[2] / np.minimum(dz, -1e-4), np.inf)
        a = dw[..., 0] ** 2 + dw[..., 1] ** 2 + 1e-9
        b = 2 * (o[0] * dw[..., 0] + o[1] * dw[..., 1])
        rad = max(bg["radius"], float(np.hypot(o[0], o[1])) + 1.5)
        c = o[0] ** 2 + o[1] ** 2 - rad**2
        t_wall = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
        floor = t_floor < t_wall
        t = np.where(floor, t_floor, t_wall)
        px, py, pz = (o[i] + t * dw[..., i] for i in range(3))
        tile = bg["tile"]
        check = (np.floor(px / tile) + np.floor(py / tile)) % 2
        fu, fv = (np.abs((q / tile) - np.round(q / tile)) for q in (px, py))
        grout = np.minimum(fu, fv) < 0.02
        f0, f1 = (np.asarray(v, np.float32) for v in bg["floor"])
        floor_col = np.where(check[..., None] > 0, f0, f1) * np.where(grout, 0.7, 1.0)[..., None]
        floor_col = floor_col * (1.0 - 0.25 * np.clip(t / 15.0, 0, 1))[..., None]
        ang = np.arctan2(py, px) * rad / bg["panel"]
        seam = np.abs(ang - np.round(ang)) < 0.02
        wall = np.asarray(bg["wall"], np.float32)
        shade = (0.75 + 0.25 * np.clip(pz / bg["ceiling"], 0, 1)) * np.where(seam, 0.8, 1.0)
        wall_col = wall * shade[..., None]
        wall_col = np.where((pz < 0.12)[..., None], wall * 0.45, wall_col)
        top = np.asarray(bg["top"], np.float32)
        wall_col = np.where((pz > bg["ceiling"])[..., None], top, wall_col)
        out = np.where(floor[..., None], floor_col, wall_col)
    else:
        if bg.get("kind") == "room":  # no usable extrinsics: a plain gradient room stand-in
            bg = {"top": bg["wall"], "bottom": bg["wall"], "split": 0.7, "floor": bg["floor"][0]}
        top, bottom = np.asarray(bg["top"], np.float32), np.asarray(bg["bottom"], np.float32)
        yy = np.clip(y, 0, 1)[..., None]
        out = top * (1 - yy) + bottom * yy
        out = np.where((y > bg["split"])[..., None], np.asarray(bg["floor"], np.float32), out)
        for x0, y0, x1, y1, r, g, b, al in bg.get("rects", []):
            m = ((x >= x0) & (x < x1) & (y >= y0) & (y < y1))[..., None]
            out = np.where(m, (1 - al) * out + al * np.array([r, g, b], np.float32), out)
        if "noise" in bg:
            out = out + _smooth_noise(np.asarray(bg["noise"]), x, y)
    return np.clip(out, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- rendering
@dataclass
class Rendered:
    """One rendered person.

    ``image (H, W, 3)`` uint8 RGB; ``keypoints (17, 2)`` the H36M joints in output pixels;
    ``visible (17,)`` their COCO ``v`` (0, 1, 2); ``coco (17, 3)`` the COCO keypoints
    ``[x, y, v]`` in output pixels; ``mask (H, W)`` bool, the person's silhouette.
    """

    image: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    coco: np.ndarray
    mask: np.ndarray


def _project(camera: Camera, pts: np.ndarray, affine: np.ndarray) -> np.ndarray:
    px = camera.project(np.asarray(pts, dtype=np.float64))
    return px @ affine[:, :2].T + affine[:, 2]


def render_person(
    joints_cam: np.ndarray,
    camera: Camera,
    size: tuple[int, int] | None = None,
    affine: np.ndarray | None = None,
    style: Style | None = None,
    rng: np.random.Generator | None = None,
) -> Rendered:
    """Render the person of ``joints_cam (17, 3)`` (H36M joints, camera frame, metres).

    ``size = (H, W)`` of the output (default: the camera's image); ``affine (2, 3)`` maps image
    pixels to output pixels (default: identity, the full image). ``style`` defaults to
    :func:`random_style` of ``rng`` (default seed 0).
    """
    j = np.asarray(joints_cam, dtype=np.float64)
    if j.shape != (17, 3):
        raise DataError(None, "joints_cam", f"expected (17, 3) H36M joints, got {j.shape}")
    if np.any(j[:, 2] <= 0.2):
        raise DataError(None, "joints_cam", "joints must lie in front of the camera (z > 0.2 m)")
    a = np.array([[1.0, 0, 0], [0, 1.0, 0]]) if affine is None else np.asarray(affine, np.float64)
    h, w = (camera.res_h, camera.res_w) if size is None else (int(size[0]), int(size[1]))
    style = style if style is not None else random_style(rng or np.random.default_rng(0))
    rays, img_xy = _rays(camera, a, (h, w))
    image = _background(style, camera, rays, img_xy)
    if style.background.get("kind") == "room":
        image = cv2.GaussianBlur(image, (0, 0), 1.2)  # defocused background, no aliasing
    parts = body_parts(j, style)
    image, cover = _draw_parts(image, rays, parts, style, camera, a)

    kp = _project(camera, j, a)
    coco3 = coco_keypoints_3d(j)
    coco_px = _project(camera, coco3, a)
    vis = visibility(np.concatenate([j, coco3[:5]]), parts)
    pts = np.concatenate([kp, coco_px[:5]])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    v = np.where(inside, np.where(vis, 2, 1), 0).astype(np.int64)
    coco_v = np.concatenate([v[17:], v[list(COCO_FROM_H36M)]])
    coco = np.concatenate([coco_px, coco_v[:, None]], axis=1)
    out = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Rendered(image=out, keypoints=kp, visible=v[:17], coco=coco, mask=cover >= 0.5)


def _draw_parts(image, rays, parts: _Parts, style: Style, camera: Camera, a: np.ndarray):
    """Composite ``parts`` far-to-near over ``image (H, W, 3)``; returns it and the coverage."""
    h, w = image.shape[:2]
    zbuf = np.full((h, w), np.inf, dtype=np.float32)
    cover = np.zeros((h, w), dtype=np.float32)
    scale = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))
    f_out = float(np.mean(camera.focal_length)) * scale
    ends = np.concatenate([parts.pa, parts.pb])
    ends_px = _project(camera, ends, a).reshape(2, -1, 2)
    depth = 0.5 * (parts.pa[:, 2] + parts.pb[:, 2])
    light = style.light.astype(np.float32)
    fwd, _, up = parts.head_axes
    for k in np.argsort(-depth, kind="stable"):
        zmin = max(min(parts.pa[k, 2], parts.pb[k, 2]) - parts.radius[k], 0.05)
        pad = parts.radius[k] * f_out / zmin * 1.3 + 3
        lo = np.floor(ends_px[:, k].min(0) - pad).astype(int)
        hi = np.ceil(ends_px[:, k].max(0) + pad).astype(int)
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], w), min(hi[1], h)
        if x0 >= x1 or y0 >= y1:
            continue
        d = rays[y0:y1, x0:x1].astype(np.float64)
        r = parts.radius[k]
        t, dist, s, cd = _ray_hits(d, parts.pa[k], parts.pb[k], r)
        alpha = np.clip((r - dist) * f_out / np.maximum(cd, 1e-3) + 0.5, 0, 1)
        zb = zbuf[y0:y1, x0:x1]
        m = (alpha > 0) & (t < zb)
        if not m.any():
            continue
        axis = parts.pa[k] + s[..., None] * (parts.pb[k] - parts.pa[k])
        n = t[..., None] * d - axis
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
        lam = style.ambient + (1 - style.ambient) * np.clip(n @ light, 0, 1)
        lam = lam + 0.12 * np.clip(-np.sum(n * d, -1), 0, 1)
        if k == parts.head:
            hair = (n @ up > style.hair_top) | (n @ fwd < style.hair_back)
            col = np.where(hair[..., None], style.hair, parts.colour[k])
        else:
            col = np.broadcast_to(parts.colour[k], n.shape)
        shaded = (col * lam[..., None]).astype(np.float32)
        al = alpha[..., None].astype(np.float32)
        reg = image[y0:y1, x0:x1]
        reg[m] = (al * shaded + (1 - al) * reg)[m]
        solid = m & (alpha >= 0.5)
        zb[solid] = t[solid]
        cv = cover[y0:y1, x0:x1]
        cv[m] = np.maximum(cv, alpha.astype(np.float32))[m]
    return image, cover


# --------------------------------------------------------------------------- crops
def box_from_keypoints(kp: np.ndarray) -> np.ndarray:
    """Tight box ``(..., 4)`` ``[x1, y1, x2, y2]`` of 2-D keypoints ``(..., J, 2)``."""
    return np.concatenate([kp.min(axis=-2), kp.max(axis=-2)], axis=-1)


def crop_affine(
    box: np.ndarray, crop_size: tuple[int, int] = (256, 192), padding: float = 1.25
) -> np.ndarray:
    """Affine ``(..., 2, 3)`` from image pixels to a ``crop_size = (H, W)`` crop of ``box``.

    ``box (..., 4)`` is ``[x1, y1, x2, y2]``; it is widened about its centre to the aspect
    ratio ``W / H`` (3:4 for 256x192) and then scaled by ``padding``.
    """
    box = np.asarray(box, dtype=np.float64)
    hc, wc = crop_size
    cx, cy = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    bw = np.maximum(box[..., 2] - box[..., 0], 1.0)
    bh = np.maximum(box[..., 3] - box[..., 1], 1.0)
    aspect = wc / hc
    bw, bh = np.maximum(bw, bh * aspect) * padding, np.maximum(bh, bw / aspect) * padding
    s = wc / bw
    out = np.zeros(box.shape[:-1] + (2, 3))
    out[..., 0, 0] = s
    out[..., 1, 1] = s
    out[..., 0, 2] = wc / 2 - s * cx
    out[..., 1, 2] = hc / 2 - s * cy
    return out


def render_frames(
    joints_cam: np.ndarray,
    camera: Camera,
    boxes: np.ndarray | None = None,
    crop_size: tuple[int, int] = (256, 192),
    seed: int = 0,
    style: Style | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Person crops of a sequence: ``(crops (F, H, W, 3) uint8 RGB, affines (F, 2, 3))``.

    ``joints_cam (F, 17, 3)`` H36M joints in ``camera``'s frame (metres). ``boxes (F, 4)``
    ``[x1, y1, x2, y2]`` image pixels, or ``None`` for the box of the projected joints; either is
    widened to the crop's aspect ratio and padded by 1.25 (:func:`crop_affine`). One person look
    and background (:func:`random_style` of ``seed``) is kept over the whole sequence. Map a
    crop point ``(u, v)`` back to the image with ``cv2.invertAffineTransform(affines[f])``.
    """
    j = np.asarray(joints_cam, dtype=np.float64)
    if j.ndim != 3 or j.shape[1:] != (17, 3):
        raise DataError(None, "joints_cam", f"expected (F, 17, 3), got {j.shape}")
    if boxes is None:
        boxes = box_from_keypoints(camera.project(j))
    affines = crop_affine(np.asarray(boxes), crop_size)
    style = style if style is not None else random_style(np.random.default_rng(seed))
    crops = np.empty((len(j), crop_size[0], crop_size[1], 3), dtype=np.uint8)
    for f in range(len(j)):
        crops[f] = render_person(j[f], camera, crop_size, affines[f], style).image
    return crops, affines


# --------------------------------------------------------------------------- COCO writer
def scaled_camera(camera: Camera, scale: float) -> Camera:
    """``camera`` with its image resized by ``scale`` (focal length, centre and resolution)."""
    return dataclasses.replace(
        camera,
        res_w=int(round(camera.res_w * scale)),
        res_h=int(round(camera.res_h * scale)),
        center=np.asarray(camera.center, np.float64) * scale,
        focal_length=np.asarray(camera.focal_length, np.float64) * scale,
    )


def _camera_json(c: Camera) -> dict:
    r = lambda v, n=6: [round(float(x), n) for x in np.ravel(v)]
    return {
        "id": c.id,
        "res_w": int(c.res_w),
        "res_h": int(c.res_h),
        "center": r(c.center),
        "focal_length": r(c.focal_length),
        "radial_distortion": r(c.radial_distortion, 8),
        "tangential_distortion": r(c.tangential_distortion, 8),
        "orientation": r(c.orientation, 8),
        "translation": r(c.translation),
    }


def camera_from_json(d: dict) -> Camera:
    """The :class:`Camera` of an image entry's ``"camera"`` field."""
    return Camera(
        id=str(d["id"]),
        res_w=int(d["res_w"]),
        res_h=int(d["res_h"]),
        **{
            k: np.asarray(d[k], dtype=np.float64)
            for k in (
                "center",
                "focal_length",
                "radial_distortion",
                "tangential_distortion",
                "orientation",
                "translation",
            )
        },
    )


def _clip_camera(clip: np.ndarray, width: int, rng: np.random.Generator) -> Camera:
    """One of four virtual Human3.6M cameras around ``clip (T, 17, 3)`` (world metres), its
    rig turned by a random azimuth, with the image scaled to ``width`` pixels."""
    base = RigConfig()
    off = float(rng.uniform(0, 90))
    rig = dataclasses.replace(base, azimuths=tuple(a + off for a in base.azimuths))
    cams = place_cameras({"clip": clip}, rig, rng)
    cam = cams[int(rng.integers(len(cams)))]
    return scaled_camera(cam, width / cam.res_w)


def _write_split(
    out: Path, split: str, subjects, count: int, collection, spec: dict, rng, seed: int
) -> None:
    cand: list[tuple[str, str, int]] = []
    for subject in subjects:
        if subject not in collection:
            raise ConfigError(
                f"render subjects: {subject!r} not in the sample {sorted(collection)}"
            )
        motions = collection[subject]
        for action in sorted(motions):
            for f in range(0, len(motions[action]), spec["frames_stride"]):
                cand.append((subject, action, f))
    pick = rng.choice(len(cand), size=count, replace=count > len(cand))
    (out / split).mkdir(parents=True)
    images, anns = [], []
    ids, j3d, j2d, vis, cam_k, cam_ext = [], [], [], [], [], []
    split_code = {"train": 1, "val": 2}.get(split, 3)
    for i, ci in enumerate(pick):
        subject, action, frame = cand[int(ci)]
        img_rng = np.random.default_rng([seed, split_code, i])
        clip = collection[subject][action]
        cam = _clip_camera(clip, spec["image_size"], img_rng)
        jc = cam.world_to_camera(clip[frame].astype(np.float64))
        style = random_style(img_rng)
        res = render_person(jc, cam, style=style)
        image_id = split_code * 1_000_000 + i + 1
        name = f"{image_id:012d}.jpg"
        ok, buf = cv2.imencode(
            ".jpg",
            cv2.cvtColor(res.image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, spec["jpeg_quality"]],
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        (out / split / name).write_bytes(buf.tobytes())
        ys, xs = np.nonzero(res.mask)
        if len(xs) == 0:  # nothing of the person in the image: the keypoints' box
            xs, ys = (
                res.keypoints[:, 0].clip(0, cam.res_w - 1),
                res.keypoints[:, 1].clip(0, cam.res_h - 1),
            )
        m = 2.0
        x0, y0 = max(xs.min() - m, 0.0), max(ys.min() - m, 0.0)
        x1, y1 = min(xs.max() + 1 + m, cam.res_w), min(ys.max() + 1 + m, cam.res_h)
        kps = res.coco.copy()
        kps[kps[:, 2] == 0] = 0.0
        images.append(
            {
                "id": image_id,
                "file_name": name,
                "width": cam.res_w,
                "height": cam.res_h,
                "subject": subject,
                "action": action,
                "frame": frame,
                "camera": _camera_json(cam),
                "background": style.background["kind"],
            }
        )
        anns.append(
            {
                "id": image_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "keypoints": [
                    round(float(v), 2) if k % 3 != 2 else int(v) for k, v in enumerate(kps.ravel())
                ],  # fmt: skip
                "num_keypoints": int(np.sum(kps[:, 2] > 0)),
                "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "area": float(res.mask.sum()),
                "joints_3d": np.round(jc, 5).tolist(),
                "joints_2d": np.round(res.keypoints, 3).tolist(),
                "joints_vis": res.visible.tolist(),
            }
        )
        ids.append(image_id)
        j3d.append(jc)
        j2d.append(res.keypoints)
        vis.append(res.visible)
        cam_k.append(
            np.concatenate(
                [
                    [cam.res_w, cam.res_h],
                    cam.focal_length,
                    cam.center,
                    cam.radial_distortion,
                    cam.tangential_distortion,
                ]
            )
        )
        cam_ext.append(np.concatenate([cam.orientation, cam.translation]))
    doc = {
        "info": {
            "description": f"liftpose rendered HDM05 sample ({split})",
            "version": "1",
            "settings": spec,
        },
        "licenses": [{"id": 1, "name": "CC BY-SA 3.0 (HDM05 motion)", "url": ""}],
        "images": images,
        "annotations": anns,
        "categories": [CATEGORY],
    }
    ann_dir = out / "annotations"
    ann_dir.mkdir(exist_ok=True)
    (ann_dir / f"person_keypoints_{split}.json").write_text(json.dumps(doc, separators=(",", ":")))
    with open(ann_dir / f"poses3d_{split}.npz", "wb") as fh:
        np.savez(
            fh,
            image_id=np.asarray(ids, np.int64),
            joints_3d=np.asarray(j3d, np.float32).reshape(-1, 17, 3),
            joints_2d=np.asarray(j2d, np.float32).reshape(-1, 17, 2),
            joints_vis=np.asarray(vis, np.int8).reshape(-1, 17),
            intrinsics=np.asarray(cam_k, np.float64).reshape(-1, 11),
            extrinsics=np.asarray(cam_ext, np.float64).reshape(-1, 7),
        )


def write_rendered_coco(
    root: str | Path,
    *,
    train_subjects: tuple[str, ...] = ("bd", "bk"),
    val_subjects: tuple[str, ...] = ("dg",),
    num_train: int = 300,
    num_val: int = 100,
    frames_stride: int = 5,
    image_size: int = 400,
    jpeg_quality: int = 90,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Render a COCO keypoint dataset from the packaged HDM05 sample under ``root``.

    ``num_train`` / ``num_val`` images (one person each) are drawn at random from the frames
    every ``frames_stride`` of each subject's clips (train: bd, bk; val: dg, the lifting split).
    Each image is filmed by one of four virtual Human3.6M cameras placed around its clip
    (:func:`place_cameras`, the rig turned by a random azimuth), with the intrinsics scaled to
    ``image_size`` pixels wide (500 -> about 500x500). Layout::

        <root>/train/<id>.jpg, <root>/val/<id>.jpg
        <root>/annotations/person_keypoints_{train,val}.json   (COCO, plus the fields below)
        <root>/annotations/poses3d_{train,val}.npz

    Extra fields (pycocotools ignores them): images carry ``subject``, ``action``, ``frame``,
    ``background`` (``room`` / ``flat``) and ``camera`` (intrinsics and extrinsics,
    :func:`camera_from_json`); annotations carry
    ``joints_3d`` (17 H36M joints, camera frame, metres), ``joints_2d`` (their projections,
    pixels) and ``joints_vis`` (COCO ``v`` of each H36M joint). The npz holds the same per image,
    in json order: ``image_id (N,)``, ``joints_3d (N, 17, 3)``, ``joints_2d (N, 17, 2)``,
    ``joints_vis (N, 17)``, ``intrinsics (N, 11)`` = ``[w, h, fx, fy, cx, cy, k1, k2, k3, p1,
    p2]`` and ``extrinsics (N, 7)`` = ``[qw, qx, qy, qz, tx, ty, tz]`` (world metres).

    The build goes into a temporary folder beside ``root`` and is renamed onto it when complete;
    an existing build with the same settings is kept unless ``force``. Deterministic in ``seed``.
    """
    from liftpose.data.embedded import load_sample, sample_path

    root = Path(root)
    if frames_stride < 1 or num_train < 0 or num_val < 0 or image_size < 16:
        raise ConfigError(
            "render: frames_stride >= 1, num_train/num_val >= 0 and image_size >= 16 required"
        )
    spec = {
        "train_subjects": list(train_subjects),
        "val_subjects": list(val_subjects),
        "num_train": int(num_train),
        "num_val": int(num_val),
        "frames_stride": int(frames_stride),
        "image_size": int(image_size),
        "jpeg_quality": int(jpeg_quality),
        "seed": int(seed),
        "sample_bytes": sample_path().stat().st_size,
    }
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    stamp = root / ".render.build"
    if not force and stamp.exists() and stamp.read_text() == digest:
        return root
    if root.exists() and not root.is_dir():
        raise DataError(
            root, "folder", "is a file, not a folder: choose another data.root / --root"
        )
    if root.is_dir() and any(root.iterdir()) and not stamp.exists():
        raise DataError(
            root,
            "folder",
            "holds files liftpose did not render (no .render.build); a rendered build replaces "
            "its whole folder, so it never goes into this one: choose another data.root / --root",
        )
    collection = load_sample()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for k, (split, subjects, count) in enumerate(
            (("train", train_subjects, num_train), ("val", val_subjects, num_val))
        ):
            rng = np.random.default_rng([seed, k])
            _write_split(tmp, split, subjects, count, collection, spec, rng, seed)
        (tmp / ".render.build").write_text(digest)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        old = None
        if root.exists():
            old = root.parent / f".{root.name}.{os.getpid()}.old"
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


if __name__ == "__main__":  # the same as ``liftpose-data render``
    import sys

    from liftpose.data.cli import main

    sys.exit(main(["render", *sys.argv[1:]]))

"""2-D keypoint files: ``.npz`` arrays, COCO keypoint results, OpenPose and AlphaPose json.

Each reader returns :class:`~liftpose.system.person.Detections` (people per frame, in pixels,
with confidences). A file whose structure says its layout uses it (OpenPose BODY_25 has 25
keypoints, COCO results are COCO-17, ...); a bare ``(T, 17, 2)`` array cannot say whether it is
COCO-17 or Human3.6M-17, so ``layout`` must be given. A ``layout`` that contradicts the file is
an error, never a guess.

Formats
    ``.npz``: ``keypoints (T, J, 2 | 3)`` (the third channel: confidences); optional ``layout``
    (a string), ``fps``, ``image_size`` ``(2,)`` or ``(T, 2)`` as ``[width, height]``.
    COCO results json: a list of ``{image_id, category_id, keypoints: [x, y, s] * 17, score}``
    (frames: the image ids in ascending order), or a whole annotation file (``images`` give
    each frame's file name and size). OpenPose: a folder of ``*_keypoints.json``
    (``people[i].pose_keypoints_2d``: 25 x 3 for BODY_25, 18 x 3 for COCO-18), one file per
    frame in name order. AlphaPose: a list of ``{image_id: <file name>, keypoints: [x, y, s] *
    K, box: [x, y, w, h], idx}`` with K = 17 (COCO-17) or 26 (Halpe-26); ``idx`` (when present)
    is the track identity.

A keypoint with confidence 0 is absent (NaN pixels): COCO writes ``[0, 0, 0]`` for a keypoint
it has no position for (``v = 0`` in annotations, a score of 0 in results), OpenPose ``0 0 0``.

Image sizes come from the file where it has them, else from ``image_size`` (``(width,
height)``) given by the caller; without either the keypoints cannot be normalised and the
reader says so. A size given by the caller that contradicts the file's (or an ``fps`` that
contradicts an ``.npz``'s) is refused, as is a side outside ``(0, MAX_IMAGE_SIDE]`` pixels and a
keypoint more than ``MAX_OUTSIDE`` image sizes beyond the image's border (not pixels: a file in
other units, or corrupt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from liftpose.errors import DataError
from liftpose.system.joints import LAYOUTS, get_layout, layout_for_joint_count
from liftpose.system.person import Detections, Frame, Person, box_of

KEYPOINT_SUFFIXES = (".npz", ".json")
#: The largest image side accepted, pixels.
MAX_IMAGE_SIDE = 100_000
#: How many image sizes beyond the border a keypoint may lie (people leave the picture).
MAX_OUTSIDE = 2.0


def is_keypoint_input(path: str | Path) -> bool:
    """Whether ``path`` is a keypoint file (``.npz``, ``.json``) or an OpenPose json folder."""
    p = Path(path)
    if p.is_dir():
        return any(p.glob("*_keypoints.json")) or (
            any(p.glob("*.json")) and not any(_is_image(f) for f in p.iterdir())
        )
    return p.suffix.lower() in KEYPOINT_SUFFIXES


def _is_image(p: Path) -> bool:
    from liftpose.system.media import IMAGE_SUFFIXES

    return p.suffix.lower() in IMAGE_SUFFIXES


def read_keypoints(
    path: str | Path,
    layout: str | None = None,
    image_size: tuple[float, float] | None = None,
    fps: float | None = None,
) -> Detections:
    """Read any supported keypoint file (see the module docstring).

    Args:
        path: the file or OpenPose folder.
        layout: the keypoint layout when the file cannot tell (required for 17 bare joints).
        image_size: ``(width, height)`` pixels for files that do not store it.
        fps: frame rate of the sequence, where the file does not store it (``None``: the
            frames are unrelated photos for image-keyed files, a sequence of unknown rate for
            arrays, which then need it).

    Raises ``DataError`` naming the file and the field for every malformed input.
    """
    p = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise DataError(p, "--layout", f"unknown layout {layout!r}; known: {sorted(LAYOUTS)}")
    if not p.exists():
        raise DataError(p, "input", "not found")
    if p.is_dir():
        dets = _read_openpose(p, layout, image_size, fps)
    elif p.suffix.lower() == ".npz":
        dets = _read_npz(p, layout, image_size, fps)
    else:
        doc = _load_json(p)
        if isinstance(doc, dict) and "annotations" in doc:
            dets = _read_coco(p, doc["annotations"], doc.get("images"), layout, image_size, fps)
        elif isinstance(doc, list) and doc and isinstance(doc[0], dict):
            if isinstance(doc[0].get("image_id"), str):
                dets = _read_alphapose(p, doc, layout, image_size, fps)
            else:
                dets = _read_coco(p, doc, None, layout, image_size, fps)
        else:
            raise DataError(p, "json", "not a COCO keypoint results list or an AlphaPose json")
    _check_inside(p, dets)
    return dets


# --------------------------------------------------------------------------- helpers
def _load_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(p, "json", f"unreadable ({type(e).__name__}: {e})") from e


def _check_layout(p: Path, field: str, found: str | None, k: int, given: str | None) -> str:
    """The layout of a file with ``k`` keypoints per person, checked against ``given``."""
    if given is not None:
        n = get_layout(given).num_joints
        if n != k:
            raise DataError(p, field, f"{k} keypoints per person, but --layout {given} has {n}")
        if found is not None and found != given:
            raise DataError(p, field, f"the file says layout {found!r}, but --layout {given}")
        return given
    if found is not None:
        if found not in LAYOUTS:
            raise DataError(p, field, f"unknown layout {found!r}; known: {sorted(LAYOUTS)}")
        if LAYOUTS[found].num_joints != k:
            raise DataError(p, field, f"layout {found!r} but {k} keypoints per person")
        return found
    guess = layout_for_joint_count(k)
    if guess is None:
        if k == 17:
            raise DataError(p, field, "17 joints may be coco17 or h36m17: pass --layout")
        raise DataError(p, field, f"{k} keypoints per person match no known layout")
    return guess


def _triplets(p: Path, field: str, values: Any, k: int | None = None) -> np.ndarray:
    """``[x, y, s] * K`` -> ``(K, 3)``, checked finite with scores in [0, inf)."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or len(a) % 3 or (k is not None and len(a) != 3 * k):
        raise DataError(p, field, f"expected [x, y, score] * K numbers, got {a.shape}")
    a = a.reshape(-1, 3)
    _check_values(p, field, a[:, :2], a[:, 2])
    return a


def _check_values(p: Path, field: str, xy: np.ndarray, scores: np.ndarray | None) -> None:
    if not np.isfinite(xy).all():
        raise DataError(p, field, f"{int((~np.isfinite(xy)).sum())} NaN/inf coordinates")
    if scores is not None:
        if not np.isfinite(scores).all():
            raise DataError(p, field, f"{int((~np.isfinite(scores)).sum())} NaN/inf confidences")
        if (scores < 0).any():
            raise DataError(p, field, f"{int((scores < 0).sum())} negative confidences")


def _check_inside(p: Path, dets: Detections) -> None:
    """Refuse keypoints far outside their image (see :data:`MAX_OUTSIDE`)."""
    for frame, people in zip(dets.frames, dets.people):
        size = np.array([frame.width, frame.height], np.float64)
        for person in people:
            xy = person.keypoints
            far = np.isfinite(xy).all(-1) & (
                (xy < -MAX_OUTSIDE * size) | (xy > (1 + MAX_OUTSIDE) * size)
            ).any(-1)
            if far.any():
                k = int(np.argmax(far))
                raise DataError(
                    p, "keypoints", f"keypoint {k} of frame {frame.name} at "
                    f"({xy[k, 0]:.4g}, {xy[k, 1]:.4g}) lies more than {MAX_OUTSIDE:g} image sizes "
                    f"outside its {frame.width}x{frame.height} image (pixels expected)"
                )  # fmt: skip


def _check_size(p: Path, field: str, size: np.ndarray) -> None:
    """``(..., 2)`` ``[width, height]`` pixels, each in ``(0, MAX_IMAGE_SIDE]``."""
    bad = ~((size > 0) & (size <= MAX_IMAGE_SIDE))
    if bad.any():
        raise DataError(
            p, field, f"shape {size.shape}: {int(bad.sum())} of {size.size} values are not in "
            f"(0, {MAX_IMAGE_SIDE}] pixels (first: {size[bad].flat[0]:g})"
        )  # fmt: skip


def _same_size(p: Path, field: str, file_size: np.ndarray, given) -> None:
    """Refuse ``--width/--height`` that contradict the size the file stores."""
    if given is not None and not np.allclose(file_size, np.asarray(given, np.float64)):
        w, h = np.asarray(file_size, np.float64).reshape(-1, 2)[0]
        raise DataError(
            p, field, f"the file says {w:g}x{h:g} pixels, but --width {given[0]:g} --height "
            f"{given[1]:g}; leave them out to use the file's"
        )  # fmt: skip


def _person(xy: np.ndarray, s: np.ndarray, box=None, track_id=None) -> Person:
    xy = np.where((s > 0)[:, None], xy, np.nan)  # confidence 0: absent (COCO's [0, 0, 0])
    b = box_of(xy, s) if box is None else np.asarray(box, dtype=np.float64)
    if b is None:
        b = np.zeros(4)
    return Person(xy.astype(np.float64), s.astype(np.float64), b, track_id)


def _frames(n: int, names: list[str], sizes: list, fps: float | None, p: Path) -> list[Frame]:
    out = []
    for i in range(n):
        w, h = sizes[i] if sizes[i] is not None else (None, None)
        if w is None or h is None:
            raise DataError(
                p, "image_size", f"no image size for {names[i]}: pass --width and --height"
            )
        try:
            wh = np.array([w, h], np.float64)
        except (TypeError, ValueError):
            raise DataError(p, f"{names[i]}: width/height", f"not numbers: {w!r}, {h!r}") from None
        _check_size(p, f"{names[i]}: width/height", wh)
        out.append(Frame(i, None if fps is None else i / fps, int(w), int(h), names[i]))
    return out


# --------------------------------------------------------------------------- .npz
def _npz_field(p: Path, f, key: str, kinds: str, want: str, one: bool = False) -> np.ndarray:
    """``f[key]``, refused by its name unless its dtype kind is in ``kinds`` (and, with
    ``one``, it holds a single value)."""
    try:
        a = f[key]
    except ValueError as e:  # an object array: pickled, never loaded
        raise DataError(p, key, f"unreadable ({e})") from None
    if a.dtype.kind not in kinds:
        got = repr(a.item()) if a.size == 1 else f"dtype {a.dtype}, shape {a.shape}"
        raise DataError(p, key, f"expected {want}, got {got}")
    if one and a.size != 1:
        raise DataError(p, key, f"expected {want}, got shape {a.shape}")
    return a


def _read_npz(p: Path, layout, image_size, fps) -> Detections:
    try:
        with np.load(p, allow_pickle=False) as f:
            if "keypoints" not in f.files:
                raise DataError(p, "keypoints", f"missing key; the file has {f.files}")
            kp = _npz_field(p, f, "keypoints", "iuf", "numbers (pixels)").astype(np.float64)
            found = file_fps = size = None
            if "layout" in f.files:
                found = str(_npz_field(p, f, "layout", "U", "a layout name", one=True).item())
            if "fps" in f.files:
                file_fps = float(
                    _npz_field(p, f, "fps", "iuf", "a number (frames per second)", one=True).item()
                )
            if "image_size" in f.files:
                size = _npz_field(p, f, "image_size", "iuf", "numbers (pixels)").astype(np.float64)
    except DataError:
        raise
    except Exception as e:  # truncated, not an npz, pickled objects
        raise DataError(p, "keypoints", f"unreadable file ({type(e).__name__}: {e})") from e
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3) or len(kp) == 0:
        raise DataError(p, "keypoints", f"expected (T, J, 2) or (T, J, 3), got {kp.shape}")
    lay = _check_layout(p, "keypoints", found, kp.shape[1], layout)
    xy = kp[..., :2]
    s = kp[..., 2] if kp.shape[-1] == 3 else np.ones(kp.shape[:2])
    _check_values(p, "keypoints", xy, s if kp.shape[-1] == 3 else None)
    t = len(kp)
    if size is not None:
        if size.shape not in ((2,), (t, 2)):
            raise DataError(p, "image_size", f"expected (2,) or ({t}, 2), got {size.shape}")
        _check_size(p, "image_size", size)
        _same_size(p, "image_size", size, image_size)
    elif image_size is not None:
        size = np.asarray(image_size, dtype=np.float64)
        _check_size(p, "--width/--height", size)
    else:
        raise DataError(p, "image_size", "pixels need the image size: pass --width and --height")
    size = np.broadcast_to(size, (t, 2))
    if file_fps is not None and not (np.isfinite(file_fps) and file_fps > 0):
        raise DataError(p, "fps", f"must be positive, got {file_fps:g}")
    if file_fps is not None and fps is not None and not np.isclose(file_fps, fps):
        raise DataError(p, "fps", f"the file says {file_fps:g}, but --fps {fps:g}")
    rate = file_fps if file_fps is not None else fps
    frames = [
        Frame(i, None if rate is None else i / rate, int(size[i, 0]), int(size[i, 1]), f"{i:06d}")
        for i in range(t)
    ]
    people = [[_person(xy[i], s[i], track_id=0)] for i in range(t)]
    # a bare array is one person over time: a sequence (rate unknown -> the lifter's rate)
    return Detections(frames, people, lay, rate if rate is not None else 0.0, str(p))


# --------------------------------------------------------------------------- COCO
def _read_coco(p: Path, anns: list, images: list | None, layout, image_size, fps) -> Detections:
    if not isinstance(anns, list):
        raise DataError(p, "annotations", "expected a list")
    info: dict[Any, tuple[str, Any]] = {}
    for im in images or []:
        size = (im.get("width"), im.get("height"))
        info[im.get("id")] = (im.get("file_name", str(im.get("id"))), size)
    by_image: dict[Any, list[Person]] = {}
    k = None
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or "keypoints" not in a or "image_id" not in a:
            raise DataError(p, f"[{i}]", "expected {image_id, keypoints, ...}")
        if a.get("category_id", 1) != 1:
            continue
        tri = _triplets(p, f"[{i}].keypoints", a["keypoints"])
        if k is None:
            k = len(tri)
        elif len(tri) != k:
            raise DataError(p, f"[{i}].keypoints", f"{len(tri)} keypoints, earlier ones {k}")
        box = a.get("bbox")
        if box is not None:
            x, y, w, h = (float(v) for v in box)
            box = [x, y, x + w, y + h]
        xy, s = tri[:, :2].copy(), tri[:, 2].copy()
        if images is not None and "score" not in a:  # an annotation file: s is COCO's v
            s = (s > 0).astype(np.float64)
            xy[s == 0] = np.nan
        by_image.setdefault(a["image_id"], []).append(_person(xy, s, box))
    if k is None:
        raise DataError(p, "annotations", "no person keypoints")
    lay = _check_layout(p, "keypoints", "coco17" if k == 17 else None, k, layout)
    ids = sorted(set(by_image) | set(info), key=lambda v: (str(type(v)), v))
    names = [info.get(i, (str(i), None))[0] for i in ids]
    sizes = [info[i][1] if i in info and None not in info[i][1] else image_size for i in ids]
    for n, i in zip(names, ids):
        if i in info and None not in info[i][1] and image_size is not None:
            try:
                wh = np.array(info[i][1], np.float64)
            except (TypeError, ValueError):
                continue  # not numbers: _frames says so
            _same_size(p, f"images[{n}]", wh, image_size)
    frames = _frames(len(ids), names, sizes, fps, p)
    return Detections(frames, [by_image.get(i, []) for i in ids], lay, fps, str(p))


# --------------------------------------------------------------------------- OpenPose
def _read_openpose(p: Path, layout, image_size, fps) -> Detections:
    files = sorted(p.glob("*.json"))
    if not files:
        raise DataError(p, "json", "no OpenPose *_keypoints.json files")
    people: list[list[Person]] = []
    k = None
    for f in files:
        doc = _load_json(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
            raise DataError(f, "people", "not an OpenPose keypoint file")
        frame_people = []
        for i, person in enumerate(doc["people"]):
            tri = _triplets(f, f"people[{i}].pose_keypoints_2d", person.get("pose_keypoints_2d"))
            if k is None:
                k = len(tri)
            elif len(tri) != k:
                raise DataError(
                    f, f"people[{i}].pose_keypoints_2d", f"{len(tri)} keypoints, not {k}"
                )
            xy, s = tri[:, :2].copy(), tri[:, 2].copy()
            xy[s <= 0] = np.nan  # OpenPose writes (0, 0, 0) for a keypoint it did not find
            tid = person.get("person_id")
            tid = tid[0] if isinstance(tid, list) and tid else tid
            frame_people.append(
                _person(xy, s, track_id=int(tid) if isinstance(tid, int) and tid >= 0 else None)
            )
        people.append(frame_people)
    if k is None:
        raise DataError(p, "people", "no person in any file")
    lay = _check_layout(p, "pose_keypoints_2d", None, k, layout)
    names = [f.name for f in files]
    frames = _frames(len(files), names, [image_size] * len(files), fps, p)
    return Detections(frames, people, lay, fps if fps is not None else 0.0, str(p))


# --------------------------------------------------------------------------- AlphaPose
def _read_alphapose(p: Path, doc: list, layout, image_size, fps) -> Detections:
    by_image: dict[str, list[Person]] = {}
    k = None
    for i, a in enumerate(doc):
        if "keypoints" not in a or "image_id" not in a:
            raise DataError(p, f"[{i}]", "expected {image_id, keypoints, ...}")
        tri = _triplets(p, f"[{i}].keypoints", a["keypoints"])
        if k is None:
            k = len(tri)
        elif len(tri) != k:
            raise DataError(p, f"[{i}].keypoints", f"{len(tri)} keypoints, earlier ones {k}")
        box = a.get("box")
        if box is not None:
            x, y, w, h = (float(v) for v in box)
            box = [x, y, x + w, y + h]
        idx = a.get("idx")
        idx = idx[0] if isinstance(idx, list) and idx else idx
        tid = int(idx) if isinstance(idx, int | float) else None
        by_image.setdefault(str(a["image_id"]), []).append(_person(tri[:, :2], tri[:, 2], box, tid))
    if k is None:
        raise DataError(p, "keypoints", "no person keypoints")
    if k == 136:
        raise DataError(p, "keypoints", "136 keypoints (whole body) are not supported")
    # AlphaPose writes COCO-17 or Halpe-26 (never Human3.6M-17)
    lay = _check_layout(p, "keypoints", "coco17" if k == 17 else None, k, layout)
    names = sorted(by_image)
    frames = _frames(len(names), names, [image_size] * len(names), fps, p)
    return Detections(frames, [by_image[n] for n in names], lay, fps, str(p))

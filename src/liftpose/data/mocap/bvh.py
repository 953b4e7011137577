"""Biovision BVH reader with vectorised forward kinematics.

Conventions implemented here:

* ``HIERARCHY`` -- ``ROOT``/``JOINT`` blocks with ``OFFSET x y z`` and ``CHANNELS n c1 .. cn``
  (any subset/order of ``X|Y|Zposition`` and ``X|Y|Zrotation``); ``End Site`` blocks carry only an
  ``OFFSET`` and become joints named ``<parent>_end``.
* ``MOTION`` -- ``Frames: T``, ``Frame Time: dt`` and T lines of channel values; angles in degrees.
* Rotation channels compose left to right in the listed order: ``Zrotation Xrotation Yrotation``
  gives ``R = Rz @ Rx @ Ry``.
* Position channels, where a joint has them, *replace* that component of its ``OFFSET`` (the
  Bandai-Namco files store the offset again in every frame; adding would double every bone).

Forward kinematics over all frames at once (a loop over joints in file order, parents first)::

    G_j = G_parent @ R_j              # (T, 3, 3)
    p_j = p_parent + G_parent @ t_j   # (T, 3), t_j = OFFSET or position channels

BVH has no unit field: positions come back in file units (Bandai-Namco: centimetres, Y up).
A UTF-8 byte-order mark at the start of the file (some exporters write one) is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftpose.data.mocap.asf_amc import axis_rotations
from liftpose.errors import DataError

__all__ = ["BvhMotion", "bvh_forward_kinematics", "load_bvh", "read_bvh"]

_MOTION_RE = re.compile(r"^[ \t]*(MOTION)[ \t]*\r?$", re.MULTILINE)
_CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")


@dataclass(frozen=True)
class BvhMotion:
    """A parsed BVH file.

    ``names``/``parents``/``offsets`` (J,)/(J,)/(J, 3) cover joints and end sites in file order
    (parents first); ``channels[j]`` is joint j's channel names and ``columns[j]`` the index of its
    first channel in ``values`` (T, C); ``frame_time`` is seconds per frame.
    """

    path: str | None
    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    columns: tuple[int, ...]
    values: np.ndarray
    frame_time: float

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


class _Tokens:
    """Whitespace tokens of the HIERARCHY part, with a cursor."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.toks, self.i = path, text.split(), 0

    def next(self, fld: str) -> str:
        if self.i >= len(self.toks):
            raise DataError(self.path, fld, "unexpected end of HIERARCHY")
        self.i += 1
        return self.toks[self.i - 1]

    def expect(self, word: str, fld: str) -> None:
        tok = self.next(fld)
        if tok != word:
            raise DataError(self.path, fld, f"expected {word!r}, got {tok!r}")

    def floats(self, n: int, fld: str) -> np.ndarray:
        vals = [self.next(fld) for _ in range(n)]
        try:
            out = np.array([float(v) for v in vals], dtype=np.float64)
        except ValueError:
            raise DataError(self.path, fld, f"expected {n} numbers, got {' '.join(vals)}") from None
        if not np.isfinite(out).all():
            raise DataError(self.path, fld, f"not finite: {' '.join(vals)}")
        return out


def _parse_hierarchy(path: Path, text: str) -> tuple[list, list, list, list]:
    tk = _Tokens(path, text)
    tk.expect("HIERARCHY", "HIERARCHY")
    tk.expect("ROOT", "HIERARCHY/ROOT")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[tuple[str, ...]] = []

    def block(name: str, parent: int, is_end: bool) -> None:
        fld = f"HIERARCHY/{name}"
        tk.expect("{", fld)
        tk.expect("OFFSET", f"{fld}/OFFSET")
        idx = len(names)
        names.append(name)
        parents.append(parent)
        offsets.append(tk.floats(3, f"{fld}/OFFSET"))
        chans: tuple[str, ...] = ()
        if not is_end:
            tk.expect("CHANNELS", f"{fld}/CHANNELS")
            n_tok = tk.next(f"{fld}/CHANNELS")
            if not n_tok.isdigit():
                raise DataError(path, f"{fld}/CHANNELS", f"channel count {n_tok!r} is not a number")
            n = int(n_tok)
            chans = tuple(tk.next(f"{fld}/CHANNELS") for _ in range(n))
            bad = [c for c in chans if c not in _CHANNELS]
            if bad:
                raise DataError(
                    path, f"{fld}/CHANNELS",
                    f"declares {n} channels but lists {list(chans)} ({bad[0]!r} is not a channel)",
                )  # fmt: skip
            if len(set(chans)) != n:
                raise DataError(path, f"{fld}/CHANNELS", f"repeated channel in {list(chans)}")
        channels.append(chans)
        while True:
            tok = tk.next(fld)
            if tok == "}":
                return
            if is_end:
                raise DataError(path, fld, f"unexpected {tok!r} in End Site")
            if tok == "JOINT":
                block(tk.next(f"{fld}/JOINT"), idx, False)
            elif tok == "End":
                tk.expect("Site", f"{fld}/End Site")
                block(f"{name}_end", idx, True)
            else:
                raise DataError(path, fld, f"unexpected {tok!r}")

    block(tk.next("HIERARCHY/ROOT"), -1, False)
    if tk.i != len(tk.toks):
        raise DataError(path, "HIERARCHY", f"unexpected {tk.toks[tk.i]!r} after the root joint")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DataError(path, "HIERARCHY", f"duplicate joint names {sorted(dup)}")
    return names, parents, offsets, channels


def _parse_motion(
    path: Path, text: str, n_channels: int, stride: int = 1
) -> tuple[np.ndarray, float]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = [ln.split() for ln in lines[:3]]
    if len(head) < 3 or head[0] != ["MOTION"]:
        raise DataError(path, "MOTION", "missing MOTION header")
    if head[1][:1] != ["Frames:"] or len(head[1]) != 2 or not head[1][1].isdigit():
        raise DataError(path, "MOTION/Frames", f"expected 'Frames: <n>', got {lines[1]!r}")
    if head[2][:2] != ["Frame", "Time:"] or len(head[2]) != 3:
        raise DataError(path, "MOTION/Frame Time", f"expected 'Frame Time: <s>', got {lines[2]!r}")
    n_frames = int(head[1][1])
    if n_frames == 0:
        raise DataError(path, "MOTION/Frames", "no frames")
    try:
        frame_time = float(head[2][2])
    except ValueError:
        raise DataError(path, "MOTION/Frame Time", f"not a number: {head[2][2]!r}") from None
    if not frame_time > 0:
        raise DataError(path, "MOTION/Frame Time", f"must be positive, got {frame_time}")
    if len(lines) - 3 != n_frames:
        raise DataError(
            path, "MOTION/Frames", f"header says {n_frames} frames, file has {len(lines) - 3}"
        )
    rows = [ln.split() for ln in lines[3::stride]]
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    if (counts != n_channels).any():
        i = int(np.flatnonzero(counts != n_channels)[0])
        raise DataError(
            path, f"MOTION/frame {i * stride}",
            f"has {counts[i]} values, the HIERARCHY declares {n_channels} channels",
        )  # fmt: skip
    try:
        values = np.array([v for r in rows for v in r], dtype=np.float64)
    except ValueError:
        raise DataError(path, "MOTION", "a channel value is not a number") from None
    if not np.isfinite(values).all():
        raise DataError(path, "MOTION", "a channel value is not finite")
    return values.reshape(len(rows), n_channels), frame_time * stride


def read_bvh(path: str | Path, stride: int = 1) -> BvhMotion:
    """Parse a BVH file; raises ``DataError`` naming the file and the field at fault.

    ``stride > 1`` keeps every ``stride``-th frame (and multiplies the frame time), converting
    and checking only those: a quick look at a long file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(path, "file", f"cannot read: {e}") from e
    text = data.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    found = _MOTION_RE.search(text)
    if found is None:
        raise DataError(path, "MOTION", "missing MOTION section")
    cut = found.start(1)
    names, parents, offsets, channels = _parse_hierarchy(path, text[:cut])
    columns = np.cumsum([0] + [len(c) for c in channels])
    values, frame_time = _parse_motion(path, text[cut:], int(columns[-1]), max(int(stride), 1))
    return BvhMotion(
        path=str(path), names=tuple(names), parents=tuple(parents), offsets=np.stack(offsets),
        channels=tuple(channels), columns=tuple(int(c) for c in columns[:-1]), values=values,
        frame_time=frame_time,
    )  # fmt: skip


def bvh_forward_kinematics(
    bvh: BvhMotion, end_offsets: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """World positions of every joint and end site.

    Args:
        bvh: a parsed file.
        end_offsets: optional replacement OFFSETs (3,) by joint name, e.g. to give a zero-length
            ``Head_end`` a head-top offset expressed in the Head joint's frame.

    Returns:
        (T, J, 3) float64 in file units and the file's world frame.
    """
    end_offsets = dict(end_offsets or {})
    unknown = sorted(set(end_offsets) - set(bvh.names))
    if unknown:
        raise KeyError(f"end_offsets names unknown joints {unknown}")
    T = bvh.num_frames
    glob: list[np.ndarray] = []
    pos: list[np.ndarray] = []
    for j, (name, parent) in enumerate(zip(bvh.names, bvh.parents)):
        offset = np.asarray(end_offsets.get(name, bvh.offsets[j]), dtype=np.float64)
        trans = np.broadcast_to(offset, (T, 3)).copy()
        chans = bvh.channels[j]
        vals = bvh.values[:, bvh.columns[j] : bvh.columns[j] + len(chans)]
        rot_cols = [k for k, c in enumerate(chans) if c.endswith("rotation")]
        for k, c in enumerate(chans):
            if c.endswith("position"):
                trans[:, "XYZ".index(c[0])] = vals[:, k]
        if rot_cols:
            local = axis_rotations(
                np.deg2rad(vals[:, rot_cols]), "".join(chans[k][0] for k in rot_cols)
            )
        else:
            local = np.broadcast_to(np.eye(3), (T, 3, 3))
        if parent < 0:
            glob.append(local)
            pos.append(trans)
        else:
            glob.append(glob[parent] @ local)
            pos.append(pos[parent] + (glob[parent] @ trans[..., None])[..., 0])
    return np.stack(pos, axis=1)


def load_bvh(
    path: str | Path, *, end_offsets: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a BVH file and run forward kinematics.

    Returns:
        positions (T, J, 3) float64 in file units (world frame of the file) and the J joint names
        (end sites as ``<parent>_end``).
    """
    bvh = read_bvh(path)
    return bvh_forward_kinematics(bvh, end_offsets), bvh.names

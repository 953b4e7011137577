"""Acclaim ASF/AMC reader (the format of HDM05 and of the CMU Graphics Lab mocap database).

An ``.asf`` file describes the skeleton in its rest pose; an ``.amc`` file holds one line per bone
per frame with the values of that bone's degrees of freedom (DOF).

ASF conventions implemented here:

* ``:units`` -- ``length L`` means a file length ``v`` is ``v / L`` inches, so one file unit is
  ``0.0254 / L`` metres (default ``L = 1``). HDM05 and CMU write ``length 0.45``: one unit is
  ``0.0254 / 0.45 = 0.05644`` m. The HDM05 data confirm it: the three actors (bd, bk, dg) then
  have thigh+shank lengths of 0.81-0.92 m, upper arms of 0.26-0.31 m and a head top 1.60-1.80 m
  above the floor when standing, while reading the values as inches (no 1/L), centimetres or
  metres would make them 0.72-0.81 m, 0.28-0.32 m or 28-32 m tall. The AMC root translation is
  in the same unit, and with this scale the feet rest on the floor plane y = 0.
  ``angle deg|rad`` gives the unit of every angle (``axis``, ``orientation`` and AMC values);
  an AMC ``:RADIANS`` / ``:DEGREES`` header overrides it for that motion file.
* ``:root`` -- ``order`` lists the root's AMC channels (e.g. ``TX TY TZ RX RY RZ``), ``axis``
  the Euler order of ``orientation``, ``position`` a constant offset added to the AMC translation.
* ``:bonedata`` -- per bone: ``direction`` (unit vector, world frame, rest pose), ``length``,
  ``axis a b c XYZ`` (the bone's local frame as Euler angles), ``dof`` (subset of rx ry rz, in
  AMC order) and ``limits`` (parsed, not enforced).
* ``:hierarchy`` -- ``parent child1 child2 ...`` lines.

Forward kinematics (vectorised over all frames, one loop over bones in topological order)::

    C  = E(axis)            # (3, 3) bone frame, static
    M  = E(dof values)      # (T, 3, 3) motion for this frame
    G  = G_parent @ C @ M @ C^T
    p  = p_parent + length * G @ direction

where ``E`` composes axis rotations so that the *first* listed axis is applied first
(``XYZ`` -> ``Rz @ Ry @ Rx``). A joint named after a bone is the *distal end* of that bone
(``lfemur`` is the left knee, ``ltibia`` the left ankle); joint 0 is ``root``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftpose.errors import DataError

__all__ = [
    "AmcMotion",
    "AsfBone",
    "AsfSkeleton",
    "axis_rotations",
    "forward_kinematics",
    "load_asf_amc",
    "read_amc",
    "read_asf",
]

_ROT_DOFS = ("rx", "ry", "rz")
_INCH = 0.0254


# --------------------------------------------------------------------------------------- rotations
def axis_rotations(angles: np.ndarray, axes: str) -> np.ndarray:
    """Product of elementary rotations, left to right: ``R_axes[0](a0) @ R_axes[1](a1) @ ...``.

    Args:
        angles: (..., K) angles in radians.
        axes: K letters from ``xyz`` (case-insensitive), one per angle.

    Returns:
        (..., 3, 3) rotation matrices (float64).
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.shape[-1] != len(axes):
        raise ValueError(f"{len(axes)} axes {axes!r} for angles of shape {angles.shape}")
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, ax in enumerate(axes.lower()):
        out = out @ _elementary(angles[..., k], ax)
    return out


def _elementary(theta: np.ndarray, axis: str) -> np.ndarray:
    """Rotation by ``theta`` (...) radians about ``axis`` in {x, y, z} -> (..., 3, 3)."""
    if axis not in ("x", "y", "z"):
        raise ValueError(f"unknown rotation axis {axis!r}")
    theta = np.asarray(theta, dtype=np.float64)
    c, s = np.cos(theta), np.sin(theta)
    k = "xyz".index(axis)
    i, j = (k + 1) % 3, (k + 2) % 3  # the rotated plane, in right-handed order
    out = np.zeros(theta.shape + (3, 3))
    out[..., k, k] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _euler_applied_in_order(angles: np.ndarray, axes: str) -> np.ndarray:
    """Acclaim Euler convention: first listed axis applied first (``XYZ`` -> Rz @ Ry @ Rx)."""
    return axis_rotations(angles[..., ::-1], axes[::-1])


# ----------------------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class AsfBone:
    """One ``:bonedata`` entry. Vectors are in file units / the file's angle unit."""

    name: str
    id: int
    direction: np.ndarray  # (3,) unit vector, world frame in the rest pose
    length: float
    axis: np.ndarray  # (3,) Euler angles of the bone's local frame, radians
    axis_order: str  # e.g. "XYZ"
    dof: tuple[str, ...]  # e.g. ("rx", "ry", "rz")
    limits: np.ndarray  # (len(dof), 2), radians for rotations


@dataclass(frozen=True)
class AsfSkeleton:
    """A parsed ``.asf`` file.

    ``bones`` is in topological order (every parent before its children); ``joint_names`` is
    ``("root",) + bone names`` and ``parents`` the matching parent indices (-1 for the root).
    """

    path: str | None
    name: str
    length_unit: float  # the ``:units length`` value
    angle_unit: str  # "deg" or "rad"
    root_order: tuple[str, ...]  # AMC channels of the root, e.g. ("tx", ..., "rz")
    root_axis: str
    root_position: np.ndarray  # (3,)
    root_orientation: np.ndarray  # (3,) radians
    bones: tuple[AsfBone, ...]
    parents: tuple[int, ...]
    joint_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", ("root",) + tuple(b.name for b in self.bones))

    @property
    def metres_per_unit(self) -> float:
        """Metres per file length unit: ``0.0254 / length`` (file lengths are inches * length)."""
        return _INCH / self.length_unit

    def bone(self, name: str) -> AsfBone:
        for b in self.bones:
            if b.name == name:
                return b
        raise KeyError(name)


@dataclass(frozen=True)
class AmcMotion:
    """A parsed ``.amc`` file: ``values[name]`` is (T, n_dof) in file units, angles in radians.

    ``values["root"]`` follows ``AsfSkeleton.root_order``; ``frame_numbers`` is (T,).
    """

    path: str | None
    frame_numbers: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def num_frames(self) -> int:
        return int(self.frame_numbers.shape[0])


# ------------------------------------------------------------------------------------- ASF parsing
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(path, "file", f"cannot read: {e}") from e
    # HDM05 headers carry Latin-1 bytes (a Windows path with an umlaut); numbers are ASCII. A
    # UTF-8 byte-order mark some editors add is skipped.
    return data.removeprefix(b"\xef\xbb\xbf").decode("latin-1")


def _floats(path: Path, fld: str, tokens: list[str], n: int | None = None) -> np.ndarray:
    if n is not None and len(tokens) != n:
        raise DataError(path, fld, f"expected {n} numbers, got {len(tokens)}: {' '.join(tokens)}")
    try:
        out = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise DataError(path, fld, f"not a number in {' '.join(tokens)!r}") from None
    if not np.isfinite(out).all():
        raise DataError(path, fld, f"not a finite number in {' '.join(tokens)!r}")
    return out


def _sections(path: Path, text: str) -> dict[str, list[list[str]]]:
    """Split an ASF into ``{keyword: [token lines]}`` (comments and blank lines dropped)."""
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            key, _, rest = line[1:].partition(" ")
            current = out.setdefault(key.lower(), [])
            if rest.strip():
                current.append(rest.split())
            continue
        if current is None:
            raise DataError(path, "header", f"text before the first ':' section: {line!r}")
        current.append(line.split())
    for key in ("root", "bonedata", "hierarchy"):
        if key not in out:
            raise DataError(path, f":{key}", "section missing")
    return out


def _parse_units(path: Path, lines: list[list[str]]) -> tuple[float, str]:
    length, angle = 1.0, "deg"
    for toks in lines:
        if toks[0] == "length":
            length = float(_floats(path, ":units/length", toks[1:], 1)[0])
            if not length > 0:
                raise DataError(path, ":units/length", f"must be positive, got {length}")
        elif toks[0] == "angle":
            angle = toks[1].lower() if len(toks) > 1 else ""
            if angle not in ("deg", "rad"):
                raise DataError(path, ":units/angle", f"expected 'deg' or 'rad', got {angle!r}")
    return length, angle


def _parse_bone(path: Path, block: list[list[str]], to_rad: float) -> AsfBone:
    fields: dict[str, list[str]] = {}
    limits: list[str] = []
    in_limits = False
    for toks in block:
        if toks[0].startswith("(") and in_limits:
            limits.extend(toks)
            continue
        in_limits = toks[0] == "limits"
        if in_limits:
            limits.extend(toks[1:])
        else:
            fields[toks[0]] = toks[1:]
    name = fields.get("name", [""])[0] if fields.get("name") else ""
    where = f":bonedata/{name or '?'}"
    for key in ("name", "direction", "length"):
        if key not in fields:
            raise DataError(path, f"{where}/{key}", "missing")
    direction = _floats(path, f"{where}/direction", fields["direction"], 3)
    norm = np.linalg.norm(direction)
    if not norm > 0:
        raise DataError(path, f"{where}/direction", "zero vector")
    length = float(_floats(path, f"{where}/length", fields["length"], 1)[0])
    axis_toks = fields.get("axis", ["0", "0", "0", "XYZ"])
    if len(axis_toks) != 4 or sorted(axis_toks[3].upper()) != ["X", "Y", "Z"]:
        raise DataError(path, f"{where}/axis", f"expected 'a b c XYZ', got {' '.join(axis_toks)}")
    axis = _floats(path, f"{where}/axis", axis_toks[:3], 3) * to_rad
    dof = tuple(t.lower() for t in fields.get("dof", []))
    bad = [d for d in dof if d not in _ROT_DOFS]
    if bad or len(set(dof)) != len(dof):
        raise DataError(path, f"{where}/dof", f"unsupported or repeated DOFs {bad or dof}")
    lim = _floats(
        path, f"{where}/limits", " ".join(limits).replace("(", " ").replace(")", " ").split()
    )
    if dof and lim.size and lim.size != 2 * len(dof):
        raise DataError(path, f"{where}/limits", f"{lim.size // 2} ranges for {len(dof)} DOFs")
    lim = lim.reshape(-1, 2) * to_rad if lim.size else np.zeros((0, 2))
    bone_id = -1
    if fields.get("id"):
        if not fields["id"][0].lstrip("-").isdigit():
            raise DataError(path, f"{where}/id", f"not an integer: {fields['id'][0]!r}")
        bone_id = int(fields["id"][0])
    return AsfBone(name, bone_id, direction / norm, length, axis, axis_toks[3].upper(), dof, lim)


def _parse_bonedata(path: Path, lines: list[list[str]], to_rad: float) -> list[AsfBone]:
    bones: list[AsfBone] = []
    block: list[list[str]] | None = None
    for toks in lines:
        if toks[0] == "begin":
            block = []
        elif toks[0] == "end":
            if block is None:
                raise DataError(path, ":bonedata", "'end' without 'begin'")
            bones.append(_parse_bone(path, block, to_rad))
            block = None
        elif block is None:
            raise DataError(path, ":bonedata", f"line outside begin/end: {' '.join(toks)}")
        else:
            block.append(toks)
    if block is not None:
        raise DataError(path, ":bonedata", "last bone has no 'end'")
    names = [b.name for b in bones]
    dup = {n for n in names if names.count(n) > 1}
    if dup or "root" in names:
        raise DataError(
            path, ":bonedata", f"duplicate bone names {sorted(dup | {'root'} & set(names))}"
        )
    return bones


def _topological(
    path: Path, bones: list[AsfBone], lines: list[list[str]]
) -> tuple[list[AsfBone], list[int]]:
    by_name = {b.name: b for b in bones}
    children: dict[str, list[str]] = {}
    for toks in lines:
        if toks[0] in ("begin", "end"):
            continue
        for n in toks:
            if n != "root" and n not in by_name:
                raise DataError(path, ":hierarchy", f"unknown bone {n!r}")
        children.setdefault(toks[0], []).extend(toks[1:])
    order: list[str] = []
    parents: list[int] = []
    stack = [(c, 0) for c in reversed(children.get("root", []))]
    while stack:
        name, parent = stack.pop()
        if name in order:
            raise DataError(path, ":hierarchy", f"bone {name!r} has two parents or a cycle")
        order.append(name)
        parents.append(parent)
        stack.extend((c, len(order)) for c in reversed(children.get(name, [])))
    missing = sorted(set(by_name) - set(order))
    if missing:
        raise DataError(path, ":hierarchy", f"bones not connected to root: {missing}")
    return [by_name[n] for n in order], [-1] + parents


def read_asf(path: str | Path) -> AsfSkeleton:
    """Parse an ``.asf`` skeleton file; raises ``DataError`` naming the offending field."""
    path = Path(path)
    sec = _sections(path, _read_text(path))
    length, angle = _parse_units(path, sec.get("units", []))
    to_rad = np.pi / 180.0 if angle == "deg" else 1.0
    root = {t[0].lower(): t[1:] for t in sec["root"]}
    order = tuple(t.lower() for t in root.get("order", "tx ty tz rx ry rz".split()))
    bad = [c for c in order if c not in ("tx", "ty", "tz") + _ROT_DOFS]
    if bad or len(set(order)) != len(order):
        raise DataError(path, ":root/order", f"bad channels {' '.join(order)}")
    axis = (root.get("axis") or [""])[0].upper()
    if sorted(axis) != ["X", "Y", "Z"]:
        raise DataError(path, ":root/axis", f"expected a permutation of XYZ, got {axis!r}")
    position = _floats(path, ":root/position", root.get("position", ["0"] * 3), 3)
    orientation = _floats(path, ":root/orientation", root.get("orientation", ["0"] * 3), 3)
    bones, parents = _topological(
        path, _parse_bonedata(path, sec["bonedata"], to_rad), sec["hierarchy"]
    )
    name = sec.get("name", [["?"]])[0][0] if sec.get("name") else "?"
    return AsfSkeleton(
        path=str(path), name=name, length_unit=length, angle_unit=angle, root_order=order,
        root_axis=axis, root_position=position, root_orientation=orientation * to_rad,
        bones=tuple(bones), parents=tuple(parents),
    )  # fmt: skip


# ------------------------------------------------------------------------------------- AMC parsing
_FRAME_RE = re.compile(r"^\d+$")


def read_amc(path: str | Path, skeleton: AsfSkeleton, stride: int = 1) -> AmcMotion:
    """Parse an ``.amc`` motion for ``skeleton``; values come back in radians / file lengths.

    ``stride > 1`` keeps every ``stride``-th frame (``frame_numbers`` keeps the file's numbers);
    a well-formed file then converts only those frames' numbers.

    Every frame must list the same bones in the same order with exactly their DOF count; frame
    numbers must be consecutive. Parsing is bulk: a well-formed file is one ``split`` of the
    motion text, a check of the name and frame-number columns and one float conversion per
    column; any other file goes through a line-by-line pass that names the frame and bone at
    fault.
    """
    path = Path(path)
    text = _read_text(path)
    raw_lines = text.splitlines()
    to_rad = np.pi / 180.0 if skeleton.angle_unit == "deg" else 1.0
    start = len(raw_lines)
    for i, raw in enumerate(raw_lines):
        toks = raw.split()
        if not toks or toks[0].startswith("#"):
            continue
        if toks[0].startswith(":"):
            key = toks[0].upper()
            to_rad = {":DEGREES": np.pi / 180.0, ":RADIANS": 1.0}.get(key, to_rad)
            continue
        start = i
        break
    n_dof = {"root": len(skeleton.root_order)} | {b.name: len(b.dof) for b in skeleton.bones}
    body_text = "\n".join(raw_lines[start:])
    stride = max(int(stride), 1)
    fast = None if "#" in body_text else _amc_table_fast(body_text.split(), n_dof, stride)
    if fast is not None:
        frame_numbers, names, table = fast
    else:
        frame_numbers, names, table = _amc_table_checked(path, raw_lines[start:], n_dof)
        frame_numbers, table = frame_numbers[::stride], table[::stride]
    if not np.isfinite(table).all():
        raise DataError(path, "frames", "a DOF value is not finite")
    values: dict[str, np.ndarray] = {}
    col = 0
    for n in names:
        v = table[:, col : col + n_dof[n]].copy()
        col += n_dof[n]
        if n == "root":
            rot = np.array([c.startswith("r") for c in skeleton.root_order])
            v[:, rot] *= to_rad
        else:
            v *= to_rad
        values[n] = v
    return AmcMotion(path=str(path), frame_numbers=frame_numbers, values=values)


def _amc_table_fast(
    tokens: list[str], n_dof: dict[str, int], stride: int = 1
) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """``(frame numbers (T,), bone names, values (T, D))`` of every ``stride``-th frame of a
    well-formed AMC body, or None for anything else (left to :func:`_amc_table_checked` to name
    the fault)."""
    if not tokens or not tokens[0].isdigit():
        return None
    names: list[str] = []
    cols: list[int] = []  # token offsets of the values within a frame
    pos = 1
    while pos < len(tokens) and tokens[pos] in n_dof:
        names.append(tokens[pos])
        cols.extend(range(pos + 1, pos + 1 + n_dof[tokens[pos]]))
        pos += 1 + n_dof[tokens[pos]]
    width = pos
    if not names or len(tokens) % width or len(set(names)) != len(names):
        return None
    if any(n_dof[n] > 0 and n not in names for n in n_dof):
        return None
    offsets = [1 + sum(1 + n_dof[m] for m in names[:k]) for k in range(len(names))]
    if any(set(tokens[o::width]) != {n} for o, n in zip(offsets, names)):
        return None
    try:
        frames = np.array(tokens[0::width], dtype=np.int64)
        table = np.array([tokens[c :: width * stride] for c in cols], dtype=np.float64).T
    except ValueError:
        return None
    if not (np.diff(frames) == 1).all():
        return None
    return frames[::stride], names, table.reshape(-1, len(cols))


def _amc_table_checked(
    path: Path, raw_lines: list[str], n_dof: dict[str, int]
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The line-by-line AMC body parser: raises ``DataError`` naming the frame and bone."""
    body = [t for t in (ln.split() for ln in raw_lines) if t and not t[0].startswith("#")]
    if not body:
        raise DataError(path, "frames", "no frames")
    is_frame = np.array([len(t) == 1 and _FRAME_RE.match(t[0]) is not None for t in body])
    starts = np.flatnonzero(is_frame)
    if starts.size == 0 or starts[0] != 0:
        raise DataError(path, "frames", f"expected a frame number, got {' '.join(body[0])!r}")
    sizes = np.diff(np.append(starts, len(body))) - 1
    per_frame = int(sizes[0])
    frame_numbers = np.array([int(body[s][0]) for s in starts], dtype=np.int64)
    if (sizes != per_frame).any():
        k = int(np.flatnonzero(sizes != per_frame)[0])
        msg = f"has {sizes[k]} bone lines, frame {frame_numbers[0]} has {per_frame}"
        raise DataError(path, f"frame {frame_numbers[k]}", msg + " (truncated file?)")
    if (np.diff(frame_numbers) != 1).any():
        k = int(np.flatnonzero(np.diff(frame_numbers) != 1)[0]) + 1
        raise DataError(path, f"frame {frame_numbers[k]}", "frame numbers are not consecutive")

    rows = [t for t, f in zip(body, is_frame) if not f]  # T * per_frame lines
    names = [t[0] for t in rows[:per_frame]]
    for n in names:
        if n not in n_dof:
            raise DataError(path, f"frame {frame_numbers[0]}: bone {n!r}", "not in the skeleton")
    needed = [n for n, k in n_dof.items() if k > 0 and n not in names]
    if needed:
        raise DataError(path, f"frame {frame_numbers[0]}", f"bones with DOFs missing: {needed}")
    expected = np.tile([n_dof[n] + 1 for n in names], len(starts))
    got = np.fromiter((len(t) for t in rows), dtype=np.int64, count=len(rows))
    row_names = np.array([t[0] for t in rows], dtype=object).reshape(-1, per_frame)
    if (row_names != np.array(names, dtype=object)).any() or (got != expected).any():
        bad = np.flatnonzero((row_names.ravel() != np.tile(names, len(starts))) | (got != expected))
        r = int(bad[0])
        fr, nm = frame_numbers[r // per_frame], rows[r][0]
        if nm not in n_dof:
            raise DataError(path, f"frame {fr}: bone {nm!r}", "not in the skeleton")
        if nm != names[r % per_frame]:
            raise DataError(path, f"frame {fr}: bone {nm!r}", f"expected {names[r % per_frame]!r}")
        raise DataError(
            path, f"frame {fr}: bone {nm!r}", f"expected {n_dof[nm]} values, got {got[r] - 1}"
        )
    try:
        flat = np.array([v for t in rows for v in t[1:]], dtype=np.float64)
    except ValueError:
        raise DataError(path, "frames", "a DOF value is not a number") from None
    return frame_numbers, names, flat.reshape(len(starts), -1)  # (T, D)


# -------------------------------------------------------------------------- forward kinematics
def forward_kinematics(skeleton: AsfSkeleton, motion: AmcMotion) -> np.ndarray:
    """World positions of all joints, in file length units and the file's (Y-up) world frame.

    Returns:
        (T, J, 3) float64 with ``J = len(skeleton.joint_names)`` (root + one joint per bone,
        each bone's distal end).
    """
    T = motion.num_frames
    order = skeleton.root_order
    root = motion.values.get("root", np.zeros((T, len(order))))
    trans = np.zeros((T, 3))
    for k, c in enumerate(order):
        if c.startswith("t"):
            trans[:, "xyz".index(c[1])] = root[:, k]
    rot_cols = [k for k, c in enumerate(order) if c.startswith("r")]
    rot_axes = "".join(order[k][1] for k in rot_cols)
    c_root = _euler_applied_in_order(skeleton.root_orientation, skeleton.root_axis)
    m_root = _euler_applied_in_order(root[:, rot_cols], rot_axes)  # (T, 3, 3)
    glob = [c_root @ m_root @ c_root.T]
    pos = [skeleton.root_position + trans]
    for j, bone in enumerate(skeleton.bones, start=1):
        p = skeleton.parents[j]
        c = _euler_applied_in_order(bone.axis, bone.axis_order)
        if bone.dof:
            m = _euler_applied_in_order(motion.values[bone.name], "".join(d[1] for d in bone.dof))
            g = glob[p] @ (c @ m @ c.T)
        else:
            g = glob[p]
        glob.append(g)
        pos.append(pos[p] + g @ (bone.length * bone.direction))
    return np.stack(pos, axis=1)


def load_asf_amc(
    amc_path: str | Path, asf_path: str | Path | AsfSkeleton, *, metres: bool = True
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a motion and run forward kinematics.

    Args:
        amc_path: the ``.amc`` motion.
        asf_path: its ``.asf`` skeleton (path or an already parsed ``AsfSkeleton``).
        metres: scale by ``AsfSkeleton.metres_per_unit`` (else keep file units).

    Returns:
        positions (T, J, 3) float64, in the file's world frame (Y up), and the J joint names.
    """
    skel = asf_path if isinstance(asf_path, AsfSkeleton) else read_asf(asf_path)
    pos = forward_kinematics(skel, read_amc(amc_path, skel))
    if metres:
        pos = pos * skel.metres_per_unit
    return pos, skel.joint_names

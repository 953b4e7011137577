"""Retargeting of mocap skeletons to the Human3.6M 17-joint layout, and temporal resampling.

Output convention (all sources): metres, a Human3.6M-like world frame with Z up and X/Y the ground
plane; both sources used here (HDM05, Bandai-Namco) already have their floor at height 0 in the
source Y-up frame, so the floor stays at z = 0. The Y-up -> Z-up change is the proper rotation
``(x, y, z) -> (x, -z, y)`` (+90 degrees about X), so handedness and left/right are kept.

Joint sources (each actor keeps its own proportions)::

    H36M joint      Vicon ASF (HDM05, CMU)             Bandai-Namco BVH
    --------------  ---------------------------------  ------------------------------------
    0  Hip          midpoint of RHip and LHip          midpoint of RHip and LHip
    1  RHip         rhipjoint end (femoral head)       UpperLeg_R
    2  RKnee        rfemur end                         LowerLeg_R
    3  RFoot        rtibia end (ankle)                 Foot_R (ankle)
    4-6 LHip/LKnee/LFoot   lhipjoint/lfemur/ltibia ends   UpperLeg_L/LowerLeg_L/Foot_L
    7  Spine        the point at 22 % of the arc length of the spine polyline Hip -> ... ->
                    Thorax (ASF: Hip, root, lowerback, upperback, thorax ends -- it falls at
                    ``root``, where the lumbar spine leaves the pelvis; Bandai: Hip, Hips,
                    Spine, Chest, Neck -- on the pelvis bone Hips -> Spine)
    8  Thorax       thorax end (base of neck)          Neck (base of neck)
    9  Neck/Nose    the point at 50 % of the arc length of the polyline Thorax -> ... -> Head
                    (ASF: thorax, lowerneck, upperneck, head ends; Bandai: Neck, Head, head top);
                    it lies on the neck/head axis (no nose offset: the sources have no face)
    10 Head         head end (top of the head)         extrapolated head top (see below)
    11 LShoulder    lclavicle end (= humerus start)    UpperArm_L
    12 LElbow       lhumerus end                       LowerArm_L
    13 LWrist       lwrist end (lradius + lwrist form  Hand_L
                    the forearm; lwrist's only DOF is
                    the twist ry about its axis)
    14-16 RShoulder/RElbow/RWrist   the right-hand twins

**Fixed points.** Every joint of the table is a fixed point of one source bone: a joint centre,
or a point at a constant fraction along one bone (the arc-length fractions of Spine and
Neck/Nose are resolved once per clip, from the bone lengths, into "fraction t of bone k"), and
Hip is the midpoint of two points fixed to the pelvis (:func:`source_points`).

**Rigid output.** Fixed points alone do not give constant Human3.6M bones: a Human3.6M bone such
as Spine -> Thorax spans several source articulations (lumbar, thoracic and neck joints; in the
Bandai rig also the ``Shoulder_L/R`` bones between Thorax and the shoulder joints). The output
therefore gives every bone its median length over the clip, keeping each bone's direction, from
the Hip outwards (:func:`set_bone_lengths`): a joint moves by the sum of its ancestors' length
deviations, which is small where each source span is nearly rigid. That is why Spine sits at
22 % and not half way up the trunk: the Vicon skeletons' spine pivots on the pelvis at ``root``,
10 cm above the hip centres (20-23 % of the arc for bd, bk, dg), and any point above it changes
its distance to Hip with every lumbar flexion (at 50 %: a std of 10.5 mm within a HDM05 clip,
101 mm peak to peak), which would move the whole upper body. Measured on every shared file
(``tests/test_mocap.py``), every output bone's std over a clip is below 1e-6 mm; the joints move
from their fixed points by 0.9 mm on average over HDM05 (upper body 1.7 mm, at most 18 mm in the
deepest bends) and 0.7 mm over Bandai (upper body 1.3 mm; at most 57 mm, in one frame of a deep
dance bend where the Spine -> Thorax chord of the Bandai spine shortens by 5.6 cm). Bandai uses
the same fractions as HDM05, so both put Spine and Neck/Nose at the same place on the trunk.

Bandai head top: the file's ``Head`` end site has a zero offset, so the head top is extrapolated
along the head's own axis (the direction of the Neck->Head offset, expressed in the Head joint's
frame) at a distance chosen so that the Thorax->head-top arc length is ``HEAD_TO_TRUNK`` (0.54)
times the Hip->Thorax arc length. 0.54 is the mean of that ratio over the three HDM05 skeletons
(bd 0.62, bk 0.52, dg 0.47), which were fitted to real actors; for the Bandai rig
it puts the head top 17 cm beyond the Head joint, about 1.58 m above the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftpose.data.mocap.bvh import BvhMotion, bvh_forward_kinematics, read_bvh
from liftpose.data.skeleton import H36M17, Skeleton
from liftpose.errors import DataError

__all__ = [
    "BANDAI_MAP",
    "HDM05_MAP",
    "HEAD_TO_TRUNK",
    "SOURCE_MAPS",
    "SourceMap",
    "bandai_head_top_offset",
    "fixed_point_on_chain",
    "load_bandai_clip",
    "resample",
    "retarget_to_h36m17",
    "set_bone_lengths",
    "source_points",
    "y_up_to_z_up",
]

#: (Thorax -> head top) / (Hip -> Thorax) arc-length ratio used to extrapolate a missing head top.
HEAD_TO_TRUNK = 0.54


@dataclass(frozen=True)
class SourceMap:
    """Names of the source joints feeding each Human3.6M joint (see the module table).

    ``spine`` runs from the first joint above the hips to the Thorax joint (its last entry);
    ``head`` runs from the first joint above the Thorax to the head top (its last entry).
    Consecutive entries of both chains must be joined by one bone (so a point between them is a
    fixed point of that bone).
    """

    rhip: str
    rknee: str
    rfoot: str
    lhip: str
    lknee: str
    lfoot: str
    lshoulder: str
    lelbow: str
    lwrist: str
    rshoulder: str
    relbow: str
    rwrist: str
    spine: tuple[str, ...]
    head: tuple[str, ...]
    spine_fraction: float = 0.5  # Spine: this fraction of the Hip -> Thorax arc length
    neck_fraction: float = 0.5  # Neck/Nose: this fraction of the Thorax -> head top arc length


#: Vicon ASF skeletons (HDM05 and CMU share the bone names). Joints are bone ends.
HDM05_MAP = SourceMap(
    rhip="rhipjoint", rknee="rfemur", rfoot="rtibia",
    lhip="lhipjoint", lknee="lfemur", lfoot="ltibia",
    lshoulder="lclavicle", lelbow="lhumerus", lwrist="lwrist",
    rshoulder="rclavicle", relbow="rhumerus", rwrist="rwrist",
    spine=("root", "lowerback", "upperback", "thorax"),
    head=("lowerneck", "upperneck", "head"),
    spine_fraction=0.22,
)  # fmt: skip

#: Bandai-Namco-Research-Motiondataset BVH rig; ``Head_end`` must carry the extrapolated head top
#: (``load_bandai_clip`` sets it with ``bandai_head_top_offset``).
BANDAI_MAP = SourceMap(
    rhip="UpperLeg_R", rknee="LowerLeg_R", rfoot="Foot_R",
    lhip="UpperLeg_L", lknee="LowerLeg_L", lfoot="Foot_L",
    lshoulder="UpperArm_L", lelbow="LowerArm_L", lwrist="Hand_L",
    rshoulder="UpperArm_R", relbow="LowerArm_R", rwrist="Hand_R",
    spine=("Hips", "Spine", "Chest", "Neck"),
    head=("Head", "Head_end"),
    spine_fraction=0.22,
)  # fmt: skip

SOURCE_MAPS: dict[str, SourceMap] = {"hdm05": HDM05_MAP, "cmu": HDM05_MAP, "bandai": BANDAI_MAP}


def y_up_to_z_up(pos: np.ndarray) -> np.ndarray:
    """Rotate a Y-up frame to Z-up: (..., 3) ``(x, y, z) -> (x, -z, y)``."""
    return np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1)


def fixed_point_on_chain(chain: np.ndarray, fraction: float) -> np.ndarray:
    """The point at ``fraction`` of a chain's arc length, carried by the bone it falls on.

    The chain's segments are bones (constant lengths), so the arc-length point is resolved once,
    from the median segment lengths over frames, into "fraction ``t`` of segment ``k``"; every
    frame then takes ``chain[k] + t * (chain[k + 1] - chain[k])``, a fixed point of that bone.

    Args:
        chain: (T, K, C) polyline vertices, K >= 2.
        fraction: in [0, 1].

    Returns:
        (T, C) points.
    """
    seg = np.median(np.linalg.norm(np.diff(chain, axis=1), axis=-1), axis=0)  # (K-1,)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    target = float(np.clip(fraction, 0.0, 1.0)) * cum[-1]
    k = int(np.clip(np.searchsorted(cum, target, side="right") - 1, 0, len(seg) - 1))
    t = (target - cum[k]) / seg[k] if seg[k] > 0 else 0.0
    return chain[:, k] + min(max(t, 0.0), 1.0) * (chain[:, k + 1] - chain[:, k])


def source_points(
    positions: np.ndarray,
    names: tuple[str, ...] | list[str],
    mapping: SourceMap | str,
    *,
    path: str | Path | None = None,
) -> np.ndarray:
    """The 17 fixed points of the module table, in the source's units and frame.

    Args:
        positions: (T, J, 3) source world positions.
        names: the J source joint names.
        mapping: a ``SourceMap`` or a key of ``SOURCE_MAPS``.
        path: source file, only used in error messages.

    Returns:
        (T, 17, 3) float64.

    Raises:
        DataError: the skeleton lacks a joint the map names.
    """
    m = SOURCE_MAPS[mapping] if isinstance(mapping, str) else mapping
    index = {n: i for i, n in enumerate(names)}

    def get(*joints: str) -> np.ndarray:
        missing = [j for j in joints if j not in index]
        if missing:
            raise DataError(path, "joints", f"source skeleton lacks {missing} needed for H36M-17")
        return np.asarray(positions, dtype=np.float64)[:, [index[j] for j in joints]]

    legs = get(m.rhip, m.rknee, m.rfoot, m.lhip, m.lknee, m.lfoot)  # (T, 6, 3)
    arms = get(m.lshoulder, m.lelbow, m.lwrist, m.rshoulder, m.relbow, m.rwrist)
    hip = 0.5 * (legs[:, 0] + legs[:, 3])
    spine_chain = np.concatenate([hip[:, None], get(*m.spine)], axis=1)
    thorax = spine_chain[:, -1]
    head_chain = np.concatenate([thorax[:, None], get(*m.head)], axis=1)
    return np.concatenate(
        [
            hip[:, None], legs,
            fixed_point_on_chain(spine_chain, m.spine_fraction)[:, None], thorax[:, None],
            fixed_point_on_chain(head_chain, m.neck_fraction)[:, None], head_chain[:, -1:],
            arms,
        ],
        axis=1,
    )  # fmt: skip


def set_bone_lengths(
    pos: np.ndarray, lengths: np.ndarray, skeleton: Skeleton = H36M17
) -> np.ndarray:
    """Give every bone its length: from the root outwards, each joint is put at its bone's
    length from its (already placed) parent, in the direction it had.

    Args:
        pos: (T, J, 3) positions.
        lengths: (J - 1,) lengths in the order of ``skeleton.edges()`` (units of ``pos``).
        skeleton: parents listed before children.

    Returns:
        (T, J, 3) float64; a joint that coincides with its parent is put along the input
        frame's +z axis.
    """
    out = np.array(pos, dtype=np.float64)
    for (j, p), length in zip(skeleton.edges(), np.asarray(lengths, dtype=np.float64)):
        d = np.asarray(pos[:, j], dtype=np.float64) - pos[:, p]
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        unit = np.where(n > 1e-12, d / np.maximum(n, 1e-12), np.array([0.0, 0.0, 1.0]))
        out[:, j] = out[:, p] + length * unit
    return out


def retarget_to_h36m17(
    positions: np.ndarray,
    names: tuple[str, ...] | list[str],
    mapping: SourceMap | str,
    *,
    scale: float = 1.0,
    y_up: bool = True,
    rigid: bool = True,
    path: str | Path | None = None,
) -> np.ndarray:
    """Source joint positions -> Human3.6M 17-joint positions (see the module docstring).

    Args:
        positions: (T, J, 3) source world positions.
        names: the J source joint names.
        mapping: a ``SourceMap`` or a key of ``SOURCE_MAPS``.
        scale: metres per source unit (e.g. 0.01 for centimetres).
        y_up: the source frame is Y-up (rotated to Z-up); else it is already Z-up.
        rigid: constant bone lengths: every bone set to its median length over the clip
            (:func:`set_bone_lengths`); False gives the fixed points (:func:`source_points`).
        path: source file, only used in error messages.

    Returns:
        (T, 17, 3) float64 in metres, world frame Z up.

    Raises:
        DataError: the skeleton lacks a joint the map names, or a value is not finite.
    """
    out = source_points(positions, names, mapping, path=path) * scale
    if not np.isfinite(out).all():
        frames = np.unique(np.nonzero(~np.isfinite(out))[0])
        raise DataError(path, "frames", f"non-finite joint positions, first frames {frames[:5]}")
    if rigid:
        out = set_bone_lengths(out, np.median(H36M17.bone_lengths(out), axis=0))
    return y_up_to_z_up(out) if y_up else out


# ------------------------------------------------------------------------------------- Bandai BVH
def bandai_head_top_offset(bvh: BvhMotion) -> np.ndarray:
    """Head-top OFFSET (3,) for the ``Head_end`` site of a Bandai-Namco BVH rig (file units).

    Direction: the Neck->Head offset (the head continues the neck axis in the rest pose), in the
    Head joint's frame. Length: ``HEAD_TO_TRUNK`` * (Hip->Thorax rest arc length) minus the
    Neck->Head length, Hip being the midpoint of the two hip joints.
    """
    m = BANDAI_MAP
    idx = {n: i for i, n in enumerate(bvh.names)}
    need = [m.lhip, m.rhip, *m.spine, "Head"]
    missing = [n for n in need if n not in idx]
    if missing:
        raise DataError(bvh.path, "HIERARCHY", f"not a Bandai-Namco rig: no joints {missing}")
    off = bvh.offsets
    hip_to_pelvis = 0.5 * (off[idx[m.lhip]] + off[idx[m.rhip]])  # in the Hips frame
    trunk = np.linalg.norm(hip_to_pelvis) + sum(np.linalg.norm(off[idx[n]]) for n in m.spine[1:])
    neck = off[idx["Head"]]
    neck_len = float(np.linalg.norm(neck))
    if neck_len == 0:
        raise DataError(bvh.path, "HIERARCHY/Head/OFFSET", "zero Neck->Head offset")
    return neck / neck_len * max(HEAD_TO_TRUNK * trunk - neck_len, 0.0)


def load_bandai_clip(path: str | Path) -> tuple[np.ndarray, float]:
    """A Bandai-Namco BVH clip as Human3.6M-17 poses.

    Returns:
        positions (T, 17, 3) float32 in metres (source centimetres * 0.01), world Z up, floor at
        z = 0, and the clip's frame rate (30 Hz for dataset 1).
    """
    bvh = read_bvh(path)
    pos = bvh_forward_kinematics(bvh, {"Head_end": bandai_head_top_offset(bvh)})
    out = retarget_to_h36m17(pos, bvh.names, BANDAI_MAP, scale=0.01, path=path)
    return out.astype(np.float32), bvh.fps


# -------------------------------------------------------------------------------------- resampling
def resample(
    positions: np.ndarray, src_fps: float, dst_fps: float, skeleton: Skeleton | None = None
) -> np.ndarray:
    """Linear resampling in time, keeping both endpoints.

    ``T' = max(round((T - 1) * dst_fps / src_fps), 1) + 1`` samples are spread evenly over the
    clip's duration ``(T - 1) / src_fps``, so the first and last frames are kept exactly and the
    spacing differs from ``1 / dst_fps`` by less than half a frame over the whole clip. A clip of
    one frame is returned as is.

    Interpolating positions shortens a rotating bone between two samples (its chord), by up to
    about 1 % at 30 Hz for fast limbs; with ``skeleton`` the bones of the result are set back
    to the input's median lengths (:func:`set_bone_lengths`).

    Args:
        positions: (T, J, C) (any trailing shape; time is axis 0).
        src_fps, dst_fps: positive frame rates.
        skeleton: the joints' tree, to keep bone lengths (positions (T, J, 3)).

    Returns:
        (T', J, C) array of the input's floating dtype.
    """
    if not (src_fps > 0 and dst_fps > 0):
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {dst_fps}")
    x = np.asarray(positions)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    T = x.shape[0]
    if T < 2:
        return x.copy()
    n = max(int(round((T - 1) * dst_fps / src_fps)), 1) + 1
    t = np.linspace(0.0, T - 1, n)
    i0 = np.minimum(np.floor(t).astype(np.int64), T - 2)
    w = (t - i0).reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    out = (1 - w) * x[i0] + w * x[i0 + 1]
    if skeleton is None:
        return out
    lengths = np.median(skeleton.bone_lengths(x.astype(np.float64)), axis=0)
    return set_bone_lengths(out, lengths, skeleton).astype(x.dtype)

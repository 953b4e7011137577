"""Keypoint layouts of 2-D detectors and keypoint files, and their maps to Human3.6M-17.

Every layout is a :class:`KeypointLayout`: joint names in file order, the edges drawn between
them, the left/right pairs, and ``to_h36m``, a ``(17, K)`` weight matrix whose row ``j`` gives
Human3.6M joint ``j`` as a weighted mean of the layout's keypoints (rows sum to one, so the map
commutes with moving and scaling the image; pixels in, pixels out).

Human3.6M-17 joints that no detector has, and where they come from (every layout):

====================  ==========================================================================
Human3.6M joint       from
====================  ==========================================================================
0 Hip (pelvis)        mean of the two hips
1-6 hips, knees, feet the hips, knees and ankles (Human3.6M's "Foot" joints are the ankles)
7 Spine               mean of Hip and Thorax (a quarter of each hip and each shoulder)
8 Thorax              mean of the two shoulders
9 Neck/Nose           the nose
10 Head               mean of the two eyes; Halpe-26's ``head`` keypoint (the top of the head,
                      which is what Human3.6M's Head is) where the layout has it
11-16 arms            shoulders, elbows and wrists
====================  ==========================================================================

The confidence of a derived joint is the smallest confidence among the keypoints it is made
of (a joint is only as sure as its least sure part). BlazePose-33's hands, heels and toes,
OpenPose's ``Neck``/``MidHip`` and the feet of BODY_25 and Halpe-26 are not used. The
per-dataset map fitted on exact 2-D by :func:`liftpose.data.detect.fit_h36m_from_coco` is the
other choice for COCO-17 (``KeypointLayout.with_map``).

This module imports numpy and :mod:`liftpose.data.skeleton` only, so the data code can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from liftpose.data.skeleton import H36M17, H36M_JOINT_NAMES

__all__ = [
    "BLAZEPOSE_TO_COCO",
    "COCO_FROM_H36M",
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "KeypointLayout",
    "LAYOUTS",
    "get_layout",
    "layout_for_joint_count",
    "to_h36m",
]


@dataclass(frozen=True)
class KeypointLayout:
    """A 2-D keypoint layout.

    Attributes:
        name: the ``--layout`` name (``coco17``, ``blazepose33``, ``body25``, ``coco18``,
            ``halpe26``, ``h36m17``).
        names: ``K`` keypoint names in file order.
        edges: pairs of keypoint indices joined when drawn.
        left, right: indices of the left keypoints and of their right twins.
        to_h36m: ``(17, K)`` weights, each row summing to one (see the module docstring).
    """

    name: str
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    to_h36m: np.ndarray

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def with_map(self, weights: np.ndarray) -> KeypointLayout:
        """The same layout with another ``(17, K)`` map to Human3.6M (e.g. a fitted one)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (17, self.num_joints):
            raise ValueError(f"a {self.name} map is (17, {self.num_joints}), got {w.shape}")
        return replace(self, to_h36m=w)


def _map(names: tuple[str, ...], sources: dict[int, tuple[str, ...]]) -> np.ndarray:
    """``(17, K)`` weights: Human3.6M joint ``j`` is the mean of the keypoints ``sources[j]``."""
    w = np.zeros((17, len(names)))
    for j, parts in sources.items():
        for p in parts:
            w[j, names.index(p)] += 1.0 / len(parts)
    assert np.allclose(w.sum(1), 1.0), "every Human3.6M joint needs a source"
    return w


def _standard_map(
    names: tuple[str, ...], lsh, rsh, lel, rel, lwr, rwr, lhi, rhi, lkn, rkn, lan, ran, nose, head
) -> np.ndarray:
    """The table of the module docstring for one layout's keypoint names."""
    return _map(
        names,
        {
            0: (lhi, rhi),
            1: (rhi,),
            2: (rkn,),
            3: (ran,),
            4: (lhi,),
            5: (lkn,),
            6: (lan,),
            7: (lhi, rhi, lsh, rsh),
            8: (lsh, rsh),
            9: (nose,),
            10: head,
            11: (lsh,),
            12: (lel,),
            13: (lwr,),
            14: (rsh,),
            15: (rel,),
            16: (rwr,),
        },
    )


def _pairs(names: tuple[str, ...], prefix_l: str, prefix_r: str) -> tuple[tuple, tuple]:
    """Left/right index pairs of names that differ only in a left/right prefix."""
    left, right = [], []
    for i, n in enumerate(names):
        if n.startswith(prefix_l):
            twin = prefix_r + n[len(prefix_l) :]
            if twin in names:
                left.append(i)
                right.append(names.index(twin))
    return tuple(left), tuple(right)


def _edges(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs)


# --------------------------------------------------------------------------- COCO-17
#: COCO keypoint names, in the order of ``person_keypoints_*.json``.
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

#: The COCO person skeleton (1-based keypoint indices, as in the COCO annotation files).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

#: For COCO keypoints 5..16 (shoulders to ankles): the Human3.6M joint each one is.
COCO_FROM_H36M: tuple[int, ...] = (11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)

_LIMBS = dict(
    lsh="left_shoulder", rsh="right_shoulder", lel="left_elbow", rel="right_elbow",
    lwr="left_wrist", rwr="right_wrist", lhi="left_hip", rhi="right_hip", lkn="left_knee",
    rkn="right_knee", lan="left_ankle", ran="right_ankle",
)  # fmt: skip

COCO17 = KeypointLayout(
    name="coco17",
    names=COCO_KEYPOINT_NAMES,
    edges=tuple((a - 1, b - 1) for a, b in COCO_SKELETON),
    left=(1, 3, 5, 7, 9, 11, 13, 15),
    right=(2, 4, 6, 8, 10, 12, 14, 16),
    to_h36m=_standard_map(
        COCO_KEYPOINT_NAMES, **_LIMBS, nose="nose", head=("left_eye", "right_eye")
    ),
)

# --------------------------------------------------------------------------- BlazePose-33
BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

#: BlazePose-33 index of each COCO-17 keypoint (the same anatomical points).
BLAZEPOSE_TO_COCO: tuple[int, ...] = tuple(BLAZEPOSE_NAMES.index(n) for n in COCO_KEYPOINT_NAMES)

_BLAZE_LR = _pairs(BLAZEPOSE_NAMES, "left_", "right_")
_BLAZE_LR = (
    _BLAZE_LR[0] + (BLAZEPOSE_NAMES.index("mouth_left"),),
    _BLAZE_LR[1] + (BLAZEPOSE_NAMES.index("mouth_right"),),
)
BLAZEPOSE33 = KeypointLayout(
    name="blazepose33",
    names=BLAZEPOSE_NAMES,
    edges=_edges(
        BLAZEPOSE_NAMES,
        [
            ("nose", "left_eye_inner"),
            ("left_eye_inner", "left_eye"),
            ("left_eye", "left_eye_outer"),
            ("left_eye_outer", "left_ear"),
            ("nose", "right_eye_inner"),
            ("right_eye_inner", "right_eye"),
            ("right_eye", "right_eye_outer"),
            ("right_eye_outer", "right_ear"),
            ("mouth_left", "mouth_right"),
            ("left_shoulder", "right_shoulder"),
            ("left_shoulder", "left_elbow"),
            ("left_elbow", "left_wrist"),
            ("left_wrist", "left_pinky"),
            ("left_wrist", "left_index"),
            ("left_pinky", "left_index"),
            ("left_wrist", "left_thumb"),
            ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"),
            ("right_wrist", "right_pinky"),
            ("right_wrist", "right_index"),
            ("right_pinky", "right_index"),
            ("right_wrist", "right_thumb"),
            ("left_shoulder", "left_hip"),
            ("right_shoulder", "right_hip"),
            ("left_hip", "right_hip"),
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
            ("left_ankle", "left_heel"),
            ("left_heel", "left_foot_index"),
            ("left_ankle", "left_foot_index"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
            ("right_ankle", "right_heel"),
            ("right_heel", "right_foot_index"),
            ("right_ankle", "right_foot_index"),
        ],
    ),  # fmt: skip
    left=_BLAZE_LR[0],
    right=_BLAZE_LR[1],
    to_h36m=_standard_map(BLAZEPOSE_NAMES, **_LIMBS, nose="nose", head=("left_eye", "right_eye")),
)

# --------------------------------------------------------------------------- OpenPose
_OP_LIMBS = dict(
    lsh="LShoulder", rsh="RShoulder", lel="LElbow", rel="RElbow", lwr="LWrist", rwr="RWrist",
    lhi="LHip", rhi="RHip", lkn="LKnee", rkn="RKnee", lan="LAnkle", ran="RAnkle",
)  # fmt: skip

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
_BODY25_LR = _pairs(BODY25_NAMES, "L", "R")
BODY25 = KeypointLayout(
    name="body25",
    names=BODY25_NAMES,
    edges=_edges(
        BODY25_NAMES,
        [
            ("Neck", "Nose"),
            ("Neck", "RShoulder"),
            ("RShoulder", "RElbow"),
            ("RElbow", "RWrist"),
            ("Neck", "LShoulder"),
            ("LShoulder", "LElbow"),
            ("LElbow", "LWrist"),
            ("Neck", "MidHip"),
            ("MidHip", "RHip"),
            ("RHip", "RKnee"),
            ("RKnee", "RAnkle"),
            ("MidHip", "LHip"),
            ("LHip", "LKnee"),
            ("LKnee", "LAnkle"),
            ("Nose", "REye"),
            ("REye", "REar"),
            ("Nose", "LEye"),
            ("LEye", "LEar"),
            ("LAnkle", "LBigToe"),
            ("LBigToe", "LSmallToe"),
            ("LAnkle", "LHeel"),
            ("RAnkle", "RBigToe"),
            ("RBigToe", "RSmallToe"),
            ("RAnkle", "RHeel"),
        ],
    ),  # fmt: skip
    left=_BODY25_LR[0],
    right=_BODY25_LR[1],
    to_h36m=_standard_map(BODY25_NAMES, **_OP_LIMBS, nose="Nose", head=("LEye", "REye")),
)

COCO18_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip",
    "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)  # fmt: skip
_COCO18_LR = _pairs(COCO18_NAMES, "L", "R")
COCO18 = KeypointLayout(
    name="coco18",
    names=COCO18_NAMES,
    edges=_edges(
        COCO18_NAMES,
        [
            ("Neck", "Nose"),
            ("Neck", "RShoulder"),
            ("RShoulder", "RElbow"),
            ("RElbow", "RWrist"),
            ("Neck", "LShoulder"),
            ("LShoulder", "LElbow"),
            ("LElbow", "LWrist"),
            ("Neck", "RHip"),
            ("RHip", "RKnee"),
            ("RKnee", "RAnkle"),
            ("Neck", "LHip"),
            ("LHip", "LKnee"),
            ("LKnee", "LAnkle"),
            ("Nose", "REye"),
            ("REye", "REar"),
            ("Nose", "LEye"),
            ("LEye", "LEar"),
        ],
    ),  # fmt: skip
    left=_COCO18_LR[0],
    right=_COCO18_LR[1],
    to_h36m=_standard_map(COCO18_NAMES, **_OP_LIMBS, nose="Nose", head=("LEye", "REye")),
)

# --------------------------------------------------------------------------- Halpe-26
HALPE26_NAMES: tuple[str, ...] = COCO_KEYPOINT_NAMES + (
    "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
)  # fmt: skip
_HALPE_LR = _pairs(HALPE26_NAMES, "left_", "right_")
HALPE26 = KeypointLayout(
    name="halpe26",
    names=HALPE26_NAMES,
    edges=COCO17.edges
    + _edges(
        HALPE26_NAMES,
        [
            ("head", "neck"),
            ("neck", "hip"),
            ("left_ankle", "left_big_toe"),
            ("left_ankle", "left_small_toe"),
            ("left_ankle", "left_heel"),
            ("right_ankle", "right_big_toe"),
            ("right_ankle", "right_small_toe"),
            ("right_ankle", "right_heel"),
        ],
    ),  # fmt: skip
    left=_HALPE_LR[0],
    right=_HALPE_LR[1],
    to_h36m=_standard_map(HALPE26_NAMES, **_LIMBS, nose="nose", head=("head",)),
)

# --------------------------------------------------------------------------- Human3.6M-17
H36M17_LAYOUT = KeypointLayout(
    name="h36m17",
    names=H36M_JOINT_NAMES,
    edges=tuple(H36M17.edges()),
    left=H36M17.left,
    right=H36M17.right,
    to_h36m=np.eye(17),
)

LAYOUTS: dict[str, KeypointLayout] = {
    lay.name: lay for lay in (COCO17, BLAZEPOSE33, BODY25, COCO18, HALPE26, H36M17_LAYOUT)
}


def get_layout(name: str) -> KeypointLayout:
    """The layout called ``name``; ``ValueError`` names the known ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint layout {name!r}; known: {sorted(LAYOUTS)}") from None


def layout_for_joint_count(k: int) -> str | None:
    """The one layout with ``k`` keypoints, or ``None`` where that is ambiguous (17: COCO-17 and
    Human3.6M-17) or unknown."""
    names = [lay.name for lay in LAYOUTS.values() if lay.num_joints == k]
    return names[0] if len(names) == 1 else None


def to_h36m(
    keypoints: np.ndarray, scores: np.ndarray | None, layout: KeypointLayout | str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map keypoints of ``layout`` to Human3.6M-17.

    Args:
        keypoints: ``(..., K, 2)`` pixels (or any coordinates: the map is affine).
        scores: ``(..., K)`` confidences, or ``None``.
        layout: a :class:`KeypointLayout` or its name.

    Returns ``(..., 17, 2)`` joints and ``(..., 17)`` confidences (the smallest confidence among
    each joint's sources), or ``None`` without scores. ``ValueError`` when ``K`` does not match.
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (lay.num_joints, 2):
        raise ValueError(f"{lay.name} keypoints are (..., {lay.num_joints}, 2), got {kp.shape}")
    out = np.einsum("jk,...kc->...jc", lay.to_h36m, kp)
    if scores is None:
        return out, None
    s = np.asarray(scores, dtype=np.float64)
    used = lay.to_h36m != 0  # (17, K)
    conf = np.where(used, s[..., None, :], np.inf).min(-1)
    return out, conf

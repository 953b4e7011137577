"""Skeleton layouts: the Human3.6M 17-joint layout, its 32->17 reduction and the 16-joint variant.

Joint order of the 17-joint layout (the order of VideoPose3D / PoseFormer / MixSTE files)::

    0 Hip  1 RHip  2 RKnee  3 RFoot  4 LHip  5 LKnee  6 LFoot  7 Spine  8 Thorax
    9 Neck/Nose  10 Head  11 LShoulder  12 LElbow  13 LWrist  14 RShoulder  15 RElbow  16 RWrist
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: joint names, parent indices (-1 for the root) and left/right joint sets."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    _flip: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.parents) != n:
            raise ValueError(f"parents has {len(self.parents)} entries for {n} joints")
        if len(self.left) != len(self.right):
            raise ValueError("left and right joint sets differ in length")
        perm = list(range(n))
        for a, b in zip(self.left, self.right):
            perm[a], perm[b] = b, a
        object.__setattr__(self, "_flip", tuple(perm))

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Index array ``p``: ``x[..., p, :]`` swaps every left joint with its right twin."""
        return np.asarray(self._flip, dtype=np.int64)

    def edges(self) -> list[tuple[int, int]]:
        """(child, parent) pairs of the tree."""
        return [(j, p) for j, p in enumerate(self.parents) if p >= 0]

    def bone_lengths(self, pos: np.ndarray) -> np.ndarray:
        """Bone lengths of ``pos`` (..., J, 3) -> (..., J-1) in the units of ``pos``."""
        child = np.array([c for c, _ in self.edges()])
        parent = np.array([p for _, p in self.edges()])
        return np.linalg.norm(pos[..., child, :] - pos[..., parent, :], axis=-1)

    def subset(self, keep: list[int]) -> Skeleton:
        """The skeleton restricted to ``keep``; a removed parent is bridged to its own parent."""
        index = {old: new for new, old in enumerate(keep)}
        parents = []
        for old in keep:
            p = self.parents[old]
            while p >= 0 and p not in index:
                p = self.parents[p]
            parents.append(index[p] if p >= 0 else -1)
        left = tuple(index[j] for j in self.left if j in index)
        right = tuple(index[j] for j in self.right if j in index)
        return Skeleton(tuple(self.names[i] for i in keep), tuple(parents), left, right)


H36M_JOINT_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)  # fmt: skip

H36M17 = Skeleton(
    names=H36M_JOINT_NAMES,
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)

#: Indices of the 17 kept joints among the 32 joints of the original Human3.6M mocap files.
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

#: The 16-joint variant: joint 9 (Neck/Nose) of the 17-joint layout removed, Head on Thorax.
H36M16_KEEP: tuple[int, ...] = tuple(j for j in range(17) if j != 9)
H36M16 = H36M17.subset(list(H36M16_KEEP))

LAYOUTS: dict[str, Skeleton] = {"h36m17": H36M17, "h36m16": H36M16}


def reduce_32_to_17(pos32: np.ndarray) -> np.ndarray:
    """Keep the 17 scored joints of a 32-joint Human3.6M array (..., 32, C) -> (..., 17, C)."""
    if pos32.shape[-2] != 32:
        raise ValueError(f"expected 32 joints on axis -2, got shape {pos32.shape}")
    return pos32[..., list(H36M32_TO_17), :]


def to_layout(pos17: np.ndarray, layout: str) -> np.ndarray:
    """Convert a 17-joint array (..., 17, C) to ``layout`` ('h36m17' or 'h36m16')."""
    if layout == "h36m17":
        return pos17
    if layout == "h36m16":
        return pos17[..., list(H36M16_KEEP), :]
    raise ValueError(f"unknown joint layout {layout!r}; known: {sorted(LAYOUTS)}")


def get_layout(name: str) -> Skeleton:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown joint layout {name!r}; known: {sorted(LAYOUTS)}") from None

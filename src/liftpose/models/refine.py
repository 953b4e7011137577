"""Pose refinement (Cai et al., ICCV 2019) as released with the official Strided Transformer.

The Strided Transformer's 351-frame result (43.7 mm, Table I of strided-transformer.txt) and
AMPose's "Ours (refinement)" row (48.5 mm, its Table 1, which cites the module as [4]) add a
second stage after the lifter: the predicted root-relative depth of each joint and the input
2-D keypoint of the target frame are back-projected through the camera into a second 3-D
estimate ``xyz`` (:func:`uvd_to_xyz`), and a small network decides per joint and per
coordinate how much of ``x`` and ``y`` to take from the lifter and how much from ``xyz``::

    score = sigmoid(fc2(dropout(relu(fc1([pred, xyz])))))        (B, 1, J, 2), in [0, 1]
    out_xy = score * pred_xy + (1 - score) * xyz_xy ;  out_z = pred_z

Details of the official code (Vegetebird/StridedTransformer-Pose3D, ``model/block/refine.py``
and ``common/camera.py::get_uvd2xyz``), reproduced here:

* ``fc1``: ``J * 6 -> 1024`` on the concatenation ``[pred_j, xyz_j]`` of every joint (joint
  major), ReLU, dropout 0.5, ``fc2``: ``1024 -> J * 2``, sigmoid.
* The back-projection takes the camera-space depth of the root joint from the ground truth
  (``z_j = pred_z_j + root_z`` for ``j > 0``, ``z_0 = root_z``), intrinsics without lens
  distortion, and 2-D and intrinsics in the same normalised screen coordinates (the image width
  maps to [-1, 1]: ``f / w * 2``, ``c`` normalised like the keypoints). The result is made
  root-relative.
* The refined pose is used alone: the refinement stage trains on its MPJPE against the target
  frame (the VTE loss is dropped) with every weight of lifter and refinement at lr 1e-5,
  starting from the trained lifter. At test time it refines the flip-averaged prediction
  with the un-flipped 2-D.

The official code refines one frame (``out_seqlen = 1``); here each frame of ``(B, T, J, 3)`` is
refined on its own, which is the same for ``T = 1``. Official weights load with
``from_official("refine", state_dict, {"n_joints": 17})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from liftpose.models.official import (
    OfficialConverter,
    StateDict,
    _translate_kwargs,
    register_official,
    rename_prefixes,
)

__all__ = ["PoseRefinement", "uvd_to_xyz"]


def uvd_to_xyz(
    uv: torch.Tensor, depth: torch.Tensor, root: torch.Tensor, camera: torch.Tensor
) -> torch.Tensor:
    """Back-project 2-D keypoints with root-relative depths into root-relative 3-D joints.

    Args:
        uv: ``(B, T, J, 2)`` 2-D keypoints in normalised screen coordinates.
        depth: ``(B, T, J)`` root-relative camera-space depth of each joint (metres); the root
            joint's own value is not used.
        root: ``(B, T, 3)`` camera-space position of the root joint (metres); only its depth
            is used.
        camera: ``(B, 4)`` pinhole intrinsics ``[f_x, f_y, c_x, c_y]`` in the normalised screen
            coordinates of ``uv``.

    Returns:
        ``(B, T, J, 3)`` camera-space joints relative to the root joint (metres), root at zero.
    """
    z_root = root[..., 2:3]  # (B, T, 1)
    z = torch.cat([z_root, depth[..., 1:] + z_root], dim=-1).unsqueeze(-1)  # (B, T, J, 1)
    f = camera[:, None, None, :2]
    c = camera[:, None, None, 2:4]
    xyz = torch.cat([(uv - c) * z / f, z], dim=-1)
    return xyz - xyz[..., :1, :]


class PoseRefinement(nn.Module):
    """Gated blend of a predicted pose with its back-projection (see the module docstring).

    Args:
        num_joints: joints ``J``.
        hidden: hidden units (official 1024).
        drop: dropout after the ReLU (official 0.5).

    Shapes: ``forward(pred: (B, T, J, 3), xyz: (B, T, J, 3)) -> (B, T, J, 3)``; ``z`` of the
    output is ``pred``'s.
    """

    def __init__(self, num_joints: int = 17, hidden: int = 1024, drop: float = 0.5) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.fc1 = nn.Linear(num_joints * 6, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, num_joints * 2)

    def forward(self, pred: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        """``pred, xyz: (B, T, J, 3)`` root-relative -> refined ``(B, T, J, 3)``."""
        if pred.shape != xyz.shape or pred.ndim != 4 or pred.shape[2:] != (self.num_joints, 3):
            raise ValueError(
                f"PoseRefinement expects pred and xyz of shape (B, T, {self.num_joints}, 3), "
                f"got {tuple(pred.shape)} and {tuple(xyz.shape)}"
            )
        B, T, J, _ = pred.shape
        h = torch.cat([pred, xyz], dim=-1).reshape(B * T, J * 6)
        score = torch.sigmoid(self.fc2(self.drop(self.act(self.fc1(h))))).view(B, T, J, 2)
        xy = score * pred[..., :2] + (1.0 - score) * xyz[..., :2]
        return torch.cat([xy, pred[..., 2:]], dim=-1)

    def refine(
        self,
        pred: torch.Tensor,
        uv: torch.Tensor,
        root: torch.Tensor,
        camera: torch.Tensor,
    ) -> torch.Tensor:
        """Refine ``pred (B, T, J, 3)`` with the 2-D ``uv (B, T, J, 2)`` of the same frames, the
        root positions ``root (B, T, 3)`` and intrinsics ``camera (B, 4)`` (:func:`uvd_to_xyz`);
        the root joint of the back-projection is zero as in the official code."""
        return self(pred, uvd_to_xyz(uv, pred[..., 2], root, camera))


# --------------------------------------------------------------------------------------------
# official weights (Vegetebird/StridedTransformer-Pose3D, model/block/refine.py::refine)

#: ``opt.in_channels`` / ``opt.out_channels`` of the official module: the blended coordinates
#: (x, y) and the coordinates of a joint (x, y, z); other values do not describe this module.
_REFINE_FIXED = {"in_channels": 2, "out_channels": 3}


@register_official("refine")
class PoseRefinementOfficial(OfficialConverter):
    """Official ``refine(opt)`` -> :class:`PoseRefinement`.

    ``official_args`` holds the attributes of the official argparse namespace the constructor
    reads: ``n_joints`` (and ``in_channels`` = 2, ``out_channels`` = 3, the only values the
    module is written for); ``fc_unit``, the module-level hidden width of the official file
    (1024), may be given when it was changed. The official forward ``refine(x, x_1)`` is
    ``model(pred, xyz)``.
    """

    official_class = "Vegetebird/StridedTransformer-Pose3D: model/block/refine.py::refine"

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = dict(official_args)
        for key, value in _REFINE_FIXED.items():
            if key in args and int(args.pop(key)) != value:
                raise TypeError(f"refine supports only {key}={value}")
        renames = {"n_joints": "num_joints", "fc_unit": "hidden"}
        return _translate_kwargs(args, renames, ("num_joints", "hidden"), "refine")

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return PoseRefinement(**model_args)

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        rules = [("post_refine.0.", "fc1."), ("post_refine.3.", "fc2.")]
        return rename_prefixes(state_dict, rules)

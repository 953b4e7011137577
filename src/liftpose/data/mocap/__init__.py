"""Mocap readers (ASF/AMC, BVH), retargeting to Human3.6M-17 and the embedded HDM05 sample."""

from __future__ import annotations

from liftpose.data.mocap.asf_amc import (
    AmcMotion,
    AsfBone,
    AsfSkeleton,
    axis_rotations,
    forward_kinematics,
    load_asf_amc,
    read_amc,
    read_asf,
)
from liftpose.data.mocap.bvh import BvhMotion, bvh_forward_kinematics, load_bvh, read_bvh
from liftpose.data.mocap.hdm05 import (
    HDM05_FPS,
    SAMPLE_PATH,
    build_hdm05_sample,
    load_hdm05_clip,
    load_hdm05_sample,
    parse_hdm05_name,
)
from liftpose.data.mocap.retarget import (
    BANDAI_MAP,
    HDM05_MAP,
    HEAD_TO_TRUNK,
    SOURCE_MAPS,
    SourceMap,
    bandai_head_top_offset,
    fixed_point_on_chain,
    load_bandai_clip,
    resample,
    retarget_to_h36m17,
    set_bone_lengths,
    source_points,
    y_up_to_z_up,
)

__all__ = [
    "AmcMotion",
    "AsfBone",
    "AsfSkeleton",
    "BANDAI_MAP",
    "BvhMotion",
    "HDM05_FPS",
    "HDM05_MAP",
    "HEAD_TO_TRUNK",
    "SAMPLE_PATH",
    "SOURCE_MAPS",
    "SourceMap",
    "axis_rotations",
    "bandai_head_top_offset",
    "build_hdm05_sample",
    "bvh_forward_kinematics",
    "fixed_point_on_chain",
    "forward_kinematics",
    "load_asf_amc",
    "load_bandai_clip",
    "load_bvh",
    "load_hdm05_clip",
    "load_hdm05_sample",
    "parse_hdm05_name",
    "read_amc",
    "read_asf",
    "read_bvh",
    "resample",
    "retarget_to_h36m17",
    "set_bone_lengths",
    "source_points",
    "y_up_to_z_up",
]

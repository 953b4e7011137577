"""Checks of the system's output on real photos: 2-D against COCO annotations, 3-D plausibility.

* :func:`coco_results`: people in COCO-17 (BlazePose-33 through :data:`BLAZEPOSE_TO_COCO`) as
  COCO keypoint results, scored by ``COCOeval`` (OKS AP) with
  :func:`liftpose.metrics.coco.evaluate_keypoints`. A person's score is the mean confidence of
  its keypoints.
* :func:`plausibility`: a 3-D pose ``(17, 3)`` (camera frame, metres) passes when every
  left/right limb pair (upper arm, forearm, thigh, shin) differs by at most ``tolerance`` of
  the longer one, every limb bone's length relative to the trunk (pelvis to thorax) is within a
  factor ``proportion_factor`` of the usual human proportion (:data:`LIMB_TO_TRUNK`; limbs
  foreshortened or stretched by a wrong depth fail this even when left and right agree) and,
  for an upright person, the head is above the pelvis. A person is upright
  when, in the photo, the shoulders' midpoint is above the hips' midpoint and the trunk leans
  less than ``max_lean`` degrees from the image vertical.
"""

from __future__ import annotations

import numpy as np

from liftpose.system.joints import BLAZEPOSE_TO_COCO, H36M17_LAYOUT
from liftpose.system.person import Person

#: left/right twin bones as (joint, parent) pairs of Human3.6M-17
LIMB_PAIRS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "upper arm": ((12, 11), (15, 14)),
    "forearm": ((13, 12), (16, 15)),
    "thigh": ((5, 4), (2, 1)),
    "shin": ((6, 5), (3, 2)),
}
HEAD, PELVIS = H36M17_LAYOUT.index("Head"), H36M17_LAYOUT.index("Hip")
THORAX = H36M17_LAYOUT.index("Thorax")

#: limb length over trunk length (hip joint centre to shoulder height): the segment lengths of
#: Drillis and Contini as tabulated in D. A. Winter, Biomechanics and Motor Control of Human
#: Movement (thigh 0.245 H, leg 0.246 H, upper arm 0.186 H, forearm 0.146 H; shoulder height
#: 0.818 H, hip height 0.530 H, so the trunk is 0.288 H)
LIMB_TO_TRUNK: dict[str, float] = {
    "upper arm": 0.186 / 0.288,
    "forearm": 0.146 / 0.288,
    "thigh": 0.245 / 0.288,
    "shin": 0.246 / 0.288,
}


def coco_results(image_id: int, people: list[Person], layout: str) -> list[dict]:
    """COCO keypoint results of one image's people (``layout`` ``coco17`` or ``blazepose33``)."""
    out = []
    for p in people:
        kp, s = p.keypoints, p.scores
        if layout == "blazepose33":
            kp, s = kp[list(BLAZEPOSE_TO_COCO)], s[list(BLAZEPOSE_TO_COCO)]
        elif layout != "coco17":
            raise ValueError(f"COCO results need coco17 or blazepose33 keypoints, not {layout}")
        tri = np.concatenate([np.nan_to_num(kp), s[:, None]], 1)
        out.append({
            "image_id": int(image_id), "category_id": 1,
            "keypoints": tri.reshape(-1).round(2).tolist(), "score": float(s.mean()),
        })  # fmt: skip
    return out


def is_upright(pose_2d: np.ndarray, max_lean: float = 30.0) -> bool:
    """Whether a Human3.6M-17 pose in image pixels ``(17, 2)`` stands upright (y down)."""
    hip = pose_2d[[1, 4]].mean(0)
    shoulders = pose_2d[[11, 14]].mean(0)
    up = hip - shoulders  # image y grows downwards: positive y when the shoulders are above
    lean = np.degrees(np.arctan2(abs(up[0]), up[1])) if up[1] > 0 else 180.0
    return bool(lean < max_lean)


def plausibility(
    pose_3d: np.ndarray, upright: bool, tolerance: float = 0.15, proportion_factor: float = 1.5
) -> dict[str, float | bool]:
    """The checks of the module docstring on ``pose_3d (17, 3)`` (camera frame, y down):
    ``{<limb>: relative left/right difference, "<limb> / trunk": each side's ratio to the usual
    one (the one furthest from 1), ..., "head_above_pelvis": bool or None, "ok": bool}``."""
    res: dict = {}
    twins_ok = proportions_ok = True
    trunk = max(float(np.linalg.norm(pose_3d[THORAX] - pose_3d[PELVIS])), 1e-9)
    for name, ((a, b), (c, d)) in LIMB_PAIRS.items():
        left = float(np.linalg.norm(pose_3d[a] - pose_3d[b]))
        right = float(np.linalg.norm(pose_3d[c] - pose_3d[d]))
        diff = abs(left - right) / max(left, right, 1e-9)
        res[name] = diff
        twins_ok &= diff <= tolerance
        ratios = [length / trunk / LIMB_TO_TRUNK[name] for length in (left, right)]
        worst = max(ratios, key=lambda r: abs(np.log(max(r, 1e-9))))
        res[f"{name} / trunk"] = worst
        proportions_ok &= 1 / proportion_factor <= worst <= proportion_factor
    head_up = bool(pose_3d[HEAD, 1] < pose_3d[PELVIS, 1]) if upright else None
    res["head_above_pelvis"] = head_up
    res["twins_ok"], res["proportions_ok"] = bool(twins_ok), bool(proportions_ok)
    res["ok"] = bool(twins_ok and proportions_ok and head_up is not False)
    return res

"""Functional 3D pose metrics on torch tensors.

Conventions
-----------
* A pose batch is ``(N, J, 3)``: ``N`` samples (frames), ``J`` joints, xyz coordinates.
  ``pred`` and ``target`` must have the same shape and be in the same unit; every error is
  returned in that unit (PCK/AUC thresholds are in that unit too).
* ``mpjve`` takes a single sequence ``(T, J, 3)`` of consecutive frames.
* ``<metric>_per_sample`` returns one value per sample, shape ``(N,)``; ``<metric>`` is the mean
  of it, a 0-d tensor. Because every sample has the same number of joints, the mean of the
  per-sample values equals the mean over all joints of all samples.
* PCK and AUC are percentages (0-100), the MPI-INF-3DHP convention.

Definitions (as in the VideoPose3D / MPI-INF-3DHP evaluation code):

* MPJPE: mean Euclidean distance between predicted and true joints.
* P-MPJPE: MPJPE after aligning each predicted pose to its target with the least-squares
  similarity transform (scale, proper rotation, translation), found with an SVD (orthogonal
  Procrustes with the reflection fix). Solved in float64, batched over samples.
* N-MPJPE: MPJPE after scaling each predicted pose by the least-squares scalar
  ``s = <pred, target> / <pred, pred>`` (sums over joints and coordinates, no centring).
* MPJVE: MPJPE of the first differences (velocities) of a sequence.
* PCK@t: percentage of joints whose error is strictly below ``t``, the rule of the MATLAB
  evaluation code released with MPI-INF-3DHP (``error < t``, ``t`` in ``0:5:150``): an error
  of exactly ``t`` is wrong, so PCK@0 is 0 even for a perfect prediction.
* AUC: mean of PCK over a grid of thresholds (default 0, 5, ..., 150, 31 values), with the same
  strict rule: a perfect prediction scores 30/31 * 100 (it fails the 0 mm threshold).

Note that the alignments minimise the *squared* error, so P-MPJPE and N-MPJPE are not
guaranteed to be <= MPJPE (a single outlier joint spread over all joints by the alignment can
raise the mean distance); they are guaranteed to be <= the root-mean-square joint error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_AUC_THRESHOLDS",
    "auc",
    "auc_per_sample",
    "joint_errors",
    "mpjpe",
    "mpjpe_per_sample",
    "mpjve",
    "mpjve_per_sample",
    "n_mpjpe",
    "n_mpjpe_per_sample",
    "p_mpjpe",
    "p_mpjpe_per_sample",
    "pck",
    "pck_per_sample",
    "procrustes_align",
    "scale_align",
]

#: Default AUC thresholds, 0, 5, ..., 150 (31 values), in the unit of the poses (mm).
DEFAULT_AUC_THRESHOLDS: tuple[float, ...] = tuple(5.0 * i for i in range(31))


# ----------------------------------------------------------------------------- validation
def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in x.shape) + ")"


def _check_poses(pred: Tensor, target: Tensor, fn: str, layout: str = "(N, J, 3)") -> None:
    """Raise unless ``pred`` and ``target`` are floating tensors of the same ``layout`` shape."""
    for arg, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}: `{arg}` must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 3 or x.shape[-1] != 3 or x.shape[1] == 0:
            raise ValueError(f"{fn}: `{arg}` must have shape {layout} with J >= 1, got {_shape(x)}")
        if not x.is_floating_point():
            raise TypeError(f"{fn}: `{arg}` must be a floating tensor, got {x.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{fn}: `pred` and `target` must have the same shape, "
            f"got pred {_shape(pred)} and target {_shape(target)}"
        )


def _select_joints(err: Tensor, joints: Sequence[int] | None, fn: str) -> Tensor:
    """``err: (N, J)`` -> ``(N, len(joints))`` (or ``err`` itself when ``joints`` is None)."""
    if joints is None:
        return err
    idx = torch.as_tensor(list(joints), dtype=torch.long)
    num_joints = err.shape[1]
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(f"{fn}: `joints` must be a non-empty sequence of ints, got {joints!r}")
    if bool((idx < 0).any()) or bool((idx >= num_joints).any()):
        raise ValueError(f"{fn}: `joints` must lie in [0, {num_joints}), got {list(joints)}")
    return err.index_select(1, idx.to(err.device))


def _thresholds_tensor(
    thresholds: Sequence[float] | Tensor | None, like: Tensor, fn: str
) -> Tensor:
    """Sorted 1-D ``(K,)`` thresholds with ``like``'s dtype and device."""
    if thresholds is None:
        thresholds = DEFAULT_AUC_THRESHOLDS
    thr = torch.as_tensor(thresholds, dtype=like.dtype, device=like.device)
    if thr.ndim != 1 or thr.numel() == 0:
        raise ValueError(f"{fn}: `thresholds` must be a non-empty 1-D sequence, got {_shape(thr)}")
    return thr.sort().values.contiguous()


# ----------------------------------------------------------------------------- alignment
def procrustes_align(pred: Tensor, target: Tensor) -> Tensor:
    """Align each predicted pose to its target with the least-squares similarity transform.

    Finds, per sample, ``s >= 0``, a proper rotation ``R`` (``det R = +1``) and ``t`` minimising
    ``sum_j ||s * pred_j @ R + t - target_j||^2``. With centred poses ``P`` and ``X`` and the SVD
    ``P^T X = U S V^T``: ``R = U D V^T`` with ``D = diag(1, 1, sign det(U V^T))`` (the reflection
    fix flips the last singular vector and value), ``s = trace(D S) / ||P||^2`` and
    ``t = mean(target) - s * mean(pred) @ R``. Batched, solved in float64.

    Args:
        pred: ``(N, J, 3)`` predicted poses.
        target: ``(N, J, 3)`` ground-truth poses, same unit.

    Returns:
        ``(N, J, 3)`` aligned predictions, in the promoted dtype of the inputs.
    """
    _check_poses(pred, target, "procrustes_align")
    out_dtype = torch.promote_types(pred.dtype, target.dtype)
    aligned, _ = _procrustes_f64(pred, target)
    return aligned.to(pred.device, out_dtype)


def _procrustes_f64(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """float64 core of :func:`procrustes_align`: ``(N, J, 3)`` x2 -> (aligned, target), float64."""
    # float64 is unsupported on MPS: solve on the CPU there.
    work = torch.device("cpu") if pred.device.type == "mps" else pred.device
    p = pred.to(work, torch.float64)
    x = target.to(work, torch.float64)

    mu_p = p.mean(dim=1, keepdim=True)  # (N, 1, 3)
    mu_x = x.mean(dim=1, keepdim=True)
    p0 = p - mu_p  # (N, J, 3)
    x0 = x - mu_x
    # Normalise before the SVD for conditioning; it changes neither U nor V.
    norm_p = torch.linalg.vector_norm(p0, dim=(1, 2), keepdim=True)  # (N, 1, 1)
    norm_x = torch.linalg.vector_norm(x0, dim=(1, 2), keepdim=True)
    tiny = torch.finfo(torch.float64).tiny
    p0n = p0 / norm_p.clamp_min(tiny)
    x0n = x0 / norm_x.clamp_min(tiny)

    u, sv, vh = torch.linalg.svd(p0n.transpose(1, 2) @ x0n)  # (N,3,3), (N,3), (N,3,3)
    d = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0).to(sv)  # (N,)
    ones = torch.ones_like(d)
    flip = torch.stack([ones, ones, d], dim=-1)  # (N, 3)
    rot = (u * flip.unsqueeze(1)) @ vh  # U diag(flip) V^T, (N, 3, 3)
    trace = (sv * flip).sum(dim=-1)  # (N,)
    # s = trace(D S) / ||P||^2 = trace(D S_n) * ||X|| / ||P|| (S_n: SVD of the unit-norm poses).
    # A degenerate prediction (all joints equal) gives s = 0, i.e. the target centroid.
    scale = (trace * norm_x.view(-1) / norm_p.view(-1).clamp_min(tiny)).view(-1, 1, 1)
    return scale * (p0 @ rot) + mu_x, x


def scale_align(pred: Tensor, target: Tensor) -> Tensor:
    """Scale each predicted pose by the least-squares scalar (no centring, no rotation).

    ``s = <pred, target> / <pred, pred>`` with sums over joints and coordinates (0 when ``pred``
    is all zeros), as in VideoPose3D's ``n_mpjpe``.

    Args:
        pred: ``(N, J, 3)`` predicted poses.
        target: ``(N, J, 3)`` ground-truth poses, same unit.

    Returns:
        ``(N, J, 3)`` scaled predictions.
    """
    _check_poses(pred, target, "scale_align")
    num = (pred * target).sum(dim=(1, 2), keepdim=True)  # (N, 1, 1)
    den = (pred * pred).sum(dim=(1, 2), keepdim=True)
    return num / den.clamp_min(torch.finfo(den.dtype).tiny) * pred


# ----------------------------------------------------------------------------- per sample
def joint_errors(pred: Tensor, target: Tensor) -> Tensor:
    """Euclidean error per joint.

    Args:
        pred: ``(N, J, 3)``.
        target: ``(N, J, 3)``.

    Returns:
        ``(N, J)`` distances ``||pred - target||``.
    """
    _check_poses(pred, target, "joint_errors")
    return torch.linalg.vector_norm(pred - target, dim=-1)


def mpjpe_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """MPJPE of each sample. ``pred, target: (N, J, 3)`` -> ``(N,)``."""
    _check_poses(pred, target, "mpjpe")
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(dim=-1)


def p_mpjpe_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """P-MPJPE (Procrustes-aligned MPJPE) of each sample. ``(N, J, 3)`` -> ``(N,)``.

    The alignment and the error are computed in float64 (see :func:`procrustes_align`); the
    result has the promoted dtype of the inputs.
    """
    _check_poses(pred, target, "p_mpjpe")
    out_dtype = torch.promote_types(pred.dtype, target.dtype)
    aligned, x = _procrustes_f64(pred, target)  # float64 throughout
    err = torch.linalg.vector_norm(aligned - x, dim=-1).mean(dim=-1)
    return err.to(pred.device, out_dtype)


def n_mpjpe_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """N-MPJPE (scale-aligned MPJPE) of each sample. ``(N, J, 3)`` -> ``(N,)``."""
    _check_poses(pred, target, "n_mpjpe")
    return mpjpe_per_sample(scale_align(pred, target), target)


def mpjve_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """Velocity error of each pair of consecutive frames.

    Args:
        pred: ``(T, J, 3)`` consecutive frames of one sequence, ``T >= 2``.
        target: ``(T, J, 3)``.

    Returns:
        ``(T - 1,)``: entry ``t`` is the mean over joints of
        ``||(pred[t+1] - pred[t]) - (target[t+1] - target[t])||``.
    """
    _check_poses(pred, target, "mpjve", layout="(T, J, 3)")
    if pred.shape[0] < 2:
        raise ValueError(f"mpjve: needs T >= 2 consecutive frames, got pred {_shape(pred)}")
    return mpjpe_per_sample(pred.diff(dim=0), target.diff(dim=0))


def pck_per_sample(
    pred: Tensor,
    target: Tensor,
    threshold: float = 150.0,
    joints: Sequence[int] | None = None,
) -> Tensor:
    """PCK of each sample, in percent.

    Args:
        pred: ``(N, J, 3)``.
        target: ``(N, J, 3)``.
        threshold: a joint is correct when its error is strictly below ``threshold`` (unit of
            the poses), as in the official MPI-INF-3DHP script.
        joints: optional subset of joint indices to evaluate (default: all ``J``).

    Returns:
        ``(N,)`` percentage (0-100) of the evaluated joints that are correct.
    """
    _check_poses(pred, target, "pck")
    err = _select_joints(torch.linalg.vector_norm(pred - target, dim=-1), joints, "pck")
    return (err < threshold).to(err.dtype).mean(dim=-1) * 100.0


def auc_per_sample(
    pred: Tensor,
    target: Tensor,
    thresholds: Sequence[float] | Tensor | None = None,
    joints: Sequence[int] | None = None,
) -> Tensor:
    """Area under the PCK curve of each sample, in percent.

    Args:
        pred: ``(N, J, 3)``.
        target: ``(N, J, 3)``.
        thresholds: ``(K,)`` thresholds, unit of the poses; default
            :data:`DEFAULT_AUC_THRESHOLDS` (0, 5, ..., 150).
        joints: optional subset of joint indices to evaluate (default: all ``J``).

    Returns:
        ``(N,)`` mean over the thresholds of the PCK (0-100), each PCK with the strict rule
        of :func:`pck_per_sample` (``error < t``).
    """
    _check_poses(pred, target, "auc")
    err = _select_joints(torch.linalg.vector_norm(pred - target, dim=-1), joints, "auc")
    thr = _thresholds_tensor(thresholds, err, "auc")  # (K,) sorted
    # Number of thresholds t_k with err < t_k is K - (index of the first t_k > err):
    # O(N * J) memory instead of O(N * J * K).
    passed = thr.numel() - torch.searchsorted(thr, err.contiguous(), right=True)  # (N, J')
    return passed.to(err.dtype).mean(dim=-1) * (100.0 / thr.numel())


# ----------------------------------------------------------------------------- means
def mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-joint position error. ``pred, target: (N, J, 3)`` -> 0-d tensor."""
    return mpjpe_per_sample(pred, target).mean()


def p_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Procrustes-aligned MPJPE (protocol #2). ``pred, target: (N, J, 3)`` -> 0-d tensor."""
    return p_mpjpe_per_sample(pred, target).mean()


def n_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Scale-normalised MPJPE. ``pred, target: (N, J, 3)`` -> 0-d tensor."""
    return n_mpjpe_per_sample(pred, target).mean()


def mpjve(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-joint velocity error of one sequence. ``(T, J, 3)``, ``T >= 2`` -> 0-d tensor."""
    return mpjve_per_sample(pred, target).mean()


def pck(
    pred: Tensor,
    target: Tensor,
    threshold: float = 150.0,
    joints: Sequence[int] | None = None,
) -> Tensor:
    """Percentage of correct keypoints (0-100). ``pred, target: (N, J, 3)`` -> 0-d tensor."""
    return pck_per_sample(pred, target, threshold, joints).mean()


def auc(
    pred: Tensor,
    target: Tensor,
    thresholds: Sequence[float] | Tensor | None = None,
    joints: Sequence[int] | None = None,
) -> Tensor:
    """Area under the PCK curve (0-100). ``pred, target: (N, J, 3)`` -> 0-d tensor."""
    return auc_per_sample(pred, target, thresholds, joints).mean()

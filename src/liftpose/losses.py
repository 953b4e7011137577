"""Training losses for lifting, combined by weight from config.

Every term takes prediction and target ``(B, T, J, 3)`` (``T = 1`` for centre-frame models) in
metres and returns a 0-d tensor. ``CompositeLoss`` sums the enabled terms::

    loss:
      _target_: liftpose.losses.CompositeLoss
      terms:
        mpjpe: {weight: 1.0}
        velocity: {weight: 2.0}
        weighted_mpjpe: {weight: 0.0, joint_weights: [1, 1, 2.5, ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from liftpose.metrics import functional as F


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error of ``(B, T, J, 3)`` tensors."""
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared joint error of ``(B, T, J, 3)`` tensors (AMPose eq. 11).

    ``1/N sum_i ||X_i - X~_i||^2``: the squared Euclidean distance of each joint (summed over
    the 3 coordinates), averaged over joints, frames and the batch.
    """
    return (pred - target).square().sum(-1).mean()


def weighted_mpjpe_loss(
    pred: torch.Tensor, target: torch.Tensor, joint_weights: Sequence[float]
) -> torch.Tensor:
    """MPJPE with a weight per joint: ``mean(w_j * ||pred - target||)`` over ``(B, T, J)``."""
    w = torch.as_tensor(joint_weights, dtype=pred.dtype, device=pred.device)
    if w.numel() != pred.shape[-2]:
        raise ValueError(f"joint_weights has {w.numel()} entries for {pred.shape[-2]} joints")
    return (torch.linalg.vector_norm(pred - target, dim=-1) * w).mean()


def frame_weights(
    t: int, profile: str = "uniform", peak: float = 1.0, sigma: float | None = None
) -> torch.Tensor:
    """Per-frame weights ``alpha_t`` of a ``t``-frame window, mean 1: ``(t,)``.

    ``uniform``: all 1 (the Strided Transformer's original full-sequence loss). ``centre``:
    ``w_t = 1 + peak * exp(-(t - c)^2 / (2 sigma^2))`` around the centre frame ``c`` (sigma
    defaults to ``t / 8``), divided by its mean so that the loss keeps its scale: the target
    frame and its neighbours weigh more (strided-transformer.txt eq. 15).

    The ``centre`` profile is liftpose's choice, not the paper's formula: the paper gives
    ``alpha_t`` only as a plot (its Fig. 4, "alpha_t values for the loss function with the
    middle frame as the target") and the sentence that it makes the model "pay more attention
    to the target frame and its closest neighbor frames"; it prints no formula, peak, width or
    normalisation. A bump over a floor of 1, of relative height ``peak`` and width ``sigma``
    (both config: ``module.loss.terms.frame_weighted_mpjpe.{profile,peak,sigma}``), normalised
    to mean 1 so that ``lambda_f`` keeps its meaning, is the reading; the plot's exact shape
    cannot be recovered from the text.
    """
    if profile == "uniform" or t == 1:
        return torch.ones(t)
    if profile != "centre":
        raise ValueError(f"frame weight profile {profile!r}: 'uniform' or 'centre'")
    s = sigma if sigma is not None else max(t / 8.0, 0.5)
    d = torch.arange(t, dtype=torch.float64) - (t - 1) / 2
    w = 1.0 + peak * torch.exp(-(d**2) / (2 * s**2))
    return (w / w.mean()).float()


def frame_weighted_mpjpe_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    profile: str = "uniform",
    peak: float = 1.0,
    sigma: float | None = None,
) -> torch.Tensor:
    """``mean_t,j(alpha_t * ||pred - target||)`` of ``(B, T, J, 3)`` (see :func:`frame_weights`);
    equals MPJPE for one frame or the uniform profile."""
    a = frame_weights(pred.shape[1], profile, peak, sigma).to(pred.device, pred.dtype)
    return (torch.linalg.vector_norm(pred - target, dim=-1) * a[:, None]).mean()


def n_mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after the optimal per-pose scale of the prediction, ``(B, T, J, 3)``."""
    return F.n_mpjpe(pred.flatten(0, 1), target.flatten(0, 1))


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean error of first differences over frames (MPJVE) of ``(B, T, J, 3)``; 0 when T = 1."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    return mpjpe_loss(pred.diff(dim=1), target.diff(dim=1))


def bone_length_loss(
    pred: torch.Tensor, target: torch.Tensor, parents: Sequence[int] | None = None
) -> torch.Tensor:
    """Mean absolute error of the bone lengths of ``(B, T, J, 3)`` poses (metres).

    ``mean | |p_j - p_parent(j)| - |t_j - t_parent(j)| |`` over the bones, frames and batch. A
    lifter that must guess depth learns bones of the right length, left like right, instead of
    the shortened limbs a depth guess gives (tried for the ready lifter and not kept there:
    ``conf/experiment/ready_lifter.yaml``). ``parents``: the tree, one parent index per joint
    (-1 for the root); default Human3.6M-17 (or -16 for 16 joints). Raises ``ValueError`` for
    another joint count without ``parents``, or ``parents`` of the wrong length.
    """
    if parents is None:
        from liftpose.data.skeleton import H36M16, H36M17

        parents = {17: H36M17.parents, 16: H36M16.parents}.get(pred.shape[-2])
        if parents is None:
            raise ValueError(f"bone_length: give parents for {pred.shape[-2]} joints")
    if len(parents) != pred.shape[-2]:
        raise ValueError(f"bone_length: {len(parents)} parents for {pred.shape[-2]} joints")
    child = [j for j, p in enumerate(parents) if p >= 0]
    parent = [p for p in parents if p >= 0]
    bones_p = torch.linalg.vector_norm(pred[..., child, :] - pred[..., parent, :], dim=-1)
    bones_t = torch.linalg.vector_norm(target[..., child, :] - target[..., parent, :], dim=-1)
    return (bones_p - bones_t).abs().mean()


def temporal_consistency_loss(
    pred: torch.Tensor, target: torch.Tensor, joint_weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Penalise frame-to-frame motion of the prediction ``(B, T, J, 3)`` (MixSTE's TCLoss).

    ``mean(w_j * (pred[t+1] - pred[t])**2)`` over batch, frames, joints and coordinates, with
    optional per-joint weights ``w_j``; 0 when T = 1. ``target`` is unused.
    """
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    d = pred.diff(dim=1).square()  # (B, T-1, J, 3)
    if joint_weights is not None:
        w = torch.as_tensor(joint_weights, dtype=pred.dtype, device=pred.device)
        d = d * w[:, None]
    return d.mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mpjpe": mpjpe_loss,
    "mse": mse_loss,
    "weighted_mpjpe": weighted_mpjpe_loss,
    "frame_weighted_mpjpe": frame_weighted_mpjpe_loss,
    "n_mpjpe": n_mpjpe_loss,
    "velocity": velocity_loss,
    "temporal_consistency": temporal_consistency_loss,
    "bone_length": bone_length_loss,
}


class CompositeLoss(nn.Module):
    """Weighted sum of named loss terms; a term with weight 0 is skipped.

    Args:
        terms: ``{name: {"weight": w, **kwargs}}`` with ``name`` in :data:`LOSSES`.
    """

    def __init__(self, terms: Mapping[str, Mapping]) -> None:
        super().__init__()
        self.terms: dict[str, tuple[float, dict]] = {}
        for name, spec in terms.items():
            if name not in LOSSES:
                raise ValueError(f"unknown loss term {name!r}; known: {sorted(LOSSES)}")
            spec = dict(spec or {})
            weight = float(spec.pop("weight", 1.0))
            self.terms[name] = (weight, spec)
        if not any(w for w, _ in self.terms.values()):
            raise ValueError("every loss term has weight 0")

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``pred``, ``target``: ``(B, T, J, 3)``. Returns the total and each unweighted term."""
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                "differ in shape (model output_mode vs data.target?)"
            )
        parts = {
            name: LOSSES[name](pred, target, **kw) for name, (w, kw) in self.terms.items() if w
        }
        total = sum(self.terms[n][0] * v for n, v in parts.items())
        return total, parts

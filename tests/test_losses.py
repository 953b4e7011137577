"""Training losses and their weighted combination."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftpose.losses import CompositeLoss, temporal_consistency_loss, velocity_loss


def test_composite_loss_is_the_weighted_sum():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 5, 17, 3), torch.randn(4, 5, 17, 3)
    w = [1.0] * 17
    w[3] = 4.0
    loss = CompositeLoss(
        {
            "mpjpe": {"weight": 1.0},
            "velocity": {"weight": 2.0},
            "weighted_mpjpe": {"weight": 0.5, "joint_weights": w},
            "n_mpjpe": {"weight": 0.0},
        }
    )
    total, parts = loss(pred, target)
    assert set(parts) == {"mpjpe", "velocity", "weighted_mpjpe"}  # weight 0 is skipped
    err = torch.linalg.vector_norm(pred - target, dim=-1)  # (B, T, J)
    verr = torch.linalg.vector_norm(pred.diff(dim=1) - target.diff(dim=1), dim=-1)
    expected = err.mean() + 2.0 * verr.mean() + 0.5 * (err * torch.tensor(w)).mean()
    torch.testing.assert_close(total, expected)


def test_single_frame_temporal_terms_are_zero_and_errors_are_clear():
    x = torch.randn(2, 1, 17, 3)
    assert velocity_loss(x, x + 1) == 0 and temporal_consistency_loss(x, x) == 0
    with pytest.raises(ValueError, match="unknown loss term 'l2'"):
        CompositeLoss({"l2": {"weight": 1.0}})
    with pytest.raises(ValueError, match="weight 0"):
        CompositeLoss({"mpjpe": {"weight": 0.0}})
    with pytest.raises(ValueError, match="differ in shape"):
        CompositeLoss({"mpjpe": {}})(torch.zeros(2, 1, 17, 3), torch.zeros(2, 9, 17, 3))


MIXSTE_JOINT_WEIGHTS = [1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4]


def test_mixste_training_loss_matches_a_numpy_reference():
    """Weighted MPJPE + 0.5 x TCLoss + 2.0 x MPJVE, as MixSTE's training code computes it."""
    torch.manual_seed(0)
    pred, target = torch.randn(3, 7, 17, 3), torch.randn(3, 7, 17, 3)
    w = MIXSTE_JOINT_WEIGHTS
    loss = CompositeLoss(
        {
            "weighted_mpjpe": {"weight": 1.0, "joint_weights": w},
            "temporal_consistency": {"weight": 0.5, "joint_weights": w},
            "velocity": {"weight": 2.0},
        }
    )
    total, _ = loss(pred, target)
    p, t, wn = pred.numpy(), target.numpy(), np.asarray(w, dtype=np.float32)
    wmpjpe = (wn * np.linalg.norm(p - t, axis=-1)).mean()
    tc = (wn[None, None, :, None] * np.square(np.diff(p, axis=1))).mean()
    mpjve = np.linalg.norm(np.diff(p, axis=1) - np.diff(t, axis=1), axis=-1).mean()
    assert float(total) == pytest.approx(wmpjpe + 0.5 * tc + 2.0 * mpjve, rel=1e-5)

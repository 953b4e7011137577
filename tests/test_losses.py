"""Training losses and their weighted combination."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftpose.losses import (
    CompositeLoss,
    bone_length_loss,
    temporal_consistency_loss,
    velocity_loss,
)


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


def test_frame_weighted_mpjpe():
    from liftpose.losses import frame_weighted_mpjpe_loss, frame_weights

    torch.manual_seed(0)
    pred, target = torch.randn(2, 9, 17, 3), torch.randn(2, 9, 17, 3)
    err = torch.linalg.vector_norm(pred - target, dim=-1)  # (B, T, J)
    uniform = frame_weighted_mpjpe_loss(pred, target)
    torch.testing.assert_close(uniform, err.mean())
    a = frame_weights(9, "centre", peak=2.0, sigma=1.5)
    assert a.mean().item() == pytest.approx(1.0) and a.argmax().item() == 4
    assert torch.allclose(a, a.flip(0)) and a[4] > a[3] > a[0]
    d = torch.arange(9.0) - 4
    w = 1 + 2.0 * torch.exp(-(d**2) / (2 * 1.5**2))
    torch.testing.assert_close(a, w / w.mean())
    got = frame_weighted_mpjpe_loss(pred, target, profile="centre", peak=2.0, sigma=1.5)
    torch.testing.assert_close(got, (err * a[:, None]).mean())
    one = frame_weighted_mpjpe_loss(pred[:, :1], target[:, :1], profile="centre")
    torch.testing.assert_close(one, err[:, :1].mean())  # one frame: plain MPJPE


def test_bone_length_loss_on_hand_values() -> None:
    target = torch.zeros(1, 1, 3, 3)
    target[..., 1, 0] = 1.0  # joint 1 one metre from the root along x
    target[..., 2, 0] = 3.0  # joint 2 two metres further
    pred = target.clone()
    pred[..., 2, :] = torch.tensor([1.0, 1.0, 0.0])  # the second bone 1 m instead of 2 m
    assert bone_length_loss(pred, target, parents=[-1, 0, 1]).item() == pytest.approx(0.5)
    moved = target + torch.tensor([5.0, -2.0, 1.0])  # translating a pose keeps its bones
    assert bone_length_loss(moved, target, parents=[-1, 0, 1]).item() == pytest.approx(0.0)
    pose = torch.randn(2, 4, 17, 3, generator=torch.Generator().manual_seed(0))
    assert bone_length_loss(pose * 1.1, pose).item() > 0  # Human3.6M-17 by default
    total, parts = CompositeLoss({"mpjpe": {"weight": 1.0}, "bone_length": {"weight": 2.0}})(
        pose * 1.1, pose
    )
    assert total.item() == pytest.approx(parts["mpjpe"].item() + 2 * parts["bone_length"].item())
    with pytest.raises(ValueError, match="parents"):
        bone_length_loss(torch.zeros(1, 1, 5, 3), torch.zeros(1, 1, 5, 3))

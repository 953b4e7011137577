"""Two-step Mixed Training (tmt.txt): inputs of each step, optimiser steps, variants, eq. 2."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from liftpose.data.datamodule import LiftingDataModule
from liftpose.errors import ConfigError
from liftpose.losses import CompositeLoss
from liftpose.models import PoseFormer
from liftpose.modules.tmt import MOTION_CHANNELS, TMTModule, first_difference, tmt_in_channels
from liftpose.train import build, run_train

from .test_train import tiny_cfg


def module_for(motion: str = "v3", steps: str = "tmt") -> TMTModule:
    model = PoseFormer(
        num_frames=9, embed_dim_ratio=4, depth=1, num_heads=2,
        in_chans=tmt_in_channels(motion, steps),
    )  # fmt: skip
    return TMTModule(
        model,
        CompositeLoss({"mpjpe": {"weight": 1.0}}),
        optimizer=torch.optim.Adam,
        flip_permutation=list(range(17)),
        steps=steps,
        motion=motion,
    )


@pytest.mark.parametrize("motion,total", [("v3", 5), ("v2", 4), ("a3", 5), ("va3", 8)])
def test_each_variant_has_the_stated_channel_count(motion, total):
    assert tmt_in_channels(motion, "tmt") == total == 2 + MOTION_CHANNELS[motion]
    assert tmt_in_channels(motion, "none") == 2
    m = module_for(motion)
    x, y = torch.randn(3, 9, 17, 2), torch.randn(3, 9, 17, 3)
    step1 = m.model_input(x, "zeros")
    step2 = m.model_input(x, "motion", y)
    assert step1.shape == step2.shape == (3, 9, 17, total)
    torch.testing.assert_close(step2[..., :2], x)
    assert torch.all(step1[..., 2:] == 0)
    v3 = torch.cat([torch.zeros_like(y[:, :1]), y[:, 1:] - y[:, :-1]], dim=1)  # eq. 1
    a3 = torch.cat([torch.zeros_like(v3[:, :1]), v3[:, 1:] - v3[:, :-1]], dim=1)  # eq. 4
    v2 = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)  # eq. 3
    expected = {"v3": v3, "v2": v2, "a3": a3, "va3": torch.cat([v3, a3], -1)}[motion]
    torch.testing.assert_close(step2[..., 2:], expected)
    assert torch.all(step2[:, 0, :, 2:] == 0)  # the first frame's motion is zero


def test_first_difference():
    x = torch.arange(5.0).reshape(1, 5, 1, 1) ** 2
    assert first_difference(x).flatten().tolist() == [0, 1, 3, 5, 7]


def test_bad_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="module.motion"):
        tmt_in_channels("v4", "tmt")
    with pytest.raises(ConfigError, match="module.steps"):
        tmt_in_channels("v3", "tmt3")


def test_inference_feeds_zeros():
    m = module_for().eval()
    seen = []
    m.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    x = torch.randn(2, 9, 17, 2)
    m.predict_eval(x)  # the input and its mirror (flip test)
    assert len(seen) == 2 and all(s.shape[-1] == 5 and torch.all(s[..., 2:] == 0) for s in seen)


@pytest.mark.parametrize("steps,n_updates", [("tmt", 2), ("tmt1", 1), ("tmt2", 1)])
def test_one_batch_makes_one_update_per_step(tiny_root, tmp_path, steps, n_updates):
    """One training batch: the optimiser steps once per TMT step; step 2 carries the
    ground-truth velocity; evaluation never sees non-zero motion channels."""
    cfg = tiny_cfg(tiny_root, tmp_path / "run", ["module=tmt", f"module.steps={steps}"])
    dm, module = build(cfg)
    calls: list[tuple[bool, torch.Tensor]] = []
    module.model.register_forward_pre_hook(
        lambda mod, args: calls.append((mod.training, args[0].detach().clone()))
    )
    batches = []
    original = module.training_step

    def recording_step(batch, batch_idx):
        batches.append({k: v.clone() for k, v in batch.items()})
        return original(batch, batch_idx)

    module.training_step = recording_step
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == n_updates
    train_inputs = [x for training, x in calls if training]
    assert len(train_inputs) == n_updates and len(batches) == 1
    velocity = first_difference(batches[0]["pose_3d"])
    firsts = {"tmt": "zeros", "tmt1": "zeros", "tmt2": "motion"}
    kinds = [firsts[steps]] + (["motion"] if steps == "tmt" else [])
    for x, kind in zip(train_inputs, kinds):
        torch.testing.assert_close(x[..., :2], batches[0]["pose_2d"])
        if kind == "zeros":
            assert torch.all(x[..., 2:] == 0)
        else:
            torch.testing.assert_close(x[..., 2:], velocity)
            assert x[..., 2:].abs().sum() > 0
    eval_inputs = [x for training, x in calls if not training]
    assert eval_inputs and all(torch.all(x[..., 2:] == 0) for x in eval_inputs)


def test_tmt_needs_whole_window_targets(tiny_root, tmp_path):
    cfg = tiny_cfg(tiny_root, tmp_path / "run", ["module=tmt", "data.target=centre"])
    with pytest.raises(ConfigError, match="data.target=sequence"):
        build(cfg)
    cfg = tiny_cfg(tiny_root, tmp_path / "run", ["module=tmt", "model.in_chans=2"])
    with open_dict(cfg):
        cfg.model.in_chans = 2
    with pytest.raises(ConfigError, match="feeds 5 channels"):
        build(cfg)


def test_tmt_trains_and_tests_end_to_end(tiny_root, tmp_path):
    doc = run_train(tiny_cfg(tiny_root, tmp_path / "run", ["module=tmt", "trainer.max_epochs=1"]))
    assert np.isfinite(doc["metrics"]["test/mpjpe"]) and doc["config"]["model"]["in_chans"] == 5


@pytest.mark.parametrize("m", [0.0, 0.5, 1.0])
def test_keypoint_mixing_eq2(tiny_root, tmp_path, m):
    def pose_2d(**kw):
        dm = LiftingDataModule(
            str(tiny_root), "tiny", train_subjects=["A", "B"], test_subjects=["C"],
            cache_dir=str(tmp_path), **kw,
        )  # fmt: skip
        dm.setup()
        return dm.splits["test"].pose_2d

    det, gt = pose_2d(keypoints="det"), pose_2d(keypoints="gt")
    assert not np.array_equal(det, gt)
    mixed = pose_2d(keypoints="det", keypoints_mix=m)
    if m == 0.0:
        np.testing.assert_array_equal(mixed, det)
    elif m == 1.0:
        np.testing.assert_array_equal(mixed, gt)
    else:
        np.testing.assert_allclose(mixed, det + m * (gt - det), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="keypoints_mix"):
        LiftingDataModule(str(tiny_root), "tiny", keypoints_mix=1.5)

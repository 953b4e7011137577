"""The camera in the batches, the pose-refinement stage, training subsets and TMT's velocity
frame."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from liftpose.data.datamodule import LiftingDataModule, SplitArrays, WindowDataset
from liftpose.data.h36m import Sequence, normalised_intrinsics, subset_sequence
from liftpose.data.sampler import EpochSampler
from liftpose.data.skeleton import H36M17
from liftpose.errors import ConfigError, DataError
from liftpose.models.refine import PoseRefinement, uvd_to_xyz
from liftpose.modules.refine import RefineModule
from liftpose.train import build, run_train

from .test_configs import compose_cfg
from .test_train import tiny_overrides

STRIDED = [
    "experiment=strided_cpu",
    "model.channel=16",
    "model.d_hid=32",
    "model.layers=1",
    "model.strides=[3,3]",
    "data.target=sequence",
]


def tiny_cfg(root, out, extra):
    """The tiny dataset's config with a small Strided Transformer (``STRIDED``) and ``extra``."""
    from omegaconf import open_dict

    base = [o for o in tiny_overrides(root, out.parent / "cache") if not o.startswith("model.")]
    cfg = compose_cfg("train", base + STRIDED + extra)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def _pinhole_arrays(n_seq: int = 3, frames: int = 20) -> SplitArrays:
    """Sequences filmed by undistorted pinhole cameras: 2-D is the exact projection."""
    rng = np.random.default_rng(0)
    seqs = []
    for s in range(n_seq):
        root = np.stack([rng.normal(0, 0.3, frames), rng.normal(0, 0.2, frames),
                         4.0 + rng.normal(0, 0.2, frames)], -1)  # fmt: skip
        rel = rng.normal(0, 0.3, (frames, 17, 3))
        rel[:, 0] = 0
        cam = np.array([2.3 + 0.1 * s, 2.28, 0.02 * s, -0.03], np.float32)
        pos = rel + root[:, None]
        uv = pos[..., :2] / pos[..., 2:] * cam[:2] + cam[2:]
        seqs.append(
            Sequence("S", f"act {s}", "c", uv.astype(np.float32), rel.astype(np.float32),
                     root=root.astype(np.float32), intrinsics=cam)
        )  # fmt: skip
    return SplitArrays.from_sequences(seqs, "h36m17")


@pytest.mark.parametrize("target", ["centre", "sequence"])
def test_camera_context_back_projects_the_poses_also_mirrored(target):
    """With the batch's camera and root, the exact 2-D and the true depths give back the
    root-relative 3-D, for mirrored samples too (c_x and the root's x negated)."""
    arrays = _pinhole_arrays()
    ds = WindowDataset(
        arrays, 5, target, flip_augment=True, flip_permutation=H36M17.flip_permutation,
        camera_context=True,
    )  # fmt: skip
    # every window, each mirrored or not as the training sampler draws it (index + len)
    batch = ds.__getitems__(EpochSampler(len(ds), flip=True, seed=0).order(0).tolist())
    assert batch["camera"].shape == (len(ds), 4)
    t = batch["pose_3d"].shape[1]
    assert batch["root_3d"].shape == (len(ds), t, 3)
    flipped = batch["camera"][:, 2] != torch.from_numpy(arrays.camera[batch["seq"], 2])
    assert 0 < int(flipped.sum()) < len(ds)  # both kinds of sample are in the batch
    c = 2
    uv = batch["pose_2d"][:, c : c + 1] if t == 1 else batch["pose_2d"]
    y = batch["pose_3d"]
    xyz = uvd_to_xyz(uv.double(), y[..., 2].double(), batch["root_3d"].double(),
                     batch["camera"].double())  # fmt: skip
    torch.testing.assert_close(xyz, y.double(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="camera_context"):
        WindowDataset(SplitArrays(**{**arrays.__dict__, "root_3d": None}), 5, camera_context=True)


def test_h36m_loader_gives_root_and_intrinsics(tiny_root, tmp_path):
    from liftpose.data.h36m import dataset_cameras

    dm = LiftingDataModule(
        str(tiny_root), "tiny", keypoints="gt", train_subjects=["A", "B"], test_subjects=["C"],
        cache_dir=str(tmp_path), camera_context=True, receptive_field=9,
    )  # fmt: skip
    dm.setup()
    test = dm.splits["test"]
    assert test.root_3d.shape == (len(test.pose_3d), 3) and test.camera.shape == (4 * 3, 4)
    cams = dataset_cameras(tiny_root, "tiny")["C"]
    cam = cams[test.seq_names[0].split("/")[-1]]
    np.testing.assert_allclose(test.camera[0], normalised_intrinsics(cam), rtol=1e-6)
    batch = dm.dataset("test").__getitems__([0, 5])
    assert batch["root_3d"].shape == (2, 1, 3) and batch["camera"].shape == (2, 4)
    assert float(batch["root_3d"][:, 0, 2].min()) > 1.0  # in front of the camera, metres
    plain = LiftingDataModule(str(tiny_root), "tiny", keypoints="gt", cache_dir=str(tmp_path),
                              receptive_field=9, train_subjects=["A", "B"],
                              test_subjects=["C"])  # fmt: skip
    assert "camera" not in plain.dataset("test").__getitems__([0])


def test_train_subset_is_a_contiguous_part_fixed_by_the_length(tiny_root, tmp_path):
    seq = Sequence("S", "a", "c", np.arange(90.0).reshape(90, 1, 1) * np.ones((1, 17, 2)),
                   np.zeros((90, 17, 3)), root=np.arange(90.0)[:, None] * np.ones(3))  # fmt: skip
    part = subset_sequence(seq, 1 / 3)
    frames = part.pose_2d[:, 0, 0]
    assert len(frames) == 30 and np.all(np.diff(frames) == 1)
    np.testing.assert_array_equal(part.root[:, 0], frames)
    other_view = subset_sequence(Sequence("S", "a", "d", seq.pose_2d + 1, seq.pose_3d), 1 / 3)
    np.testing.assert_array_equal(other_view.pose_2d - 1, part.pose_2d)  # same frames
    assert len(subset_sequence(seq, 0.5, downsample=4).pose_2d) == 44
    assert subset_sequence(seq, 1.0) is seq

    def windows(**kw):
        dm = LiftingDataModule(str(tiny_root), "tiny", keypoints="gt", train_subjects=["A", "B"],
                               test_subjects=["C"], cache_dir=str(tmp_path), receptive_field=9,
                               **kw)  # fmt: skip
        dm.setup()
        return len(dm.splits["train"].pose_2d), len(dm.splits["test"].pose_2d)

    (full_train, full_test), (third_train, third_test) = windows(), windows(train_subset=0.34)
    assert third_test == full_test and 0.3 * full_train < third_train < 0.4 * full_train
    with pytest.raises(ConfigError, match="train_subset"):
        LiftingDataModule(str(tiny_root), "tiny", train_subset=0.0)


def test_refinement_blends_x_and_y_only():
    torch.manual_seed(0)
    ref = PoseRefinement(17, hidden=8).eval()
    pred, xyz = torch.randn(2, 1, 17, 3), torch.randn(2, 1, 17, 3)
    out = ref(pred, xyz)
    torch.testing.assert_close(out[..., 2], pred[..., 2])
    lo, hi = torch.minimum(pred, xyz)[..., :2], torch.maximum(pred, xyz)[..., :2]
    assert torch.all(out[..., :2] >= lo - 1e-6) and torch.all(out[..., :2] <= hi + 1e-6)
    with pytest.raises(ValueError, match="PoseRefinement expects"):
        ref(pred, xyz[:, :, :16])


def _fit_one_batch(module, dm) -> L.Trainer:
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return trainer


def test_refine_stage_starts_from_the_lifter_and_supervises_the_refined_pose(tiny_root, tmp_path):
    stage1 = run_train(tiny_cfg(tiny_root, tmp_path / "s1", ["trainer.max_epochs=1",
                                                             "test=false"]))  # fmt: skip
    ckpt = tmp_path / "s1" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and stage1 is not None
    cfg = tiny_cfg(tiny_root, tmp_path / "s2", ["module=refine", "trainer.max_epochs=1",
                                                f"module.init_weights={ckpt}"])  # fmt: skip
    dm, module = build(cfg)
    assert isinstance(module, RefineModule) and module.model.refine is not None
    assert dm.hparams.camera_context
    module.load_lifter(ckpt)  # what setup("fit") does
    lifter = torch.load(ckpt, weights_only=False)["state_dict"]
    for k, v in module.state_dict().items():
        if k.startswith("model.") and not k.startswith("model.refine."):
            torch.testing.assert_close(v, lifter[k], rtol=0, atol=0)
    # one update: the loss is the refined centre pose's, and the refinement learns
    before = module.model.refine.fc2.weight.detach().clone()
    losses = []
    original = module.loss.forward

    def recording_loss(pred, target):
        losses.append((pred.shape, target.shape))
        return original(pred, target)

    module.loss.forward = recording_loss
    _fit_one_batch(module, dm)
    assert losses[0] == (torch.Size([32, 1, 17, 3]), torch.Size([32, 1, 17, 3]))
    assert not torch.equal(before, module.model.refine.fc2.weight)
    # evaluation refines then zeroes the root, and scores
    doc = run_train(cfg.copy())
    assert np.isfinite(doc["metrics"]["test/mpjpe"])


def test_refine_stage_errors(tiny_root, tmp_path):
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException) as err:  # the CLI prints the ConfigError
        build(tiny_cfg(tiny_root, tmp_path / "a", ["module=refine", "model.refine=false"]))
    assert isinstance(err.value.__cause__, ConfigError)
    assert "model.refine=true" in str(err.value.__cause__)
    dm, module = build(
        tiny_cfg(tiny_root, tmp_path / "b", ["module=refine", "data.camera_context=false"])
    )
    with pytest.raises(ConfigError, match="camera_context"):
        _fit_one_batch(module, dm)
    dm, module = build(
        tiny_cfg(tiny_root, tmp_path / "c", ["module=refine", "module.init_weights=nowhere.ckpt"])
    )
    with pytest.raises(DataError, match="nowhere.ckpt"):
        _fit_one_batch(module, dm)


def test_tmt_global_velocity_adds_the_root_trajectory():
    from liftpose.modules.tmt import TMTModule, first_difference

    module = TMTModule(torch.nn.Identity(), {"terms": {"mpjpe": {"weight": 1.0}}},
                       torch.optim.Adam, velocity="global")  # fmt: skip
    x = torch.randn(2, 5, 17, 2)
    y = torch.randn(2, 5, 17, 3)
    y[..., 0, :] = 0
    root = torch.randn(2, 5, 3)
    v = module.motion_channels(x, y, root)
    torch.testing.assert_close(v[..., 0, :], first_difference(root[:, :, None])[..., 0, :])
    torch.testing.assert_close(v - v[..., :1, :], first_difference(y))
    with pytest.raises(ConfigError, match="camera_context"):
        module.motion_channels(x, y)
    module.hparams.velocity = "root_relative"
    assert torch.all(module.motion_channels(x, y, root)[..., 0, :] == 0)  # root velocity 0
    with pytest.raises(ConfigError, match="velocity"):
        TMTModule(torch.nn.Identity(), {"terms": {"mpjpe": {"weight": 1.0}}}, torch.optim.Adam,
                  velocity="world")  # fmt: skip


def test_sequence_to_sequence_lifters_take_even_windows(tiny_root, tmp_path):
    """MixSTE (seq2seq) trains and tests on an even window, which needs no centre frame
    (TMT Table 6's T = 64, 128, 256); every test frame is scored once."""
    from omegaconf import open_dict

    base = [o for o in tiny_overrides(tiny_root, tmp_path / "cache") if not o.startswith("model.")]
    extra = ["experiment=mixste_cpu", "model.embed_dim_ratio=8", "model.depth=1", "frames=8",
             "data.target=sequence", "data.test_stride=8", "trainer.max_epochs=1"]  # fmt: skip
    cfg = compose_cfg("train", base + extra)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    doc = run_train(cfg)
    assert np.isfinite(doc["metrics"]["test/mpjpe"]) and doc["config"]["frames"] == 8
    dm, _ = build(cfg)
    batch = dm.dataset("test", stride=8).__getitems__([0, 1])
    assert batch["pose_2d"].shape[1] == 8 and batch["frames"][0].tolist() == [0] * 5 + [1, 2, 3]
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException) as err:  # a centre-frame model needs odd windows
        build(compose_cfg("train", base + ["frames=8"]))
    assert "even only with data.target=sequence" in str(err.value.__cause__)

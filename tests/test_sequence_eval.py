"""Whole-sequence lifting (``LiftingModule.predict_sequence``, the test loop, ``liftpose-infer``)
equals the per-window path."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from liftpose.data.datamodule import SequenceDataset, SplitArrays, WindowDataset
from liftpose.data.skeleton import H36M17
from liftpose.models.mixste import MixSTE
from liftpose.models.poseformer import PoseFormer
from liftpose.models.videopose3d import VideoPose3D
from liftpose.modules import LiftingModule

TOL = dict(rtol=1e-5, atol=1e-5)


def _module(model: torch.nn.Module, flip: bool = True, **kwargs) -> LiftingModule:
    torch.manual_seed(1)
    with torch.no_grad():  # BatchNorm statistics and affine parameters that matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.add_(0.1 * torch.randn_like(m.weight))
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return LiftingModule(
        model,
        loss={"terms": {"mpjpe": {"weight": 1.0}}},
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        test_flip=flip,
        flip_permutation=H36M17.flip_permutation.tolist(),
        **kwargs,
    ).eval()


def _arrays(t: int, seed: int = 0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    return SplitArrays(
        pose_2d=rng.normal(0, 0.3, (t, 17, 2)).astype(np.float32),
        pose_3d=rng.normal(0, 0.3, (t, 17, 3)).astype(np.float32),
        seq_start=np.zeros(1, np.int64),
        seq_len=np.array([t]),
        seq_action=np.zeros(1, np.int64),
        action_names=["a"],
        seq_names=["s"],
    )


def _per_window(module: LiftingModule, arrays: SplitArrays, rf: int) -> torch.Tensor:
    """The centre-frame predictions of the test split's windows (one window per frame)."""
    ds = WindowDataset(arrays, rf, "centre")
    with torch.no_grad():
        pred = module.predict_eval(ds.__getitems__(list(range(len(ds))))["pose_2d"])
    return pred[:, pred.shape[1] // 2]


def _videopose3d(**kwargs) -> VideoPose3D:
    torch.manual_seed(0)
    return VideoPose3D(filter_widths=(3, 3, 3), channels=32, **kwargs)


@pytest.mark.parametrize("t", [1, 7, 27, 100])
@pytest.mark.parametrize("flip", [True, False])
def test_videopose3d_one_pass_equals_per_window(t: int, flip: bool) -> None:
    module = _module(_videopose3d(), flip)
    assert module.sequence_path == "dilated"
    arrays = _arrays(t)
    ref = _per_window(module, arrays, 27)  # strided 1-frame path, window by window
    got = module.predict_sequence(torch.from_numpy(arrays.pose_2d))
    torch.testing.assert_close(got, ref, **TOL)
    # in segments (each with RF - 1 frames of context), and a subset of the frames
    seg = module.predict_sequence(arrays.pose_2d, max_frames=8)
    torch.testing.assert_close(seg, ref, **TOL)
    frames = torch.arange(0, t, 3)
    torch.testing.assert_close(module.predict_sequence(arrays.pose_2d, frames), ref[frames], **TOL)


def test_windows_path_equals_the_window_dataset() -> None:
    torch.manual_seed(0)
    model = PoseFormer(num_frames=9, embed_dim_ratio=8, depth=1, num_heads=2)
    module = _module(model)
    assert module.sequence_path == "windows"
    arrays = _arrays(40)
    ref = _per_window(module, arrays, 9)
    torch.testing.assert_close(module.predict_sequence(arrays.pose_2d, batch_size=7), ref, **TOL)
    frames = torch.tensor([0, 5, 39])
    torch.testing.assert_close(module.predict_sequence(arrays.pose_2d, frames), ref[frames], **TOL)


@pytest.mark.parametrize("t", [5, 27, 54, 60])
def test_seq2seq_chunks_as_the_official_evaluation(t: int) -> None:
    """MixSTE: chunks at 0, 9, 18, ...; the last ends on the last frame; short sequences are
    padded with their last frame."""
    torch.manual_seed(0)
    module = _module(MixSTE(num_frames=9, embed_dim_ratio=16, depth=1, num_heads=2))
    assert module.sequence_path == "chunks"
    x = torch.from_numpy(_arrays(t).pose_2d)
    got = module.predict_sequence(x, batch_size=2)
    assert got.shape == (t, 17, 3)
    with torch.no_grad():
        if t < 9:
            ref = module.predict_eval(torch.cat([x, x[-1:].expand(9 - t, -1, -1)])[None])[0, :t]
        else:
            starts = list(range(0, t - 8, 9))
            parts = [module.predict_eval(x[None, s : s + 9])[0] for s in starts]
            covered = starts[-1] + 9
            if covered < t:
                parts.append(module.predict_eval(x[None, t - 9 :])[0, covered - t :])
            ref = torch.cat(parts)
    torch.testing.assert_close(got, ref, **TOL)


def test_sequence_dataset_scores_strided_valid_frames() -> None:
    arrays = _arrays(20)
    arrays.valid = np.arange(20) % 4 != 1
    batch = SequenceDataset(arrays, stride=2).__getitems__([0])
    assert batch["pose_2d"].shape == (1, 20, 17, 2) and batch["sequence"].all()
    np.testing.assert_array_equal(batch["frames"][0].numpy(), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    arrays.valid = np.arange(20) % 2 == 1
    assert len(SequenceDataset(arrays, stride=2).__getitems__([0])["frames"][0]) == 0
    windows = WindowDataset(arrays, 9, stride=1)
    scored = SequenceDataset(arrays).__getitems__([0])["frames"][0]
    assert torch.equal(scored, windows.sample_centre)  # the same frames as the window test


@pytest.mark.slow
@pytest.mark.parametrize("model", ["videopose3d", "poseformer"])
def test_test_loop_sequence_equals_window_metrics(model, tiny_root, tmp_path) -> None:
    """``trainer.test`` gives the same metrics with ``data.test_mode`` sequence and window."""
    import lightning as L

    from liftpose.train import build

    from .test_configs import compose_cfg
    from .test_train import tiny_overrides

    overrides = tiny_overrides(tiny_root, tmp_path / "cache") + ["data.test_stride=2"]
    if model == "videopose3d":
        overrides = [o for o in overrides if not o.startswith(("model.", "frames="))]
        overrides += ["experiment=videopose3d_cpu", "model.channels=32"]
    results = {}
    for mode in ("sequence", "window"):
        cfg = compose_cfg("train", [*overrides, f"data.test_mode={mode}"])
        L.seed_everything(0)  # the same weights for both
        dm, module = build(cfg)
        trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.test(module, datamodule=dm, verbose=False)
        results[mode] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert results["sequence"].keys() == results["window"].keys()
    assert "test/mpjpe" in results["sequence"]
    for k, v in results["window"].items():  # MPJVE is undefined at test_stride 2 (NaN)
        assert results["sequence"][k] == pytest.approx(v, rel=1e-5, abs=1e-5, nan_ok=True), k


@pytest.mark.parametrize("option", [True, {"mode": "max-autotune", "dynamic": False}])
def test_module_compile_switch_compiles_the_model_in_place(option, monkeypatch) -> None:
    """``module.compile`` hands the model to ``nn.Module.compile`` (keys unchanged)."""
    model = _videopose3d()
    calls = []
    monkeypatch.setattr(model, "compile", lambda **kw: calls.append(kw))
    module = _module(model, compile=option)
    assert calls == [{} if option is True else option]
    assert module.model is model and "model.head.weight" in module.state_dict()
    _module(_videopose3d(), compile=False)  # off: nothing to call

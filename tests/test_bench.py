"""``make bench`` runs (its figures are printed, not asserted), and its references are honest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftpose.bench import (
    device_peak_tflops,
    growth_exponent,
    interleaved,
    main,
    per_sample_batches,
)


def test_bench_models_run(capsys):
    main(["--skip-data", "--frames", "9", "--precision", "fp32", "--seconds", "0.05",
          "--strided-frames", "27", "--model-batch", "2", "--attention-frames", "16", "32",
          "--repeats", "1", "--sequence", "--skip-render", "--skip-system"])  # fmt: skip
    out = capsys.readouterr().out
    assert "poseformer (paper dimensions)" in out and "attn_lifter (paper dimensions)" in out
    assert "dense vs strided attention" in out and "strided (STE)" in out
    assert "Attention layer" in out and "Growth exponents" in out and "masked" in out


def test_interleaved_and_growth_exponent():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert set(t) == {"a", "b"} and calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, rounds
    n = [10, 100, 1000]
    assert growth_exponent(n, [x**1.5 for x in n]) == pytest.approx(1.5)
    assert device_peak_tflops("cpu", "bf16") is None


def test_reference_generator_builds_the_datamodules_windows(tiny_root, tmp_path):
    """The per-sample reference (the official ChunkedGenerator's work) yields the same windows
    as the vectorised gather: edge padding at sequence ends, flips with the joint swap."""
    from liftpose.data.datamodule import LiftingDataModule
    from liftpose.data.windows import flip_pose

    dm = LiftingDataModule(root=str(tiny_root), name="tiny", keypoints="gt",
                           train_subjects=["A"], test_subjects=["C"], receptive_field=9,
                           cache_dir=str(tmp_path))  # fmt: skip
    dm.prepare_data()
    dm.setup()
    arrays = dm.splits["train"]
    perm = dm.skeleton.flip_permutation
    gen = per_sample_batches(arrays, 9, 64, perm, np.random.default_rng(0))
    ds = dm.dataset("train")
    all_windows = ds.__getitems__(list(range(len(ds))))["pose_2d"]  # (N, 9, J, 2), unflipped
    mirrored = flip_pose(all_windows, perm)
    pool = torch.cat([all_windows, mirrored]).reshape(2 * len(ds), -1)
    for _ in range(3):
        x, y = next(gen)
        assert x.shape == (64, 9, 17, 2) and y.shape == (64, 1, 17, 3)
        # every reference window is one of the datamodule's windows (or its mirror)
        d = torch.cdist(x.reshape(64, -1).double(), pool.double())
        assert d.min(dim=1).values.max() < 1e-5


def test_official_import_isolates_checkouts(tmp_path):
    """Two checkouts with the same package names are imported side by side; stand-ins fill
    in for timm when it is absent."""
    import importlib

    from liftpose.sidebyside import official_import

    for repo, value in (("A", 1), ("B", 2)):
        (tmp_path / repo / "common").mkdir(parents=True)
        (tmp_path / repo / "common" / "__init__.py").write_text("")
        (tmp_path / repo / "common" / "model.py").write_text(
            f"from timm.models.layers import DropPath\nVALUE = {value}\n"
        )
    with official_import(tmp_path / "A"):
        a = importlib.import_module("common.model")
    with official_import(tmp_path / "B"):
        b = importlib.import_module("common.model")
    assert (a.VALUE, b.VALUE) == (1, 2)
    assert "common" not in __import__("sys").modules
    with pytest.raises(FileNotFoundError):
        with official_import(tmp_path / "missing"):
            pass


def test_mfu_parts(monkeypatch):
    """The device peak comes from the CUDA device's name; FLOPs from the flop counter."""
    from liftpose.bench import count_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H200")
    assert device_peak_tflops("cuda", "bf16") == pytest.approx(989.4)
    assert device_peak_tflops("cuda:0", "fp32") == pytest.approx(494.7)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Some Future GPU")
    assert device_peak_tflops("cuda", "bf16") is None
    lin = torch.nn.Linear(8, 4, bias=False)
    assert count_flops(lambda: lin(torch.randn(5, 8))) == 2 * 5 * 8 * 4

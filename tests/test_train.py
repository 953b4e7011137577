"""End-to-end runs on the tiny dataset: learning, resuming, evaluating, distributed metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from liftpose.eval import run_eval
from liftpose.train import build, run_train, seed_run

from .test_configs import compose_cfg

pytestmark = pytest.mark.slow


def tiny_overrides(root: Path, cache: Path, epochs: int = 2) -> list[str]:
    return [
        f"data.root={root}",
        "data.name=tiny",
        "data.embedded=false",
        "data.keypoints=gt",
        "data.train_subjects=[A,B]",
        "data.test_subjects=[C]",
        f"data.cache_dir={cache}",
        "data.batch_size=32",
        "data.train_stride=1",
        "data.val_stride=3",
        "frames=9",
        "model.embed_dim_ratio=8",
        "model.depth=1",
        "model.num_heads=2",
        f"trainer.max_epochs={epochs}",
        "trainer.precision=32-true",  # exact comparisons (the experiment's recipe may be bf16)
        "trainer.enable_progress_bar=false",
        "~callbacks.rich_progress_bar",
        "module.optimizer.lr=2e-3",
    ]


def tiny_cfg(tiny_root: Path, out: Path, extra: list[str] | None = None, name="train"):
    cfg = compose_cfg(
        name,
        (tiny_overrides(tiny_root, out.parent / "cache") if name == "train" else [])
        + (extra or []),
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def test_training_lowers_the_loss(tiny_root, tmp_path):
    cfg = tiny_cfg(tiny_root, tmp_path / "run", ["trainer.max_epochs=4", "test=false"])
    dm, module = build(cfg)
    dm.prepare_data()
    dm.setup()
    batch = dm.dataset("train").__getitems__(list(range(0, 400, 2)))
    module.eval()
    with torch.no_grad():
        before = module.loss(module(batch["pose_2d"]), batch["pose_3d"])[0]
    torch.manual_seed(0)
    run_train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    module.load_state_dict(last["state_dict"])
    module.eval()
    with torch.no_grad():
        after = module.loss(module(batch["pose_2d"]), batch["pose_3d"])[0]
    assert after < 0.7 * before, (before, after)


def test_metrics_json_resume_and_eval_reproduces(tiny_root, tmp_path):
    run = tmp_path / "run"
    doc = run_train(tiny_cfg(tiny_root, run, ["test_ckpt=last"]))
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["metrics"] == doc["metrics"]
    m = on_disk["metrics"]
    for key in (
        "test/mpjpe",
        "test/p_mpjpe",
        "test/n_mpjpe",
        "test/mpjve",
        "test/pck",
        "test/auc",
        "test/mpjpe/frames",
        "test/mpjpe/action/Walk",
        "test/p_mpjpe/action/Wave",
    ):
        assert key in m, key
    assert on_disk["seed"] == 0 and on_disk["data_fingerprint"] and on_disk["params"] > 0
    history = on_disk["val_history"]  # [epoch, seconds of training, val/mpjpe] per validation
    assert [h[0] for h in history] == [1, 2] and 0 < history[0][1] < history[1][1]
    assert on_disk["config"]["model"]["depth"] == 1
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1

    # resume from last.ckpt for one more epoch: the same weights as an uninterrupted run
    run2 = tmp_path / "resumed"
    run_train(
        tiny_cfg(tiny_root, run2, [f"ckpt_path={last}", "trainer.max_epochs=3", "test=false"])
    )
    ck = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck["epoch"] == 2
    assert [h[0] for h in ck["liftpose_val_history"]] == [1, 2, 3]  # carried over
    run3 = tmp_path / "straight"
    run_train(tiny_cfg(tiny_root, run3, ["trainer.max_epochs=3", "test=false"]))
    ref = torch.load(run3 / "checkpoints" / "last.ckpt", weights_only=False)
    assert ck["global_step"] == ref["global_step"]
    for k, v in ref["state_dict"].items():
        torch.testing.assert_close(ck["state_dict"][k], v, rtol=0, atol=0, msg=k)

    # eval of the checkpoint reproduces metrics.json
    ev = tmp_path / "eval"
    doc_eval = run_eval(tiny_cfg(tiny_root, ev, [f"ckpt_path={last}", "logger=none"], name="eval"))
    assert doc_eval["metrics"].keys() == m.keys()
    for k, v in m.items():
        assert doc_eval["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-6), k


def test_ddp_two_processes_match_one(tiny_root, tmp_path, capfd):
    run = tmp_path / "run"
    # one camera: 291 test windows, an odd count, so the distributed sampler pads with repeats
    run_train(
        tiny_cfg(tiny_root, run, ["trainer.max_epochs=1", "test=false", "data.cameras=[54138969]"])
    )
    last = str(run / "checkpoints" / "last.ckpt")
    one = run_eval(tiny_cfg(tiny_root, tmp_path / "e1", [f"ckpt_path={last}"], name="eval"))
    two = run_eval(
        tiny_cfg(
            tiny_root,
            tmp_path / "e2",
            [f"ckpt_path={last}", "trainer=ddp_sim", "trainer.enable_progress_bar=false"],
            name="eval",
        )
    )
    if not two:  # the spawned rank 0 wrote the file
        two = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    out, err = capfd.readouterr()  # the spawned processes' output too
    assert "sync_dist=True" not in out + err  # epoch values are synced by the metrics
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, rel=1e-5, abs=1e-5), k


def test_seed_zero_seeds(tiny_root, tmp_path):
    def weights(seed):
        cfg = tiny_cfg(tiny_root, tmp_path / "a", [f"seed={seed}"])
        assert seed_run(cfg) == seed
        return torch.cat([p.flatten() for p in build(cfg)[1].parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_infer_lifts_a_keypoint_file(tiny_root, tmp_path):
    import numpy as np

    from liftpose.data.camera import normalize_screen_coordinates
    from liftpose.data.h36m import load_sequences
    from liftpose.infer import main as infer_main
    from liftpose.system.lifting import lift_sequence, load_lifter

    run = tmp_path / "run"
    run_train(tiny_cfg(tiny_root, run, ["trainer.max_epochs=1", "test=false"]))
    seq = load_sequences(tiny_root, "tiny", "gt", ["C"])[0]
    w, h = 1000, 1002
    pixels = (seq.pose_2d + [1, h / w]) * w / 2  # the normalised 2-D back to pixels
    np.savez(tmp_path / "kp.npz", keypoints=pixels, layout="h36m17", fps=50.0)
    ckpt = str(run / "checkpoints" / "last.ckpt")
    out = tmp_path / "out"
    argv = [str(tmp_path / "kp.npz"), "--lifter", ckpt, "--no-draw", "--out", str(out)]
    assert infer_main([*argv, "--width", str(w), "--height", str(h)]) == 0
    with np.load(out / "poses.npz") as f:
        poses = f["person0/pose_3d"]
    assert poses.shape == seq.pose_3d.shape and np.isfinite(poses).all()
    np.testing.assert_array_equal(poses[:, 0], 0.0)  # root-relative
    # the same as lifting the normalised sequence directly (same rate: no resampling)
    lifter = load_lifter(ckpt)
    direct = lift_sequence(lifter, normalize_screen_coordinates(pixels, w, h))
    np.testing.assert_allclose(poses, direct, atol=1e-5)
    # pixels without an image size are refused with a clear message
    assert infer_main([*argv[:-1], str(tmp_path / "out2")]) == 2


def test_data_cli_info(tiny_root, capsys):
    from liftpose.data.cli import main as data_main

    assert data_main(["info", "--root", str(tiny_root), "--name", "tiny", "--keypoints", "gt"]) == 0
    assert "36 sequences" in capsys.readouterr().out
    assert data_main(["info", "--root", str(tiny_root), "--name", "nope"]) == 2


def test_cli_reports_bad_config_in_one_line_and_leaves_no_run(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, LIFTPOSE_ROOT=str(tmp_path))
    for args, expected in (
        (["frames=8"], "data.receptive_field (set by frames=...) must be a positive odd"),
        (["data=h36m", f"data.root={tmp_path}/nowhere"], "data_3d_h36m.npz: file: not found"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "liftpose.train", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert expected in proc.stderr
        assert "Traceback" not in proc.stderr
    runs = tmp_path / "logs" / "train" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_csv_logger_appends_across_stages(tmp_path):
    import csv

    from liftpose.utils.loggers import CSVLogger

    first = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.save()
    second = CSVLogger(save_dir=str(tmp_path), name="csv", version="")  # e.g. the test stage
    second.log_metrics({"test/mpjpe": 50.0}, step=1)
    second.save()
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    assert [r["train/loss"] for r in rows] == ["1.0", ""]
    assert [r["test/mpjpe"] for r in rows] == ["", "50.0"]


def test_last_checkpoint_holds_the_final_epoch_when_validation_stops_improving(tiny_root, tmp_path):
    """With a learning rate of 1e-30 (below float32 resolution of the weights: no weight moves;
    0 is refused by the config check) no epoch improves on the first, so Lightning writes no
    top-k checkpoint after epoch 0 (and, by itself, no last.ckpt); last.ckpt must still be the
    final epoch's."""
    run = tmp_path / "run"
    extra = ["trainer.max_epochs=3", "module.optimizer.lr=1e-30", "test=false"]
    run_train(tiny_cfg(tiny_root, run, extra))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2 and len(list((run / "checkpoints").glob("epoch_*.ckpt"))) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch_000.ckpt",
        "last.ckpt",
    ]


def test_one_last_checkpoint_when_the_timed_one_also_saves(tiny_root, tmp_path):
    """The timed checkpoint (here after every batch) and the epoch-end one share last.ckpt: no
    last-v1.ckpt, and last.ckpt holds the end of training."""
    run = tmp_path / "run"
    extra = ["trainer.max_epochs=2", "test=false", "callbacks.time_checkpoint.every_minutes=1e-9"]
    run_train(tiny_cfg(tiny_root, run, extra))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert [n for n in names if n.startswith("last")] == ["last.ckpt"], names
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 1  # saved at the end of the second (last) epoch

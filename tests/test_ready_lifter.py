"""The ready lifter shipped in the package, and the pieces that build it: detector-like 2-D
(the COCO-17 map's derived joints, person-relative noise) and slim, portable checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.data.capture import (
    DERIVED_JOINTS,
    DetectorNoise,
    RigConfig,
    place_cameras,
    simulate_detector,
)
from liftpose.data.embedded import load_sample
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError
from liftpose.system.joints import to_h36m
from liftpose.system.lifting import READY_LIFTER, lift_sequence, load_lifter
from liftpose.utils.checkpoint import load_run_checkpoint, pack_checkpoint, portable_paths

ASSETS = READY_LIFTER.parent
CKPT = READY_LIFTER


def _absolute_strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _absolute_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _absolute_strings(v)]
    return [node] if isinstance(node, str) and node.startswith("/") else []


def test_ready_lifter_loads_and_lifts_plausibly() -> None:
    assert CKPT.is_file() and CKPT.stat().st_size < 5_000_000
    assert (ASSETS / "READY_LIFTER_LICENSE.md").read_text().count("CC BY-SA 3.0") >= 2
    metrics = json.loads((ASSETS / "ready_lifter_metrics.json").read_text())
    assert {"dg_random_cameras", "bandai_3dhp"} <= set(metrics["held_out"])
    raw = torch.load(CKPT, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in raw and not _absolute_strings(raw["liftpose_config"])
    assert "liftpose_hash" in raw  # checked by load_run_checkpoint below
    _, cfg = load_run_checkpoint(CKPT)
    assert cfg.data.fps == 50 and cfg.data.train_subjects == ["bd", "bk"]
    lifter = load_lifter(CKPT)
    assert (lifter.frames, lifter.fps, lifter.window) == (27, 50.0, "centred")
    assert cfg.module.symmetric_bones is True
    # held-out actor dg, a Human3.6M-like camera (none in training), detector-like 2-D
    world = load_sample()["dg"]["grabHighR 11"][:150].astype(np.float64)
    cam = place_cameras({"c": world}, RigConfig(), np.random.default_rng(1))[0]
    px = simulate_detector(cam.project(cam.world_to_camera(world)), DetectorNoise(),
                           np.random.default_rng(2))  # fmt: skip
    pred = lift_sequence(lifter, normalize_screen_coordinates(px, cam.res_w, cam.res_h))
    truth = cam.world_to_camera(world)
    truth -= truth[:, :1]
    assert pred.shape == world.shape and np.isfinite(pred).all()
    mpjpe = np.linalg.norm(pred - truth, axis=-1).mean()
    assert mpjpe < 0.12, mpjpe  # metres
    bones = H36M17.bone_lengths(pred.astype(np.float64))
    for left, right in ((3, 0), (4, 1), (5, 2), (11, 14), (12, 15)):  # edges: hips, legs, arms
        np.testing.assert_allclose(bones[:, left], bones[:, right], rtol=1e-5)  # symmetric_bones
    ratio = bones.mean(axis=0) / H36M17.bone_lengths(truth).mean(axis=0)
    limbs = [1, 2, 4, 5, 11, 12, 14, 15]  # edges: thighs, shins, upper arms, forearms
    assert np.abs(ratio[limbs] - 1).max() < 0.25, ratio  # limbs of a person's size
    assert 0.5 < ratio[0] < 1.1, ratio  # the pelvis comes out narrower (about 2/3), not absent
    assert (pred[:, 10, 1] < pred[:, 0, 1]).mean() > 0.95  # head above pelvis (y points down)


def test_detector_noise_scales_with_the_person_and_blends_derived_joints() -> None:
    rng = np.random.default_rng(0)
    gt = np.cumsum(rng.normal(size=(200, 17, 2)), axis=0) * 0.1
    gt[:, 10, 1] -= 100.0  # a person 100 px tall ...
    big = gt * 4.0  # ... and the same 4x larger
    cfg = DetectorNoise(relative_to_px=100.0, outlier_rate=0.0, swap_rate=0.0)
    e_small = simulate_detector(gt, cfg, np.random.default_rng(1)) - gt
    e_big = simulate_detector(big, cfg, np.random.default_rng(1)) - big
    ratio = np.abs(e_big).mean() / np.abs(e_small).mean()
    assert ratio == pytest.approx(4.0, rel=0.05)
    # coco_blend: only the five derived joints move, towards liftpose-infer's COCO-17 map
    coco = rng.normal(size=(200, 17, 2)) * 50
    quiet = DetectorNoise(sigma_px=0.0, outlier_rate=0.0, swap_rate=0.0, coco_blend=1.0)
    out = simulate_detector(gt, quiet, np.random.default_rng(3), coco)
    derived = list(DERIVED_JOINTS)
    assert derived == [0, 7, 8, 9, 10]  # Hip, Spine, Thorax, Neck/Nose, Head
    limbs = [j for j in range(17) if j not in derived]
    np.testing.assert_allclose(out[:, limbs], gt[:, limbs])
    mapped = to_h36m(coco, None, "coco17")[0]
    step = (out - gt)[:, derived] / (mapped - gt)[:, derived]
    assert np.allclose(step, step.flat[0]) and 0 < step.flat[0] < 1  # one fraction alpha
    with pytest.raises(ValueError, match="coco_px"):
        simulate_detector(gt, quiet, np.random.default_rng(3))


def test_pack_checkpoint_is_slim_and_portable(tmp_path: Path) -> None:
    root = "/home/someone/liftpose"
    cfg = {
        "paths": {"root_dir": root, "data_dir": f"{root}/data", "shared_dir": "/mnt/shared"},
        "data": {"root": f"{root}/data/hdm05", "cache_dir": f"{root}/.cache/liftpose",
                 "test_set": {"build_from": "/mnt/shared/data/bandai1/data"}},
        "ckpt": "/elsewhere/model.ckpt", "frames": 27, "tags": ["a", "/tmp/x"],
        "model": {"_target_": "m"}, "module": {"_target_": "m"},
    }  # fmt: skip
    src = tmp_path / "full.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "liftpose_config": cfg, "epoch": 3,
                "optimizer_states": [{"big": torch.zeros(1000)}], "loops": {}}, src)  # fmt: skip
    slim = pack_checkpoint(src, tmp_path / "slim.ckpt")
    out = torch.load(slim, weights_only=False)
    assert set(out) == {"state_dict", "liftpose_config", "epoch", "liftpose_hash"}
    load_run_checkpoint(slim)  # the hash of the rewritten config is the one stored
    c = out["liftpose_config"]
    assert c["paths"] == {"root_dir": ".", "data_dir": "data", "shared_dir": "../shared"}
    assert c["data"]["root"] == "data/hdm05" and c["data"]["cache_dir"] == ".cache/liftpose"
    assert c["data"]["test_set"]["build_from"] == "../shared/data/bandai1/data"
    assert c["ckpt"] == "model.ckpt" and c["tags"] == ["a", "x"] and c["frames"] == 27
    assert portable_paths("relative/stays", {root: "."}) == "relative/stays"
    out["state_dict"]["w"][0] = 2.0  # a damaged copy is refused, also as a source
    torch.save(out, tmp_path / "damaged.ckpt")
    with pytest.raises(DataError, match="hash"):
        pack_checkpoint(tmp_path / "damaged.ckpt", tmp_path / "again.ckpt")
    assert pack_checkpoint(src, slim) == slim  # its own earlier output may be replaced
    notes = tmp_path / "notes.txt"  # a file liftpose did not write is never replaced
    notes.write_text("mine")
    with pytest.raises(DataError, match="not replaced"):
        pack_checkpoint(src, notes)
    assert notes.read_text() == "mine"


def test_symmetrise_bones_equal_twins_same_directions() -> None:
    from liftpose.modules.lifting import symmetrise_bones

    pose = torch.randn(3, 4, 17, 3, dtype=torch.float64)
    out = symmetrise_bones(pose, H36M17.flip_permutation.tolist())
    bones = H36M17.bone_lengths(out.numpy())
    index = {c: e for e, (c, _) in enumerate(H36M17.edges())}
    flip = H36M17.flip_permutation
    for e, (c, p) in enumerate(H36M17.edges()):
        twin = index[int(flip[c])]
        np.testing.assert_allclose(bones[..., e], bones[..., twin], atol=1e-12)
        d_in, d_out = pose[..., c, :] - pose[..., p, :], out[..., c, :] - out[..., p, :]
        cos = torch.nn.functional.cosine_similarity(d_in, d_out, dim=-1)
        torch.testing.assert_close(cos, torch.ones_like(cos))
        if twin == e:  # a central bone keeps its length
            np.testing.assert_allclose(bones[..., e], H36M17.bone_lengths(pose.numpy())[..., e])
    torch.testing.assert_close(out[..., 0, :], pose[..., 0, :])
    with pytest.raises(ValueError, match="Human3.6M"):
        symmetrise_bones(torch.zeros(1, 5, 3), list(range(5)))


def test_ready_lifter_build_keeps_the_shipped_one_and_fails_in_one_line(tmp_path, capfd,
                                                                       monkeypatch):  # fmt: skip
    """Overrides without --out would replace the shipped lifter: refused; a training command
    that fails stops the build with its exit status and a line, not a traceback."""
    from liftpose import ready_lifter

    before = CKPT.stat().st_mtime_ns
    assert ready_lifter.main(["--", "trainer.max_epochs=1"]) == 2
    assert "give --out DIR" in capfd.readouterr().err
    assert CKPT.stat().st_mtime_ns == before
    monkeypatch.chdir(tmp_path)
    assert ready_lifter.main(["--out", str(tmp_path / "rl"), "--", "model.nope=1"]) == 2
    err = capfd.readouterr().err
    assert "model.nope: no such key" in err and "liftpose-train stopped (exit 2)" in err
    assert not (tmp_path / "rl").exists()

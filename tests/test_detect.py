"""A trained 2-D detector as a keypoint source (liftpose.data.detect, ``liftpose-data detect``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liftpose.data.detect import (
    DERIVED_H36M_JOINTS,
    DetectorSettings,
    _interpolate,
    crop_to_h36m,
    detect_dataset,
    ensure_detected,
    exact_coco_pairs,
    fit_h36m_from_coco,
    h36m_from_coco,
)
from liftpose.data.h36m import dataset_cameras, load_sequences, read_npz_dict
from liftpose.data.render import COCO_FROM_H36M, box_from_keypoints, crop_affine
from liftpose.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The embedded dataset filmed into a private folder (the tests write 2-D sources there)."""
    from liftpose.data.embedded import ensure_embedded

    return ensure_embedded(tmp_path_factory.mktemp("detect") / "hdm05")


def _exact_pairs(root: Path, subject: str, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Projected COCO keypoints and the exact H36M 2-D of ``subject``: ``(N, 17, 2)`` each."""
    p3, _ = read_npz_dict(root / "data_3d_hdm05.npz", "positions_3d")
    g2, _ = read_npz_dict(root / "data_2d_hdm05_gt.npz", "positions_2d")
    cams = dataset_cameras(root, "hdm05")
    return exact_coco_pairs(p3, g2, cams, [subject], action_step=4, frame_step=step)


def test_joint_map_recovers_a_known_affine_combination() -> None:
    rng = np.random.default_rng(0)
    coco = rng.normal(size=(200, 17, 2)) * 50 + 300
    truth = np.zeros((17, 17))
    for i, j in enumerate(COCO_FROM_H36M):
        truth[j, 5 + i] = 1.0
    for j in DERIVED_H36M_JOINTS:
        w = rng.normal(size=17)
        truth[j] = w - (w.sum() - 1.0) / 17  # rows sum to one
    h36m = np.einsum("jk,nkc->njc", truth, coco)
    w = fit_h36m_from_coco(coco, h36m, ridge=0.0)
    np.testing.assert_allclose(w, truth, atol=1e-8)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)


def test_joint_map_commutes_with_moving_and_scaling_the_image() -> None:
    rng = np.random.default_rng(1)
    coco = rng.normal(size=(50, 17, 2)) * 40 + 200
    w = fit_h36m_from_coco(coco, rng.normal(size=(50, 17, 2)) * 40 + 200)
    moved = h36m_from_coco(2.5 * coco + np.array([30.0, -7.0]), w)
    np.testing.assert_allclose(moved, 2.5 * h36m_from_coco(coco, w) + [30.0, -7.0], atol=1e-9)


def test_joint_map_fitted_on_training_subjects_transfers(dataset: Path) -> None:
    coco, h36m = _exact_pairs(dataset, "bd", 5)
    w = fit_h36m_from_coco(coco, h36m)
    shared = [j for j in range(17) if j not in DERIVED_H36M_JOINTS]
    coco_t, h36m_t = _exact_pairs(dataset, "dg", 7)
    err = np.linalg.norm(h36m_from_coco(coco_t, w) - h36m_t, axis=-1).mean(0)
    assert err[shared].max() < 1e-3  # the 12 limb joints are copied (float32 files)
    assert err[0] < 1.0  # the hip is the middle of the hips
    # spine and thorax sit inside the body, up to ~7 px off at ~350 px tall people
    assert err[list(DERIVED_H36M_JOINTS)].max() < 12.0


def test_crop_coordinates_map_back_to_the_image(dataset: Path) -> None:
    """The crop -> image chain: exact COCO points in crop pixels give the exact H36M 2-D."""
    coco, h36m = _exact_pairs(dataset, "bd", 9)
    w = fit_h36m_from_coco(coco, h36m)
    affines = crop_affine(box_from_keypoints(h36m), (128, 96))
    crop_xy = np.einsum("fij,fkj->fki", affines[:, :, :2], coco) + affines[:, None, :, 2]
    np.testing.assert_allclose(
        crop_to_h36m(crop_xy, affines, w), h36m_from_coco(coco, w), atol=1e-6
    )


def test_interpolation_keeps_detected_frames_and_is_linear_between() -> None:
    frames = np.array([0, 4, 9])
    values = np.array([0.0, 8.0, 18.0])[:, None, None] * np.ones((1, 17, 2))
    out = _interpolate(frames, values, 10)
    np.testing.assert_allclose(out[:, 0, 0], [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    np.testing.assert_allclose(_interpolate(np.array([0]), values[:1], 3), values[[0, 0, 0]])


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory) -> Path:
    """A tiny randomly initialised HRNet saved as a liftpose heatmap checkpoint."""
    from hydra.utils import instantiate

    model_cfg = {
        "_target_": "liftpose.models.backbones.HRNet",
        "width": 8,
        "stem_channels": 16,
        "layer1_blocks": 1,
        "stage_modules": [1, 1, 1],
        "stage_blocks": 1,
        "cam": None,
    }
    torch.manual_seed(0)
    model = instantiate(model_cfg)
    cfg = {
        "model": model_cfg,
        "data": {"image_size": [64, 32], "heatmap_size": [16, 8]},
        "module": {"_target_": "liftpose.modules.pose2d.HeatmapModule"},
    }
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"liftpose_config": cfg, "state_dict": state}, path)
    return path


def test_detect_writes_a_source_the_loader_reads(dataset: Path, detector_ckpt: Path) -> None:
    settings = DetectorSettings(ckpt=str(detector_ckpt), every=25, batch_size=8)
    path = detect_dataset(
        dataset, "hdm05", "tiny", settings, ["bd"], ["dg"], ["squat1Reps"], log=lambda *_: None
    )
    assert path == dataset / "data_2d_hdm05_tiny.npz"
    seqs = load_sequences(dataset, "hdm05", "tiny", ["dg"], ["squat1Reps"])
    exact = load_sequences(dataset, "hdm05", "gt", ["dg"], ["squat1Reps"])
    assert len(seqs) == len(exact) > 0
    for s, e in zip(seqs, exact, strict=True):
        assert s.pose_2d.shape == e.pose_2d.shape and np.isfinite(s.pose_2d).all()
    _, meta = read_npz_dict(path, "positions_2d")
    assert meta["detector"]["every"] == 25 and len(meta["detector"]["h36m_from_coco"]) == 17
    assert not list(dataset.glob("*.tmp*"))

    # same detector and settings: kept; another setting: rebuilt
    stamp = path.stat().st_mtime_ns
    ensure_detected(dataset, "hdm05", "tiny", settings, ["bd"], ["dg"], ["squat1Reps"])
    assert path.stat().st_mtime_ns == stamp
    other = DetectorSettings(ckpt=str(detector_ckpt), every=40, batch_size=8)
    ensure_detected(dataset, "hdm05", "tiny", other, ["bd"], ["dg"], ["squat1Reps"])
    assert read_npz_dict(path, "positions_2d")[1]["detector"]["every"] == 40


def test_detect_refuses_files_it_did_not_write(dataset: Path, detector_ckpt: Path) -> None:
    settings = DetectorSettings(ckpt=str(detector_ckpt), every=25)
    with pytest.raises(ConfigError, match="not written by a detector"):
        ensure_detected(dataset, "hdm05", "det", settings, ["bd"], ["dg"], ["squat1Reps"])
    with pytest.raises(ConfigError, match="built-in source"):
        detect_dataset(dataset, "hdm05", "gt", settings, ["bd"])
    with pytest.raises(DataError, match="data.detector.ckpt"):
        ensure_detected(
            dataset, "hdm05", "x", DetectorSettings(ckpt=str(dataset / "none.ckpt")), ["bd"]
        )
    with pytest.raises(ConfigError, match="every"):
        DetectorSettings(ckpt="x", every=0)


def test_lifting_datamodule_runs_the_detector(dataset: Path, detector_ckpt: Path, tmp_path) -> None:
    from liftpose.data.datamodule import LiftingDataModule

    dm = LiftingDataModule(
        root=str(dataset),
        name="hdm05",
        keypoints="tiny_dm",
        train_subjects=["bd"],
        test_subjects=["dg"],
        actions=["squat1Reps"],
        receptive_field=9,
        cache_dir=str(tmp_path),
        detector={"ckpt": str(detector_ckpt), "every": 30, "batch_size": 8},
    )
    dm.prepare_data()
    dm.setup("fit")
    assert (dataset / "data_2d_hdm05_tiny_dm.npz").is_file()
    assert np.isfinite(dm.splits["train"].pose_2d).all()


def test_detector_off_is_the_default_so_old_run_hashes_hold() -> None:
    """The data configs' ``detector`` block equals the argument's default (and the settings'
    defaults), so adding it left the hash of every run without a detector unchanged."""
    import dataclasses
    import inspect

    from omegaconf import OmegaConf

    from liftpose.data.datamodule import DETECTOR_OFF, LiftingDataModule
    from liftpose.tables.run import compose_job, drop_defaults

    fields = {f.name: f.default for f in dataclasses.fields(DetectorSettings)}
    assert dict(DETECTOR_OFF) == {**fields, "ckpt": None}
    assert inspect.signature(LiftingDataModule).parameters["detector"].default == DETECTOR_OFF
    for data in ("embedded", "h36m", "mpi3dhp"):
        cfg = OmegaConf.to_container(compose_job([f"data={data}"]).data)
        assert cfg["detector"] == dict(DETECTOR_OFF)
        assert "detector" not in drop_defaults(cfg)
    with_ckpt = OmegaConf.to_container(compose_job(["data.detector.ckpt=x.ckpt"]).data)
    assert drop_defaults(with_ckpt)["detector"]["ckpt"] == "x.ckpt"


def test_liftpose_data_detect_with_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    from liftpose.data.cli import main

    missing = tmp_path / "nope.ckpt"
    args = ["detect", "--root", str(tmp_path), "--name", "x", "--ckpt", str(missing),
            "--source", "hrnet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{missing}: ckpt: detector checkpoint not found"), err
    assert len(err.splitlines()) == 1 and sorted(tmp_path.iterdir()) == []

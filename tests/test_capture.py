"""Camera rigs (per subject, per clip, person height, random) and ``liftpose-data capture``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liftpose.data.capture import CaptureConfig, RigConfig, _random_camera, film, stature
from liftpose.data.capture_folder import capture_folder, manifest_path
from liftpose.data.cli import main as data_main
from liftpose.data.h36m import dataset_clip_cameras, load_sequences
from liftpose.data.mocap.folder import find_clips
from liftpose.errors import ConfigError, DataError

from .conftest import SHARED, synthetic_motion
from .test_mocap import write_cmu_style


def _walk(frames: int, metres: float) -> np.ndarray:
    """A synthetic person walking ``metres`` along y (the pose of ``synthetic_motion``)."""
    pose = synthetic_motion(frames, seed=1).astype(np.float64)
    pose[..., 1] += np.linspace(-metres / 2, metres / 2, frames)[:, None] - pose[:, :1, 1]
    return pose


def _heights(filmed) -> np.ndarray:
    """Median over frames of each view's exact 2-D height (pixels)."""
    return np.array([np.median(np.ptp(v[..., 1], axis=1))
                     for acts in filmed.positions_2d["gt"].values()
                     for views in acts.values() for v in views])  # fmt: skip


def test_rig_placement_and_person_height() -> None:
    coll = {"A": {"stand 1": _walk(100, 0.0), "walk 1": _walk(200, 8.0)}}
    assert stature(coll["A"]) == pytest.approx(1.65, abs=0.02)  # head 1.75 m, ankles 0.10 m
    per_subject = film(coll, CaptureConfig(rig=RigConfig(placement="subject")))
    per_clip = film(coll, CaptureConfig(rig=RigConfig(placement="clip")))
    assert per_subject.clip_cameras == {} and set(per_subject.cameras) == {"A"}
    assert per_clip.cameras == {} and set(per_clip.clip_cameras["A"]) == {"stand 1", "walk 1"}
    # one rig for both clips: the walk pushes the cameras back for the standing clip too
    stand_subject = _heights(per_subject)[:4]
    stand_clip = _heights(per_clip)[:4]
    assert (stand_clip > 1.5 * stand_subject).all()
    # a height target: the same size for both clips (the walk leaves the picture at its ends)
    target = film(coll, CaptureConfig(rig=RigConfig(placement="clip", person_height_px=300.0,
                                                    jitter_distance=0.0)))  # fmt: skip
    h = _heights(target)
    assert np.allclose(h, 300, rtol=0.1), h
    with pytest.raises(ConfigError, match="placement"):
        RigConfig(placement="room")
    with pytest.raises(ConfigError, match="person_height_px"):
        RigConfig(person_height_px=-1)


def test_random_rig_draws_cameras_and_pitch() -> None:
    rig = RigConfig(mode="random", placement="clip", random_views=3)
    coll = {"A": {f"walk {k}": _walk(60, 1.0) for k in range(6)}}
    filmed = film(coll, CaptureConfig(rig=rig, seed=2))
    cams = [c for acts in filmed.clip_cameras.values() for cs in acts.values() for c in cs]
    assert len(cams) == 18 and len({c.res_w for c in cams}) > 1
    focal = np.array([c.focal_length[0] / max(c.res_w, c.res_h) for c in cams])
    assert ((focal >= 0.6) & (focal <= 1.6)).all() and focal.std() > 0.1
    for acts in filmed.positions_2d["gt"].values():  # everybody in front of the cameras
        for views in acts.values():
            assert all(np.isfinite(v).all() for v in views)
    target = np.array([0.0, 0.0, 0.9])
    for pitch, below in ((10.0, True), (-10.0, False)):
        r = RigConfig(mode="random", random_pitch=(pitch, pitch))
        cam = _random_camera(0, target, 0.5, 1.7, r, np.random.default_rng(0))
        y = cam.project(cam.world_to_camera(target[None]))[0, 1]
        assert (y > cam.res_h / 2 + 20) == below  # looking up puts the person lower
        if not below:
            assert y < cam.res_h / 2 - 20


def test_capture_folder_writes_loads_and_protects(tmp_path: Path) -> None:
    src = tmp_path / "cmu"
    src.mkdir()
    write_cmu_style(src, frames=60, seed=0, subject="07", takes=2)
    write_cmu_style(src, frames=45, seed=1, subject="08", takes=1)
    assert [(c.subject, c.action) for c in find_clips(src, "amc")] == [
        ("07", "take 1"), ("07", "take 2"), ("08", "take 1"),
    ]  # fmt: skip
    root = tmp_path / "out"
    cfg = CaptureConfig(rig=RigConfig(placement="clip", person_height_px=350.0))
    summary = capture_folder(
        src, "amc", root, "cmu", subjects=["07", "08"], cfg=cfg, log=lambda _: None
    )
    assert summary["subjects"]["07"]["clips"] == 2
    seqs = load_sequences(root, "cmu", "det", ["07", "08"])
    assert len(seqs) == 3 * 4 and all(len(s.pose_2d) == len(s.pose_3d) for s in seqs)
    assert set(dataset_clip_cameras(root, "cmu")["07"]) == {"take 1", "take 2"}
    man = json.loads(manifest_path(root, "cmu").read_text())
    assert sorted(man["files"]) == sorted(
        ["data_3d_cmu.npz", "data_2d_cmu_gt.npz", "data_2d_cmu_det.npz", "cameras_cmu.json"]
    )
    assert sorted(p.name for p in root.iterdir()) == sorted([*man["files"], ".cmu.capture.json"])
    # its own files are rebuilt; a user's file of the same name is refused, before any reading
    capture_folder(src, "amc", root, "cmu", cfg=cfg, log=lambda _: None)
    (root / "data_3d_user.npz").write_bytes(b"the user's")
    with pytest.raises(DataError, match=r"data_3d_user\.npz: file: exists and was not written"):
        capture_folder(src, "amc", root, "user", log=lambda _: None)
    assert (root / "data_3d_user.npz").read_bytes() == b"the user's"
    # a folder at an output path is not liftpose's either: the same refusal, nothing written
    (root / "data_3d_mine.npz").mkdir()
    with pytest.raises(DataError, match=r"data_3d_mine\.npz: file: exists and was not written"):
        capture_folder(src, "amc", root, "mine", log=lambda _: None)
    assert not any((root / "data_3d_mine.npz").iterdir())
    assert not manifest_path(root, "mine").exists()


def test_capture_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    src = tmp_path / "cmu"
    src.mkdir()
    _, (good,) = write_cmu_style(src, frames=30, seed=0, subject="07")
    bad = src / "07_02.amc"
    bad.write_text(good.read_text()[: len(good.read_text()) // 2])  # cut in a frame
    root = tmp_path / "out"
    argv = ["capture", "--src", str(src), "--format", "amc", "--root", str(root), "--name", "x"]
    assert data_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "07_02.amc: frame" in err, err
    assert not root.exists() or not any(root.iterdir())  # no file, no staging folder
    assert data_main([*argv[:-2], "--name", "x", "--subjects", "99"]) == 2
    assert "--subjects: ['99'] not found" in capsys.readouterr().err
    assert data_main([*argv, "--person-height", "-5"]) == 2
    assert "person_height_px" in capsys.readouterr().err
    (root / "data_3d_x.npz").mkdir(parents=True)  # not a file: refused like a user's file
    assert data_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_3d_x.npz: file: exists and was not" in err, err
    assert [p.name for p in root.iterdir()] == ["data_3d_x.npz"]


def test_capture_shared_bandai_clips(tmp_path: Path) -> None:
    data = SHARED / "data" / "bandai1" / "data"
    if not data.is_dir():
        pytest.skip(f"Bandai BVH files not found at {data} (set LIFTPOSE_SHARED)")
    src = tmp_path / "bandai"
    src.mkdir()
    for name in ("dataset-1_walk_happy_001", "dataset-1_bow_happy_001", "dataset-1_bow_sad_001"):
        (src / f"{name}.bvh").symlink_to(data / f"{name}.bvh")
    summary = capture_folder(src, "bvh", tmp_path / "out", "bandai", log=lambda _: None,
                             cfg=CaptureConfig(rig=RigConfig(placement="clip")))  # fmt: skip
    assert summary["subjects"] == {
        "happy": {"clips": 2, "frames": summary["subjects"]["happy"]["frames"]},
        "sad": {"clips": 1, "frames": summary["subjects"]["sad"]["frames"]},
    }
    seqs = load_sequences(tmp_path / "out", "bandai", "gt", ["happy"], actions=["walk"])
    assert {s.action for s in seqs} == {"walk 1"} and len(seqs) == 4
    bones = np.linalg.norm(np.diff(seqs[0].pose_3d[:, [1, 2]], axis=1), axis=-1)
    assert bones.std() < 1e-5  # thigh, camera frame: rigid

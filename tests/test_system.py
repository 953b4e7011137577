"""liftpose-infer end to end: photos, a video, keypoint files, the heatmap detector path,
causal lifting, every bad input of the system, and real photos scored against COCO."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from liftpose.infer import main as infer_main
from liftpose.system import lifting
from liftpose.system.lifting import READY_LIFTER, lift_sequence, load_lifter
from liftpose.train import run_train

from .conftest import SHARED
from .test_configs import compose_cfg

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

COCO = SHARED / "data" / "coco_mini"
PHOTO = COCO / "val2017" / "000000397133.jpg"  # one standing person (COCO val2017)


def _train(root: Path, overrides: list[str]) -> Path:
    cfg = compose_cfg("train", [
        "frames=9", "model.embed_dim_ratio=8", "model.depth=1", "model.num_heads=2",
        "trainer.max_epochs=1", "test=false", "logger=none", "trainer.enable_progress_bar=false",
        "~callbacks.rich_progress_bar", "data.val_stride=50", *overrides,
    ])  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "run")
    torch.manual_seed(0)
    run_train(cfg)
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def lifter_ckpt(tmp_path_factory) -> Path:
    """The ready lifter when it is shipped, else a tiny PoseFormer trained for one epoch on
    the embedded data (every 8th window; seconds)."""
    if READY_LIFTER.is_file():
        return READY_LIFTER
    root = tmp_path_factory.mktemp("lifter")
    return _train(root, [f"data.root={root}/hdm05", f"data.cache_dir={root}/cache",
                         "data.train_stride=8", "data.batch_size=256"])  # fmt: skip


@pytest.fixture(scope="module")
def causal_ckpt(tmp_path_factory, tiny_root) -> Path:
    """A tiny lifter trained on causal windows (data.window=causal) of the synthetic data."""
    root = tmp_path_factory.mktemp("causal")
    return _train(root, [
        f"data.root={tiny_root}", "data.name=tiny", "data.embedded=false", "data.keypoints=gt",
        "data.train_subjects=[A,B]", "data.test_subjects=[C]", f"data.cache_dir={root}/cache",
        "data.window=causal",
    ])  # fmt: skip


@pytest.fixture(scope="module")
def heatmap_ckpt(tmp_path_factory) -> Path:
    """An untrained small HRNet written as a module=heatmap checkpoint (exercises the path)."""
    from hydra.utils import instantiate

    cfg = compose_cfg("train", [
        "experiment=attn_2d3d/hrnet_w32_cam", "data.image_size=[64,32]",
        "data.heatmap_size=[16,8]", "model.stage_modules=[1,1,1]", "model.stage_blocks=1",
        "model.width=16",
    ])  # fmt: skip
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    path = tmp_path_factory.mktemp("hrnet") / "hrnet.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"liftpose_config": OmegaConf.to_container(cfg, resolve=True), "state_dict": state},
               path)  # fmt: skip
    return path


def needs_photos():
    if not PHOTO.is_file():
        pytest.skip(f"real photos not found: {COCO} (set LIFTPOSE_SHARED)")
    pytest.importorskip("mediapipe", reason="BlazePose needs mediapipe: make install-mediapipe")


def error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("liftpose-") and ": error: " in ln]
    assert len(lines) == 1, lines
    return lines[0]


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


def panned_video(path: Path, frames: int = 8, fps: float = 25.0) -> None:
    """A short video of the real photo, panned 3 pixels a frame."""
    import imageio.v2 as imageio

    img = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[:, :640]
    h, w = img.shape[:2]
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=2,
                            ffmpeg_log_level="error") as wr:  # fmt: skip
        for i in range(frames):
            a = np.float32([[1, 0, 3 * i - 12], [0, 1, 0]])
            wr.append_data(cv2.warpAffine(img, a, (w, h), borderMode=cv2.BORDER_REFLECT))


# --------------------------------------------------------------------------- happy paths
def test_photo_to_3d_and_pictures(lifter_ckpt, tmp_path):
    needs_photos()
    out = tmp_path / "out"
    assert infer_main([str(PHOTO), "--lifter", str(lifter_ckpt), "--out", str(out)]) == 0
    doc = json.loads((out / "poses.json").read_text())
    (person,) = doc["people"]
    assert doc["layout"] == "blazepose33" and len(doc["joint_names"]) == 17
    p3 = np.array(person["pose_3d"])
    assert p3.shape == (1, 17, 3) and np.isfinite(p3).all() and (p3[:, 0] == 0).all()
    kp = np.array(person["keypoints"])
    assert kp.shape == (1, 33, 3) and (kp[..., 2] >= 0).all() and (kp[..., 2] <= 1).all()
    with np.load(out / "poses.npz") as f:
        np.testing.assert_allclose(f["person0/pose_3d"], p3, atol=1e-4)
    for name in ("overlay", "skeleton3d"):
        img = cv2.imread(str(out / name / f"{PHOTO.stem}.png"))
        assert img is not None and img.std() > 20  # a picture, not a blank
    # the skeleton is drawn over the photo: the overlay differs from the photo along it
    photo = cv2.imread(str(PHOTO))
    ov = cv2.imread(str(out / "overlay" / f"{PHOTO.stem}.png"))
    assert ov.shape == photo.shape
    assert (np.abs(ov.astype(int) - photo).sum(-1) > 150).mean() > 0.002


def test_video_with_tracking_resampling_and_animation(lifter_ckpt, tmp_path):
    needs_photos()
    clip = tmp_path / "clip.mp4"
    panned_video(clip)
    out = tmp_path / "out"
    assert infer_main([str(clip), "--lifter", str(lifter_ckpt), "--out", str(out)]) == 0
    doc = json.loads((out / "poses.json").read_text())
    assert doc["input_fps"] == pytest.approx(25.0) and doc["lifter_fps"] == 50.0
    (person,) = doc["people"]
    assert person["frames"] == list(range(8))
    np.testing.assert_allclose(person["times"], np.arange(8) / 25.0, atol=1e-4)
    for name in ("overlay.mp4", "skeleton3d.mp4"):
        frames = frames_of(out / name)
        assert len(frames) == 8, name
        assert min(f.std() for f in frames) > 20
    ov = frames_of(out / "overlay.mp4")
    assert np.abs(ov[0].astype(int) - ov[-1]).mean() > 1  # the frames move


def test_keypoint_file_gif_and_force(lifter_ckpt, tmp_path):
    t = 30
    kp = np.stack([np.linspace(300, 340, t)] * 2, -1)[:, None] + np.random.default_rng(0).normal(
        0, 30, (1, 17, 2)
    )
    np.savez(tmp_path / "kp.npz", keypoints=kp, layout="h36m17", fps=25.0,
             image_size=[640, 480])  # fmt: skip
    out = tmp_path / "out"
    args = [str(tmp_path / "kp.npz"), "--lifter", str(lifter_ckpt), "--out", str(out)]
    assert infer_main([*args, "--animation", "gif"]) == 0
    assert len(frames_of(out / "overlay.mp4")) == t
    import imageio.v3 as iio

    assert iio.improps(out / "skeleton3d.gif").shape[0] == t
    assert infer_main(args) == 2  # the folder holds a run: refused without --force
    assert infer_main([*args, "--force", "--no-draw"]) == 0
    with np.load(out / "poses.npz") as f:
        assert f["person0/pose_2d"].shape == (t, 17, 3)
    # the earlier run's pictures, which this run did not draw, are gone and not listed
    assert sorted(p.name for p in out.iterdir()) == [".liftpose-infer.json", "poses.json",
                                                     "poses.npz"]  # fmt: skip
    # a file of the run its user edited since: --force is refused, nothing is written
    (out / "poses.json").write_text('{"my": "notes"}')
    before = (out / "poses.npz").read_bytes()
    assert infer_main([*args, "--force"]) == 2
    assert (out / "poses.json").read_text() == '{"my": "notes"}'
    assert (out / "poses.npz").read_bytes() == before and not (out / "overlay.mp4").exists()


def test_heatmap_detector_top_down_on_previous_boxes(lifter_ckpt, heatmap_ckpt, tmp_path):
    needs_photos()
    clip = tmp_path / "clip.mp4"
    panned_video(clip, frames=4)
    out = tmp_path / "out"
    args = [str(clip), "--lifter", str(lifter_ckpt), "--detector", f"hrnet:{heatmap_ckpt}",
            "--boxes", "previous", "--threshold", "0", "--out", str(out), "--no-draw"]  # fmt: skip
    assert infer_main(args) == 0  # (an untrained network: the path, not the keypoints)
    doc = json.loads((out / "poses.json").read_text())
    assert doc["layout"] == "coco17" and "heatmap network" in doc["detector"]
    assert np.array(doc["people"][0]["keypoints"]).shape == (4, 17, 3)
    # boxes from a COCO detections json, matched to photos by the number in their file names
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / PHOTO.name).symlink_to(PHOTO)
    (photos / "000000000001.jpg").symlink_to(PHOTO)
    dets = [
        {"image_id": int(PHOTO.stem), "category_id": 1, "bbox": [380, 80, 190, 300], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1},
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "out2"
    args = [
        str(photos),
        "--lifter",
        str(lifter_ckpt),
        "--detector",
        f"hrnet:{heatmap_ckpt}",
        "--boxes",
        str(tmp_path / "dets.json"),
        "--threshold",
        "0",
        "--out",
        str(out),
    ]
    assert infer_main([*args, "--no-draw"]) == 0
    doc = json.loads((out / "poses.json").read_text())
    (person,) = doc["people"]  # the low-scoring box of the other photo is ignored
    kp = np.array(person["keypoints"])[0]
    assert person["frame_names"] == [PHOTO.name]
    assert (kp[:, 0] > 380 - 60).all() and (kp[:, 0] < 570 + 60).all()  # inside the padded box


def test_causal_lifting_sees_only_the_past(causal_ckpt, lifter_ckpt, tiny_root, tmp_path, capsys):
    from liftpose.data.h36m import load_sequences

    lifter = load_lifter(causal_ckpt)
    assert lifter.window == "causal" and lifter.cfg.data.window == "causal"
    x = load_sequences(tiny_root, "tiny", "gt", ["C"])[0].pose_2d[:40]
    y = x.copy()
    y[25:] += 0.3  # change the future of frame 24
    a, b = lift_sequence(lifter, x), lift_sequence(lifter, y)
    np.testing.assert_allclose(a[:25], b[:25], atol=1e-6)
    assert np.abs(a[25:] - b[25:]).max() > 1e-3
    # through the whole system at another frame rate (resampled both ways): still no look-ahead
    from liftpose.system.pipeline import Settings, run

    outs = []
    for k, seq in enumerate((x, y)):
        np.savez(tmp_path / f"s{k}.npz", keypoints=seq, layout="h36m17", image_size=[2, 2],
                 fps=30.0)  # fmt: skip
        res = run(Settings(input=tmp_path / f"s{k}.npz", out=tmp_path / f"s{k}", causal=True,
                           lifter=causal_ckpt, draw=False, progress=False))  # fmt: skip
        outs.append(res["people"][0].pose_3d)
    np.testing.assert_allclose(outs[0][:25], outs[1][:25], atol=1e-6)
    assert np.abs(outs[0][25:] - outs[1][25:]).max() > 1e-3
    np.savez(tmp_path / "kp.npz", keypoints=x, layout="h36m17", image_size=[2, 2])
    out = tmp_path / "out"
    args = [str(tmp_path / "kp.npz"), "--causal", "--no-draw"]
    assert infer_main([*args, "--lifter", str(causal_ckpt), "--out", str(out)]) == 0
    assert "0 frames of look-ahead" in capsys.readouterr().out
    assert infer_main([*args, "--lifter", str(lifter_ckpt), "--out", str(tmp_path / "o2")]) == 2
    assert "data.window" in error_line(capsys) and not (tmp_path / "o2").exists()


# --------------------------------------------------------------------------- bad input
def test_every_bad_input_gets_one_line_and_nothing_written(
    lifter_ckpt, heatmap_ckpt, tmp_path, capsys, monkeypatch
):
    needs_photos()
    bad_img = tmp_path / "bad.jpg"
    bad_img.write_bytes(b"\xff\xd8 not really a jpeg")
    empty_video = tmp_path / "empty.mp4"
    empty_video.write_bytes(b"")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    kp = np.random.default_rng(0).uniform(0, 100, (5, 17, 3))
    np.savez(tmp_path / "kp17.npz", keypoints=kp, image_size=[100, 100])
    nan = kp.copy()
    nan[2, 4, 2] = np.nan
    np.savez(tmp_path / "nan.npz", keypoints=nan, image_size=[100, 100])
    neg = kp.copy()
    neg[1, 0, 2] = -1
    np.savez(tmp_path / "neg.npz", keypoints=neg, image_size=[100, 100])
    np.savez(tmp_path / "huge.npz", keypoints=kp, layout="coco17", image_size=[1e12, 5])
    np.savez(tmp_path / "zero.npz", keypoints=kp, layout="coco17", image_size=np.zeros((5, 2)))
    far = kp.copy()
    far[3, 1, :2] = 1e32
    np.savez(tmp_path / "far.npz", keypoints=far, layout="coco17", image_size=[100, 100])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not liftpose's")
    cases = [
        ([str(bad_img)], "bad.jpg: image"),
        ([str(empty_video)], "empty.mp4: video"),
        ([str(blank)], "blank.png: people: no person found"),
        ([str(tmp_path / "kp17.npz")], "kp17.npz: keypoints: 17 joints may be coco17 or h36m17"),
        ([str(tmp_path / "kp17.npz"), "--layout", "halpe26"], "but --layout halpe26 has 26"),
        ([str(tmp_path / "nan.npz"), "--layout", "coco17"], "NaN/inf confidences"),
        ([str(tmp_path / "neg.npz"), "--layout", "coco17"], "negative confidences"),
        ([str(PHOTO), "--detector", "blazepose:2"], "--detector: blazepose model complexity 2"),
        ([str(PHOTO), "--detector", "openpifpaf"], "error: --detector: unknown detector"),
        ([str(tmp_path / "huge.npz")], "huge.npz: image_size: shape (2,): 1 of 2 values"),
        ([str(tmp_path / "zero.npz")], "zero.npz: image_size: shape (5, 2): 10 of 10 values"),
        ([str(tmp_path / "far.npz")], "far.npz: keypoints: keypoint 1 of frame 000003 at (1e+32"),
        ([str(tmp_path / "kp17.npz"), "--layout", "coco17", "--fps", "-1"], "--fps: must be"),
    ]
    for argv, message in cases:
        out = tmp_path / "out"
        assert infer_main([*argv, "--lifter", str(lifter_ckpt), "--out", str(out)]) == 2, argv
        line = error_line(capsys)
        assert message in line, (argv, line)
        assert not out.exists(), argv
    # a checkpoint that is not a lifter; a folder liftpose did not make
    assert (
        infer_main([str(PHOTO), "--lifter", str(heatmap_ckpt), "--out", str(tmp_path / "o")]) == 2
    )
    assert "hrnet.ckpt: liftpose_config.module: not a lifter" in error_line(capsys)
    assert infer_main([str(PHOTO), "--lifter", str(lifter_ckpt), "--out", str(foreign)]) == 2
    assert "not made by liftpose" in error_line(capsys)
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
    # no --lifter and no ready lifter shipped
    monkeypatch.setattr(lifting, "READY_LIFTER", tmp_path / "assets" / "ready_lifter.ckpt")
    assert infer_main([str(PHOTO), "--out", str(tmp_path / "o")]) == 2
    assert "ready_lifter.ckpt: --lifter: the ready lifter is not installed" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_unlabelled_coco_keypoint_is_absent(lifter_ckpt, tmp_path, capsys):
    """The real annotation of val2017 109313 has left_eye [0, 0, 0]: its Head (mean of the
    eyes) cannot be made in a photo, so the person is refused, or skipped among several."""
    ann = COCO / "annotations" / "person_keypoints_val2017.json"
    if not ann.is_file():
        pytest.skip(f"COCO annotations not found: {ann} (set LIFTPOSE_SHARED)")
    doc = json.loads(ann.read_text())
    (a,) = [a for a in doc["annotations"] if a["image_id"] == 109313 and a["num_keypoints"]]
    assert a["keypoints"][3:6] == [0, 0, 0]  # left_eye
    full = next(b for b in doc["annotations"] if b["num_keypoints"] == 17)
    res = [{"image_id": b["image_id"], "category_id": 1, "keypoints": b["keypoints"],
            "score": 1.0} for b in (a, full)]  # fmt: skip
    (tmp_path / "one.json").write_text(json.dumps(res[:1]))
    (tmp_path / "two.json").write_text(json.dumps(res))
    args = ["--width", "640", "--height", "640", "--lifter", str(lifter_ckpt), "--out"]
    assert infer_main([str(tmp_path / "one.json"), *args, str(tmp_path / "o1")]) == 2
    line = error_line(capsys)
    assert "one.json: track 0: Head is missing at frame 109313" in line, line
    assert not (tmp_path / "o1").exists()
    out = tmp_path / "o2"
    assert infer_main([str(tmp_path / "two.json"), *args, str(out), "--no-draw"]) == 0
    assert re.search(r"track \d \(109313\) skipped: Head is missing", capsys.readouterr().out)
    got = json.loads((out / "poses.json").read_text())
    assert [p["frame_names"] for p in got["people"]] == [[str(full["image_id"])]]
    assert got["skipped"][0]["frame_names"] == ["109313"]
    assert "Head is missing" in got["skipped"][0]["reason"]


def test_draw_progress_counts_the_pictures_drawn(lifter_ckpt, tmp_path, capsys):
    """Photos whose only person is skipped get no picture, and the count says so."""
    rng = np.random.default_rng(0)
    res = []
    for image_id in range(6):
        kp = np.concatenate([rng.uniform(200, 400, (17, 2)), np.ones((17, 1))], 1)
        if image_id >= 2:
            kp[1:3] = 0  # no eyes: no Head, the person is skipped
        res.append({"image_id": image_id, "category_id": 1, "score": 1.0,
                    "keypoints": kp.reshape(-1).tolist()})  # fmt: skip
    (tmp_path / "res.json").write_text(json.dumps(res))
    out = tmp_path / "o"
    argv = [str(tmp_path / "res.json"), "--width", "640", "--height", "640"]
    assert infer_main([*argv, "--lifter", str(lifter_ckpt), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "liftpose-infer: draw 2/2 frames" in err and "draw 6/6" not in err, err
    assert sorted(p.name for p in (out / "overlay").iterdir()) == ["0.png", "1.png"]


def test_photos_without_a_person_are_named(lifter_ckpt, tmp_path, capsys):
    needs_photos()
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / PHOTO.name).symlink_to(PHOTO)
    for name in ("blank1.png", "blank2.png"):
        cv2.imwrite(str(photos / name), np.full((240, 320, 3), 128, np.uint8))
    args = [str(photos), "--lifter", str(lifter_ckpt), "--no-draw", "--out"]
    # a bad number is refused by its option before any photo is looked at
    assert infer_main([*args, str(tmp_path / "o1"), "--fps", "-1"]) == 2
    captured = capsys.readouterr()
    assert "error: --fps: must be positive, got -1" in captured.err
    assert "detect" not in captured.err and not (tmp_path / "o1").exists()
    assert infer_main([*args, str(tmp_path / "out")]) == 0
    assert "no person found in 2 of 3 photos: blank1.png, blank2.png" in capsys.readouterr().out
    got = json.loads((tmp_path / "out" / "poses.json").read_text())
    assert got["no_person"] == ["blank1.png", "blank2.png"]
    assert [p["frame_names"] for p in got["people"]] == [[PHOTO.name]]


def test_broken_video_gets_one_line_without_ffmpeg_noise(lifter_ckpt, tmp_path):
    """FFmpeg's own log ("moov atom not found") is silenced; liftpose says what is wrong."""
    import subprocess
    import sys

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    r = subprocess.run(
        [sys.executable, "-m", "liftpose.infer", str(text), "--lifter", str(lifter_ckpt),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"liftpose-infer: error: {text}: video: cannot be opened "
                                     "(not a video OpenCV decodes)"], r.stderr  # fmt: skip


def test_folder_of_photos_of_different_sizes(lifter_ckpt, tmp_path):
    needs_photos()
    photos = tmp_path / "photos"
    photos.mkdir()
    img = cv2.imread(str(PHOTO))
    cv2.imwrite(str(photos / "a_full.jpg"), img)
    cv2.imwrite(str(photos / "b_small.jpg"), cv2.resize(img, None, fx=0.6, fy=0.5))
    out = tmp_path / "out"
    assert infer_main([str(photos), "--lifter", str(lifter_ckpt), "--out", str(out)]) == 0
    doc = json.loads((out / "poses.json").read_text())
    assert [p["frame_names"] for p in doc["people"]] == [["a_full.jpg"], ["b_small.jpg"]]
    a, b = (np.array(p["pose_2d"])[0, :, :2] for p in doc["people"])
    np.testing.assert_allclose(b, a * [0.6, 0.5], atol=0.08 * img.shape[0])
    # each photo normalised by its own size: (nearly) the same 3-D from both
    p3 = [np.array(p["pose_3d"])[0] for p in doc["people"]]
    assert np.linalg.norm(p3[0] - p3[1], axis=-1).mean() < 0.1
    assert sorted(f.name for f in (out / "overlay").iterdir()) == ["a_full.png", "b_small.png"]


# --------------------------------------------------------------------------- real photos
def test_real_photos_oks_ap_and_plausible_3d(lifter_ckpt, tmp_path, capsys):
    """BlazePose on the COCO val2017 photos of coco_mini scored with COCOeval, and every person
    lifted from a photo with an annotated person checked for plausible 3-D."""
    needs_photos()
    from liftpose.metrics.coco import evaluate_keypoints
    from liftpose.system.checks import coco_results, is_upright, plausibility
    from liftpose.system.person import Person
    from liftpose.system.pipeline import Settings, run

    ann = COCO / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(ann.read_text())
    photos = tmp_path / "photos"
    photos.mkdir()
    for im in doc["images"]:
        (photos / im["file_name"]).symlink_to(COCO / "val2017" / im["file_name"])
    ids = {im["file_name"]: im["id"] for im in doc["images"]}
    people_in = {a["image_id"] for a in doc["annotations"] if a["num_keypoints"] > 0}
    res = run(Settings(input=photos, out=tmp_path / "out", lifter=lifter_ckpt, person="all",
                       draw=False, progress=False))  # fmt: skip
    results, checks = [], []
    for p in res["people"]:
        name = res["frames"][int(p.frames[0])].name
        results += coco_results(ids[name], [Person(p.keypoints[0], p.scores[0], p.track.boxes[0])],
                                "blazepose33")  # fmt: skip
        if ids[name] in people_in:
            checks.append(plausibility(p.pose_3d[0], is_upright(p.pose_2d[0])))
    stats = evaluate_keypoints(ann, results)
    rate = sum(c["ok"] for c in checks) / len(checks)
    with capsys.disabled():
        ap, ap50 = 100 * stats["AP"], 100 * stats["AP50"]
        print(f"\ncoco_mini val2017: BlazePose OKS AP {ap:.1f}, AP50 {ap50:.1f}; "
              f"plausible 3-D {rate:.0%} of {len(checks)} people")  # fmt: skip
    assert stats["AP"] > 0.10 and stats["AP50"] > 0.18  # one person per photo: recall-bound
    assert len(checks) >= 15
    assert all(c["head_above_pelvis"] is not False for c in checks)
    if lifter_ckpt == READY_LIFTER:
        assert all(c["twins_ok"] for c in checks), [c for c in checks if not c["twins_ok"]]
        # measured: 15 of 18 (an arm at half or a thigh at 1.5x its usual size fails)
        assert rate >= 0.8, [c for c in checks if not c["ok"]]


def test_fitted_joint_map_option(lifter_ckpt, tmp_path):
    """--joint-map fitted:<file> maps COCO-17 with the weights a detector source file stores."""
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(17), size=17)  # rows sum to one
    meta = {"detector": {"h36m_from_coco": w.tolist()}}
    src = tmp_path / "data_2d_x_hrnet.npz"
    np.savez(src, positions_2d=np.array({}, dtype=object), metadata=np.array(meta, dtype=object))
    kp = rng.uniform(100, 300, (3, 17, 2))
    np.savez(tmp_path / "kp.npz", keypoints=kp, layout="coco17", image_size=[400, 400])
    out = tmp_path / "out"
    args = [str(tmp_path / "kp.npz"), "--lifter", str(lifter_ckpt), "--no-draw", "--out"]
    assert infer_main([*args, str(out), "--joint-map", f"fitted:{src}"]) == 0
    with np.load(out / "poses.npz") as f:
        np.testing.assert_allclose(f["person0/pose_2d"][..., :2], np.einsum("jk,tkc->tjc", w, kp))
    assert infer_main([*args, str(tmp_path / "o2"), "--joint-map", "fitted:" + str(out)]) == 2

"""Virtual capture, the VideoPose3D-layout loader, windows, flips and the DataModule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liftpose.data.capture import CaptureConfig, DetectorNoise, capture, simulate_detector
from liftpose.data.datamodule import LiftingDataModule, SplitArrays, WindowDataset
from liftpose.data.h36m import load_sequences, write_dataset
from liftpose.data.sampler import EpochSampler
from liftpose.data.skeleton import H36M17
from liftpose.data.windows import flip_pose, window_indices, window_offsets
from liftpose.errors import DataError

from .conftest import synthetic_collection


def make_dm(root, **kw) -> LiftingDataModule:
    args = dict(
        root=str(root),
        name="tiny",
        keypoints="gt",
        train_subjects=["A", "B"],
        test_subjects=["C"],
        receptive_field=9,
        batch_size=8,
        test_batch_size=16,
        cache_dir=str(root / "cache"),
    )
    args.update(kw)
    return LiftingDataModule(**args)


# ---------------------------------------------------------------- windows and flips
def naive_window(seq: np.ndarray, centre: int, t: int) -> np.ndarray:
    pad = t // 2
    padded = np.pad(seq, ((pad, pad), (0, 0), (0, 0)), mode="edge")
    return padded[centre : centre + t]


@pytest.mark.parametrize("t", [1, 3, 9, 27])
def test_window_gather_equals_padded_reference(t):
    rng = np.random.default_rng(t)
    lens = [5, 40, 13]
    seqs = [rng.normal(size=(n, 17, 2)).astype(np.float32) for n in lens]
    data = torch.from_numpy(np.concatenate(seqs))
    starts = torch.tensor(np.concatenate([[0], np.cumsum(lens)[:-1]]))
    seq_id = torch.tensor([s for s, n in enumerate(lens) for _ in range(n)])
    centre = torch.tensor([i for n in lens for i in range(n)])
    rows, _ = window_indices(starts[seq_id], torch.tensor(lens)[seq_id], centre, window_offsets(t))
    got = data[rows].numpy()
    for b in range(len(centre)):
        np.testing.assert_array_equal(got[b], naive_window(seqs[seq_id[b]], int(centre[b]), t))


def test_window_offsets_rejects_even():
    with pytest.raises(ValueError, match="odd"):
        window_offsets(4)
    # a sequence-to-sequence window of even length: frame T // 2 is its bookkeeping centre
    assert window_offsets(4, allow_even=True).tolist() == [-2, -1, 0, 1]
    assert window_offsets(5, allow_even=True).tolist() == [-2, -1, 0, 1, 2]


def test_flip_twice_is_identity_and_mirrors():
    x = torch.randn(4, 9, 17, 3)
    perm = torch.as_tensor(H36M17.flip_permutation)
    torch.testing.assert_close(flip_pose(flip_pose(x, perm), perm), x)
    y = flip_pose(x, perm)
    torch.testing.assert_close(y[..., 1, 0], -x[..., 4, 0])  # RHip <- mirrored LHip
    torch.testing.assert_close(y[..., 0, 1:], x[..., 0, 1:])


# ---------------------------------------------------------------- capture
def test_capture_is_seeded_and_det_is_noisy():
    coll = synthetic_collection(subjects=("A",), actions=("Walk 1",), frames=200)
    cams1, p1 = capture(coll, CaptureConfig(seed=3))
    cams2, p2 = capture(coll, CaptureConfig(seed=3))
    np.testing.assert_array_equal(p1["det"]["A"]["Walk 1"][2], p2["det"]["A"]["Walk 1"][2])
    gt, det = p1["gt"]["A"]["Walk 1"][0], p1["det"]["A"]["Walk 1"][0]
    err = np.linalg.norm(gt - det, axis=-1)
    assert 1.0 < np.median(err) < 15.0  # a few pixels
    # every joint of every view lands inside the image
    for cam, view in zip(cams1["A"], p1["gt"]["A"]["Walk 1"]):
        assert (
            view.min() > 0 and (view[..., 0].max() < cam.res_w) and view[..., 1].max() < cam.res_h
        )


def test_detector_noise_is_temporally_correlated_and_has_swaps():
    rng = np.random.default_rng(0)
    gt = np.zeros((4000, 17, 2))
    cfg = DetectorNoise(outlier_rate=0.0, swap_rate=0.0, correlation_frames=4.0)
    n = simulate_detector(gt, cfg, rng)[:, 0, 0]
    lag1 = np.corrcoef(n[:-1], n[1:])[0, 1]
    assert lag1 > 0.8
    white = simulate_detector(
        gt, DetectorNoise(correlation_frames=0.0, outlier_rate=0.0, swap_rate=0.0), rng
    )[:, 0, 0]
    assert abs(np.corrcoef(white[:-1], white[1:])[0, 1]) < 0.1
    # swaps: with a distinct pose per joint, a swap shows as left/right exchanged
    base = np.tile(np.arange(17.0)[None, :, None] * 100, (4000, 1, 2))
    sw = simulate_detector(base, DetectorNoise(sigma_px=0.0, outlier_rate=0.0, swap_rate=0.01), rng)
    swapped = np.abs(sw[:, 4, 0] - 100.0) < 1e-6  # LHip holds RHip's value
    assert 0.01 < swapped.mean() < 0.2


# ---------------------------------------------------------------- loader
def test_loader_camera_space_root_relative(tiny_root):
    seqs = load_sequences(tiny_root, "tiny", "gt", ["A"])
    assert len(seqs) == 3 * 4
    s = seqs[0]
    assert s.pose_2d.shape[1:] == (17, 2) and s.pose_3d.shape[1:] == (17, 3)
    np.testing.assert_array_equal(s.pose_3d[:, 0], 0.0)
    assert {q.action_group for q in seqs} == {"Walk", "Wave"}
    # bone lengths are preserved by the rigid world->camera transform
    coll = synthetic_collection()
    world = coll["A"][s.action]
    np.testing.assert_allclose(
        H36M17.bone_lengths(s.pose_3d), H36M17.bone_lengths(world), atol=1e-5
    )


def _rewrite(root, name, mutate_3d=None, mutate_2d=None, drop_camera=False):
    coll = synthetic_collection(subjects=("A",), actions=("Walk 1",), frames=40)
    cams, pos2d = capture(coll)
    if mutate_3d:
        mutate_3d(coll)
    if mutate_2d:
        mutate_2d(pos2d)
    if drop_camera:
        cams["A"] = cams["A"][:3]
    write_dataset(root, name, coll, pos2d, cams)


def test_bad_inputs_name_file_and_field(tmp_path):
    with pytest.raises(DataError, match=r"data_3d_none\.npz: file: not found"):
        load_sequences(tmp_path, "none", "gt", ["A"])

    _rewrite(tmp_path, "ok")
    with pytest.raises(DataError, match=r"data_3d_ok\.npz: positions_3d\[Z\]: unknown subject"):
        load_sequences(tmp_path, "ok", "gt", ["Z"])
    with pytest.raises(DataError, match=r"data_2d_ok_cpn\.npz: file: not found") as e:
        load_sequences(tmp_path, "ok", "cpn", ["A"])
    # the hint names the setting of each command that reads datasets, on one line
    hint = str(e.value).split("not found", 1)[1]
    for setting in ("data.root", "data=<folder> (liftpose-eval)", "--root (liftpose-data)"):
        assert setting in hint, hint
    assert "\n" not in str(e.value)

    def nan2d(p):
        p["gt"]["A"]["Walk 1"][1][5, 3, 0] = np.nan

    _rewrite(tmp_path, "nan", mutate_2d=nan2d)
    with pytest.raises(DataError, match=r"positions_2d\[A\]\[Walk 1\]\[1\]: 1 NaN.*frames \[5\]"):
        load_sequences(tmp_path, "nan", "gt", ["A"])

    def short2d(p):
        p["gt"]["A"]["Walk 1"][0] = p["gt"]["A"]["Walk 1"][0][:-3]

    _rewrite(tmp_path, "short", mutate_2d=short2d)
    with pytest.raises(DataError, match=r"\[Walk 1\]\[0\]: 37 2-D frames but 40 3-D frames"):
        load_sequences(tmp_path, "short", "gt", ["A"])

    def shape3d(c):
        c["A"]["Walk 1"] = c["A"]["Walk 1"][:, :15]

    _rewrite(tmp_path, "shape", mutate_3d=shape3d)
    with pytest.raises(DataError, match=r"positions_3d\[A\]\[Walk 1\]: expected shape"):
        load_sequences(tmp_path, "shape", "gt", ["A"])

    _rewrite(tmp_path, "cam", drop_camera=True)
    with pytest.raises(DataError, match=r"4 camera views, but the cameras file has 3"):
        load_sequences(tmp_path, "cam", "gt", ["A"])

    def flat2d(p):
        p["gt"]["A"]["Walk 1"][2] = p["gt"]["A"]["Walk 1"][2][:, :16]

    _rewrite(tmp_path, "flat", mutate_2d=flat2d)
    with pytest.raises(DataError, match=r"positions_2d\[A\]\[Walk 1\]\[2\]: expected shape"):
        load_sequences(tmp_path, "flat", "gt", ["A"])

    with pytest.raises(
        DataError, match=r"cameras_ok\.json: extrinsics\.A: unknown cameras \['7'\]"
    ):
        load_sequences(tmp_path, "ok", "gt", ["A"], cameras=["54138969", "7"])
    with pytest.raises(DataError, match=r"positions_3d: unknown actions \['Jump'\]"):
        load_sequences(tmp_path, "ok", "gt", ["A"], actions=["Walk", "Jump"])
    assert len(load_sequences(tmp_path, "ok", "gt", ["A"], cameras=[54138969, "1"])) == 2

    # a file without the expected key
    np.savez(tmp_path / "data_2d_ok_nokey.npz", keypoints=np.zeros(3))
    with pytest.raises(DataError, match=r"data_2d_ok_nokey\.npz: positions_2d: missing key"):
        load_sequences(tmp_path, "ok", "nokey", ["A"])
    # cameras file without intrinsics for a camera
    bad = tmp_path / "cameras_ok.json"
    doc = json.loads(bad.read_text())
    doc["intrinsics"].pop("58860488")
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"cameras_ok\.json: intrinsics\.58860488"):
        load_sequences(tmp_path, "ok", "gt", ["A"])

    # a truncated file
    p = tmp_path / "data_3d_ok.npz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match=r"data_3d_ok\.npz: positions_3d: unreadable or truncated"):
        load_sequences(tmp_path, "ok", "gt", ["A"])


def test_zero_length_outliers_and_swaps_and_hydra_capture_config():
    from omegaconf import OmegaConf

    from liftpose.data.embedded import capture_config

    rng = np.random.default_rng(0)
    gt = np.zeros((50, 17, 2))
    cfg = DetectorNoise(outlier_frames=0, swap_frames=0, outlier_rate=0.5, swap_rate=0.5)
    assert simulate_detector(gt, cfg, rng).shape == gt.shape
    cc = capture_config(
        OmegaConf.create(
            {"seed": 4, "rig": {"azimuths": [0, 90, 180, 270]}, "det": {"sigma_px": 5.0}}
        )
    )
    assert cc.rig.azimuths == (0, 90, 180, 270) and cc.det.sigma_px == 5.0 and cc.seed == 4


def test_longer_2d_is_trimmed(tmp_path):
    def long2d(p):
        p["gt"]["A"]["Walk 1"] = [np.concatenate([v, v[-2:]]) for v in p["gt"]["A"]["Walk 1"]]

    _rewrite(tmp_path, "long", mutate_2d=long2d)
    seqs = load_sequences(tmp_path, "long", "gt", ["A"])
    assert all(len(s.pose_2d) == len(s.pose_3d) == 40 for s in seqs)


# ---------------------------------------------------------------- datamodule
def test_datamodule_cache_and_batches(tiny_root):
    dm = make_dm(tiny_root)
    dm.prepare_data()
    assert dm.cache_path.exists()
    assert not list(dm.cache_path.parent.glob(".*tmp*"))  # no temporary left behind
    dm.setup()
    assert dm.action_names == ["Walk", "Wave"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["pose_2d"].shape == (8, 9, 17, 2)
    assert batch["pose_3d"].shape == (8, 1, 17, 3)
    # a second datamodule reads the same cache; another config gets another cache
    assert make_dm(tiny_root).cache_path == dm.cache_path
    assert make_dm(tiny_root, keypoints="det").cache_path != dm.cache_path
    assert make_dm(tiny_root, layout="h36m16").fingerprint() != dm.fingerprint()


def test_dataset_centre_targets_match_arrays(tiny_root):
    dm = make_dm(tiny_root)
    ds = dm.dataset("test")
    arr = dm.splits["test"]
    idx = list(range(0, len(ds), 7))
    b = ds.__getitems__(idx)
    rows = arr.seq_start[b["seq"].numpy()] + b["frame"].numpy()
    np.testing.assert_array_equal(b["pose_3d"][:, 0].numpy(), arr.pose_3d[rows])
    np.testing.assert_array_equal(b["pose_2d"][:, 4].numpy(), arr.pose_2d[rows])  # centre of 9
    assert len(ds) == len(arr.pose_3d)
    assert len(dm.dataset("test", stride=4)) == sum((n + 3) // 4 for n in arr.seq_len)


def test_dataset_sequence_targets_and_flip(tiny_root):
    dm = make_dm(tiny_root, target="sequence")
    ds = dm.dataset("train")
    b = ds.__getitems__([0, 5, 50])
    assert b["pose_3d"].shape == (3, 9, 17, 3) and b["frames"].shape == (3, 9)
    aug = WindowDataset(
        dm.splits["train"],
        9,
        "sequence",
        flip_augment=True,
        flip_permutation=H36M17.flip_permutation,
    )
    # the training sampler tosses a coin per window: index + len(dataset) is mirrored
    sampler = EpochSampler(len(aug), flip=True, seed=0)
    order = sampler.order(0)[:64]
    assert 10 < int((order >= len(aug)).sum()) < 54
    f = aug.__getitems__(order.tolist())
    plain = ds.__getitems__((order % len(aug)).tolist())
    same = (f["pose_2d"] == plain["pose_2d"]).flatten(1).all(1)
    flipped = (f["pose_2d"] == flip_pose(plain["pose_2d"], H36M17.flip_permutation)).flatten(1)
    assert bool((same == (order < len(aug))).all()) and bool((same | flipped.all(1)).all())
    # 2-D and 3-D of a sample are flipped together
    y_flipped = (f["pose_3d"] == flip_pose(plain["pose_3d"], H36M17.flip_permutation)).flatten(1)
    assert bool((y_flipped.all(1) == ~same).all())


def test_datamodule_subject_error(tiny_root):
    dm = make_dm(tiny_root, test_subjects=["Q"], cache_dir=str(tiny_root / "cache2"))
    with pytest.raises(DataError, match=r"positions_3d\[Q\]: unknown subject"):
        dm.prepare_data()
    assert not list((tiny_root / "cache2").glob("*"))  # nothing half-written


def test_human36m_layout_with_packaged_calibration(tmp_path):
    """The Human3.6M file layout: 32-joint mocap, the packaged cameras, longer 2-D, S11 skip."""
    from liftpose.data.camera import image_coordinates, load_cameras
    from liftpose.data.skeleton import H36M32_TO_17

    cams = load_cameras()
    coll = synthetic_collection(
        subjects=("S1", "S11"), actions=("Walking 1", "Directions"), frames=60
    )
    pos3d, pos2d = {}, {}
    for subject, acts in coll.items():
        pos3d[subject], pos2d[subject] = {}, {}
        for action, world in acts.items():
            full = np.zeros((len(world), 32, 3), np.float32)
            full[:, list(H36M32_TO_17)] = world
            pos3d[subject][action] = full
            views = []
            for cam in cams[subject].values():
                px = cam.project(cam.world_to_camera(world.astype(np.float64)))
                views.append(np.concatenate([px, px[-2:]]).astype(np.float32))  # 2 extra frames
            pos2d[subject][action] = views
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=np.array(pos3d, dtype=object))
    np.savez(
        tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
        positions_2d=np.array(pos2d, dtype=object),
        metadata=np.array({"layout_name": "h36m", "num_joints": 17}, dtype=object),
    )
    seqs = load_sequences(tmp_path, "h36m", "cpn_ft_h36m_dbb", ["S1", "S11"])
    assert {(s.subject, s.action) for s in seqs} == {
        ("S1", "Walking 1"),
        ("S1", "Directions"),
        ("S11", "Walking 1"),
    }  # S11 Directions skipped
    s = next(q for q in seqs if q.action == "Walking 1")
    assert s.pose_3d.shape == (60, 17, 3) and s.pose_2d.shape == (60, 17, 2)
    # the normalised 2-D is the projection of the camera-space 3-D (root added back)
    cam = cams[s.subject][s.camera]
    world = coll[s.subject][s.action].astype(np.float64)
    np.testing.assert_allclose(
        s.pose_3d, cam.world_to_camera(world) - cam.world_to_camera(world)[:, :1], atol=1e-5
    )
    px = cam.project(cam.world_to_camera(world))
    np.testing.assert_allclose(
        image_coordinates(s.pose_2d.astype(np.float64), cam.res_w, cam.res_h), px, atol=1e-3
    )


def test_data_fingerprint_follows_content_not_location(tiny_root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_root, copy, ignore=shutil.ignore_patterns("cache*"))
    a, b = make_dm(tiny_root), make_dm(copy, cache_dir=str(copy / "cache"))
    assert a.fingerprint() != b.fingerprint()  # cache keys differ (another folder)
    assert a.data_fingerprint() == b.data_fingerprint() != ""
    assert make_dm(tiny_root, keypoints="det").data_fingerprint() != a.data_fingerprint()


def test_causal_windows_end_at_their_target_frame():
    from liftpose.data.windows import target_position

    np.testing.assert_array_equal(window_offsets(5, window="causal"), [-4, -3, -2, -1, 0])
    np.testing.assert_array_equal(window_offsets(5), [-2, -1, 0, 1, 2])
    assert target_position(5, "causal") == 4 and target_position(5) == 2
    with pytest.raises(ValueError, match="window must be one of"):
        window_offsets(5, window="future")
    t = 12
    pose_2d = np.arange(t, dtype=np.float32)[:, None, None].repeat(17, 1).repeat(2, 2)
    arrays = SplitArrays(
        pose_2d=pose_2d, pose_3d=np.zeros((t, 17, 3), np.float32),
        seq_start=np.zeros(1, np.int64), seq_len=np.array([t]), seq_action=np.zeros(1, np.int64),
        action_names=["a"], seq_names=["a"],
    )  # fmt: skip
    batch = WindowDataset(arrays, 5, "centre", window="causal").__getitems__([0, 3, 11])
    frames = batch["pose_2d"][:, :, 0, 0]
    np.testing.assert_array_equal(frames, [[0, 0, 0, 0, 0], [0, 0, 1, 2, 3], [7, 8, 9, 10, 11]])
    np.testing.assert_array_equal(batch["frame"], [0, 3, 11])

"""MPI-INF-3DHP: the npz loader, PCK/AUC on the 14 protocol joints, valid frames, per-scene
results, and the Bandai-Namco cross-dataset test set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.data.crossdata import H36M_TO_MPI3DHP, build_bandai_3dhp, film_sequence
from liftpose.data.datamodule import LiftingDataModule, SplitArrays, WindowDataset
from liftpose.data.h36m import Sequence
from liftpose.data.mpi3dhp import (
    MPI3DHP_JOINT_NAMES,
    MPI3DHP_PCK_JOINTS,
    MPI3DHP_TEST_SCENES,
    MPI3DHP_TO_H36M,
    load_3dhp_test,
    load_3dhp_train,
    write_3dhp_test,
    write_3dhp_train,
)
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError
from liftpose.metrics import AUC, PCK, auc, pck, pose_metrics

from .conftest import SHARED, synthetic_motion

BANDAI = SHARED / "data" / "bandai1" / "data"


# ---------------------------------------------------------------- NumPy references
def pck_reference(pred, target, threshold=150.0, joints=None):
    """Plain NumPy PCK (percent) over all frames and the given joints; ``(N, J, 3)`` inputs."""
    err = np.linalg.norm(pred - target, axis=-1)
    if joints is not None:
        err = err[:, list(joints)]
    return 100.0 * np.mean(err < threshold)  # the official rule: strictly below


def auc_reference(pred, target, joints=None):
    """Plain NumPy AUC: mean PCK over thresholds 0, 5, ..., 150; ``(N, J, 3)`` inputs."""
    return float(np.mean([pck_reference(pred, target, t, joints) for t in np.arange(0, 151, 5)]))


# ---------------------------------------------------------------- joint order
def test_joint_mapping_and_protocol_joints():
    h36m_to_3dhp_names = {
        "Hip": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RFoot": "r_ankle",
        "LHip": "l_hip", "LKnee": "l_knee", "LFoot": "l_ankle", "Spine": "spine",
        "Thorax": "neck", "Neck/Nose": "head", "Head": "head_top",
        "LShoulder": "l_shoulder", "LElbow": "l_elbow", "LWrist": "l_wrist",
        "RShoulder": "r_shoulder", "RElbow": "r_elbow", "RWrist": "r_wrist",
    }  # fmt: skip
    assert [MPI3DHP_JOINT_NAMES[i] for i in MPI3DHP_TO_H36M] == [
        h36m_to_3dhp_names[n] for n in H36M17.names
    ]
    assert sorted(MPI3DHP_TO_H36M) == list(range(17))
    # the 14 protocol joints are the first 14 of the 3DHP order: all but pelvis, spine, head
    assert sorted(MPI3DHP_TO_H36M[j] for j in MPI3DHP_PCK_JOINTS) == list(range(14))
    assert [H36M17.names[j] for j in range(17) if j not in MPI3DHP_PCK_JOINTS] == [
        "Hip",
        "Spine",
        "Neck/Nose",
    ]
    assert [MPI3DHP_TO_H36M[i] for i in H36M_TO_MPI3DHP] == list(range(17))


# ---------------------------------------------------------------- PCK / AUC
def test_pck_auc_hand_computed_and_reference():
    # one frame, errors along x (mm): pelvis, spine and head (not scored by the protocol) 500,
    # RHip 100, RKnee 150 (on the threshold: wrong, the official rule is error < t), RFoot 151,
    # every other joint 0
    target = torch.zeros(1, 17, 3, dtype=torch.float64)
    pred = target.clone()
    for j, e in {0: 500.0, 7: 500.0, 9: 500.0, 1: 100.0, 2: 150.0, 3: 151.0}.items():
        pred[0, j, 0] = e
    joints = list(MPI3DHP_PCK_JOINTS)
    assert float(pck(pred, target)) == pytest.approx(100 * 12 / 17)
    assert float(pck(pred, target, joints=joints)) == pytest.approx(100 * 12 / 14)
    # AUC: a joint with error e passes the thresholds 5k > e among 0..150 (31 values):
    # 0 -> 30, 100 -> 10, 150 / 151 / 500 -> 0
    assert float(auc(pred, target, joints=joints)) == pytest.approx(
        100 * (11 * 30 + 10) / (14 * 31)
    )
    assert float(auc(pred, target)) == pytest.approx(100 * (11 * 30 + 10) / (17 * 31))
    p, t = pred.numpy(), target.numpy()
    assert float(pck(pred, target, joints=joints)) == pytest.approx(
        pck_reference(p, t, 150, joints)
    )
    assert float(auc(pred, target, joints=joints)) == pytest.approx(auc_reference(p, t, joints))

    # random poses in metres through the metric classes (scale 1000 -> mm), per scene
    rng = np.random.default_rng(0)
    t = rng.normal(0, 0.3, (60, 17, 3))
    p = t + rng.normal(0, 0.09, t.shape)
    scene = np.repeat([0, 1, 2], 20)
    args = (torch.from_numpy(p), torch.from_numpy(t), torch.from_numpy(scene))
    ids = (torch.zeros(60, dtype=torch.long), torch.arange(60))
    for cls, ref in ((PCK, pck_reference), (AUC, auc_reference)):
        m = cls(["GS", "noGS", "Outdoor"], joints=joints)
        m.update(args[0], args[1], args[2], *ids)
        out = m.compute()
        name = cls.name
        for k, s in enumerate(["GS", "noGS", "Outdoor"]):
            want = ref(p[scene == k] * 1000, t[scene == k] * 1000, joints=joints)
            assert float(out[f"{name}/action/{s}"]) == pytest.approx(want, abs=1e-4)
        assert float(out[f"{name}/frames"]) == pytest.approx(
            ref(p * 1000, t * 1000, joints=joints), abs=1e-4
        )


# ---------------------------------------------------------------- synthetic 3DHP files
def synthetic_3dhp_test(
    names=tuple(MPI3DHP_TEST_SCENES), frames=60, invalid_every=7
) -> dict[str, dict[str, np.ndarray]]:
    """A toy motion per test sequence, filmed like 3DHP: pixels, camera mm, 3DHP joint order."""
    rng = np.random.default_rng(1)
    out = {}
    for k, name in enumerate(names):
        world = synthetic_motion(frames + 5 * k, seed=k).astype(np.float64)
        _, px, x_cam = film_sequence(world, name, rng)
        order = list(H36M_TO_MPI3DHP)
        valid = np.ones(len(world), np.float32)
        valid[k % invalid_every :: invalid_every] = 0
        out[name] = {
            "data_2d": px[:, order],
            "data_3d": x_cam[:, order] * 1000.0,
            "valid": valid,
        }
    return out


def test_loader_reads_the_test_layout(tmp_path):
    raw = synthetic_3dhp_test()
    raw["TS2"]["data_2d"][3] = np.nan  # made invalid: filled in from the nearest valid frame
    raw["TS2"]["valid"][3] = 0
    path = write_3dhp_test(tmp_path / "data_test_3dhp.npz", raw)
    seqs = load_3dhp_test(path)
    assert [s.subject for s in seqs] == ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]
    assert [s.action_group for s in seqs] == ["GS", "GS", "noGS", "noGS", "Outdoor", "Outdoor"]
    for s in seqs:
        r = raw[s.subject]
        mm = r["data_3d"].astype(np.float32).astype(np.float64)
        want3 = (mm - mm[:, 14:15])[:, list(MPI3DHP_TO_H36M)] / 1000.0
        np.testing.assert_allclose(s.pose_3d, want3, atol=1e-6)
        assert s.pose_3d.dtype == np.float32 and np.all(s.pose_3d[:, 0] == 0)
        w, h = (2048, 2048) if s.subject in ("TS1", "TS2", "TS3", "TS4") else (1920, 1080)
        px = r["data_2d"].astype(np.float32).astype(np.float64)
        want2 = normalize_screen_coordinates(px, w, h)[:, list(MPI3DHP_TO_H36M)]
        ok = np.isfinite(want2).all(axis=(1, 2))
        np.testing.assert_allclose(s.pose_2d[ok], want2[ok], atol=1e-6)
        assert np.isfinite(s.pose_2d).all()
        np.testing.assert_array_equal(s.valid, r["valid"] != 0)
    ts2 = seqs[1]
    np.testing.assert_array_equal(ts2.pose_2d[3], ts2.pose_2d[2])  # nearest valid frame
    assert [s.subject for s in load_3dhp_test(path, ["TS5"])] == ["TS5"]


def test_loader_reads_the_train_layout(tmp_path):
    rng = np.random.default_rng(2)

    def cam(frames):
        return {
            "data_2d": rng.uniform(0, 2048, (frames, 17, 2)),
            "data_3d": rng.normal(0, 300, (frames, 17, 3)) + [0, 0, 4000],
        }

    raw = {
        "S1 Seq1": {0: cam(30), 2: cam(30)},
        "S1 Seq2": {0: cam(20), 2: cam(20)},
        "S2 Seq1": {0: cam(25), 2: cam(25)},
    }
    path = write_3dhp_train(tmp_path / "data_train_3dhp.npz", raw, fps=50)
    seqs = load_3dhp_train(path)
    assert [(s.subject, s.action, s.camera) for s in seqs] == [
        ("S1", "Seq1", "0"), ("S1", "Seq1", "2"), ("S1", "Seq2", "0"), ("S1", "Seq2", "2"),
        ("S2", "Seq1", "0"), ("S2", "Seq1", "2"),
    ]  # fmt: skip
    s = seqs[3]
    mm = raw["S1 Seq2"][2]["data_3d"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(
        s.pose_3d, (mm - mm[:, 14:15])[:, list(MPI3DHP_TO_H36M)] / 1000, atol=1e-6
    )
    px = raw["S1 Seq2"][2]["data_2d"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(
        s.pose_2d, normalize_screen_coordinates(px, 2048, 2048)[:, list(MPI3DHP_TO_H36M)], atol=1e-6
    )
    assert s.valid is None and s.action_group == "Seq2"
    sel = load_3dhp_train(path, subjects=["S2"], cameras=["2"])
    assert [(s.subject, s.camera) for s in sel] == [("S2", "2")]
    with pytest.raises(DataError, match=r'data_train_3dhp\.npz: data\["S9 \.\.\."\]: unknown subj'):
        load_3dhp_train(path, subjects=["S9"])
    raw["S2 Seq1"][2]["data_3d"] = raw["S2 Seq1"][2]["data_3d"][:-1]
    bad = write_3dhp_train(tmp_path / "bad_train.npz", raw)
    with pytest.raises(DataError, match=r'data\["S2 Seq1"\]\[0\]\[2\]: mismatched frame counts'):
        load_3dhp_train(bad)


def test_loader_rejects_malformed_files(tmp_path):
    p = tmp_path / "data_test_3dhp.npz"
    with pytest.raises(DataError, match=r"data_test_3dhp\.npz: file: not found"):
        load_3dhp_test(p)

    np.savez(p, positions=np.zeros(3))
    with pytest.raises(DataError, match=r"data_test_3dhp\.npz: data: missing key"):
        load_3dhp_test(p)

    # a file liftpose did not write is never replaced
    with pytest.raises(DataError, match=r"data_test_3dhp\.npz: file: exists and was not written"):
        write_3dhp_test(p, synthetic_3dhp_test(frames=20))
    assert sorted(np.load(p).files) == ["positions"]
    p.unlink()

    def broken(mutate):
        raw = synthetic_3dhp_test(frames=20)
        mutate(raw)
        return write_3dhp_test(p, raw)

    broken(lambda r: r["TS3"].pop("valid"))
    with pytest.raises(DataError, match=r'data_test_3dhp\.npz: data\["TS3"\]\["valid"\]: missing'):
        load_3dhp_test(p)

    broken(lambda r: r["TS3"].update(data_2d=r["TS3"]["data_2d"][:, :16]))
    with pytest.raises(
        DataError,
        match=r'data_test_3dhp\.npz: data\["TS3"\]\["data_2d"\]: expected shape \(F, 17, 2\), '
        r"got \(\d+, 16, 2\)",
    ):
        load_3dhp_test(p)

    broken(lambda r: r["TS4"].update(valid=r["TS4"]["valid"][:-2]))
    with pytest.raises(DataError, match=r'data\["TS4"\]: mismatched frame counts'):
        load_3dhp_test(p)

    def nan_valid(r):
        r["TS1"]["data_3d"][0, 5, 2] = np.nan
        r["TS1"]["valid"][0] = 1  # a valid frame

    broken(nan_valid)
    with pytest.raises(DataError, match=r'data\["TS1"\]\["data_3d"\]: NaN/inf in 1 valid frames'):
        load_3dhp_test(p)

    broken(lambda r: r.update(TS7=r["TS1"]))
    with pytest.raises(DataError, match=r"data: unknown test sequences \['TS7'\]"):
        load_3dhp_test(p)

    write_3dhp_test(p, synthetic_3dhp_test(frames=20))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataError, match=r"data_test_3dhp\.npz: data: unreadable or truncated"):
        load_3dhp_test(p)


# ---------------------------------------------------------------- valid frames
def _valid_split() -> SplitArrays:
    rng = np.random.default_rng(3)
    seqs = []
    for k, n in enumerate((23, 17)):
        valid = rng.random(n) > 0.3
        valid[:2] = [False, True]
        seqs.append(
            Sequence(
                f"TS{k + 1}",
                f"TS{k + 1}",
                "0",
                rng.normal(size=(n, 17, 2)).astype(np.float32),
                rng.normal(size=(n, 17, 3)).astype(np.float32),
                group=["GS", "Outdoor"][k],
                valid=valid,
            )
        )
    seqs.append(
        Sequence(
            "TS3",
            "TS3",
            "0",
            rng.normal(size=(11, 17, 2)).astype(np.float32),
            rng.normal(size=(11, 17, 3)).astype(np.float32),
            group="noGS",
        )
    )  # no mask: every frame valid
    return SplitArrays.from_sequences(seqs, "h36m17")


def test_invalid_frames_are_never_window_centres(tmp_path):
    arrays = _valid_split()
    assert arrays.action_names == ["GS", "Outdoor", "noGS"]
    assert arrays.valid is not None and arrays.valid[-11:].all()
    for target in ("centre", "sequence"):
        for stride in (1, 2):
            ds = WindowDataset(arrays, 5, target, stride=stride)
            batch = ds.__getitems__(list(range(len(ds))))
            rows = arrays.seq_start[batch["seq"].numpy()] + batch["frame"].numpy()
            assert arrays.valid[rows].all()
            want = sum(
                int(arrays.valid[s : s + n][::stride].sum())
                for s, n in zip(arrays.seq_start, arrays.seq_len)
            )
            assert len(ds) == want
            if target == "sequence":  # neighbours are real frames; their flags come along
                frames = batch["frames"].numpy()
                seq_rows = arrays.seq_start[batch["seq"].numpy()][:, None] + frames
                np.testing.assert_array_equal(batch["valid"].numpy(), arrays.valid[seq_rows])
                assert not batch["valid"].all()
            else:
                assert batch["valid"].shape == (len(ds), 1) and batch["valid"].all()

    # the mask survives the HDF5 cache; a split without one loads as None
    import h5py

    with h5py.File(tmp_path / "c.h5", "w") as f:
        arrays.save(f.create_group("a"))
        arrays.valid = None
        arrays.save(f.create_group("b"))
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert SplitArrays.load(f["a"]).valid.dtype == bool
        assert SplitArrays.load(f["a"]).valid.sum() == _valid_split().valid.sum()
        assert SplitArrays.load(f["b"]).valid is None


class _Zeros(nn.Module):
    """A lifter predicting zeros for every frame of the window: ``(B, T, J, 2) -> (B, T, J, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape[:-1], 3) * self.w


@pytest.mark.parametrize("target", ["centre", "sequence"])
def test_invalid_frames_are_never_scored(target):
    from liftpose.modules.lifting import LiftingModule

    arrays = _valid_split()
    module = LiftingModule(
        _Zeros(),
        nn.MSELoss(),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        test_flip=False,
        flip_permutation=H36M17.flip_permutation.tolist(),
    )
    metrics = pose_metrics(arrays.action_names)
    ds = WindowDataset(arrays, 5, target)
    for s in range(0, len(ds), 8):
        module._eval_step(ds.__getitems__(list(range(s, min(s + 8, len(ds))))), metrics)
    seen = set(
        zip(torch.cat(metrics["mpjpe"].seq).tolist(), torch.cat(metrics["mpjpe"].frame).tolist())
    )
    valid_frames = {
        (s, f)
        for s, (start, n) in enumerate(zip(arrays.seq_start, arrays.seq_len))
        for f in range(n)
        if arrays.valid[start + f]
    }
    assert seen == valid_frames
    out = metrics.compute()
    # zero prediction (root zeroed too): the error is the mean joint norm over valid frames
    norm = np.linalg.norm(arrays.pose_3d.astype(np.float64), axis=-1).mean(axis=-1) * 1000
    act = np.repeat(arrays.seq_action, arrays.seq_len)
    assert float(out["mpjpe/frames"]) == pytest.approx(norm[arrays.valid].mean(), rel=1e-5)
    for a, name in enumerate(arrays.action_names):
        sel = arrays.valid & (act == a)
        assert float(out[f"mpjpe/action/{name}"]) == pytest.approx(norm[sel].mean(), rel=1e-5)


# ---------------------------------------------------------------- datamodule and a tiny run
def test_datamodule_test_set_and_fingerprint(tiny_root, tmp_path):
    write_3dhp_test(tmp_path / "ts" / "data_test_3dhp.npz", synthetic_3dhp_test())
    kw = dict(
        root=str(tiny_root),
        name="tiny",
        keypoints="gt",
        train_subjects=["A", "B"],
        test_subjects=["C"],
        receptive_field=9,
        cache_dir=str(tmp_path / "cache"),
    )
    plain = LiftingDataModule(**kw)
    dm = LiftingDataModule(**kw, test_set={"root": str(tmp_path / "ts")})
    assert plain.pck_joints is None and dm.pck_joints == list(MPI3DHP_PCK_JOINTS)
    assert plain.fingerprint() != dm.fingerprint()
    sub = LiftingDataModule(**kw, test_set={"root": str(tmp_path / "ts"), "sequences": ["TS1"]})
    assert sub.fingerprint() != dm.fingerprint()
    dm.prepare_data()
    dm.setup()
    assert dm.action_names == ["GS", "Outdoor", "noGS"]
    assert dm.splits["train"].seq_names == plain.dataset("train").arrays.seq_names
    test = dm.splits["test"]
    assert test.valid is not None and not test.valid.all()
    batch = next(iter(dm.val_dataloader()))
    assert batch["valid"].all()  # centre targets: centres are valid frames
    seq = next(iter(dm.test_dataloader()))  # whole sequences: valid frames are scored
    start = int(test.seq_start[int(seq["seq"][0])])
    assert len(seq["frames"][0]) and test.valid[start + seq["frames"][0].numpy()].all()
    h16 = LiftingDataModule(**kw, layout="h36m16", test_set={"root": str(tmp_path / "ts")})
    assert [H36M17.names[j] for j in MPI3DHP_PCK_JOINTS] == [
        h16.skeleton.names[j] for j in h16.pck_joints
    ]

    missing = LiftingDataModule(
        **kw, test_set={"root": str(tmp_path / "none"), "build_from": str(tmp_path / "nobvh")}
    )
    with pytest.raises(DataError) as err:
        missing.prepare_data()
    msg = str(err.value)
    assert str(tmp_path / "none" / "data_test_3dhp.npz") in msg and str(tmp_path / "nobvh") in msg

    from liftpose.errors import ConfigError

    with pytest.raises(ConfigError, match="data.test_set.format"):
        LiftingDataModule(**kw, test_set={"root": "x", "format": "coco"})
    with pytest.raises(ConfigError, match="data.format"):
        LiftingDataModule(**{**kw, "format": "coco"})


def test_mpi3dhp_format_trains_on_the_train_file(tmp_path):
    rng = np.random.default_rng(4)
    raw = {}
    for s in ("S1", "S2"):
        world = synthetic_motion(40, seed=int(s[1]))
        _, px, x_cam = film_sequence(world.astype(np.float64), "TS1", rng)
        order = list(H36M_TO_MPI3DHP)
        raw[f"{s} Seq1"] = {0: {"data_2d": px[:, order], "data_3d": x_cam[:, order] * 1000}}
    write_3dhp_train(tmp_path / "data_train_3dhp.npz", raw)
    write_3dhp_test(tmp_path / "data_test_3dhp.npz", synthetic_3dhp_test(("TS1", "TS5")))
    dm = LiftingDataModule(
        root=str(tmp_path),
        name="mpi3dhp",
        format="mpi3dhp",
        keypoints="gt",
        train_subjects=["S1", "S2"],
        receptive_field=3,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup()
    assert dm.splits["train"].seq_names == ["S1/Seq1/0", "S2/Seq1/0"]
    assert dm.action_names == ["GS", "Outdoor"] and dm.pck_joints == list(MPI3DHP_PCK_JOINTS)


@pytest.mark.slow
def test_tiny_run_reports_per_scene_pck_and_auc(tiny_root, tmp_path, monkeypatch):
    from omegaconf import open_dict

    import liftpose.modules.lifting as lifting
    from liftpose.train import run_train

    from .test_train import tiny_cfg

    write_3dhp_test(tmp_path / "ts" / "data_test_3dhp.npz", synthetic_3dhp_test())
    seen = []

    def recording_pose_metrics(*args, **kwargs):
        seen.append(kwargs.get("pck_joints"))
        return pose_metrics(*args, **kwargs)

    monkeypatch.setattr(lifting, "pose_metrics", recording_pose_metrics)
    cfg = tiny_cfg(
        tiny_root,
        tmp_path / "run",
        ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=none"],
    )
    with open_dict(cfg):
        cfg.data.test_set = {"format": "mpi3dhp", "root": str(tmp_path / "ts"), "build_from": None}
    doc = run_train(cfg)
    m = doc["metrics"]
    for metric in ("pck", "auc", "mpjpe"):
        for key in ("", "/frames", "/action/GS", "/action/noGS", "/action/Outdoor"):
            assert f"test/{metric}{key}" in m, f"test/{metric}{key}"
    assert not any("/action/Walk" in k for k in m)
    assert 0 <= m["test/pck/action/GS"] <= 100 and 0 <= m["test/auc/frames"] <= 100
    assert seen and all(j == list(MPI3DHP_PCK_JOINTS) for j in seen)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == m


# ---------------------------------------------------------------- Bandai cross-dataset set
def test_bandai_builder(tmp_path, tiny_root):
    if not BANDAI.is_dir():
        pytest.skip(f"Bandai-Namco BVH data not found at {BANDAI} (set LIFTPOSE_SHARED)")
    path = build_bandai_3dhp(BANDAI, tmp_path / "b", num_clips=3)
    assert path == tmp_path / "b" / "data_test_3dhp.npz"
    seqs = load_3dhp_test(path)
    assert [s.subject for s in seqs] == list(MPI3DHP_TEST_SCENES)
    assert {s.action_group for s in seqs} == {"GS", "noGS", "Outdoor"}
    meta = json.loads(str(np.load(path)["meta"]))
    assert meta["num_clips"] == 3
    clips = {name: v["clips"] for name, v in meta["sequences"].items()}
    assert clips["TS1"][0] == sorted(BANDAI.glob("*.bvh"))[0].name
    assert len({c for v in clips.values() for c in v}) == 3
    assert clips["TS1"] == clips["TS4"] and clips["TS3"] == clips["TS6"]  # three clips, reused
    for s in seqs:
        frac = s.valid.mean()
        assert 0.5 < frac < 1.0, (s.subject, frac)
        assert np.isfinite(s.pose_2d).all() and np.all(s.pose_3d[:, 0] == 0)
        height = np.linalg.norm(s.pose_3d[:, 10] - s.pose_3d[:, 3], axis=-1).max()
        assert 1.2 < height < 2.2  # head top to ankle, metres
        ok = s.valid
        if s.subject in ("TS5", "TS6"):  # 1920 x 1080: y within +-1080/1920
            assert np.abs(s.pose_2d[ok, :, 1]).max() <= 1080 / 1920 + 1e-6
        assert np.abs(s.pose_2d[ok]).max() <= 1.0 + 1e-6
    again = load_3dhp_test(build_bandai_3dhp(BANDAI, tmp_path / "c", num_clips=3))
    for a, b in zip(seqs, again):
        np.testing.assert_array_equal(a.pose_2d, b.pose_2d)
        np.testing.assert_array_equal(a.valid, b.valid)

    # the datamodule builds a missing test set from its source in prepare_data
    dm = LiftingDataModule(
        root=str(tiny_root),
        name="tiny",
        keypoints="gt",
        train_subjects=["A", "B"],
        test_subjects=["C"],
        receptive_field=9,
        cache_dir=str(tmp_path / "cache"),
        test_set={"root": str(tmp_path / "d"), "build_from": str(BANDAI)},
    )
    dm.prepare_data()
    assert Path(tmp_path / "d" / "data_test_3dhp.npz").exists()
    dm.setup()
    assert dm.action_names == ["GS", "Outdoor", "noGS"]

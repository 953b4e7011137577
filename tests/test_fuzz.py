"""Every reader against many mutated copies of real files.

Each reader gets ``LIFTPOSE_FUZZ_CASES`` (default 60) copies of a real file mutated by a seeded
mutator: bytes (truncation, flipped, inserted, deleted, zeroed, duplicated runs), text (lines
deleted, duplicated, swapped; numbers replaced by ``nan``, ``inf``, ``1e400``, words...) and
structure (keys deleted or renamed, values of the wrong type, arrays of the wrong dtype or shape,
NaN and inf, empty arrays). Every outcome must be the reader's own one-line
:class:`~liftpose.errors.DataError` naming a file, or a read that passes the reader's
postconditions (shapes, dtypes, finite values); anything else fails, with the case's seed. The
counts are printed; ``LIFTPOSE_FUZZ_CASES=2000 pytest tests/test_fuzz.py -s`` runs more.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from liftpose.data.capture import capture
from liftpose.data.crossdata import H36M_TO_MPI3DHP, film_sequence
from liftpose.data.embedded import load_sample
from liftpose.data.h36m import load_sequences, write_dataset
from liftpose.data.mpi3dhp import (
    MPI3DHP_TEST_SCENES,
    load_3dhp_test,
    load_3dhp_train,
    write_3dhp_test,
    write_3dhp_train,
)
from liftpose.errors import DataError

from .conftest import SHARED

CASES = int(os.environ.get("LIFTPOSE_FUZZ_CASES", "60"))
WEIRD_TOKENS = [
    "nan", "inf", "-inf", "1e400", "-1e308", "abc", "", "0", "-0", "1.5.3", "0x1f",
    "999999999999999999999999", "{", "}", "End", "ROOT", "JOINT", ":", "#", "e",
]  # fmt: skip


# ------------------------------------------------------------------------------- the mutator
class Mutator:
    """Seeded mutations of bytes, text and nested structures (dicts, lists, arrays)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def pick(self, seq: list) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    # bytes
    def bytes(self, data: bytes) -> bytes:
        n, r = len(data), self.rng
        a = int(r.integers(0, max(n, 1)))
        b = min(n, a + int(r.integers(1, 64)))
        op = int(r.integers(6))
        if op == 0:
            return data[:a]
        if op == 1:
            out = bytearray(data)
            for i in r.integers(0, max(n, 1), size=int(r.integers(1, 9))):
                if n:
                    out[int(i)] ^= int(r.integers(1, 256))
            return bytes(out)
        if op == 2:
            return data[:a] + r.bytes(int(r.integers(1, 32))) + data[a:]
        if op == 3:
            return data[:a] + data[b:]
        if op == 4:
            return data[:a] + bytes([self.pick([0, 255])]) * (b - a) + data[b:]
        return data[:b] + data[a:b] + data[b:]

    # text
    def text(self, text: str) -> str:
        lines, r = text.split("\n"), self.rng
        i, j = int(r.integers(len(lines))), int(r.integers(len(lines)))
        op = int(r.integers(8))
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[j])
        elif op == 2:
            lines[i], lines[j] = lines[j], lines[i]
        elif op in (3, 4):
            toks = lines[i].split(" ")
            k = int(r.integers(len(toks)))
            toks[k] = self.pick(WEIRD_TOKENS) if op == 3 else ""
            lines[i] = " ".join(toks)
        elif op == 5:
            return text[: int(r.integers(len(text) + 1))]
        elif op == 6:
            lines[i] = lines[i].upper() if r.random() < 0.5 else lines[i].lower()
        else:
            s = lines[i]
            if s:
                k = int(r.integers(len(s)))
                lines[i] = s[:k] + chr(int(r.integers(32, 127))) + s[k + 1 :]
        return "\n".join(lines)

    # structures
    def _paths(self, obj: Any, path: tuple = ()) -> list[tuple]:
        out = [path]
        if isinstance(obj, dict):
            for k, v in obj.items():
                out += self._paths(v, (*path, k))
        elif isinstance(obj, (list, tuple)):
            for k, v in enumerate(obj):
                out += self._paths(v, (*path, k))
        return out

    def _weird(self) -> Any:
        return self.pick([
            None, 0, -1, 1e308, float("nan"), "x", [], {}, [1, 2], True, np.array("s"),
            np.zeros((0,)), np.zeros((2, 2)), np.array([None, 1], dtype=object),
        ])  # fmt: skip

    def _array(self, a: Any) -> Any:
        torch_in = isinstance(a, torch.Tensor)
        x = a.numpy() if torch_in else np.asarray(a)
        op = int(self.rng.integers(10))
        if op == 0:
            dt = self.pick([np.int8, np.float16, np.complex64, bool, object, "U4", np.int64])
            try:
                x = x.astype(dt)
            except (TypeError, ValueError):  # e.g. text that is no number
                return self._weird()
        elif op == 1 and x.ndim >= 2:
            x = np.swapaxes(x, 0, x.ndim - 1)
        elif op == 2 and x.ndim >= 1:
            x = x[..., :-1]
        elif op == 3 and x.ndim >= 1:
            x = x[0]
        elif op == 4:
            x = x[None]
        elif op in (5, 6) and x.size and x.dtype.kind == "f":
            x = x.copy()
            x.flat[int(self.rng.integers(x.size))] = np.nan if op == 5 else np.inf
        elif op == 7 and x.dtype.kind == "f":
            x = x * np.float64(1e300)
        elif op == 8 and x.ndim >= 1:
            x = x[:0]
        else:
            return self._weird()
        if torch_in and x.dtype != object and x.dtype.kind in "biufc":
            return torch.from_numpy(np.ascontiguousarray(x))
        return x

    def tree(self, obj: Any) -> Any:
        paths = self._paths(obj)
        path = self.pick(paths[1:] or paths)
        if not path:
            return self._weird()
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key, node = path[-1], parent[path[-1]]
        if isinstance(parent, tuple):  # immutable: left as it is
            return obj
        op = int(self.rng.integers(5))
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 0 and isinstance(parent, list):
            parent.pop(key)
        elif op == 1 and isinstance(parent, dict):
            parent[self.pick(["x", 0, "", key + "_" if isinstance(key, str) else 1])] = parent.pop(
                key
            )
        elif op == 2 and isinstance(node, (np.ndarray, torch.Tensor)):
            parent[key] = self._array(node)
        elif op == 3 and isinstance(node, (dict, list)):
            parent[key] = type(node)()
        else:
            parent[key] = self._weird()
        return obj


# ------------------------------------------------------------------------------ the harness
def need(ok: Any, what: str) -> None:
    """A postcondition of a read (a short message, not pytest's rewritten assert)."""
    if not bool(ok):
        raise AssertionError(what)


def one_line(e: Exception) -> bool:
    return isinstance(e, DataError) and e.path is not None and "\n" not in str(e)


def fuzz(
    name: str,
    make: Callable[[Mutator, int], Path],
    read: Callable[[Path], Any],
    check: Callable[[Any], None],
    cases: int = CASES,
) -> Counter:
    """Run ``cases`` mutated files through ``read``; print and return the outcome counts."""
    counts: Counter = Counter()
    failures = []
    check(read(make(Mutator(0), -1)))  # the unmutated file reads and passes
    for k in range(cases):
        path = make(Mutator(k), k)
        try:
            result = read(path)
        except Exception as e:  # noqa: BLE001 - classified below
            if one_line(e):
                counts["DataError"] += 1
            else:
                failures.append(f"case {k}: {type(e).__name__}: {str(e)[:300]}")
            continue
        try:
            check(result)
        except AssertionError as e:
            failures.append(f"case {k}: read passed but {e}")
            continue
        counts["read"] += 1
    counts["cases"] = cases
    line = f"fuzz {name}: {cases} cases, {counts['read']} read, {counts['DataError']} DataError"
    print(f"{line}, {len(failures)} other", flush=True)
    assert not failures, f"{name}: {len(failures)} bad outcomes:\n" + "\n".join(failures[:8])
    return counts


def npz_tree(path: Path) -> dict:
    with np.load(path, allow_pickle=True) as f:
        return {k: (f[k].item() if f[k].dtype == object and f[k].ndim == 0 else f[k])
                for k in f.files}  # fmt: skip


def save_npz_tree(path: Path, tree: Any) -> None:
    if not isinstance(tree, dict):
        tree = {"data": tree}
    arrays = {}
    for k, v in tree.items():
        if isinstance(v, np.ndarray):
            arrays[str(k)] = v
        else:
            a = np.empty((), dtype=object)
            a[()] = v
            arrays[str(k)] = a
    np.savez(path, **arrays)


def mutated_copy(src: Path, dst: Path, m: Mutator, kind: str, k: int = 0) -> Path:
    """``dst``: ``src`` mutated as bytes, text or a structure (``kind``: npz, json, text, pt);
    case ``k = -1`` is the unmutated copy."""
    if dst.exists():
        dst.unlink()
    if k < 0:
        shutil.copyfile(src, dst)
        return dst
    r = m.rng.random()
    if r < 0.35 or kind == "bytes":
        dst.write_bytes(m.bytes(src.read_bytes()))
    elif kind == "npz":
        tree = npz_tree(src)
        for _ in range(int(m.rng.integers(1, 3))):
            tree = m.tree(tree)
        save_npz_tree(dst, tree)
    elif kind == "json":
        if r < 0.6:
            dst.write_text(m.text(src.read_text()))
        else:
            doc = json.loads(src.read_text())
            for _ in range(int(m.rng.integers(1, 3))):
                doc = m.tree(doc)
            dst.write_text(json.dumps(doc, default=str))
    elif kind == "text":
        text = src.read_text(encoding="latin-1")
        for _ in range(int(m.rng.integers(1, 4))):
            text = m.text(text)
        dst.write_text(text, encoding="latin-1")
    elif kind == "pt":
        tree = torch.load(src, weights_only=False)
        for _ in range(int(m.rng.integers(1, 3))):
            tree = m.tree(tree)
        torch.save(tree, dst)
    return dst


# ----------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def vp3d(tmp_path_factory) -> Path:
    """Real motion (two HDM05 actors, two clips each) filmed into the VideoPose3D layout."""
    sample = load_sample()
    coll = {
        actor: {a: sample[actor][a][:80] for a in sorted(sample[actor])[:2]}
        for actor in ("bd", "dg")
    }
    root = tmp_path_factory.mktemp("vp3d")
    cams, pos2d = capture(coll)
    write_dataset(root, "hdm05", coll, pos2d, cams)
    return root


@pytest.fixture(scope="module")
def files_3dhp(tmp_path_factory) -> Path:
    """Real motion filmed as MPI-INF-3DHP test (TS1-TS6) and training (S1, S2) files."""
    sample = load_sample()
    clips = [sample["bd"][a][:60].astype(np.float64) for a in sorted(sample["bd"])[:6]]
    rng = np.random.default_rng(0)
    order = list(H36M_TO_MPI3DHP)
    test, train = {}, {}
    for name, world in zip(MPI3DHP_TEST_SCENES, clips):
        _, px, x_cam = film_sequence(world, name, rng)
        valid = np.ones(len(world), np.float32)
        valid[::7] = 0
        test[name] = {"data_2d": px[:, order], "data_3d": x_cam[:, order] * 1000, "valid": valid}
        if name in ("TS1", "TS3"):
            train[f"S{len(train) + 1} Seq1"] = {
                0: {"data_2d": px[:, order], "data_3d": x_cam[:, order] * 1000}
            }
    root = tmp_path_factory.mktemp("3dhp")
    write_3dhp_test(root / "data_test_3dhp.npz", test)
    write_3dhp_train(root / "data_train_3dhp.npz", train)
    return root


def check_sequences(seqs: list) -> None:
    need(seqs, "no sequences")
    for s in seqs:
        t = len(s.pose_3d)
        need(t > 0 and s.pose_2d.shape == (t, 17, 2) and s.pose_3d.shape == (t, 17, 3), "shape")
        need(s.pose_2d.dtype == s.pose_3d.dtype == np.float32, "dtype")
        need(np.isfinite(s.pose_2d).all() and np.isfinite(s.pose_3d).all(), "non-finite")
        if s.valid is not None:
            need(s.valid.shape == (t,) and s.valid.dtype == bool, "valid mask")


# ---------------------------------------------------------------------------------- readers
@pytest.mark.parametrize(
    "which", ["data_3d_hdm05.npz", "data_2d_hdm05_gt.npz", "cameras_hdm05.json"]
)
def test_fuzz_videopose3d_files(vp3d, tmp_path, which):
    kind = "json" if which.endswith(".json") else "npz"

    def make(m: Mutator, k: int) -> Path:
        root = tmp_path / "case"
        if not root.exists():
            shutil.copytree(vp3d, root)
        mutated_copy(vp3d / which, root / which, m, kind, k)
        return root / which

    read = lambda p: load_sequences(p.parent, "hdm05", "gt", ["bd", "dg"])  # noqa: E731
    fuzz(f"VideoPose3D {which}", make, read, check_sequences)


def test_fuzz_packaged_cameras(tmp_path):
    from importlib import resources

    from liftpose.data.camera import load_cameras

    src = Path(str(resources.files("liftpose.data") / "assets" / "h36m_cameras.json"))

    def check(cams: dict) -> None:
        need(cams, "no cameras")
        for subject in cams.values():
            for c in subject.values():
                need(c.res_w > 0 and c.res_h > 0, "resolution")
                for a, n in ((c.center, 2), (c.focal_length, 2), (c.orientation, 4),
                             (c.translation, 3), (c.radial_distortion, 3),
                             (c.tangential_distortion, 2)):  # fmt: skip
                    need(a.shape == (n,) and np.isfinite(a).all(), "camera field")
                need(abs(np.linalg.norm(c.orientation) - 1) < 1e-6, "orientation not unit")

    fuzz(
        "cameras (Human3.6M calibration)",
        lambda m, k: mutated_copy(src, tmp_path / "cameras.json", m, "json", k),
        load_cameras,
        check,
    )


@pytest.mark.parametrize("which", ["test", "train"])
def test_fuzz_3dhp(files_3dhp, tmp_path, which):
    name = f"data_{which}_3dhp.npz"
    read = load_3dhp_test if which == "test" else load_3dhp_train
    fuzz(
        f"MPI-INF-3DHP {name}",
        lambda m, k: mutated_copy(files_3dhp / name, tmp_path / name, m, "npz", k),
        read,
        check_sequences,
    )


def test_fuzz_hdf5_cache(vp3d, tmp_path):
    import h5py

    from liftpose.data.datamodule import LiftingDataModule

    dm = LiftingDataModule(
        root=str(vp3d), name="hdm05", keypoints="gt", train_subjects=["bd"], test_subjects=["dg"],
        receptive_field=9, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    dm.setup()
    src, ref = dm.cache_path, dm.splits

    def make(m: Mutator, k: int) -> Path:
        dst = tmp_path / "case.h5"
        shutil.copyfile(src, dst)
        if k < 0:
            return dst
        if m.rng.random() < 0.6:
            dst.write_bytes(m.bytes(dst.read_bytes()))
            return dst
        with h5py.File(dst, "r+") as f:  # structure: a dataset or attribute changed
            names = []
            f.visit(names.append)
            target = m.pick(names)
            if m.rng.random() < 0.3:
                f.attrs[m.pick(["content_hash", "fingerprint"])] = m.pick(["", "0" * 16, "x"])
            elif isinstance(f[target], h5py.Dataset):
                new = m._array(f[target][()])
                del f[target]
                ok = isinstance(new, np.ndarray) and new.dtype.kind in "biuf"
                f[target] = new if ok else np.zeros(3)
            else:
                del f[target]
        return dst

    def read(path: Path) -> Any:
        got = dm._read_cache(path)
        if isinstance(got, str):  # the reader's verdict: the cache is rebuilt, in one line
            raise DataError(path, "cache", got)
        return got[0]

    def check(splits: dict) -> None:  # a read that verifies is exactly the data written
        for name, arrays in ref.items():
            for f in ("pose_2d", "pose_3d", "seq_start", "seq_len", "seq_action"):
                need(np.array_equal(getattr(splits[name], f), getattr(arrays, f)), f)
            need(splits[name].seq_names == arrays.seq_names, "names")

    fuzz("HDF5 cache", make, read, check)


needs_shared = pytest.mark.skipif(
    not (SHARED / "data").is_dir(), reason=f"real data not found under {SHARED}/data"
)


@needs_shared
def test_fuzz_coco_json(tmp_path):
    from liftpose.data.coco import det_records, gt_records, load_coco

    src = SHARED / "data" / "coco_mini" / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(src.read_text())
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
        for a in doc["annotations"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    coco_ok = load_coco(src)

    def check(records: Any) -> None:
        n = len(records.image_id)
        need(records.box.shape == (n, 4) and np.isfinite(records.box).all(), "boxes")
        need(records.joints.shape == (n, 17, 3) and np.isfinite(records.joints).all(), "joints")
        need(np.isfinite(records.score).all(), "scores")

    fuzz(
        "COCO keypoints json",
        lambda m, k: mutated_copy(src, tmp_path / "person_keypoints_val.json", m, "json", k),
        lambda p: gt_records(load_coco(p), tmp_path),
        check,
    )
    fuzz(
        "COCO detections json",
        lambda m, k: mutated_copy(tmp_path / "dets.json", tmp_path / "case.json", m, "json", k),
        lambda p: det_records(coco_ok, tmp_path, p),
        check,
    )


def crop_bvh(src: Path, frames: int) -> str:
    """The first ``frames`` frames of a BVH file (its whole HIERARCHY)."""
    text = src.read_text(encoding="latin-1")
    head, _, motion = text.partition("MOTION")
    lines = motion.strip().splitlines()  # Frames:, Frame Time:, then one line per frame
    body = "\n".join([f"Frames: {frames}", lines[1], *lines[2 : 2 + frames]])
    return head + "MOTION\n" + body + "\n"


@needs_shared
def test_fuzz_bvh(tmp_path):
    from liftpose.data.mocap.bvh import bvh_forward_kinematics, read_bvh

    src = tmp_path / "real.bvh"
    src.write_text(crop_bvh(sorted((SHARED / "data/bandai1/data").glob("*.bvh"))[0], 12))

    def read(p: Path) -> np.ndarray:
        return bvh_forward_kinematics(read_bvh(p))

    def check(pos: np.ndarray) -> None:
        need(pos.ndim == 3 and pos.shape[0] > 0 and pos.shape[2] == 3, "shape")
        need(np.isfinite(pos).all(), "non-finite positions")

    fuzz("BVH", lambda m, k: mutated_copy(src, tmp_path / "case.bvh", m, "text", k), read, check)


@needs_shared
@pytest.mark.parametrize("which", ["asf", "amc"])
def test_fuzz_asf_amc(tmp_path, which):
    from liftpose.data.mocap.asf_amc import forward_kinematics, read_amc, read_asf

    hdm = SHARED / "data" / "hdm05"
    asf = tmp_path / "real.asf"
    shutil.copyfile(hdm / "HDM_bd.asf", asf)
    lines = (hdm / "HDM_bd_depositFloorR_001_120.amc").read_text(encoding="latin-1").splitlines()
    per_frame = next(i for i, ln in enumerate(lines[1:], 1) if ln.strip() == "2") - next(
        i for i, ln in enumerate(lines) if ln.strip() == "1"
    )
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "1")
    amc = tmp_path / "real.amc"
    amc.write_text("\n".join(lines[: start + 6 * per_frame]) + "\n", encoding="latin-1")
    skeleton = read_asf(asf)

    def read(p: Path) -> np.ndarray:
        if which == "asf":
            s = read_asf(p)
            return forward_kinematics(s, read_amc(amc, s))
        return forward_kinematics(skeleton, read_amc(p, skeleton))

    def check(pos: np.ndarray) -> None:
        need(pos.ndim == 3 and pos.shape[0] > 0 and pos.shape[2] == 3, "shape")
        need(np.isfinite(pos).all(), "non-finite positions")

    src = asf if which == "asf" else amc
    fuzz(
        which.upper(),
        lambda m, k: mutated_copy(src, tmp_path / f"case.{which}", m, "text", k),
        read,
        check,
    )


@pytest.mark.slow
def test_fuzz_checkpoint(vp3d, tmp_path):
    from omegaconf import open_dict

    from liftpose.train import build, run_train
    from liftpose.utils.checkpoint import load_run_checkpoint, load_weights

    from .test_configs import compose_cfg

    cfg = compose_cfg("train", [
        f"data.root={vp3d}", "data.name=hdm05", "data.embedded=false", "data.keypoints=gt",
        "data.train_subjects=[bd]", "data.test_subjects=[dg]", f"data.cache_dir={tmp_path}/c",
        "frames=9", "model.embed_dim_ratio=8", "model.depth=1", "model.num_heads=2",
        "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "test=false", "logger=none",
        "trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar",
        "~callbacks.log_progress",
    ])  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    run_train(cfg)
    src = tmp_path / "run" / "checkpoints" / "last.ckpt"
    _, module = build(load_run_checkpoint(src)[1])

    def read(p: Path) -> Any:
        ckpt, _ = load_run_checkpoint(p)
        load_weights(module, ckpt["state_dict"], p)
        return ckpt["state_dict"]

    def check(state: dict) -> None:  # the module holds exactly the file's (finite) weights
        for k, v in module.state_dict().items():
            need(torch.equal(v, state[k].to(v.dtype)), f"{k} differs from the file")
            need(torch.isfinite(v).all(), f"{k} not finite")

    def make(m: Mutator, k: int) -> Path:
        kind = "bytes" if m.rng.random() < 0.3 else "pt"
        path = mutated_copy(src, tmp_path / "case.ckpt", m, kind, k)
        if kind == "pt" and k >= 0 and m.rng.random() < 0.5:
            try:  # as from a liftpose that saved no hash
                ckpt = torch.load(path, weights_only=False)
            except Exception:  # noqa: BLE001 - a byte-level mutation: leave it
                return path
            if isinstance(ckpt, dict):
                ckpt.pop("liftpose_hash", None)
                torch.save(ckpt, path)
        return path

    fuzz("checkpoint", make, read, check, cases=max(CASES // 2, 10))

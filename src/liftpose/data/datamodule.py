"""One LightningDataModule for all lifting data (Human3.6M, virtual captures, the embedded set).

Prepared arrays are cached once in HDF5, keyed by a hash of the data config and of the input
files, and written atomically. Windows of a batch are gathered in one vectorised step through
:meth:`WindowDataset.__getitems__` (the batched fetch of ``torch.utils.data``), so the standard
``DataLoader`` and Lightning's distributed sampler work unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from liftpose.data.h36m import (
    Sequence,
    dataset_files,
    file_fingerprint,
    load_sequences,
    mix_keypoints,
    subset_sequence,
)
from liftpose.data.mpi3dhp import (
    MPI3DHP_PCK_JOINTS,
    TEST_FILE,
    TRAIN_FILE,
    load_3dhp_test,
    load_3dhp_train,
)
from liftpose.data.sampler import training_loader
from liftpose.data.skeleton import H36M16_KEEP, get_layout, to_layout
from liftpose.data.windows import WINDOWS, flip_pose, window_indices, window_offsets
from liftpose.errors import ConfigError, DataError
from liftpose.utils.io import MARKER_KEY, atomic_path, marker

#: Version of the cache layout (2: root positions and cameras; 3: every array and name under
#: the content hash that is checked on load).
CACHE_VERSION = 3
FORMATS = ("h36m", "mpi3dhp")
#: ``data.detector`` switched off (the data configs' value): the fields of
#: :class:`liftpose.data.detect.DetectorSettings` with no checkpoint. Being the argument's
#: default, it leaves the hash of every run without a detector as it was.
DETECTOR_OFF = MappingProxyType(
    {"ckpt": None, "every": 1, "flip_test": True, "batch_size": 32, "device": "cpu", "seed": 0}
)
#: Keys of the ``test_set`` argument.
TEST_SET_KEYS = ("format", "root", "file", "build_from", "sequences")


@dataclass
class SplitArrays:
    """All sequences of a split, concatenated: rows of ``pose_2d``/``pose_3d`` are frames.

    ``valid`` (optional, ``(N,)`` bool) marks the frames that may be window centres and are
    scored (e.g. the valid frames of MPI-INF-3DHP); None means every frame. ``root_3d`` and
    ``camera`` (optional, where every sequence has a calibrated camera) are the camera-frame
    root position of each frame and the normalised intrinsics of each sequence.
    """

    pose_2d: np.ndarray  # (N, J, 2) float32, normalised
    pose_3d: np.ndarray  # (N, J, 3) float32, camera metres, root at zero
    seq_start: np.ndarray  # (S,) int64
    seq_len: np.ndarray  # (S,) int64
    seq_action: np.ndarray  # (S,) int64 index into action_names
    action_names: list[str]
    seq_names: list[str]  # "subject/action/camera"
    valid: np.ndarray | None = None  # (N,) bool; None: all frames valid
    root_3d: np.ndarray | None = None  # (N, 3) float32, camera metres of the root joint
    camera: np.ndarray | None = None  # (S, 4) float32, f_x, f_y, c_x, c_y (normalised)

    @classmethod
    def from_sequences(cls, seqs: list[Sequence], layout: str, downsample: int = 1) -> SplitArrays:
        """Concatenate ``seqs`` (each ``pose_2d (T, 17, 2)``, ``pose_3d (T, 17, 3)``, optional
        ``valid (T,)``), keeping every ``downsample``-th frame, in joint ``layout``."""
        names = sorted({s.action_group for s in seqs})
        p2 = [to_layout(s.pose_2d[::downsample], layout) for s in seqs]
        p3 = [to_layout(s.pose_3d[::downsample], layout) for s in seqs]
        lens = np.array([len(x) for x in p2], dtype=np.int64)
        valid = None
        if any(s.valid is not None for s in seqs):
            valid = np.concatenate(
                [
                    np.ones(n, bool) if s.valid is None else np.asarray(s.valid, bool)[::downsample]
                    for s, n in zip(seqs, lens)
                ]
            )
        root_3d = camera = None
        if all(s.root is not None and s.intrinsics is not None for s in seqs):
            root_3d = np.concatenate([s.root[::downsample] for s in seqs]).astype(np.float32)
            camera = np.stack([s.intrinsics for s in seqs]).astype(np.float32)
        return cls(
            pose_2d=np.ascontiguousarray(np.concatenate(p2), dtype=np.float32),
            pose_3d=np.ascontiguousarray(np.concatenate(p3), dtype=np.float32),
            seq_start=np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64),
            seq_len=lens,
            seq_action=np.array([names.index(s.action_group) for s in seqs], dtype=np.int64),
            action_names=names,
            seq_names=[f"{s.subject}/{s.action}/{s.camera}" for s in seqs],
            valid=valid,
            root_3d=root_3d,
            camera=camera,
        )

    def save(self, group: h5py.Group) -> None:
        for k in ("pose_2d", "pose_3d", "seq_start", "seq_len", "seq_action"):
            group.create_dataset(k, data=getattr(self, k))
        if self.valid is not None:
            group.create_dataset("valid", data=np.asarray(self.valid, dtype=bool))
        for k in ("root_3d", "camera"):
            if getattr(self, k) is not None:
                group.create_dataset(k, data=getattr(self, k))
        group.attrs["action_names"] = json.dumps(self.action_names)
        group.attrs["seq_names"] = json.dumps(self.seq_names)

    @classmethod
    def load(cls, group: h5py.Group) -> SplitArrays:
        return cls(
            **{
                k: group[k][()]
                for k in ("pose_2d", "pose_3d", "seq_start", "seq_len", "seq_action")
            },
            action_names=json.loads(group.attrs["action_names"]),
            seq_names=json.loads(group.attrs["seq_names"]),
            valid=group["valid"][()].astype(bool) if "valid" in group else None,
            root_3d=group["root_3d"][()] if "root_3d" in group else None,
            camera=group["camera"][()] if "camera" in group else None,
        )

    def update_digest(self, h: Any) -> None:
        """Feed every array (values, dtype and shape) and every name into the hash ``h``."""
        fields = ("pose_2d", "pose_3d", "seq_start", "seq_len", "seq_action", "valid")
        for k in (*fields, "root_3d", "camera"):
            a = getattr(self, k)
            if a is None:
                h.update(b"none")
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.data)
        h.update(json.dumps([self.action_names, self.seq_names]).encode())


def content_hash(splits: Mapping[str, SplitArrays]) -> str:
    """Hash of the prepared arrays of every split: stored in the cache and checked on load."""
    h = hashlib.sha1()
    for name in sorted(splits):
        h.update(name.encode())
        splits[name].update_digest(h)
    return h.hexdigest()[:16]


def collate_batch(batch: Any) -> Any:
    """The dataset already returns a whole batch; keep it as it is."""
    return batch


class WindowDataset(Dataset):
    """Centred (or causal) windows over a :class:`SplitArrays`, fetched a batch at a time.

    Window centres are every ``stride``-th frame of each sequence that is valid
    (``arrays.valid``); the other frames of a window are the real neighbouring frames, valid or
    not, and the batch's ``valid`` entry says which of the target frames may be scored.

    Args:
        arrays: the split.
        receptive_field: window length ``T`` (odd; even for ``sequence`` targets).
        target: ``"centre"`` (3-D of the centre frame, ``(B, 1, J, 3)``) or ``"sequence"``
            (3-D of every window frame, ``(B, T, J, 3)``).
        stride: keep every ``stride``-th frame of each sequence as a window centre.
        pairs: with ``stride > 1``, each centre's next frame is a centre too (frames ``0, 1, s,
            s + 1, 2s, ...``), so that consecutive frames, and MPJVE, exist in a strided test.
        flip_augment: serve mirrored windows too: index ``i + len(self)`` is window ``i``
            mirrored (the training sampler, :class:`~liftpose.data.sampler.EpochSampler`, tosses
            the coin).
        flip_permutation: left/right joint permutation of the layout.
        camera_context: add each sample's camera and root position to the batch (needs
            ``arrays.root_3d`` and ``arrays.camera``); a mirrored sample has its intrinsics
            mirrored too (``c_x`` negated) and its root's ``x`` negated.
        window: ``centred`` or ``causal`` (the window ends at its target frame, see
            :func:`~liftpose.data.windows.window_offsets`); ``frame`` is the target frame.
    """

    def __init__(
        self,
        arrays: SplitArrays,
        receptive_field: int,
        target: str = "centre",
        stride: int = 1,
        flip_augment: bool = False,
        flip_permutation: np.ndarray | None = None,
        camera_context: bool = False,
        window: str = "centred",
        pairs: bool = False,
    ) -> None:
        if target not in ("centre", "sequence"):
            raise ValueError(f"target must be 'centre' or 'sequence', got {target!r}")
        if camera_context and (arrays.root_3d is None or arrays.camera is None):
            raise ValueError("camera_context needs the root positions and cameras of the split")
        self.arrays = arrays
        self.offsets = window_offsets(
            receptive_field, allow_even=target == "sequence", window=window
        )
        self.target = target
        self.flip_augment = flip_augment
        n, j = arrays.pose_2d.shape[:2]
        self.num_rows, self.num_joints = n, j
        pose_2d = torch.from_numpy(arrays.pose_2d).reshape(n, j * 2)
        pose_3d = torch.from_numpy(arrays.pose_3d).reshape(n, j * 3)
        if flip_augment:
            # rows N..2N-1 hold the mirrored poses, so a flip is an index offset in the gather
            perm = torch.as_tensor(
                flip_permutation if flip_permutation is not None else np.arange(j)
            )
            pose_2d = torch.cat([pose_2d, flip_pose(pose_2d.view(n, j, 2), perm).view(n, -1)])
            pose_3d = torch.cat([pose_3d, flip_pose(pose_3d.view(n, j, 3), perm).view(n, -1)])
        self.pose_2d, self.pose_3d = pose_2d.contiguous(), pose_3d.contiguous()
        self.root_3d = self.camera = None
        if camera_context:
            root = torch.from_numpy(arrays.root_3d)  # (N, 3)
            cam = torch.from_numpy(arrays.camera)  # (S, 4)
            if flip_augment:  # mirrored rows / cameras after the originals, as above
                mirror = torch.tensor([-1.0, 1.0, 1.0])
                root = torch.cat([root, root * mirror])
                cam = torch.cat([cam, cam * torch.tensor([1.0, 1.0, -1.0, 1.0])])
            self.root_3d, self.camera = root.contiguous(), cam.contiguous()
        valid = None if arrays.valid is None else np.asarray(arrays.valid, dtype=bool)
        self.valid = None if valid is None else torch.from_numpy(valid)  # None: every frame
        seq_ids, centres = [], []
        for s, (start, n) in enumerate(zip(arrays.seq_start, arrays.seq_len)):
            c = np.arange(0, n, stride, dtype=np.int64)
            if pairs and stride > 1:
                c = np.stack([c, c + 1], axis=1).reshape(-1)
                c = c[c < n]
            if valid is not None:
                c = c[valid[start + c]]
            seq_ids.append(np.full(len(c), s, dtype=np.int64))
            centres.append(c)
        self.sample_seq = torch.from_numpy(np.concatenate(seq_ids))
        self.sample_centre = torch.from_numpy(np.concatenate(centres))
        self.seq_start = torch.from_numpy(arrays.seq_start)
        self.seq_len = torch.from_numpy(arrays.seq_len)
        self.seq_action = torch.from_numpy(arrays.seq_action)

    def __len__(self) -> int:
        return len(self.sample_seq)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch: ``pose_2d (B, T, J, 2)``, ``pose_3d (B, 1 | T, J, 3)``, and per sample
        ``action``, ``seq``, centre ``frame`` ``(B,)``, window ``frames`` ``(B, 1 | T)`` and
        ``valid`` ``(B, 1 | T)`` bool (whether each target frame may be scored; only for a
        split with invalid frames); with ``camera_context``, ``root_3d`` ``(B, 1 | T, 3)``
        (camera-frame root position of the target frames, metres) and ``camera`` ``(B, 4)``
        (``f_x, f_y, c_x, c_y`` in normalised screen coordinates). With ``flip_augment``, an
        index ``i + len(self)`` is window ``i`` mirrored."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        b, j = len(idx), self.num_joints
        mirrored = None
        if self.flip_augment:
            mirrored = idx >= len(self)
            idx = idx - mirrored.long() * len(self)
        seq = self.sample_seq[idx]
        centre = self.sample_centre[idx]
        start = self.seq_start[seq]
        rows, local = window_indices(start, self.seq_len[seq], centre, self.offsets)
        centre_rows = start + centre
        valid = None
        if self.valid is not None:
            valid = self.valid[rows] if self.target == "sequence" else self.valid[centre_rows, None]
        cam_index = seq
        if mirrored is not None:
            flipped = mirrored.long()
            shift = flipped * self.num_rows
            rows, centre_rows = rows + shift[:, None], centre_rows + shift
            cam_index = seq + flipped * len(self.seq_start)
        t = rows.shape[1]
        x = self.pose_2d.index_select(0, rows.view(-1)).view(b, t, j, 2)
        if self.target == "centre":
            y = self.pose_3d.index_select(0, centre_rows).view(b, 1, j, 3)
            frames = centre[:, None]
        else:
            y = self.pose_3d.index_select(0, rows.view(-1)).view(b, t, j, 3)
            frames = local
        batch = {
            "pose_2d": x,
            "pose_3d": y,
            "action": self.seq_action[seq],
            "seq": seq,
            "frame": centre,
            "frames": frames,
        }
        if valid is not None:
            batch["valid"] = valid
        if self.root_3d is not None:
            target_rows = centre_rows[:, None] if self.target == "centre" else rows
            batch["root_3d"] = self.root_3d.index_select(0, target_rows.reshape(-1)).view(b, -1, 3)
            batch["camera"] = self.camera.index_select(0, cam_index)
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


class SequenceDataset(Dataset):
    """Whole sequences of a :class:`SplitArrays`, one per batch (test-time lifting without
    recomputation: the module lifts each sequence in one go, see
    :meth:`liftpose.modules.LiftingModule.predict_sequence`).

    Args:
        arrays: the split.
        stride: score every ``stride``-th frame of each sequence (valid frames only, as the
            window centres of :class:`WindowDataset`).
        pairs: with ``stride > 1``, score each such frame's next frame too (as
            :class:`WindowDataset`'s ``pairs``).

    A batch (``batch_size=1``) holds ``pose_2d (1, T, J, 2)``, ``pose_3d (1, T, J, 3)``,
    ``action (1,)``, ``seq (1,)``, the local ``frames (1, F)`` to score, and ``sequence``
    (a marker, ``(1,)`` true).
    """

    def __init__(self, arrays: SplitArrays, stride: int = 1, pairs: bool = False) -> None:
        self.arrays = arrays
        self.stride = int(stride)
        self.pairs = pairs
        self.valid = None if arrays.valid is None else np.asarray(arrays.valid, dtype=bool)

    def __len__(self) -> int:
        return len(self.arrays.seq_len)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        if len(indices) != 1:
            raise ValueError(f"SequenceDataset batches hold one sequence, got {len(indices)}")
        s = int(indices[0])
        a = self.arrays
        start, n = int(a.seq_start[s]), int(a.seq_len[s])
        frames = np.arange(0, n, self.stride, dtype=np.int64)
        if self.pairs and self.stride > 1:
            frames = np.stack([frames, frames + 1], axis=1).reshape(-1)
            frames = frames[frames < n]
        if self.valid is not None:
            frames = frames[self.valid[start + frames]]
        return {
            "pose_2d": torch.from_numpy(a.pose_2d[start : start + n])[None],
            "pose_3d": torch.from_numpy(a.pose_3d[start : start + n])[None],
            "action": torch.tensor([int(a.seq_action[s])]),
            "seq": torch.tensor([s]),
            "frames": torch.from_numpy(frames)[None],
            "sequence": torch.ones(1, dtype=torch.bool),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


#: ``data.test_mode``: how the test split is served.
TEST_MODES = ("sequence", "window")


class LiftingDataModule(L.LightningDataModule):
    """2-D -> 3-D lifting data in the VideoPose3D file layout or the MPI-INF-3DHP ``npz`` layout.

    Args:
        root: folder with ``data_3d_<name>.npz``, ``data_2d_<name>_<keypoints>.npz`` and
            ``cameras_<name>.json`` (``format: h36m``) or with ``data_train_3dhp.npz``
            (``format: mpi3dhp``).
        name: dataset name in the file names (``h36m``, ``hdm05``...).
        keypoints: 2-D source (``cpn_ft_h36m_dbb``, ``gt``, ``det``...).
        train_subjects / test_subjects: subject lists.
        actions: restrict to these action groups (None: all).
        cameras: restrict to these camera ids or indices (None: all).
        embedded: build the embedded virtual-capture dataset into ``root`` when needed.
        capture: virtual-capture settings (rig, det noise, seed) for ``embedded``.
        layout: ``h36m17`` or ``h36m16``.
        receptive_field: window length; normally interpolated from the model config.
        target: ``centre`` or ``sequence`` targets.
        train_stride / test_stride / val_stride: window-centre spacing per split (the test
            split scores pairs of consecutive frames every ``test_stride`` frames, so that MPJVE
            is defined).
        downsample: keep every n-th frame of each sequence.
        window: ``centred`` (the default: each window centred on its target frame) or
            ``causal`` (each window ends at its target frame: a lifter that sees only the past,
            for online use). Stored in the checkpoint's config, so inference knows which.
        fps: frame rate of the training sequences (frames per second; 50 for Human3.6M and
            the embedded data). Stored in the checkpoint's config: ``liftpose-infer``
            resamples a video to it.
        flip_augment: random horizontal flips in training.
        batch_size / test_batch_size / num_workers: loader settings.
        cache_dir: where the HDF5 cache lives.
        keypoints_mix: ``m`` of TMT's eq. 2: the 2-D input is ``keypoints + m * (keypoints_mix_with
            - keypoints)``, e.g. detections moved part of the way to the exact 2-D (0: off).
        keypoints_mix_with: the second 2-D source (default ``gt``).
        format: layout of the training data under ``root``: ``h36m`` (VideoPose3D layout) or
            ``mpi3dhp`` (``data_train_3dhp.npz``; ``train_subjects`` default ``S1``..``S8``,
            ``cameras`` are camera indices, and the test set defaults to
            ``data_test_3dhp.npz`` in ``root``).
        test_set: a cross-dataset test set replacing ``test_subjects`` for the test and
            validation splits: ``{format: mpi3dhp, root: <folder>, file: data_test_3dhp.npz,
            build_from: <Bandai BVH folder or null>, sequences: <[TS1, ...] or null>}``. With
            ``build_from``, a missing file is built from Bandai-Namco motion
            (:func:`liftpose.data.crossdata.build_bandai_3dhp`) in :meth:`prepare_data`.
            Only valid frames are window centres and scored; the scenes (``GS``, ``noGS``,
            ``Outdoor``) are the action groups, and PCK/AUC use :data:`pck_joints`.
        test_mode: ``sequence`` (default): the test loader gives whole sequences
            (:class:`SequenceDataset`) and the module lifts each in one pass where its model
            can, scoring every ``test_stride``-th valid frame; ``window``: windows
            (:class:`WindowDataset`), as validation, which ``camera_context`` always uses
            (each window carries its camera).
        detector: make the 2-D source ``keypoints`` with a trained 2-D detector:
            ``{ckpt: <module=heatmap checkpoint>, every: 1, flip_test: true, batch_size: 32,
            device: cpu, seed: 0}`` (:class:`liftpose.data.detect.DetectorSettings`). In
            :meth:`prepare_data` the detector runs over the rendered frames of the train and
            test subjects unless ``data_2d_<name>_<keypoints>.npz`` was written by it already
            (:func:`liftpose.data.detect.ensure_detected`). ``None`` or no ``ckpt``: read the file
            as it is.
        camera_context: add each window's camera intrinsics and the camera-frame root position
            of its target frames to the batches (``camera``, ``root_3d``), for methods that
            use the camera (the pose refinement of :mod:`liftpose.models.refine`, TMT's global
            velocity). Needs calibrated cameras (``format: h36m``).
        train_subset: train on this fraction of every training sequence, a contiguous part
            (:func:`liftpose.data.h36m.subset_sequence`; the Strided Transformer's
            ``--subset``, strided-transformer.txt section 5.1: "one-third of the dataset").
            The test split is whole.
    """

    def __init__(
        self,
        root: str,
        name: str = "h36m",
        keypoints: str = "cpn_ft_h36m_dbb",
        train_subjects: list[str] | None = None,
        test_subjects: list[str] | None = None,
        actions: list[str] | None = None,
        cameras: list[str] | None = None,
        embedded: bool = False,
        capture: dict | None = None,
        layout: str = "h36m17",
        receptive_field: int = 27,
        target: str = "centre",
        train_stride: int = 1,
        test_stride: int = 1,
        val_stride: int = 1,
        downsample: int = 1,
        flip_augment: bool = True,
        batch_size: int = 256,
        test_batch_size: int = 1024,
        num_workers: int = 0,
        cache_dir: str = ".cache/liftpose",
        keypoints_mix: float = 0.0,
        keypoints_mix_with: str = "gt",
        format: str = "h36m",
        test_set: dict | None = None,
        detector: Mapping[str, Any] | None = DETECTOR_OFF,
        camera_context: bool = False,
        train_subset: float = 1.0,
        window: str = "centred",
        fps: float = 50.0,
        test_mode: str = "sequence",
    ) -> None:
        super().__init__()
        detector = None if detector is None else dict(detector)  # picklable in checkpoints
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        if format not in FORMATS:
            raise ConfigError(f"data.format must be one of {list(FORMATS)}, got {format!r}")
        if format == "mpi3dhp" and keypoints_mix:
            raise ConfigError("data.keypoints_mix needs data.format=h36m (3DHP has one 2-D source)")
        default_train = ["S1", "S5", "S6", "S7", "S8"]
        if format == "mpi3dhp":
            default_train = [f"S{i}" for i in range(1, 9)]
        # [] (not None): no training split, e.g. a dataset that is only tested (liftpose-eval)
        self.train_subjects = [
            str(s) for s in (default_train if train_subjects is None else train_subjects)
        ]
        self.test_subjects = list(test_subjects or ["S9", "S11"])
        self.test_set = _test_set_spec(test_set, format, self.root)
        self.skeleton = get_layout(layout)
        self.splits: dict[str, SplitArrays] = {}
        self._content_hash: str | None = None
        if receptive_field < 1 or (receptive_field % 2 == 0 and target != "sequence"):
            raise ConfigError(
                f"data.receptive_field (set by frames=...) must be a positive odd "
                f"number of frames (even only with data.target=sequence, for a "
                f"sequence-to-sequence lifter), got {receptive_field}"
            )
        if target not in ("centre", "sequence"):
            raise ConfigError(f"data.target must be 'centre' or 'sequence', got {target!r}")
        if window not in WINDOWS:
            raise ConfigError(f"data.window must be one of {list(WINDOWS)}, got {window!r}")
        if not (isinstance(fps, int | float) and fps > 0):
            raise ConfigError(f"data.fps must be a positive number of frames/s, got {fps!r}")
        if test_mode not in TEST_MODES:
            raise ConfigError(
                f"data.test_mode must be one of {list(TEST_MODES)}, got {test_mode!r}"
            )
        if not 0.0 <= keypoints_mix <= 1.0:
            raise ConfigError(f"data.keypoints_mix must be in [0, 1], got {keypoints_mix}")
        if not 0.0 < train_subset <= 1.0:
            raise ConfigError(f"data.train_subset must be in (0, 1], got {train_subset}")

    # ------------------------------------------------------------------ preparation
    def _input_files(self) -> list[Path]:
        hp = self.hparams
        if hp.format == "mpi3dhp":
            files = {"train": self.root / TRAIN_FILE}
        else:
            files = dict(dataset_files(self.root, hp.name, hp.keypoints))
        if hp.keypoints_mix:
            files["mix"] = dataset_files(self.root, hp.name, hp.keypoints_mix_with)["2d"]
        if self.test_set is not None:
            files["test_set"] = self.test_set_path
        return [p for p in files.values() if p.exists()]

    @property
    def test_set_path(self) -> Path | None:
        """The file of the cross-dataset test set (None without one)."""
        if self.test_set is None:
            return None
        return Path(self.test_set["root"]) / self.test_set["file"]

    def _sequences(self, subjects: list[str]) -> list[Sequence]:
        """The sequences of ``subjects`` with the configured (possibly mixed) 2-D input."""
        hp = self.hparams
        seqs = load_sequences(self.root, hp.name, hp.keypoints, subjects, hp.actions, hp.cameras)
        if hp.keypoints_mix:
            other = load_sequences(
                self.root, hp.name, hp.keypoints_mix_with, subjects, hp.actions, hp.cameras
            )
            seqs = mix_keypoints(seqs, other, hp.keypoints_mix)
        return seqs

    def _train_sequences(self) -> list[Sequence]:
        hp = self.hparams
        if hp.format == "mpi3dhp":
            seqs = load_3dhp_train(
                self.root / TRAIN_FILE, self.train_subjects, hp.cameras, hp.actions
            )
        else:
            seqs = self._sequences(self.train_subjects)
        return [subset_sequence(s, hp.train_subset, hp.downsample) for s in seqs]

    def _test_sequences(self) -> list[Sequence]:
        if self.test_set is not None:
            return load_3dhp_test(self.test_set_path, self.test_set["sequences"])
        return self._sequences(self.test_subjects)

    def _ensure_test_set(self) -> None:
        """Build the cross-dataset test file from its Bandai source when it is missing."""
        path = self.test_set_path
        if path is None or path.exists():
            return
        src = self.test_set.get("build_from")
        if src is not None and Path(src).is_dir():
            from liftpose.data.crossdata import build_bandai_3dhp

            print(f"liftpose: building the cross-dataset test set {path} from {src}")
            build_bandai_3dhp(src, path.parent, file=path.name)
            return
        raise DataError(
            path,
            "file",
            "test set not found, and nothing to build it from "
            + (
                f"(data.test_set.build_from={src} is not a folder)"
                if src is not None
                else "(data.test_set.build_from is null)"
            )
            + "; build it with `liftpose-data bandai-3dhp --src <Bandai data folder> "
            f"--root {path.parent}` or point data.test_set.root at it",
        )

    def _ensure_detected(self) -> None:
        """Run ``data.detector`` over the rendered frames when its source file is stale."""
        hp = self.hparams
        if hp.detector is None or hp.detector.get("ckpt") is None:
            return
        if hp.format != "h36m":
            raise ConfigError("data.detector needs data.format=h36m (world 3-D and cameras)")
        from liftpose.data.detect import DetectorSettings, ensure_detected

        try:
            settings = DetectorSettings(**dict(hp.detector))
        except TypeError as e:
            raise ConfigError(f"data.detector: {e}") from None
        subjects = list(dict.fromkeys(self.train_subjects + self.test_subjects))
        ensure_detected(
            self.root, hp.name, hp.keypoints, settings, self.train_subjects, subjects, hp.actions
        )

    def fingerprint(self) -> str:
        """Hash of every setting that changes the prepared arrays, and of the input files."""
        hp = self.hparams
        spec = {
            "v": CACHE_VERSION,
            "root": str(self.root.resolve()),
            "name": hp.name,
            "keypoints": hp.keypoints,
            "train": self.train_subjects,
            "test": self.test_subjects if self.test_set is None else _test_set_key(self.test_set),
            "actions": hp.actions,
            "cameras": hp.cameras,
            "layout": hp.layout,
            "downsample": hp.downsample,
            "files": file_fingerprint(self._input_files()),
            **({"mix": [hp.keypoints_mix, hp.keypoints_mix_with]} if hp.keypoints_mix else {}),
            **({"format": hp.format} if hp.format != "h36m" else {}),
            **({"train_subset": hp.train_subset} if hp.train_subset < 1.0 else {}),
        }
        return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def cache_path(self) -> Path:
        hp = self.hparams
        return Path(hp.cache_dir) / f"lifting-{hp.name}-{hp.keypoints}-{self.fingerprint()}.h5"

    def prepare_data(self) -> None:
        """Build the embedded dataset and the cross-dataset test set if asked, then the HDF5
        cache (once, on one process). An existing cache is read back and checked against its
        content hash; a damaged one is rebuilt, saying so in one line."""
        self._prepare_inputs()
        path = self.cache_path
        if path.exists():
            problem = self._read_cache(path)
            if not isinstance(problem, str):
                return
            print(f"liftpose: {path}: {problem}; rebuilding the cache")
        self._build_cache(path)

    def _prepare_inputs(self) -> None:
        if self.hparams.embedded:
            from liftpose.data.embedded import ensure_embedded

            ensure_embedded(self.root, self.hparams.name, self.hparams.capture)
        self._ensure_test_set()
        self._ensure_detected()

    @property
    def split_names(self) -> tuple[str, ...]:
        """``("train", "test")``, or ``("test",)`` without training subjects."""
        return ("train", "test") if self.train_subjects else ("test",)

    def _build_cache(self, path: Path) -> None:
        """Prepare the splits from the input files and write the HDF5 cache atomically."""
        hp = self.hparams
        splits = {}
        if self.train_subjects:
            splits["train"] = SplitArrays.from_sequences(
                self._train_sequences(), hp.layout, hp.downsample
            )
        splits["test"] = SplitArrays.from_sequences(
            self._test_sequences(), hp.layout, hp.downsample
        )
        with atomic_path(path, suffix=".tmp.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs[MARKER_KEY] = marker("cache")
                f.attrs["fingerprint"] = self.fingerprint()
                f.attrs["content_hash"] = content_hash(splits)
                for split, arrays in splits.items():
                    arrays.save(f.create_group(split))

    def _read_cache(self, path: Path) -> tuple[dict[str, SplitArrays], str] | str:
        """``(splits, content hash)`` of the cache at ``path`` if it reads back and its arrays
        hash to the stored content hash; otherwise what is wrong, in words."""
        try:
            with h5py.File(path, "r") as f:
                stored = f.attrs.get("content_hash")
                splits = {k: SplitArrays.load(f[k]) for k in self.split_names}
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        except Exception as e:  # any failure to read it back: a damaged cache
            return f"unreadable cache ({type(e).__name__})"
        if content_hash(splits) != stored:
            return "cache content does not match its stored hash (damaged)"
        return splits, stored

    def setup(self, stage: str | None = None) -> None:
        """Load the cache (building or rebuilding it when missing or damaged)."""
        if self.splits:
            return
        path = self.cache_path
        got = self._read_cache(path) if path.exists() else "missing"
        if isinstance(got, str):
            if got != "missing":
                print(f"liftpose: {path}: {got}; rebuilding the cache")
            self._prepare_inputs()
            self._build_cache(path)
            got = self._read_cache(path)
            if isinstance(got, str):
                raise DataError(path, "cache", got)
        self.splits, self._content_hash = got

    def data_fingerprint(self) -> str:
        """Hash of the prepared arrays' contents (train and test): equal data, equal hash,
        wherever the files live."""
        self.setup()
        return self._content_hash or ""

    # ------------------------------------------------------------------ loaders
    @property
    def action_names(self) -> list[str]:
        """Action groups of the test split (the rows of per-action tables)."""
        self.setup()
        return self.splits["test"].action_names

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    @property
    def pck_joints(self) -> list[int] | None:
        """Joints scored by PCK/AUC: None (all) for Human3.6M-style test subjects, the 14
        joints of the MPI-INF-3DHP protocol (in this layout's indices) with a 3DHP test set."""
        if self.test_set is None:
            return None
        if self.hparams.layout == "h36m16":
            return [H36M16_KEEP.index(j) for j in MPI3DHP_PCK_JOINTS]
        return list(MPI3DHP_PCK_JOINTS)

    def dataset(
        self, split: str, train: bool = False, stride: int = 1, pairs: bool = False
    ) -> WindowDataset:
        self.setup()
        arrays = self.splits[split]
        if self.hparams.camera_context and (arrays.root_3d is None or arrays.camera is None):
            raise ConfigError(
                f"data.camera_context=true needs calibrated cameras, which the {split} split "
                f"of data.format={self.hparams.format} does not have"
            )
        return WindowDataset(
            self.splits[split],
            self.hparams.receptive_field,
            self.hparams.target,
            stride,
            flip_augment=train and self.hparams.flip_augment,
            flip_permutation=self.skeleton.flip_permutation,
            camera_context=self.hparams.camera_context,
            window=self.hparams.window,
            pairs=pairs,
        )

    def _loader(self, ds: WindowDataset, batch_size: int, shuffle: bool) -> DataLoader:
        nw = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=collate_batch,
            num_workers=nw,
            persistent_workers=nw > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, flipped training windows in an order that depends on the seed and the
        epoch only (:mod:`liftpose.data.sampler`): resumable from within an epoch."""
        if not self.train_subjects:
            raise ConfigError("data.train_subjects is empty: this data config only tests")
        ds = self.dataset("train", train=True, stride=self.hparams.train_stride)
        return training_loader(
            ds, self.hparams.batch_size, self.trainer, ds.flip_augment,
            self.hparams.num_workers, collate_batch,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        ds = self.dataset("test", stride=self.hparams.val_stride)
        return self._loader(ds, self.hparams.test_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # with test_stride > 1, frames c and c + 1 every test_stride frames: MPJVE stays defined
        if self.hparams.test_mode == "sequence" and not self.hparams.camera_context:
            self.setup()
            ds = SequenceDataset(self.splits["test"], self.hparams.test_stride, pairs=True)
            return self._loader(ds, 1, shuffle=False)
        ds = self.dataset("test", stride=self.hparams.test_stride, pairs=True)
        return self._loader(ds, self.hparams.test_batch_size, shuffle=False)


def _test_set_spec(test_set: Any, format: str, root: Path) -> dict | None:
    """The ``test_set`` argument with every key filled in (None without a test set)."""
    if test_set is None and format == "mpi3dhp":
        test_set = {"format": "mpi3dhp", "root": str(root), "file": TEST_FILE}
    if test_set is None:
        return None
    if isinstance(test_set, DictConfig):
        test_set = OmegaConf.to_container(test_set, resolve=True)
    if not isinstance(test_set, dict):
        raise ConfigError(f"data.test_set must be a mapping or null, got {test_set!r}")
    unknown = sorted(set(test_set) - set(TEST_SET_KEYS))
    if unknown:
        raise ConfigError(f"data.test_set: unknown keys {unknown}; known: {list(TEST_SET_KEYS)}")
    spec = {"format": "mpi3dhp", "file": TEST_FILE, "build_from": None, "sequences": None}
    spec.update({k: v for k, v in test_set.items() if v is not None or k == "build_from"})
    if spec["format"] != "mpi3dhp":
        raise ConfigError(f"data.test_set.format must be 'mpi3dhp', got {spec['format']!r}")
    if not spec.get("root"):
        raise ConfigError("data.test_set.root is required (the folder of the test file)")
    spec["root"] = str(spec["root"])
    spec["file"] = str(spec["file"])
    if spec["build_from"] is not None:
        spec["build_from"] = str(spec["build_from"])
    if spec["sequences"] is not None:
        spec["sequences"] = [str(x) for x in spec["sequences"]]
    return spec


def _test_set_key(spec: dict) -> dict:
    """The part of a test-set spec that changes the prepared arrays (not ``build_from``)."""
    return {
        "format": spec["format"],
        "path": str((Path(spec["root"]) / spec["file"]).resolve()),
        "sequences": spec["sequences"],
    }

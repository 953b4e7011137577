"""One LightningDataModule for all lifting data (Human3.6M, virtual captures, the embedded set).

Prepared arrays are cached once in HDF5, keyed by a hash of the data config and of the input
files, and written atomically. Windows of a batch are gathered in one vectorised step through
:meth:`WindowDataset.__getitems__` (the batched fetch of ``torch.utils.data``), so the standard
``DataLoader`` and Lightning's distributed sampler work unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from liftpose.data.h36m import (
    Sequence,
    dataset_files,
    file_fingerprint,
    load_sequences,
    mix_keypoints,
)
from liftpose.data.skeleton import get_layout, to_layout
from liftpose.data.windows import flip_pose, window_indices, window_offsets
from liftpose.errors import ConfigError, DataError
from liftpose.utils.io import atomic_path

CACHE_VERSION = 1


@dataclass
class SplitArrays:
    """All sequences of a split, concatenated: rows of ``pose_2d``/``pose_3d`` are frames."""

    pose_2d: np.ndarray  # (N, J, 2) float32, normalised
    pose_3d: np.ndarray  # (N, J, 3) float32, camera metres, root at zero
    seq_start: np.ndarray  # (S,) int64
    seq_len: np.ndarray  # (S,) int64
    seq_action: np.ndarray  # (S,) int64 index into action_names
    action_names: list[str]
    seq_names: list[str]  # "subject/action/camera"

    @classmethod
    def from_sequences(cls, seqs: list[Sequence], layout: str, downsample: int = 1) -> SplitArrays:
        names = sorted({s.action_group for s in seqs})
        p2 = [to_layout(s.pose_2d[::downsample], layout) for s in seqs]
        p3 = [to_layout(s.pose_3d[::downsample], layout) for s in seqs]
        lens = np.array([len(x) for x in p2], dtype=np.int64)
        return cls(
            pose_2d=np.ascontiguousarray(np.concatenate(p2), dtype=np.float32),
            pose_3d=np.ascontiguousarray(np.concatenate(p3), dtype=np.float32),
            seq_start=np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64),
            seq_len=lens,
            seq_action=np.array([names.index(s.action_group) for s in seqs], dtype=np.int64),
            action_names=names,
            seq_names=[f"{s.subject}/{s.action}/{s.camera}" for s in seqs],
        )

    def save(self, group: h5py.Group) -> None:
        for k in ("pose_2d", "pose_3d", "seq_start", "seq_len", "seq_action"):
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
        )


def collate_batch(batch: Any) -> Any:
    """The dataset already returns a whole batch; keep it as it is."""
    return batch


class WindowDataset(Dataset):
    """Centred windows over a :class:`SplitArrays`, fetched a batch at a time.

    Args:
        arrays: the split.
        receptive_field: window length ``T`` (odd).
        target: ``"centre"`` (3-D of the centre frame, ``(B, 1, J, 3)``) or ``"sequence"``
            (3-D of every window frame, ``(B, T, J, 3)``).
        stride: keep every ``stride``-th frame of each sequence as a window centre.
        flip_augment: mirror each sample with probability 1/2 (training).
        flip_permutation: left/right joint permutation of the layout.
    """

    def __init__(
        self,
        arrays: SplitArrays,
        receptive_field: int,
        target: str = "centre",
        stride: int = 1,
        flip_augment: bool = False,
        flip_permutation: np.ndarray | None = None,
    ) -> None:
        if target not in ("centre", "sequence"):
            raise ValueError(f"target must be 'centre' or 'sequence', got {target!r}")
        self.arrays = arrays
        self.offsets = window_offsets(receptive_field)
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
        seq_ids, centres = [], []
        for s, n in enumerate(arrays.seq_len):
            c = np.arange(0, n, stride, dtype=np.int64)
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
        ``action``, ``seq``, centre ``frame`` ``(B,)`` and window ``frames`` ``(B, 1 | T)``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        b, j = len(idx), self.num_joints
        seq = self.sample_seq[idx]
        centre = self.sample_centre[idx]
        start = self.seq_start[seq]
        rows, local = window_indices(start, self.seq_len[seq], centre, self.offsets)
        centre_rows = start + centre
        if self.flip_augment:
            shift = (torch.rand(b) < 0.5).long() * self.num_rows
            rows, centre_rows = rows + shift[:, None], centre_rows + shift
        t = rows.shape[1]
        x = self.pose_2d.index_select(0, rows.view(-1)).view(b, t, j, 2)
        if self.target == "centre":
            y = self.pose_3d.index_select(0, centre_rows).view(b, 1, j, 3)
            frames = centre[:, None]
        else:
            y = self.pose_3d.index_select(0, rows.view(-1)).view(b, t, j, 3)
            frames = local
        return {
            "pose_2d": x,
            "pose_3d": y,
            "action": self.seq_action[seq],
            "seq": seq,
            "frame": centre,
            "frames": frames,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


class LiftingDataModule(L.LightningDataModule):
    """2-D -> 3-D lifting data in the VideoPose3D file layout.

    Args:
        root: folder with ``data_3d_<name>.npz``, ``data_2d_<name>_<keypoints>.npz`` and
            ``cameras_<name>.json``.
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
        train_stride / test_stride / val_stride: window-centre spacing per split.
        downsample: keep every n-th frame of each sequence.
        flip_augment: random horizontal flips in training.
        batch_size / test_batch_size / num_workers: loader settings.
        cache_dir: where the HDF5 cache lives.
        keypoints_mix: ``m`` of TMT's eq. 2: the 2-D input is ``keypoints + m * (keypoints_mix_with
            - keypoints)``, e.g. detections moved part of the way to the exact 2-D (0: off).
        keypoints_mix_with: the second 2-D source (default ``gt``).
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        self.train_subjects = list(train_subjects or ["S1", "S5", "S6", "S7", "S8"])
        self.test_subjects = list(test_subjects or ["S9", "S11"])
        self.skeleton = get_layout(layout)
        self.splits: dict[str, SplitArrays] = {}
        self._content_hash: str | None = None
        if receptive_field < 1 or receptive_field % 2 == 0:
            raise ConfigError(
                f"data.receptive_field (set by frames=...) must be a positive odd "
                f"number of frames, got {receptive_field}"
            )
        if target not in ("centre", "sequence"):
            raise ConfigError(f"data.target must be 'centre' or 'sequence', got {target!r}")
        if not 0.0 <= keypoints_mix <= 1.0:
            raise ConfigError(f"data.keypoints_mix must be in [0, 1], got {keypoints_mix}")

    # ------------------------------------------------------------------ preparation
    def _input_files(self) -> list[Path]:
        hp = self.hparams
        files = dict(dataset_files(self.root, hp.name, hp.keypoints))
        if hp.keypoints_mix:
            files["mix"] = dataset_files(self.root, hp.name, hp.keypoints_mix_with)["2d"]
        return [p for p in files.values() if p.exists()]

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

    def fingerprint(self) -> str:
        """Hash of every setting that changes the prepared arrays, and of the input files."""
        hp = self.hparams
        spec = {
            "v": CACHE_VERSION,
            "root": str(self.root.resolve()),
            "name": hp.name,
            "keypoints": hp.keypoints,
            "train": self.train_subjects,
            "test": self.test_subjects,
            "actions": hp.actions,
            "cameras": hp.cameras,
            "layout": hp.layout,
            "downsample": hp.downsample,
            "files": file_fingerprint(self._input_files()),
            **({"mix": [hp.keypoints_mix, hp.keypoints_mix_with]} if hp.keypoints_mix else {}),
        }
        return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def cache_path(self) -> Path:
        hp = self.hparams
        return Path(hp.cache_dir) / f"lifting-{hp.name}-{hp.keypoints}-{self.fingerprint()}.h5"

    def prepare_data(self) -> None:
        """Build the embedded dataset if asked, then the HDF5 cache (once, on one process)."""
        if self.hparams.embedded:
            from liftpose.data.embedded import ensure_embedded

            ensure_embedded(self.root, self.hparams.name, self.hparams.capture)
        path = self.cache_path
        if path.exists():
            return
        hp = self.hparams
        splits = {
            split: SplitArrays.from_sequences(self._sequences(subjects), hp.layout, hp.downsample)
            for split, subjects in (("train", self.train_subjects), ("test", self.test_subjects))
        }
        content = hashlib.sha1()
        for split in ("train", "test"):
            for k in ("pose_2d", "pose_3d", "seq_len", "seq_action"):
                content.update(np.ascontiguousarray(getattr(splits[split], k)).data)
            content.update(json.dumps(splits[split].seq_names).encode())
        with atomic_path(path, suffix=".tmp.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["fingerprint"] = self.fingerprint()
                f.attrs["content_hash"] = content.hexdigest()[:16]
                for split, arrays in splits.items():
                    arrays.save(f.create_group(split))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        path = self.cache_path
        if not path.exists():
            self.prepare_data()
        try:
            with h5py.File(path, "r") as f:
                self.splits = {k: SplitArrays.load(f[k]) for k in ("train", "test")}
                self._content_hash = str(f.attrs.get("content_hash", ""))
        except (OSError, KeyError) as e:
            raise DataError(path, "cache", f"unreadable cache ({e}); delete it to rebuild") from e

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

    def dataset(self, split: str, train: bool = False, stride: int = 1) -> WindowDataset:
        self.setup()
        return WindowDataset(
            self.splits[split],
            self.hparams.receptive_field,
            self.hparams.target,
            stride,
            flip_augment=train and self.hparams.flip_augment,
            flip_permutation=self.skeleton.flip_permutation,
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
        ds = self.dataset("train", train=True, stride=self.hparams.train_stride)
        return self._loader(ds, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        ds = self.dataset("test", stride=self.hparams.val_stride)
        return self._loader(ds, self.hparams.test_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        ds = self.dataset("test", stride=self.hparams.test_stride)
        return self._loader(ds, self.hparams.test_batch_size, shuffle=False)

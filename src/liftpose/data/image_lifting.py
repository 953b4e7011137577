"""A LightningDataModule of person crops with their 2-D and 3-D poses (image-conditioned lifting).

Built on the crop caches of :mod:`liftpose.data.crops`: the embedded HDM05 virtual capture
rendered (``source: render``, the default; every frame's 3-D, camera and body mask known) or the
original Human3.6M videos (``source: video``). One batch is one sorted read of the cache's rows,
JPEG decoding and a vectorised normalisation; a training flip mirrors image, 2-D and 3-D
together.

A batch (``B`` crops of ``H x W``):

==================  ===================  ==============================================
``image``           ``(B, 3, H, W)``     float32, ImageNet-normalised RGB
``pose_2d``         ``(B, 17, 2)``       2-D source in crop pixels
``pose_2d_image``   ``(B, 17, 2)``       the same, normalised image coordinates
``pose_3d``         ``(B, 17, 3)``       camera frame, metres, root joint at zero
``affine``          ``(B, 2, 3)``        image pixels -> crop pixels (the flip included)
``mask``            ``(B, H, W)`` bool   the body mask (rendered data only)
``action``          ``(B,)`` int64       index into ``action_names`` (action groups)
``subject``         ``(B,)`` int64       index into ``subject_names`` of the split
``seq``, ``frame``  ``(B,)`` int64       sequence and frame (unique per sample)
``flipped``         ``(B,)`` bool        mirrored by the training augmentation
==================  ===================  ==============================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from liftpose.data.crops import (
    CropSettings,
    RenderedFrames,
    VideoFrames,
    build_crop_cache,
    crop_cache_path,
)
from liftpose.data.datamodule import collate_batch
from liftpose.data.sampler import training_loader
from liftpose.data.skeleton import H36M17
from liftpose.data.transforms2d import IMAGENET_MEAN, IMAGENET_STD
from liftpose.errors import ConfigError, DataError

__all__ = ["CropArrays", "CropDataset", "ImageLiftingDataModule", "SOURCES"]

SOURCES = ("render", "video")


@dataclass
class CropArrays:
    """The per-row arrays of one split of a crop cache (the images stay in the file)."""

    pose_2d: np.ndarray  # (N, 17, 2) crop pixels
    pose_2d_image: np.ndarray  # (N, 17, 2) normalised image coordinates
    pose_3d: np.ndarray  # (N, 17, 3) metres
    affine: np.ndarray  # (N, 2, 3)
    seq: np.ndarray  # (N,)
    frame: np.ndarray  # (N,)
    seq_names: list[str]
    seq_action: np.ndarray  # (S,)
    seq_subject: np.ndarray  # (S,)
    action_names: list[str]
    subject_names: list[str]
    has_mask: bool

    @classmethod
    def load(cls, path: Path, split: str) -> CropArrays:
        """Read split ``split`` of the cache at ``path`` (a clear error when it is corrupt)."""
        try:
            with h5py.File(path, "r") as f:
                g = f[split]
                out = cls(
                    **{
                        k: g[k][()]
                        for k in ("pose_2d", "pose_2d_image", "pose_3d", "affine", "seq", "frame")
                    },
                    seq_names=json.loads(g.attrs["seq_names"]),
                    seq_action=np.asarray(json.loads(g.attrs["seq_action"]), np.int64),
                    seq_subject=np.asarray(json.loads(g.attrs["seq_subject"]), np.int64),
                    action_names=json.loads(g.attrs["action_names"]),
                    subject_names=json.loads(g.attrs["subject_names"]),
                    has_mask="mask" in g,
                )
                n = g["image"].shape[0]
        except (OSError, KeyError, ValueError) as e:
            raise DataError(
                path, f"{split}", f"corrupt crop cache ({e}); delete it to rebuild"
            ) from e
        if not all(len(a) == n for a in (out.pose_2d, out.pose_3d, out.seq, out.frame)):
            raise DataError(path, f"{split}", "corrupt crop cache (row counts differ)")
        return out

    def __len__(self) -> int:
        return len(self.seq)


class CropDataset(Dataset):
    """Rows ``rows`` of one split of a crop cache, fetched a batch at a time (``__getitems__``).

    Args:
        path: the cache file.
        split: ``train`` or ``test``.
        arrays: its :class:`CropArrays`.
        rows: which rows (default all).
        flip_augment: an index ``i + len(self)`` reads sample ``i`` mirrored (the sampler of
            :func:`~liftpose.data.sampler.training_loader` picks the flips).
        flip_permutation: left/right joint permutation.
        with_mask: return the body masks (when the cache has them).
    """

    def __init__(
        self,
        path: Path,
        split: str,
        arrays: CropArrays,
        rows: np.ndarray | None = None,
        flip_augment: bool = False,
        flip_permutation: np.ndarray | None = None,
        with_mask: bool = False,
    ) -> None:
        self.path, self.split, self.arrays = Path(path), split, arrays
        self.rows = np.arange(len(arrays)) if rows is None else np.asarray(rows, np.int64)
        self.flip_augment = flip_augment
        perm = H36M17.flip_permutation if flip_permutation is None else flip_permutation
        self.perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
        self.with_mask = with_mask and arrays.has_mask
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.rows)

    def _group(self) -> h5py.Group:
        if self._file is None or self._pid != os.getpid():  # one handle per loader worker
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[self.split]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Decoded crops ``(B, H, W, 3)`` uint8 RGB and masks ``(B, H, W)`` bool of ``rows``."""
        order = np.argsort(rows, kind="stable")
        g = self._group()
        try:
            blobs = g["image"][rows[order]] if len(rows) > 1 else [g["image"][int(rows[0])]]
            masks = g["mask"][rows[order]] if self.with_mask else None
        except (OSError, ValueError) as e:
            raise DataError(self.path, self.split, f"corrupt crop cache ({e})") from e
        images = []
        for i, blob in enumerate(blobs):
            bgr = cv2.imdecode(np.asarray(blob, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(self.path, f"{self.split}/image[{rows[order][i]}]", "corrupt JPEG")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        images = np.stack(images)[inverse]
        if masks is not None:
            h, w = images.shape[1:3]
            masks = np.unpackbits(masks, axis=1, count=h * w).reshape(-1, h, w)[inverse] > 0
        return images, masks

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch (module docstring). With ``flip_augment``, an index ``i + len(self)``
        is sample ``i`` mirrored (the training sampler,
        :class:`~liftpose.data.sampler.EpochSampler`, tosses the coin)."""
        index = np.asarray(indices, np.int64)
        flip = None
        if self.flip_augment:
            flip = torch.from_numpy(index >= len(self))
            index = index % len(self)
        rows = self.rows[index]
        a = self.arrays
        images, masks = self.read(rows)
        b, h, w = images.shape[:3]
        image = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        image = (image - self.mean) / self.std
        batch = {
            "image": image,
            "pose_2d": torch.from_numpy(a.pose_2d[rows]),
            "pose_2d_image": torch.from_numpy(a.pose_2d_image[rows]),
            "pose_3d": torch.from_numpy(a.pose_3d[rows]),
            "affine": torch.from_numpy(a.affine[rows]),
            "action": torch.from_numpy(a.seq_action[a.seq[rows]]),
            "subject": torch.from_numpy(a.seq_subject[a.seq[rows]]),
            "seq": torch.from_numpy(a.seq[rows]),
            "frame": torch.from_numpy(a.frame[rows]),
            "flipped": torch.zeros(b, dtype=torch.bool),
        }
        if masks is not None:
            batch["mask"] = torch.from_numpy(masks)
        if flip is not None and flip.any():
            batch = flip_samples(batch, flip, self.perm, w)
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


def flip_samples(
    batch: dict[str, torch.Tensor], which: torch.Tensor, perm: torch.Tensor, width: int
) -> dict[str, torch.Tensor]:
    """Mirror the samples ``which (B,)`` of a batch: image and mask left-right, crop 2-D ``u ->
    W - 1 - u``, normalised image 2-D and 3-D ``x -> -x``, left and right joints swapped, and the
    affine followed by the mirror."""
    out = dict(batch)
    sel = which.nonzero().squeeze(1)
    out["image"] = batch["image"].clone()
    out["image"][sel] = batch["image"][sel].flip(-1)
    if "mask" in batch:
        out["mask"] = batch["mask"].clone()
        out["mask"][sel] = batch["mask"][sel].flip(-1)
    for key, x0 in (("pose_2d", width - 1.0), ("pose_2d_image", 0.0), ("pose_3d", 0.0)):
        v = batch[key].clone()
        f = v[sel][:, perm]
        f[..., 0] = (x0 - f[..., 0]) if x0 else -f[..., 0]
        v[sel] = f
        out[key] = v
    aff = batch["affine"].clone()
    aff[sel, 0, :] = -aff[sel, 0, :]
    aff[sel, 0, 2] += width - 1.0
    out["affine"] = aff
    out["flipped"] = batch["flipped"] ^ which
    return out


class ImageLiftingDataModule(L.LightningDataModule):
    """Person crops, 2-D and 3-D for image-conditioned lifters (module docstring).

    Args:
        root: folder of the dataset in the VideoPose3D layout (``data_3d_<name>.npz``,
            ``data_2d_<name>_<keypoints>.npz``, ``cameras_<name>.json``).
        name: dataset name (``hdm05``, ``h36m``).
        keypoints: the 2-D source given to the model (``gt``, ``det``, ``cpn_ft_h36m_dbb``,
            ``sh_ft_h36m``, ...); the crop box always comes from the ground truth.
        train_subjects / test_subjects: subjects of each split (default Human3.6M's).
        actions / cameras: restrict to these action groups / camera ids (None: all).
        source: ``render`` (frames rendered from the 3-D) or ``video`` (``<video_root>/
            <subject>/Videos/<action>.<camera>.mp4``).
        video_root: folder of the subjects' ``Videos`` (default ``root``).
        embedded: build the embedded virtual capture into ``root`` first (with ``capture``).
        capture: virtual-capture settings for ``embedded``.
        image_size: crop ``[H, W]`` (paper 256x192; divisible by 32).
        padding: box padding factor (1.25).
        train_every / test_every: keep every k-th frame (10: 5 fps at 50 Hz).
        stagger: staggered frame offsets per camera (:mod:`liftpose.data.crops`).
        jpeg_quality: of the cached crops.
        render_seed: the renderer's looks (``source: render``).
        train_stride: train on every k-th training crop (1: all).
        val_stride: validate on every k-th test crop.
        flip_augment: random horizontal flips in training.
        batch_size / test_batch_size / num_workers: loader settings.
        cache_dir: where the crop cache lives.
        layout: the joint layout (``h36m17``; crops need all 17 joints).
    """

    def __init__(
        self,
        root: str,
        name: str = "h36m",
        keypoints: str = "gt",
        train_subjects: list[str] | None = None,
        test_subjects: list[str] | None = None,
        actions: list[str] | None = None,
        cameras: list[str] | None = None,
        source: str = "render",
        video_root: str | None = None,
        embedded: bool = False,
        capture: dict | None = None,
        image_size: tuple[int, int] | list[int] = (256, 192),
        padding: float = 1.25,
        train_every: int = 10,
        test_every: int = 10,
        stagger: bool = False,
        jpeg_quality: int = 95,
        render_seed: int = 0,
        train_stride: int = 1,
        val_stride: int = 1,
        flip_augment: bool = True,
        batch_size: int = 128,
        test_batch_size: int = 128,
        num_workers: int = 0,
        cache_dir: str = ".cache/liftpose",
        layout: str = "h36m17",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if source not in SOURCES:
            raise ConfigError(f"data.source must be one of {list(SOURCES)}, got {source!r}")
        if layout != "h36m17":
            raise ConfigError(f"data.layout={layout!r}: image lifting uses the 17 joints (h36m17)")
        if len(image_size) != 2:
            raise ConfigError(f"data.image_size must be [H, W], got {list(image_size)}")
        if val_stride < 1 or train_stride < 1:
            raise ConfigError(
                f"data.train_stride and data.val_stride must be >= 1, got {train_stride}, "
                f"{val_stride}"
            )
        self.root = Path(root)
        self.train_subjects = [str(s) for s in (train_subjects or ["S1", "S5", "S6", "S7", "S8"])]
        self.test_subjects = [str(s) for s in (test_subjects or ["S9", "S11"])]
        self.settings = CropSettings(
            image_size=(int(image_size[0]), int(image_size[1])),
            padding=float(padding),
            train_every=int(train_every),
            test_every=int(test_every),
            stagger=bool(stagger),
            jpeg_quality=int(jpeg_quality),
            render_seed=int(render_seed),
        )
        self.skeleton = H36M17
        self.splits: dict[str, CropArrays] = {}
        self._path: Path | None = None

    # ------------------------------------------------------------------ preparation
    @property
    def source(self) -> RenderedFrames | VideoFrames:
        hp = self.hparams
        if hp.source == "render":
            return RenderedFrames(seed=self.settings.render_seed)
        return VideoFrames(str(hp.video_root or self.root))

    @property
    def image_size(self) -> tuple[int, int]:
        return self.settings.image_size

    @property
    def cache_path(self) -> Path:
        """The crop cache of these settings (:func:`liftpose.data.crops.crop_cache_path`)."""
        if self._path is None:
            self._path = crop_cache_path(self.hparams.cache_dir, *self._crop_selection())
        return self._path

    def _crop_selection(self) -> tuple:
        """``(root, name, keypoints, splits, settings, source, actions, cameras)``: what the
        crop cache holds, as :func:`crop_cache_path` and :func:`build_crop_cache` take it."""
        hp = self.hparams
        splits = {"train": self.train_subjects, "test": self.test_subjects}
        return (self.root, hp.name, hp.keypoints, splits, self.settings, self.source,
                hp.actions, hp.cameras)  # fmt: skip

    def prepare_data(self) -> None:
        """Build the embedded capture if asked, then the crop cache (once)."""
        hp = self.hparams
        if hp.embedded:
            from liftpose.data.embedded import ensure_embedded

            ensure_embedded(self.root, hp.name, hp.capture)
        path = self.cache_path
        if path.exists():
            return
        print(f"liftpose: writing the {hp.source} crops of {self.root} ({hp.name}) to {path}")
        build_crop_cache(path, *self._crop_selection())

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.cache_path.exists():
            self.prepare_data()
        self.splits = {s: CropArrays.load(self.cache_path, s) for s in ("train", "test")}

    def data_fingerprint(self) -> str:
        """Hash of the cached poses and sequences (equal data, equal hash)."""
        try:
            with h5py.File(self.cache_path, "r") as f:
                return str(f.attrs.get("content_hash", ""))
        except OSError as e:
            raise DataError(self.cache_path, "cache", f"unreadable ({e})") from e

    # ------------------------------------------------------------------ metadata
    @property
    def action_names(self) -> list[str]:
        """Action groups of the test split."""
        self.setup()
        return self.splits["test"].action_names

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    @property
    def pck_joints(self) -> list[int] | None:
        return None

    # ------------------------------------------------------------------ loaders
    def dataset(self, split: str, train: bool = False, stride: int = 1) -> CropDataset:
        self.setup()
        arrays = self.splits[split]
        return CropDataset(
            self.cache_path,
            split,
            arrays,
            rows=np.arange(0, len(arrays), stride),
            flip_augment=train and self.hparams.flip_augment,
            flip_permutation=self.skeleton.flip_permutation,
            with_mask=not train,
        )

    def _loader(self, ds: CropDataset, batch_size: int) -> DataLoader:
        """An evaluation loader: the crops in order."""
        nw = int(self.hparams.num_workers)
        return DataLoader(
            ds,
            batch_size=batch_size,
            collate_fn=collate_batch,
            num_workers=nw,
            persistent_workers=nw > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, flipped training crops in an order that depends on the seed and the epoch
        only: resumable from within an epoch (:mod:`liftpose.data.sampler`)."""
        ds = self.dataset("train", train=True, stride=self.hparams.train_stride)
        return training_loader(
            ds, self.hparams.batch_size, self.trainer, ds.flip_augment,
            int(self.hparams.num_workers), collate_batch, torch.cuda.is_available(),
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        ds = self.dataset("test", stride=self.hparams.val_stride)
        return self._loader(ds, self.hparams.test_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.hparams.test_batch_size)

"""Build a run's DataModule and LightningModule from its config (the one place that does it,
for training, evaluation, inference, export and the benchmarks)."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from liftpose.errors import ConfigError
from liftpose.utils.run import to_container

__all__ = ["build", "build_module", "check_compatible"]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the datamodule and the LightningModule (with its lifter) from ``cfg``."""
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    module.run_config = to_container(cfg)
    check_compatible(datamodule, module.model, module)
    return datamodule, module


def build_module(cfg: DictConfig, datamodule: Any) -> L.LightningModule:
    """The LightningModule of ``cfg`` with its lifter, for the skeleton of ``datamodule``."""
    model = instantiate(cfg.model)
    return instantiate(
        cfg.module, model=model, flip_permutation=datamodule.skeleton.flip_permutation.tolist()
    )


def check_compatible(datamodule: Any, model: Any, module: Any = None) -> None:
    """Fail early, naming the config keys, when the data cannot feed the model."""
    hp = datamodule.hparams
    joints = getattr(model, "num_joints", None)
    if joints is not None and joints != datamodule.num_joints:
        where = f"data.layout={hp.layout}" if "layout" in hp else type(datamodule).__name__
        raise ConfigError(
            f"model.num_joints={joints} but {where} has {datamodule.num_joints} joints"
        )
    chans = getattr(model, "in_channels", None)
    expected = getattr(module, "input_channels", 2)
    if chans is not None and chans != expected:
        what = {2: " per joint (2-D keypoints)", 3: " (RGB images)"}.get(expected, " per joint")
        raise ConfigError(
            f"model.in_chans={chans} but {type(module).__name__} feeds {expected} channels{what}"
        )
    image_model = getattr(model, "input_kind", "keypoints") == "image"
    if image_model != ("receptive_field" not in hp):
        raise ConfigError(
            f"{type(model).__name__} takes {'images' if image_model else '2-D keypoints'} but "
            f"data={type(datamodule).__name__} gives "
            f"{'2-D keypoint windows' if image_model else 'images'}: pick a matching data/model"
        )
    if "receptive_field" not in hp:
        return  # an image datamodule: no windows to check
    frames = getattr(model, "receptive_field", None)
    if frames is not None and frames != hp.receptive_field:
        raise ConfigError(
            f"the model takes {frames} frames but data.receptive_field="
            f"{hp.receptive_field} (set both with frames=...)"
        )
    if getattr(module, "needs_sequence_target", False) and hp.target != "sequence":
        raise ConfigError(
            f"{type(module).__name__} needs the 3-D ground truth of every frame of the window: "
            "set data.target=sequence"
        )

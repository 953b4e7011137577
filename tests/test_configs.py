"""Every config in conf/ composes, and its objects instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import open_dict

from liftpose.utils.config_check import check_config
from liftpose.utils.run import CONF_DIR, instantiate_callbacks, instantiate_group

#: data options that give images (2-D detector training) rather than keypoint windows
IMAGE_DATA = {("data", "coco"), ("data", "rendered")}
#: options that need a particular lifter: the refinement stage needs one with model.refine, the
#: image-conditioned lifting scheme its model and image crops
NEEDS_LIFTER = {
    ("module", "refine"): ["experiment=strided_cpu"],
    ("module", "image_lifting"): ["~experiment", "model=lifting_by_image", "data=embedded_images"],
}

GROUPS = ["data", "model", "module", "trainer", "logger", "callbacks", "debug", "experiment"]


def options(group: str) -> list[str]:
    """Every option of a config group, those in sub-folders too (``attn_2d3d/lifter``)."""
    root = Path(CONF_DIR) / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def compose_cfg(name: str = "train", overrides: list[str] | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides or [], return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/liftpose-test-out"
        cfg.paths.root_dir = "/tmp/liftpose-test-root"
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group, option, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    # a model option is built with its own defaults (the main experiment sizes PoseFormer), and
    # an image data option without the lifting experiment's data settings
    extra = ["~experiment"] if group == "model" else []
    if (group, option) in IMAGE_DATA:
        extra = ["~experiment", "model=hrnet", "module=heatmap"]
    extra += NEEDS_LIFTER.get((group, option), [])
    cfg = compose_cfg("train", [f"{group}={option}", *extra])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    check_config(cfg)  # types and ranges of every key, as liftpose-train checks them
    dm = instantiate(cfg.data)  # no file access until prepare_data
    if "receptive_field" in dm.hparams:  # 2-D keypoint windows
        assert dm.hparams.receptive_field == cfg.frames
    else:  # images for a 2-D detector
        assert cfg.data.image_size and dm.num_joints == 17
    model = instantiate(cfg.model)
    module = instantiate(cfg.module, model=model)
    assert sum(p.numel() for p in module.parameters()) > 0
    loggers = instantiate_group(cfg.logger)
    callbacks = instantiate_callbacks(cfg, has_logger=bool(loggers))
    extra = {}
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        # no GPU here: build the same trainer on the CPU (precision and the rest as configured)
        extra = {"accelerator": "cpu", "devices": 1, "strategy": "auto", "num_nodes": 1}
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, **extra)
    assert trainer.max_epochs >= 1
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()


def test_eval_config_composes_and_instantiates():
    cfg = compose_cfg("eval", ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt"
    assert instantiate(cfg.trainer, logger=False).max_epochs >= 1


def test_callbacks_follow_logger_and_progress_bar_settings():
    from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar

    from liftpose.utils.checkpoint import ModelCheckpoint, TimedCheckpoint
    from liftpose.utils.progress import LogProgress

    kinds = lambda cbs: {type(c) for c in cbs}  # noqa: E731
    always = {ModelCheckpoint, TimedCheckpoint, LogProgress}  # log lines: without a terminal
    cfg = compose_cfg("train", ["logger=none"])
    assert kinds(instantiate_callbacks(cfg, has_logger=False)) == always | {RichProgressBar}
    cfg = compose_cfg("train", ["trainer.enable_progress_bar=false"])
    assert kinds(instantiate_callbacks(cfg, has_logger=True)) == always | {LearningRateMonitor}


def test_frames_interpolates_into_model_and_data():
    cfg = compose_cfg("train", ["frames=81"])
    assert cfg.model.num_frames == 81 and cfg.data.receptive_field == 81


def test_poseformer_h36m_experiment_uses_official_dimensions():
    cfg = compose_cfg("train", ["experiment=poseformer_h36m"])
    assert cfg.data.name == "h36m" and cfg.frames == 81
    assert cfg.model.embed_dim_ratio == 32 and cfg.model.depth == 4
    assert cfg.trainer.precision == "bf16-mixed"

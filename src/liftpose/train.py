"""``liftpose-train``: train a lifter, test it, and write ``metrics.json`` into the run folder.

liftpose-train                                  # the main job on the embedded data
liftpose-train experiment=poseformer_h36m data.root=/data/h36m trainer=gpu
liftpose-train ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from liftpose.utils.io import atomic_write_text
from liftpose.utils.run import (
    CONF_DIR,
    git_commit,
    instantiate_callbacks,
    instantiate_group,
    to_container,
)


def output_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the datamodule and the LightningModule (with its lifter) from ``cfg``."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    module = instantiate(
        cfg.module, model=model, flip_permutation=datamodule.skeleton.flip_permutation.tolist()
    )
    module.run_config = to_container(cfg)
    return datamodule, module


def collect_metrics(trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def write_metrics(
    path: Path,
    cfg: DictConfig,
    datamodule: Any,
    module: L.LightningModule,
    metrics: dict[str, float],
    ckpt: str | None,
    seconds: float,
) -> dict:
    n = sum(p.numel() for p in module.model.parameters())
    doc = {
        "metrics": dict(sorted(metrics.items())),
        "params": n,
        "params_m": round(n / 1e6, 4),
        "seed": cfg.get("seed"),
        "git_commit": git_commit(),
        "data_fingerprint": datamodule.fingerprint(),
        "ckpt_path": ckpt,
        "seconds": round(seconds, 1),
        "config": to_container(cfg),
    }
    atomic_write_text(path, json.dumps(doc, indent=2, default=str))
    return doc


def seed_run(cfg: DictConfig) -> int | None:
    """Seed python, numpy and torch (and loader workers) when ``cfg.seed`` is set, 0 included."""
    seed = cfg.get("seed")
    if seed is None:
        return None
    return L.seed_everything(int(seed), workers=True)


def run_train(cfg: DictConfig) -> dict:
    """Fit and test according to ``cfg``; returns the ``metrics.json`` document (or {})."""
    t0 = time.time()
    seed_run(cfg)
    torch.set_float32_matmul_precision("high")
    out = output_dir(cfg)
    datamodule, module = build(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg, has_logger=bool(loggers))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    if cfg.get("train", True):
        trainer.fit(
            module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=False
        )
    doc: dict = {}
    if cfg.get("test", True):
        ckpt = None
        which = cfg.get("test_ckpt", "best")
        cb = trainer.checkpoint_callback
        if cfg.get("train", True) and which in ("best", "last") and cb is not None:
            ckpt = (cb.best_model_path if which == "best" else cb.last_model_path) or None
        elif not cfg.get("train", True):
            ckpt = cfg.get("ckpt_path")
        trainer.test(
            module, datamodule=datamodule, ckpt_path=ckpt, weights_only=False, verbose=False
        )
        if trainer.is_global_zero:
            doc = write_metrics(
                out / "metrics.json",
                cfg,
                datamodule,
                module,
                collect_metrics(trainer, module),
                ckpt,
                time.time() - t0,
            )
            print(f"metrics written to {out / 'metrics.json'}")
    for lg in loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    return doc


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    OmegaConf.set_struct(cfg, False)
    doc = run_train(cfg)
    return doc.get("metrics", {}).get("test/mpjpe")


if __name__ == "__main__":
    main()

"""``liftpose-eval``: test a trained checkpoint and write ``metrics.json``.

    liftpose-eval ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    liftpose-eval ckpt_path=... +override.data.keypoints=gt     # same model, exact 2-D

The checkpoint carries the resolved training config; the model, data and module are rebuilt
from it, with ``override`` merged on top.
"""

from __future__ import annotations

import time

import hydra
import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from liftpose.errors import ConfigError, DataError
from liftpose.train import (
    build,
    collect_metrics,
    fail,
    finish_loggers,
    load_run_checkpoint,
    output_dir,
    seed_run,
    write_metrics,
)
from liftpose.utils.run import CONF_DIR, instantiate_group


def run_eval(cfg: DictConfig) -> dict:
    t0 = time.time()
    ckpt_path = str(cfg.ckpt_path)
    ckpt, train_cfg = load_run_checkpoint(ckpt_path)
    merged = OmegaConf.merge(
        train_cfg, OmegaConf.create(OmegaConf.to_container(cfg.override, resolve=True) or {})
    )
    merged.trainer = cfg.trainer
    merged.paths = cfg.paths
    merged.seed = cfg.seed
    merged.task_name = cfg.task_name
    seed_run(merged)
    datamodule, module = build(merged)
    module.load_state_dict(ckpt["state_dict"])
    datamodule.prepare_data()
    loggers = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    trainer.test(module, datamodule=datamodule, verbose=False)
    doc = {}
    if trainer.is_global_zero:
        out = output_dir(cfg)
        doc = write_metrics(
            out / "metrics.json",
            merged,
            datamodule,
            module,
            collect_metrics(trainer),
            ckpt_path,
            time.time() - t0,
        )
        print(f"metrics written to {out / 'metrics.json'}")
    finish_loggers(loggers)
    return doc


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    OmegaConf.set_struct(cfg, False)
    try:
        run_eval(cfg)
    except (DataError, ConfigError, InstantiationException) as err:
        fail(err, output_dir(cfg))


if __name__ == "__main__":
    main()

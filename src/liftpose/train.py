"""``liftpose-train``: train a lifter, test it, and write ``metrics.json`` into the run folder.

liftpose-train                                  # the main job on the embedded data
liftpose-train experiment=poseformer_h36m data.root=/data/h36m trainer=gpu
liftpose-train ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from liftpose.errors import ConfigError, DataError
from liftpose.modules.build import build, build_module
from liftpose.utils.checkpoint import load_run_checkpoint, state_dict_mismatch
from liftpose.utils.config_check import check_command_line, check_config
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


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_launch(trainer: L.Trainer) -> None:
    """Refuse a DDP strategy that re-executes the command line inside a multirun.

    Lightning's ``strategy=ddp`` starts the extra ranks by running ``sys.argv`` again; under
    ``-m`` each of them would start the whole sweep. Inside a sweep use ``trainer=ddp_spawn``
    (processes forked from the job), or a submitit launcher with one task per GPU (SLURM starts
    the ranks, so nothing is re-executed).
    """
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )

    launcher = getattr(trainer.strategy, "launcher", None)
    if in_multirun() and isinstance(launcher, _SubprocessScriptLauncher):
        raise ConfigError(
            "trainer.strategy=ddp re-runs the command line for each extra rank, which under -m "
            "would start the sweep again in every rank; in a multirun use trainer=ddp_spawn "
            "(or strategy=ddp_spawn), or launcher=submitit_slurm with one task per GPU"
        )


def collect_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The ``test/*`` values the module logged (gathered over processes by the metrics)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def write_metrics(
    path: Path,
    cfg: DictConfig,
    datamodule: Any,
    module: L.LightningModule,
    metrics: dict[str, float],
    ckpt: str | None,
    seconds: float,
    extra: dict | None = None,
) -> dict:
    """Write ``metrics.json`` (``extra``: further top-level entries, e.g. what an evaluation
    changed) and return its document."""
    n = sum(p.numel() for p in module.model.parameters())
    doc = {
        "metrics": dict(sorted(metrics.items())),
        "params": n,
        "params_m": round(n / 1e6, 4),
        "seed": cfg.get("seed"),
        "git_commit": git_commit(),
        "data_fingerprint": datamodule.data_fingerprint(),
        "ckpt_path": ckpt,
        "seconds": round(seconds, 1),
        "val_history": [[int(e), round(t, 2), v] for e, t, v in getattr(module, "val_history", [])],
        "fast_dev_run": bool(cfg.get("trainer", {}).get("fast_dev_run", False)),
        "config": to_container(cfg),
        **(extra or {}),
    }
    atomic_write_text(path, json.dumps(doc, indent=2, default=str))
    return doc


def seed_run(cfg: DictConfig) -> int | None:
    """Seed python, numpy and torch (and loader workers) when ``cfg.seed`` is set, 0 included."""
    seed = cfg.get("seed")
    if seed is None:
        return None
    return L.seed_everything(int(seed), workers=True)


def check_train_config(cfg: DictConfig) -> None:
    """Types and ranges of the keys (:func:`~liftpose.utils.config_check.check_config`) and the
    checkpoint to resume from (:func:`check_resume`), before anything is written."""
    check_config(cfg)
    if cfg.get("ckpt_path") is not None:
        check_resume(cfg)


def check_resume(cfg: DictConfig) -> None:
    """Refuse ``cfg.ckpt_path`` unless its weights fit the module ``cfg`` builds.

    The checkpoint's ``state_dict`` keys and shapes are compared with those of the module built
    on the meta device (no memory, no initialisation), so a checkpoint of another network
    stops the run before its folder exists.

    Raises:
        DataError: the checkpoint is unreadable or damaged (:func:`load_run_checkpoint`), or
            has missing, unexpected or wrongly shaped weights (one line naming the first ones).
    """
    path = str(cfg.ckpt_path)
    ckpt, trained = load_run_checkpoint(path)
    try:
        datamodule = instantiate(cfg.data)
        with torch.device("meta"):
            module = build_module(cfg, datamodule)
    except InstantiationException as err:
        if isinstance(err.__cause__, (DataError, ConfigError)):
            raise err.__cause__ from None
        raise
    wrong = state_dict_mismatch(module.state_dict(), ckpt["state_dict"])
    if wrong is None:
        return
    names = [
        f"{str(c.model._target_).rsplit('.', 1)[-1]} ({str(c.module._target_).rsplit('.', 1)[-1]})"
        for c in (trained, cfg)
    ]
    if names[0] != names[1]:
        wrong = f"the checkpoint holds {names[0]}, this config builds {names[1]}; {wrong}"
    raise DataError(path, "state_dict", f"does not fit the model of this config ({wrong})")


def run_train(cfg: DictConfig) -> dict:
    """Fit and test according to ``cfg``; returns the ``metrics.json`` document (or {})."""
    t0 = time.time()
    check_train_config(cfg)
    seed_run(cfg)
    torch.set_float32_matmul_precision("high")
    out = output_dir(cfg)
    datamodule, module = build(cfg)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        datamodule.prepare_data()  # read and check the data before loggers and trainer start
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg, has_logger=bool(loggers))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        check_launch(trainer)
        return fit_and_test(cfg, trainer, datamodule, module, out, t0)
    finally:
        finish_loggers(loggers)


def fit_and_test(
    cfg: DictConfig,
    trainer: L.Trainer,
    datamodule: Any,
    module: L.LightningModule,
    out: Path,
    t0: float,
) -> dict:
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
            if ckpt is None and which == "last" and cb.dirpath is not None:
                last = Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
                ckpt = str(last) if last.exists() else None  # spawned ranks do not report it
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
                collect_metrics(trainer),
                ckpt,
                time.time() - t0,
            )
            print(f"metrics written to {out / 'metrics.json'}")
    return doc


def finish_loggers(loggers: list[Any]) -> None:
    """Close wandb runs so that the next job of a multirun starts clean."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger" and lg._experiment is not None:
            lg.experiment.finish()


def fail(err: Exception, run_dir: Path | None = None) -> None:
    """Report a data or configuration error in one line and exit with status 2.

    A run folder that holds nothing but Hydra's record of the config (and empty logger
    folders) is removed, so a run that never started leaves nothing behind.
    """
    if isinstance(err, InstantiationException):
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        cause = err.__cause__
        if isinstance(cause, MisconfigurationException):  # e.g. trainer=ddp without GPUs
            cause = ConfigError(f"trainer: {cause} (see conf/trainer/)")
        if not isinstance(cause, (DataError, ConfigError)):
            raise err  # a genuine bug: keep the traceback
        err = cause
    if run_dir is not None and run_dir.is_dir():
        files = [p for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts]
        if not files:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
    sys.exit(2)


def record_failure(run_dir: Path) -> None:
    """Write the traceback of the exception being handled to ``<run>/error.log``."""
    import traceback

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "error.log", traceback.format_exc())


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    OmegaConf.set_struct(cfg, False)
    try:
        doc = run_train(cfg)
    except Exception as err:
        if in_multirun():
            # Hydra records the failure and the sweep goes on with the other jobs
            record_failure(output_dir(cfg))
            raise
        if isinstance(err, (DataError, ConfigError, InstantiationException)):
            fail(err, output_dir(cfg))
        raise
    metrics = doc.get("metrics", {})
    return metrics.get("test/mpjpe", metrics.get("test/AP"))


def main() -> None:
    """The ``liftpose-train`` command: the overrides, then the run (:func:`run_train`)."""
    check_command_line("train", sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()

"""What every liftpose training scheme shares: the run config handed to the loggers, the
validation history (epoch, training seconds, score) that time-to-convergence columns read,
resumable checkpoints (config, history and random states), and the optimiser built from the
config's partials."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch

__all__ = ["RunModule"]


class RunModule(L.LightningModule):
    """Base of the LightningModules of liftpose.

    Subclasses set ``optimizer_factory`` (a partial taking ``params``), ``scheduler_factory``
    (a partial taking ``optimizer``, or ``None``) and have ``scheduler_interval`` in their
    hyperparameters; they call :meth:`record_validation` with their validation score.
    """

    optimizer_factory: Callable[..., torch.optim.Optimizer]
    scheduler_factory: Callable[..., Any] | None

    def __init__(self) -> None:
        super().__init__()
        #: ``[epoch, seconds of training so far, validation score]`` after each validation
        self.val_history: list[list[float]] = []
        self._fit_started, self._fit_offset = time.monotonic(), 0.0

    def _log_config(self) -> None:
        """Give every logger the resolved run config, once per process (rank zero)."""
        config = getattr(self, "run_config", None)
        if config is not None and not getattr(self, "_config_logged", False):
            for lg in self.loggers:
                lg.log_hyperparams(config)
            self._config_logged = True

    def on_fit_start(self) -> None:
        self._log_config()
        # training time so far (carried over by a resumed run) and this session's start
        self._fit_started = time.monotonic()
        self._fit_offset = self.val_history[-1][1] if self.val_history else 0.0

    def on_test_start(self) -> None:
        self._log_config()

    def record_validation(self, score: float) -> None:
        """Append ``[epoch, training seconds, score]`` (not during the sanity check)."""
        if not self.trainer.sanity_checking:
            elapsed = self._fit_offset + time.monotonic() - self._fit_started
            self.val_history.append([self.current_epoch + 1, elapsed, score])

    def _log_synced(self, values: dict[str, float], **kwargs: Any) -> None:
        """Log epoch values that the metrics already gathered across processes: every process
        holds the same value, so the (requested) synchronisation takes their maximum, which is
        that value exactly, and Lightning has nothing to warn about."""
        self.log_dict(values, sync_dist=True, reduce_fx="max", **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the resolved run config (so the run can be rebuilt from the checkpoint alone;
        its paths relative to ``paths``, as in :func:`~liftpose.utils.checkpoint.portable_config`)
        and the random-number states (so a resumed run continues as an uninterrupted one)."""
        config = getattr(self, "run_config", None)
        if config is not None:
            from liftpose.utils.checkpoint import portable_config, relative_paths

            # paths as ${paths.*} interpolations: the checkpoint can move to another machine
            config = portable_config(config)
            root = (config.get("paths") or {}).get("root_dir")
            dm_key = "datamodule_hyper_parameters"
            if isinstance(checkpoint.get(dm_key), dict):
                checkpoint[dm_key] = relative_paths(checkpoint[dm_key], root)
        checkpoint["liftpose_config"] = config
        if config is not None:
            from liftpose.utils.checkpoint import checkpoint_hash

            # checked when read: a damaged file is an error, not a quietly different network
            checkpoint["liftpose_hash"] = checkpoint_hash(checkpoint["state_dict"], config)
        checkpoint["liftpose_val_history"] = self.val_history
        checkpoint["liftpose_rng"] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_history = [list(h) for h in checkpoint.get("liftpose_val_history", [])]
        rng = checkpoint.get("liftpose_rng")
        if rng and self._trainer is not None and self.trainer.training:
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": self.hparams.scheduler_interval},
        }

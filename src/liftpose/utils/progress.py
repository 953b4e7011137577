"""Progress as plain lines, for logs: what a progress bar shows, when nobody sees a bar.

A progress bar draws only on a terminal; ``make train > log``, SLURM and submitit jobs, ``nohup``
get nothing from it. :class:`LogProgress` prints one line every ``every_n_steps`` training
steps or ``every_seconds`` seconds (whichever comes first), one per validation and one at the
end, when standard output is not a terminal (``when: auto``)::

    epoch 3/20 batch 340/1200 step 2740/24000 | train/loss 0.0412 | 14.2 it/s | eta 1m02s (epoch) 9m
    epoch 3/20 validated in 3s | val/mpjpe 78.3 | val/p_mpjpe 55.1
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["LogProgress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``3725.0`` -> ``"1h02m05s"``, ``62`` -> ``"1m02s"``, ``4.2`` -> ``"4s"``."""
    if not math.isfinite(s):
        return "?"
    s = int(round(max(s, 0.0)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


class LogProgress(Callback):
    """Plain progress lines (epoch, batch, step, loss, it/s, eta) on rank zero.

    Args:
        every_n_steps: a line every this many training steps (None: by time only).
        every_seconds: ... or after this many seconds since the last line (None: by steps only).
        when: ``auto`` (only when standard output is not a terminal, where a progress bar
            draws), ``always`` or ``never``.
        keys: logged values shown, when present (default: the training loss; validation lines
            show every ``val/*`` value of the epoch).
    """

    def __init__(
        self,
        every_n_steps: int | None = 100,
        every_seconds: float | None = 30.0,
        when: str = "auto",
        keys: tuple[str, ...] = ("train/loss",),
    ) -> None:
        if when not in ("auto", "always", "never"):
            raise ValueError(f"when must be auto, always or never, got {when!r}")
        self.every_n_steps = every_n_steps
        self.every_seconds = every_seconds
        self.when = when
        self.keys = tuple(keys)
        self._last_time = self._fit_start = 0.0
        self._last_step = self._first_step = 0
        self._val_start = 0.0
        self._epoch_first: tuple[int, float] | None = None

    @property
    def enabled(self) -> bool:
        if self.when == "auto":
            return not sys.stdout.isatty()
        return self.when == "always"

    @staticmethod
    def _print(line: str) -> None:
        print(line, flush=True)

    def _epoch(self, trainer: L.Trainer) -> str:
        total = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        return f"epoch {trainer.current_epoch + 1}/{total}"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_time = self._fit_start = time.monotonic()
        self._last_step = self._first_step = trainer.global_step

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_first = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        if self._epoch_first is None:  # the epoch's first batch here (> 0 after a resume)
            self._epoch_first = (idx, time.monotonic())

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        now, step = time.monotonic(), trainer.global_step
        by_steps = self.every_n_steps is not None and step - self._last_step >= self.every_n_steps
        by_time = self.every_seconds is not None and now - self._last_time >= self.every_seconds
        if not (by_steps or by_time or idx == 0):
            return
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        batches = trainer.num_training_batches
        done = idx + 1
        parts = [f"{self._epoch(trainer)} batch {done}/{batches}"]
        total_steps = trainer.estimated_stepping_batches
        parts[0] += f" step {step}/{total_steps if math.isfinite(total_steps) else '?'}"
        metrics = trainer.callback_metrics
        vals = [f"{k} {float(metrics[k]):.4g}" for k in self.keys if k in metrics]
        if not vals and isinstance(outputs, dict) and "loss" in outputs:
            vals = [f"loss {float(outputs['loss']):.4g}"]
        if vals:
            parts.append(" ".join(vals))
        if step > self._last_step:
            first, t_first = self._epoch_first or (idx, now)
            # batches per second in this epoch (the first batch's time is not counted)
            epoch_rate = (idx - first) / (now - t_first) if idx > first else rate
            left_epoch = (batches - done) / max(epoch_rate, 1e-9)
            left_all = (total_steps - step) / max(rate, 1e-9)
            parts.append(f"{rate:.3g} it/s")
            parts.append(f"eta {format_seconds(left_epoch)} (epoch) {format_seconds(left_all)}")
        self._print(" | ".join(parts))
        self._last_time, self._last_step = now, step

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self.enabled and trainer.is_global_zero) or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        vals = [f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()) if k.startswith("val/")]
        took = format_seconds(time.monotonic() - self._val_start)
        self._print(" | ".join([f"{self._epoch(trainer)} validated in {took}", *vals]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero:
            took = format_seconds(time.monotonic() - self._fit_start)
            steps = trainer.global_step - self._first_step
            self._print(f"training done: {steps} steps in {took} (step {trainer.global_step})")

"""Logger factories that need more than a plain ``_target_``."""

from __future__ import annotations

import csv
import netrc
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def has_wandb_key() -> bool:
    """Whether a wandb API key is configured (environment or ``wandb login``'s netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``$WANDB_MODE`` when set; otherwise online with an API key and offline without one."""
    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if has_wandb_key() else "offline"
    return mode


def make_wandb_logger(table: dict | None = None, **kwargs: Any):
    """A ``WandbLogger`` that runs offline unless an API key is configured.

    ``WANDB_MODE`` decides when set; otherwise the run is online when a key is known
    (``WANDB_API_KEY``, or a ``wandb login`` entry in ``~/.netrc``) and offline otherwise, and
    the offline run folder can be uploaded later with ``wandb sync``.

    ``table`` is the ``table`` entry a job of ``liftpose-tables`` carries (paper, table id,
    row, scale, the row's overrides): the run then joins the table's wandb group, is named after
    its row and seed, and is tagged with the paper, the table, the scale and each override.
    """
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError as e:  # pragma: no cover - lightning always has it
        raise ImportError("wandb logging needs `pip install wandb`") from e
    mode = wandb_mode()
    if table:
        kwargs["group"] = kwargs.get("group") or table.get("group")
        kwargs["name"] = f"{table.get('id')}/{table.get('dir')}"
        extra = [table.get("paper"), table.get("id"), table.get("scale")]
        extra += str(table.get("overrides") or "").split()
        tags = list(kwargs.get("tags") or []) + [str(t)[:64] for t in extra if t]
        kwargs["tags"] = list(dict.fromkeys(tags))
    kwargs.setdefault("offline", mode == "offline")
    logger = WandbLogger(mode=mode if mode != "offline" else None, **kwargs)
    if kwargs["offline"]:
        print(
            "wandb: offline run; upload later with `wandb sync "
            f"{kwargs.get('save_dir', '.')}/wandb/offline-run-*`"
        )
    return logger


class _AppendingWriter(ExperimentWriter):
    """CSV writer that continues an existing ``metrics.csv`` (its columns included)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSV logger, but appending to the run's ``metrics.csv`` instead of deleting it.

    Each stage of a run whose processes are spawned (``trainer=ddp_sim``: fit, then test) and
    each resumed run opens the log again; all of them end up in one file.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

"""Logger factories that need more than a plain ``_target_``."""

from __future__ import annotations

import os
from typing import Any


def make_wandb_logger(**kwargs: Any):
    """A ``WandbLogger`` that runs offline unless an API key is configured.

    Online when ``WANDB_API_KEY`` is set or ``WANDB_MODE=online``; otherwise offline, and the
    run folder can be uploaded later with ``wandb sync``.
    """
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError as e:  # pragma: no cover - lightning always has it
        raise ImportError("wandb logging needs `pip install wandb`") from e
    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    kwargs.setdefault("offline", mode == "offline")
    logger = WandbLogger(mode=mode if mode != "offline" else None, **kwargs)
    if kwargs["offline"]:
        print(
            "wandb: offline run; upload later with `wandb sync "
            f"{kwargs.get('save_dir', '.')}/wandb/offline-run-*`"
        )
    return logger

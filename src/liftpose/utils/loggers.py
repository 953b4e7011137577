"""Logger factories that need more than a plain ``_target_``."""

from __future__ import annotations

import netrc
import os
from typing import Any


def has_wandb_key() -> bool:
    """Whether a wandb API key is configured (environment or ``wandb login``'s netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def make_wandb_logger(**kwargs: Any):
    """A ``WandbLogger`` that runs offline unless an API key is configured.

    ``WANDB_MODE`` decides when set; otherwise the run is online when a key is known
    (``WANDB_API_KEY``, or a ``wandb login`` entry in ``~/.netrc``) and offline otherwise, and
    the offline run folder can be uploaded later with ``wandb sync``.
    """
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError as e:  # pragma: no cover - lightning always has it
        raise ImportError("wandb logging needs `pip install wandb`") from e
    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if has_wandb_key() else "offline"
    kwargs.setdefault("offline", mode == "offline")
    logger = WandbLogger(mode=mode if mode != "offline" else None, **kwargs)
    if kwargs["offline"]:
        print(
            "wandb: offline run; upload later with `wandb sync "
            f"{kwargs.get('save_dir', '.')}/wandb/offline-run-*`"
        )
    return logger

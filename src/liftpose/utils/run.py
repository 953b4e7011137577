"""Run bookkeeping: git commit, config resolution, instantiation of loggers and callbacks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def _register_resolvers() -> None:
    """Resolvers used by conf/: ``${abspath:...}``, ``${layout_joints:h36m17}``,
    ``${tmt_in_chans:<motion>,<steps>}``, ``${unique_dir:<path>}``."""
    from liftpose.data.skeleton import get_layout

    if not OmegaConf.has_resolver("unique_dir"):
        # cached: every later resolution of the same config (Hydra's, a job's) gets the same
        # folder; the cache travels with the config to joblib and submitit jobs
        OmegaConf.register_new_resolver("unique_dir", unique_dir, use_cache=True)
    if not OmegaConf.has_resolver("unique_sweep_dir"):
        OmegaConf.register_new_resolver("unique_sweep_dir", unique_sweep_dir, use_cache=True)
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", lambda p: str(Path(p).expanduser().resolve()))
    if not OmegaConf.has_resolver("layout_joints"):
        OmegaConf.register_new_resolver("layout_joints", lambda name: get_layout(name).num_joints)
    if not OmegaConf.has_resolver("tmt_in_chans"):
        OmegaConf.register_new_resolver("tmt_in_chans", _tmt_in_chans)


def unique_dir(base: str) -> str:
    """Create the folder ``base``, or ``base_2``, ``base_3``... when it exists, and return it.

    ``os.mkdir`` fails when the folder exists, so two runs started in the same second (whose
    ``base`` is the same time stamp) get two folders, whichever creates first.
    """
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    for k in itertools.count(1):
        path = base if k == 1 else f"{base}_{k}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


#: the multirun folder a process made, inherited by the processes of its jobs
SWEEP_DIR_ENV = "LIFTPOSE_SWEEP_DIR"


def unique_sweep_dir(base: str) -> str:
    """:func:`unique_dir` for a multirun's folder, made once per multirun.

    Hydra and its launchers resolve ``hydra.sweep.dir`` again for each job (and a submitit job
    in its own process, a few seconds later, with another time stamp): the first resolution
    makes the folder and records it in ``$LIFTPOSE_SWEEP_DIR`` (``pid:base:path``); later ones
    in the same process with the same ``base``, and any in a job's process (which inherits the
    record), return that folder instead of making another.
    """
    try:
        pid, made_base, path = json.loads(os.environ.get(SWEEP_DIR_ENV, ""))
    except (ValueError, TypeError):
        pid = made_base = path = None
    if path and Path(path).is_dir() and (pid != os.getpid() or made_base == base):
        return str(path)
    path = unique_dir(base)
    os.environ[SWEEP_DIR_ENV] = json.dumps([os.getpid(), base, path])
    return path


def _tmt_in_chans(motion: str, steps: str) -> int:
    """``${tmt_in_chans:v3,tmt}``: input channels a lifter trained by TMT needs."""
    from liftpose.modules.tmt import tmt_in_channels

    return tmt_in_channels(motion, steps)


_register_resolvers()

CONF_DIR = Path(os.environ.get("LIFTPOSE_CONF_DIR", Path(__file__).resolve().parents[3] / "conf"))


def git_commit() -> str | None:
    """The current commit of the working tree (with ``-dirty``), or None outside git."""
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a ``_target_`` of a config group (callbacks, loggers)."""
    if not cfg:
        return []
    return [instantiate(v) for v in cfg.values() if isinstance(v, DictConfig) and "_target_" in v]


def instantiate_callbacks(cfg: DictConfig, has_logger: bool) -> list[Any]:
    """The configured callbacks, without those the rest of the config rules out: the learning
    rate monitor needs a logger, and a progress bar needs ``trainer.enable_progress_bar``."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar

    keep = []
    for cb in instantiate_group(cfg.get("callbacks")):
        if isinstance(cb, LearningRateMonitor) and not has_logger:
            continue
        if isinstance(cb, ProgressBar) and not cfg.trainer.get("enable_progress_bar", True):
            continue
        keep.append(cb)
    return keep


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore

"""liftpose checkpoints: reading them with clear errors, paths stored so that they move, and
slim copies for shipping a trained model.

A liftpose checkpoint is a Lightning checkpoint with the resolved run config under
``liftpose_config``. Paths inside that config are stored relative to the run's ``paths``
(``${paths.data_dir}/h36m``, ``${paths.cache_dir}``...): a run that rebuilds from the checkpoint
with other ``paths`` (another machine, a moved project folder, ``liftpose-eval`` run elsewhere)
finds the data where its own ``paths`` point, and any of them can be overridden.

A Lightning checkpoint also carries what resuming needs (optimiser and scheduler states, loop
and callback states); a shipped model needs only the weights and the config.
:func:`pack_checkpoint` keeps ``state_dict``, ``liftpose_config``, the Lightning version, epoch
and step, rewrites every absolute path left in the config that lies under the run's
``paths.root_dir`` (or ``paths.shared_dir``) relative to it (``data/...``, ``.cache/liftpose``,
``../shared/...``; a path elsewhere is replaced by its last component) and stores the hash of
the result. The copy loads with :func:`load_run_checkpoint` and
:func:`liftpose.system.lifting.load_lifter`; it cannot resume training.

    python -m liftpose.utils.checkpoint logs/.../last.ckpt model.ckpt
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liftpose.errors import DataError

__all__ = [
    "KEPT_KEYS",
    "ModelCheckpoint",
    "TimedCheckpoint",
    "checkpoint_hash",
    "pack_checkpoint",
    "read_checkpoint_file",
    "load_run_checkpoint",
    "load_weights",
    "portable_config",
    "portable_paths",
    "relative_paths",
    "state_dict_mismatch",
]

#: The checkpoint entries a shipped model keeps (with ``liftpose_hash``, computed anew).
KEPT_KEYS = ("state_dict", "liftpose_config", "pytorch-lightning_version", "epoch", "global_step")

#: ``paths`` keys replaced by an interpolation in stored configs, most specific first; the run's
#: own ``output_dir`` is kept as it is (it names the run that wrote the checkpoint).
PORTABLE_PATHS = ("shared_dir", "cache_dir", "data_dir", "log_dir", "root_dir")


def _under(value: str, base: str) -> bool:
    return value == base or value.startswith(base.rstrip("/") + "/")


def portable_config(config: dict) -> dict:
    """``config`` (a resolved run config) with absolute paths under ``config["paths"]`` written
    as ``${paths.<key>}/...`` interpolations (the ``paths`` entry itself is kept as it is)."""
    paths = config.get("paths") or {}
    bases = [(k, str(paths[k])) for k in PORTABLE_PATHS if isinstance(paths.get(k), str)]
    bases = [(k, v) for k, v in bases if os.path.isabs(v) and v != "/"]

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if isinstance(obj, str) and os.path.isabs(obj):
            for key, base in bases:
                if _under(obj, base):
                    return "${paths." + key + "}" + obj[len(base.rstrip("/")) :]
        return obj

    return {k: (v if k == "paths" else walk(v)) for k, v in config.items()}


def relative_paths(obj: Any, root: str | None) -> Any:
    """``obj`` (nested dicts/lists) with absolute paths under ``root`` made relative to it."""
    if not root or not os.path.isabs(root):
        return obj
    if isinstance(obj, dict):
        return {k: relative_paths(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(relative_paths(v, root) for v in obj)
    if isinstance(obj, str) and os.path.isabs(obj) and _under(obj, root):
        return os.path.relpath(obj, root)
    return obj


def checkpoint_hash(state_dict: dict, config: Any) -> str:
    """Hash of the weights (names, dtypes, shapes, bytes) and the run config of a checkpoint:
    stored as ``liftpose_hash`` when it is saved, checked when it is read."""
    import hashlib
    import json

    import torch

    h = hashlib.sha1()
    for k in sorted(state_dict):
        t = state_dict[k]
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        flat = t.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def read_checkpoint_file(path: str | Path) -> dict:
    """The dict a checkpoint file holds (``torch.load`` on the CPU).

    Raises:
        DataError: the file is missing, truncated or not a checkpoint (one line).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file", "checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, bad pickle, a file of another kind...
        why = str(e).splitlines()[0][:200] if str(e) else ""
        raise DataError(
            p, "file", f"unreadable or truncated checkpoint ({type(e).__name__}: {why})"
        ) from None
    if not isinstance(ckpt, dict):
        raise DataError(p, "file", f"not a checkpoint (a {type(ckpt).__name__})")
    return ckpt


def load_run_checkpoint(path: str | Path) -> tuple[dict, DictConfig]:
    """A liftpose checkpoint and the run config it carries.

    Raises:
        DataError: the file is missing, unreadable or truncated, not a liftpose checkpoint, its
            ``state_dict`` or ``liftpose_config`` is malformed, or they do not match the hash
            saved with them (a damaged file; one line naming the field).
    """
    import torch

    ckpt = read_checkpoint_file(path)
    path = str(path)
    if "liftpose_config" not in ckpt:
        raise DataError(path, "liftpose_config", "not a liftpose checkpoint")
    config = ckpt["liftpose_config"]
    if not isinstance(config, dict):
        raise DataError(path, "liftpose_config", f"expected a mapping, got {type(config).__name__}")
    for key in ("model", "module"):
        if not isinstance(config.get(key), dict) or "_target_" not in config[key]:
            raise DataError(path, f"liftpose_config.{key}", "missing or without _target_")
    if not isinstance(config.get("data"), dict):
        raise DataError(path, "liftpose_config.data", "missing or not a mapping")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise DataError(path, "state_dict", "missing or empty")
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise DataError(path, f"state_dict[{k!r}]", f"not a tensor ({type(v).__name__})")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise DataError(path, f"state_dict[{k!r}]", "NaN/inf values")
    stored = ckpt.get("liftpose_hash")
    try:
        actual = None if stored is None else checkpoint_hash(state, config)
    except TypeError as e:  # e.g. keys of mixed types in the config
        raise DataError(path, "liftpose_config", f"not a valid config ({e})") from None
    if stored is not None and stored != actual:
        raise DataError(
            path, "state_dict", "weights or config differ from the hash saved with them (damaged)"
        )
    try:
        cfg = OmegaConf.create(config)
    except Exception as e:
        raise DataError(path, "liftpose_config", f"not a valid config ({e})") from None
    return ckpt, cfg


def state_dict_mismatch(own: dict, state_dict: dict) -> str | None:
    """What keeps ``state_dict`` from loading into a module whose own state dict is ``own``
    (keys and shapes; ``own`` may hold meta tensors), in one phrase, or None when it fits.

    E.g. ``missing 24 keys, e.g. model.blocks.1.attn.qkv.weight; shape of model.head.weight
    differs: (51, 32) in the checkpoint, (51, 64) in the model``.
    """
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            parts.append(f"{what} {len(keys)} key{'s' if len(keys) > 1 else ''}, e.g. {keys[0]}")
    if shapes:
        k = shapes[0]
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        parts.append(
            f"shape of {k} differs: {tuple(state_dict[k].shape)} in the checkpoint, "
            f"{tuple(own[k].shape)} in the model{more}"
        )
    return "; ".join(parts) or None


def load_weights(module: Any, state_dict: dict, path: str | Path) -> None:
    """``module.load_state_dict(state_dict)``; a mismatch is one :class:`DataError` naming the
    missing, unexpected or wrongly shaped entries (:func:`state_dict_mismatch`), the first
    wrongly typed one, or one whose values are not finite in the model's dtype."""
    import torch

    own = module.state_dict()
    wrong = state_dict_mismatch(own, state_dict)
    if wrong is not None:
        raise DataError(path, "state_dict", f"does not fit the model ({wrong})")
    for k, v in own.items():
        w = state_dict[k]
        if v.is_floating_point():
            if not w.is_floating_point():
                raise DataError(
                    path, f"state_dict[{k!r}]", f"dtype {w.dtype}, the model has {v.dtype}"
                )
            if not bool(torch.isfinite(w.to(v.dtype)).all()):
                raise DataError(path, f"state_dict[{k!r}]", f"NaN/inf as {v.dtype}")
    module.load_state_dict(state_dict)


def portable_paths(node: Any, roots: dict[str, str]) -> Any:
    """``node`` (a config tree of dicts, lists and scalars) with absolute paths rewritten.

    ``roots`` maps an absolute folder to its portable spelling (``{"/home/me/liftpose": "."}``):
    a string equal to or below one of them is rewritten relative to it (the longest match
    wins); any other absolute path becomes its last component.
    """
    if isinstance(node, dict):
        return {k: portable_paths(v, roots) for k, v in node.items()}
    if isinstance(node, list):
        return [portable_paths(v, roots) for v in node]
    if not isinstance(node, str) or not os.path.isabs(node):
        return node
    for base in sorted(roots, key=len, reverse=True):
        if node == base or node.startswith(base.rstrip("/") + "/"):
            rel = os.path.relpath(node, base)
            return str(PurePosixPath(roots[base]) / rel) if rel != "." else roots[base]
    return Path(node).name


def pack_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write the slim, portable copy of checkpoint ``src`` to ``dst`` (module docstring).

    Returns:
        ``dst``.

    Raises:
        DataError: ``src`` is missing, unreadable, not a liftpose checkpoint or damaged
            (:func:`load_run_checkpoint`); ``dst`` exists and is not a liftpose checkpoint
            (liftpose replaces only files it wrote).
    """
    import torch

    from liftpose.utils.io import atomic_path

    src, dst = Path(src), Path(dst)
    ckpt, _ = load_run_checkpoint(src)
    if dst.exists():
        try:
            load_run_checkpoint(dst)
        except DataError:
            raise DataError(
                dst, "dst", "exists and is not a liftpose checkpoint: not replaced"
            ) from None
    cfg = ckpt["liftpose_config"]
    paths = cfg.get("paths") or {}
    roots = {}
    for key, spelling in (("root_dir", "."), ("shared_dir", "../shared")):
        if isinstance(paths.get(key), str) and os.path.isabs(paths[key]):
            roots[paths[key]] = spelling
    out = {k: ckpt[k] for k in KEPT_KEYS if k in ckpt}
    out["state_dict"] = {k: v.detach().clone() for k, v in ckpt["state_dict"].items()}
    out["liftpose_config"] = portable_paths(cfg, roots)
    out["liftpose_hash"] = checkpoint_hash(out["state_dict"], out["liftpose_config"])
    with atomic_path(dst) as tmp:
        torch.save(out, tmp)
    return dst


def _model_checkpoint() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint


class ModelCheckpoint(_model_checkpoint()):  # type: ignore[misc]
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` always holds the latest weights.

    Since Lightning 2.5, ``save_last=True`` writes ``last.ckpt`` only in a step where a top-k
    checkpoint was written, so after an epoch that does not improve the monitored metric
    ``last.ckpt`` still holds the best epoch's weights: ``test_ckpt=last`` would test, and a
    resumed run would restart from, an earlier epoch. Here ``last.ckpt`` is (re)written at every
    point where Lightning considers saving (the end of each validation, or of each training epoch
    when checkpoints are taken there). Arguments are Lightning's.
    """

    def _save_latest(self, trainer: Any) -> None:
        if (
            not self.save_last
            or self.save_last == "link"
            or self._should_skip_saving_checkpoint(trainer)
        ):
            return
        if self._last_global_step_saved != trainer.global_step:  # nothing written this step
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)


class TimedCheckpoint(_model_checkpoint()):  # type: ignore[misc]
    """``last.ckpt`` every ``every_minutes`` of training, within epochs too (Lightning's
    ``ModelCheckpoint(train_time_interval=...)``, saving nothing else).

    A run killed in the middle of an epoch resumes from it (``ckpt_path=<run>/checkpoints/
    last.ckpt``) and continues exactly as the uninterrupted run would have: the training order
    is resumable (:class:`liftpose.data.sampler.ResumableLoader`) and the random states are in
    the checkpoint. The epoch-end ``last.ckpt`` comes from the usual ``ModelCheckpoint``.

    Args:
        dirpath: the checkpoint folder.
        every_minutes: training time between two saves.
    """

    def __init__(self, dirpath: str | None = None, every_minutes: float = 10.0) -> None:
        from datetime import timedelta

        if not every_minutes > 0:
            raise ValueError(f"every_minutes must be > 0, got {every_minutes}")
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            train_time_interval=timedelta(minutes=float(every_minutes)),
            enable_version_counter=False,  # last.ckpt is shared with the epoch-end checkpoint
        )

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Epoch ends are the other checkpoint's."""

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """The end of training is the other checkpoint's (Lightning would write ``last.ckpt``
        here when this callback has not saved yet, as ``last-v1.ckpt`` beside the other's)."""

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Validation ends are the other checkpoint's."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m liftpose.utils.checkpoint", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("src", help="a liftpose checkpoint (e.g. <run>/checkpoints/last.ckpt)")
    ap.add_argument("dst", help="where to write the slim copy")
    args = ap.parse_args(argv)
    try:
        out = pack_checkpoint(args.src, args.dst)
    except DataError as err:
        print(f"liftpose: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``liftpose-eval``: test a trained checkpoint and write ``metrics.json``.

    liftpose-eval ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    liftpose-eval ckpt_path=... data=h36m                     # another dataset config (conf/data)
    liftpose-eval ckpt_path=... data=/path/to/dataset         # a folder in the VideoPose3D layout
    liftpose-eval ckpt_path=... +override.data.keypoints=gt   # the same data, exact 2-D
    liftpose-eval ckpt_path=... +override.data.test_stride=4 +override.module.test_flip=false

The checkpoint carries the resolved training config; the model, data and module are rebuilt from
it. ``data=`` replaces the data: a ``conf/data`` option, or a folder holding
``data_3d_<name>.npz``, ``data_2d_<name>_<keypoints>.npz`` and ``cameras_<name>.json`` (or an
MPI-INF-3DHP ``data_test_3dhp.npz``). Only its test split is read (every subject of the folder,
or the option's ``test_subjects``): the training subjects are not needed. The 2-D source is the
checkpoint's ``data.keypoints`` where the folder has it. The window length, joint layout and
target come from the checkpoint.

``override`` is merged on top. It may change the data (``override.data.*``) and the test-time
settings ``override.module.test_flip``, ``override.module.zero_root_eval`` and
``override.module.symmetric_bones``. Anything that
would change the network the checkpoint holds (``model.*``, ``frames``, ``data.receptive_field``,
``data.layout``, the module's target or losses) is refused, naming the key, before anything is
written. So is a top-level key that is not an evaluation setting (``frames=81``,
``+model.depth=2``): the checkpoint's config changes only through ``+override.<key>``.
``metrics.json`` records the config that was evaluated and, under ``eval``, the
checkpoint, the data and the overrides applied.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

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
    output_dir,
    seed_run,
    write_metrics,
)
from liftpose.utils.checkpoint import load_run_checkpoint, load_weights
from liftpose.utils.config_check import check_command_line, check_config, no_such_key
from liftpose.utils.run import CONF_DIR, instantiate_group

#: ``override`` keys that evaluation may change (everything under ``data`` but these ...)
EVAL_KEYS = ("data.", "module.test_flip", "module.zero_root_eval", "module.symmetric_bones")
#: ... data keys that the network was built for.
ARCHITECTURE_DATA_KEYS = ("data.receptive_field", "data.layout")
#: Data keys a new dataset takes from the checkpoint.
FROM_CHECKPOINT = ("receptive_field", "layout", "target")
#: Top-level keys of ``eval.yaml`` checked by :func:`check_eval_config`.
EVAL_TOP_LEVEL = {"seed": int | None, "ckpt_path": str, "data_root": str | None, "task_name": str}
#: Every top-level key of an evaluation's config; any other belongs to the training config,
#: which changes only through ``+override.<key>`` (:func:`not_an_eval_setting`).
EVAL_SETTINGS = frozenset(
    {*EVAL_TOP_LEVEL, "tags", "override", "data", "trainer", "logger", "paths", "hydra"}
)


def not_an_eval_setting(key: str, added: str) -> str:
    """The message for ``key``, which the evaluation config does not have; ``added`` is the
    ``+key=value`` override that would add it. A key of the training config is pointed at
    ``+override.<key>``."""
    if key.split(".")[0] in EVAL_SETTINGS:
        return no_such_key(key, added)
    value = added.split("=", 1)[1]
    return (
        f"{key}: not a liftpose-eval setting; the checkpoint's config changes only through "
        f"+override.{key}={value}"
    )


def check_eval_keys(cfg: DictConfig) -> None:
    """Refuse a top-level key that is not an evaluation setting (:data:`EVAL_SETTINGS`), naming
    its first entry (``+frames=81``, ``+model.depth=2``)."""
    for key in cfg:
        if key in EVAL_SETTINGS:
            continue
        node = cfg._get_node(key)
        value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else cfg[key]
        leaf, leaf_value = next(iter(_flatten({key: value}).items()))
        raise ConfigError(not_an_eval_setting(leaf, f"+{leaf}={leaf_value}"))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict) or not d:
        return {prefix.rstrip("."): d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def check_overrides(override: dict, train_cfg: DictConfig) -> None:
    """Refuse, by name, an ``override`` entry that evaluation cannot apply (:data:`EVAL_KEYS`);
    one that repeats the value the checkpoint was trained with changes nothing and passes."""
    for key, value in _flatten(override).items():
        allowed = key.startswith(EVAL_KEYS) and not key.startswith(ARCHITECTURE_DATA_KEYS)
        if allowed:
            continue
        was = OmegaConf.select(train_cfg, key, default="<absent>")
        if OmegaConf.is_config(was):
            was = OmegaConf.to_container(was, resolve=True)
        if was == value:  # the value the checkpoint was trained with: nothing changes
            continue
        if key.startswith(("model.", "frames", "data.", "module.")):
            why = (
                f"would change the network the checkpoint holds (trained with {key}={was}); "
                "liftpose-eval tests the checkpoint as it was trained"
            )
        else:
            why = "is not an evaluation setting (set trainer.*, seed, logger here directly)"
        raise ConfigError(f"override.{key}={value!r} {why}")


def folder_data(root: str | Path, train_data: DictConfig) -> dict:
    """A data config that tests the checkpoint on the dataset in ``root`` (no training split).

    ``root`` holds one ``data_3d_<name>.npz`` with ``data_2d_<name>_<keypoints>.npz`` and
    ``cameras_<name>.json`` (every subject is tested), or an MPI-INF-3DHP
    ``data_test_3dhp.npz``. The 2-D source is the checkpoint's ``data.keypoints``, or the one
    source in the folder.
    """
    from liftpose.data.h36m import read_npz_dict
    from liftpose.data.mpi3dhp import TEST_FILE

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        options = ", ".join(sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml")))
        raise DataError(root, "data", f"neither a folder nor a data option (options: {options})")
    base = {
        k: v
        for k, v in OmegaConf.to_container(train_data, resolve=True).items()  # type: ignore
        if k not in ("test_set", "detector")
    }
    base.update(
        root=str(root),
        train_subjects=[],
        embedded=False,
        actions=None,
        cameras=None,
        keypoints_mix=0.0,
        format="h36m",
    )
    names = sorted(p.name[len("data_3d_") : -len(".npz")] for p in root.glob("data_3d_*.npz"))
    if not names and (root / TEST_FILE).is_file():
        return {**base, "test_subjects": None, "test_set": {"root": str(root), "file": TEST_FILE}}
    if len(names) != 1:
        what = f"{len(names)} (data_3d_{{{','.join(names)}}}.npz)" if names else "none"
        raise DataError(
            root,
            "data_3d_<name>.npz",
            f"data=<folder> needs exactly one dataset in the folder, found {what}; "
            f"or an MPI-INF-3DHP {TEST_FILE}",
        )
    name = names[0]
    sources = sorted(
        p.name[len(f"data_2d_{name}_") : -len(".npz")] for p in root.glob(f"data_2d_{name}_*.npz")
    )
    keypoints = str(base.get("keypoints"))
    if keypoints not in sources:
        if len(sources) != 1:
            raise DataError(
                root / f"data_2d_{name}_{keypoints}.npz",
                "file",
                f"not found (the checkpoint was trained on data.keypoints={keypoints}); the "
                f"folder has {sources or 'no 2-D source'}: pick one with "
                "+override.data.keypoints=<source>",
            )
        keypoints = sources[0]
    subjects = sorted(read_npz_dict(root / f"data_3d_{name}.npz", "positions_3d")[0])
    return {**base, "name": name, "keypoints": keypoints, "test_subjects": subjects}


def eval_setup(cfg: DictConfig) -> tuple[dict, DictConfig, dict]:
    """``(checkpoint, config to evaluate, record of what changed)`` of an ``eval.yaml`` config.

    Raises:
        DataError: an unreadable checkpoint, a dataset folder that cannot be used.
        ConfigError: a key that is not an evaluation setting, an override that would change
            the network, a bad type or range.
    """
    check_eval_keys(cfg)
    check_config(cfg, EVAL_TOP_LEVEL)
    ckpt_path = str(cfg.ckpt_path)
    ckpt, train_cfg = _checkpoint(ckpt_path)
    train_cfg.paths = cfg.paths  # the ${paths.*} of the checkpoint's config: this run's
    override = cfg.get("override")
    if OmegaConf.is_config(override):
        override = OmegaConf.to_container(override, resolve=True)
    override = override or {}
    if not isinstance(override, dict):
        raise ConfigError(f"override must be a mapping, got {override!r}")
    data_option = cfg.get("data")
    if data_option is not None and "_target_" not in data_option:
        # data settings only (a debug=... config sets data.num_workers): as an override
        override = OmegaConf.to_container(
            OmegaConf.merge({"data": data_option}, override), resolve=True
        )
        data_option = None
    check_overrides(override, train_cfg)
    merged = OmegaConf.create(OmegaConf.to_container(train_cfg, resolve=False))
    new_data: Any = None
    lifting = "receptive_field" in train_cfg.data  # 2-D keypoint windows (not images)
    if cfg.get("data_root") is not None:
        if not lifting:
            raise ConfigError("data=<folder> tests lifting checkpoints (2-D keypoint input)")
        new_data = folder_data(cfg.data_root, train_cfg.data)
    elif data_option is not None:
        node = OmegaConf.create(OmegaConf.to_container(data_option, resolve=False))
        if lifting and "receptive_field" in node:
            node.train_subjects = []  # tested only: the training subjects are not needed
            for key in FROM_CHECKPOINT:
                node[key] = train_cfg.data.get(key)
        new_data = node
    if new_data is not None:
        merged.data = new_data
    merged = OmegaConf.merge(merged, OmegaConf.create(override))
    merged.trainer = cfg.trainer
    merged.paths = cfg.paths
    merged.seed = cfg.seed
    merged.task_name = cfg.task_name
    merged.logger = cfg.get("logger")
    check_config(merged)
    merged.pop("callbacks", None)  # training callbacks: not part of an evaluation
    merged.ckpt_path = ckpt_path
    data_name = cfg.get("data_root")
    if data_name is None and data_option is not None:
        data_name = _data_option_name() or "<data config>"
    record = {"ckpt_path": ckpt_path, "data": data_name, "override": _flatten(override)}
    return ckpt, merged, record


#: The last checkpoint read, ``(path, file identity, (checkpoint, config))``: the check
#: before the run folder exists and the run itself read it once.
_checked: list = []


def _identity(path: str) -> tuple:
    st = Path(path).stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _checkpoint(path: str) -> tuple[dict, DictConfig]:
    """:func:`load_run_checkpoint`, once for the check and the run of one evaluation."""
    if _checked and _checked[0][0] == path and Path(path).is_file():
        if _checked[0][1] == _identity(path):
            ckpt, cfg = _checked[0][2]
            return ckpt, OmegaConf.create(OmegaConf.to_container(cfg))
    _checked.clear()
    ckpt, cfg = load_run_checkpoint(path)
    _checked.append((path, _identity(path), (ckpt, cfg)))
    return ckpt, OmegaConf.create(OmegaConf.to_container(cfg))


def _data_option_name() -> str | None:
    """The ``data=<option>`` chosen on the command line, if any."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("data")
    return None


def check_eval_config(cfg: DictConfig) -> None:
    """What :func:`eval_setup` checks, before the run folder exists (Hydra callback)."""
    eval_setup(cfg)


def run_eval(cfg: DictConfig) -> dict:
    t0 = time.time()
    ckpt, merged, record = eval_setup(cfg)
    seed_run(merged)
    datamodule, module = build(merged)
    load_weights(module, ckpt["state_dict"], record["ckpt_path"])
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
            record["ckpt_path"],
            time.time() - t0,
            extra={"eval": record},
        )
        print(f"metrics written to {out / 'metrics.json'}")
    finish_loggers(loggers)
    return doc


def data_argument(argv: list[str], options: list[str]) -> list[str]:
    """``data=<folder>`` -> ``data_root=<folder>`` (a ``conf/data`` option stays as it is)."""
    out = []
    for arg in argv:
        m = re.fullmatch(r"data=(.+)", arg)
        if m and m.group(1) not in options and m.group(1) != "null":
            arg = f"data_root={m.group(1)}"
        out.append(arg)
    return out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _main(cfg: DictConfig) -> None:
    OmegaConf.set_struct(cfg, False)
    try:
        run_eval(cfg)
    except (DataError, ConfigError, InstantiationException) as err:
        fail(err, output_dir(cfg))


def main() -> None:
    """The ``liftpose-eval`` command."""
    options = sorted(p.stem for p in (Path(CONF_DIR) / "data").glob("*.yaml"))
    sys.argv[1:] = data_argument(sys.argv[1:], options)
    check_command_line("eval", sys.argv[1:], not_an_eval_setting)
    _main()


if __name__ == "__main__":
    main()

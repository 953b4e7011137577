"""Check a composed run config before anything is written: types and ranges of the keys.

Types come from the code itself: each node with a ``_target_`` (data, model, module, trainer,
callbacks, loggers and the partials inside them) is checked key by key against the type hints of
its target's signature, with pydantic's lax validation (``"3"`` is the integer 3, ``"abc"`` is not
an integer). A key that is not a parameter of a target without ``**kwargs`` is an error too.
Ranges are the table :data:`RANGES` (glob patterns of config paths). The first problem found is
raised as one :class:`~liftpose.errors.ConfigError` naming the key and its value::

    trainer.max_epochs='abc': Input should be a valid integer, unable to parse string as an integer

:class:`CheckConfig` runs the check as a Hydra callback at the start of a run or multirun, before
Hydra creates the run folder; on a bad config it prints that line and exits with status 2.

Before that, :func:`check_command_line` composes the config from the command line as Hydra
will, so that an override Hydra cannot apply (a key the config does not have, a value that does
not parse, a config group option that does not exist) is one line naming it and exit status 2
too (:func:`composition_error`), where Hydra would print several lines and exit with status 1::

    model.dropout: no such key in the config; add it with +model.dropout=1.5
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import annotated_types as at
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ConfigDict, TypeAdapter, ValidationError

from liftpose.errors import ConfigError, DataError

__all__ = [
    "RANGES",
    "TOP_LEVEL",
    "CheckConfig",
    "check_command_line",
    "check_config",
    "composition_error",
    "no_such_key",
]

#: Allowed ranges of numeric keys, by config path (``fnmatch`` patterns). ``None`` always passes
#: (it means "off" or "default" where a key takes it).
RANGES: dict[str, Any] = {
    "frames": at.Ge(1),
    "seed": at.Interval(ge=0, le=2**32 - 1),
    "data.*batch_size": at.Ge(1),
    "data.*_stride": at.Ge(1),
    "data.downsample": at.Ge(1),
    "data.num_workers": at.Ge(0),
    "data.keypoints_mix": at.Interval(ge=0, le=1),
    "data.receptive_field": at.Ge(1),
    "trainer.max_epochs": at.Ge(-1),
    "trainer.min_epochs": at.Ge(0),
    "trainer.max_steps": at.Ge(-1),
    "trainer.devices": at.Ge(-1),
    "trainer.num_nodes": at.Ge(1),
    "trainer.log_every_n_steps": at.Ge(1),
    "trainer.check_val_every_n_epoch": at.Ge(1),
    "trainer.accumulate_grad_batches": at.Ge(1),
    "trainer.limit_*_batches": at.Ge(0),
    "trainer.gradient_clip_val": at.Ge(0),
    "model.depth": at.Ge(1),
    "model.*num_heads": at.Ge(1),
    "model.embed_dim*": at.Ge(1),
    "model.mlp_ratio": at.Gt(0),
    "model.*drop*rate": at.Interval(ge=0, lt=1),
    "model.retention": at.Interval(gt=0, le=1),
    "model.stage2_depth": at.Ge(0),
    "module.optimizer.lr": at.Gt(0),
    "module.stage1_epochs": at.Ge(1),
    "module.background_radius": at.Gt(0),
    "module.figure_frames": at.Ge(0),
    "data.*_every": at.Ge(1),
    "data.padding": at.Ge(1),
    "data.jpeg_quality": at.Interval(ge=1, le=100),
    "callbacks.*.every_n_steps": at.Ge(1),
    "callbacks.*.every_seconds": at.Ge(0),
    "callbacks.*.every_minutes": at.Gt(0),
}

#: Types of the top-level keys of ``train.yaml`` (targets' keys come from their signatures).
TOP_LEVEL: dict[str, Any] = {
    "seed": int | None,
    "frames": int,
    "ckpt_path": str | None,
    "train": bool,
    "test": bool,
    "test_ckpt": typing.Literal["best", "last", "current"],
    "task_name": str,
    "tags": list[str],
}

_SPECIAL = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
_LAX = ConfigDict(arbitrary_types_allowed=True, coerce_numbers_to_str=True)


def check_config(cfg: DictConfig, top_level: dict[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` for the first key of ``cfg`` with a wrong type or range.

    ``top_level`` maps top-level keys to types (default :data:`TOP_LEVEL`); the ``hydra`` node
    is not checked (Hydra checks its own). Values that cannot be resolved yet (``${hydra:...}``
    before the job starts) are skipped.
    """
    types = TOP_LEVEL if top_level is None else top_level
    for key, hint in types.items():
        if key in cfg:
            ok, value = _value(cfg, key)
            if ok:
                _validate(key, value, hint)
    for key in cfg:
        if key == "hydra":
            continue
        node = cfg._get_node(key)
        if isinstance(node, (DictConfig, ListConfig)):
            _check_node(node, str(key))


def _value(node: DictConfig | ListConfig, key: Any) -> tuple[bool, Any]:
    """``(True, plain value)`` of ``node[key]``, or ``(False, None)`` if it cannot be resolved."""
    try:
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except (OmegaConfBaseException, KeyError, ValueError, TypeError):
        return False, None
    return True, value


def _check_node(node: DictConfig | ListConfig, path: str) -> None:
    """Check ``node`` (at config ``path``) and the nodes below it."""
    if isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, (DictConfig, ListConfig)):
                _check_node(child, f"{path}[{i}]")
        return
    if node._is_missing() or node._is_none() or node._is_interpolation():
        return
    target = node.get("_target_") if "_target_" in node else None
    params, hints, open_kwargs = _signature(target) if isinstance(target, str) else ({}, {}, True)
    for key in node:
        key = str(key)
        if key in _SPECIAL:
            continue
        sub = f"{path}.{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and "_target_" in child:
            _check_node(child, sub)  # a nested object: checked against its own target
            continue
        if target is not None and not open_kwargs and key not in params:
            hint = (
                "; an experiment config sets model keys for its own model: with another "
                "model= choose its experiment (e.g. experiment=videopose3d_cpu) or drop it "
                "with ~experiment"
                if sub.startswith("model.")
                else ""
            )
            raise ConfigError(
                f"{sub}: not a parameter of {target} (known: {', '.join(sorted(params))}){hint}"
            )
        if isinstance(child, (DictConfig, ListConfig)) and target is None:
            _check_node(child, sub)
        ok, value = _value(node, key)
        if not ok:
            continue
        hint = hints.get(key)
        if hint is not None:
            _validate(sub, value, hint)
        elif _range(sub) is not None:
            _validate(sub, value, Any)


def _validate(path: str, value: Any, hint: Any) -> None:
    """Validate one value against its type ``hint`` and the range of ``path``."""
    checks = [hint]
    rng = _range(path)
    if rng is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        checks.append(typing.Annotated[float, rng])
    for check in checks:
        try:
            adapter = _adapter(check)
        except Exception:  # a hint pydantic cannot build a validator for: nothing to check
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as e:
            errs = e.errors()
            loc = errs[0].get("loc", ())
            where = "".join(f"[{p!r}]" if isinstance(p, int) else "" for p in loc)
            msgs = list(dict.fromkeys(x["msg"] for x in errs))
            msg = msgs[0] if len(msgs) == 1 else "none of the accepted forms: " + "; ".join(msgs)
            raise ConfigError(f"{path}{where}={value!r}: {msg}") from None


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint, config=_LAX)


def _range(path: str) -> Any:
    for pattern, rng in RANGES.items():
        if fnmatch.fnmatchcase(path, pattern):
            return rng
    return None


@functools.cache
def _signature(target: str) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """``(parameters, type hints, takes **kwargs)`` of ``target``'s callable (its ``__init__``
    for a class); hints that cannot be resolved are left out."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:
        return {}, {}, True  # Hydra will report the unknown target itself
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}, {}, True
    params = {k: p for k, p in sig.parameters.items() if k != "self"}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    hints: dict[str, Any] = {}
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # one unresolvable name: resolve the others one by one
        glb = getattr(fn, "__globals__", {})
        for k, p in params.items():
            ann = p.annotation
            if isinstance(ann, str):
                try:
                    hints[k] = eval(ann, glb)  # noqa: S307 - the annotation of our own code
                except Exception:
                    continue
            elif ann is not inspect.Parameter.empty:
                hints[k] = ann
    hints = {k: v for k, v in hints.items() if k in params}
    return params, hints, open_kwargs


class CheckConfig(Callback):
    """Hydra callback: :func:`check_config` before a run or multirun starts (so before any run
    folder exists); a bad config prints one line and exits with status 2.

    ``check`` (optional) is ``"module:function"`` of an extra check taking the config (for
    ``liftpose-eval``: the checkpoint and the overrides).
    """

    def __init__(self, check: str | None = None) -> None:
        self.check = check

    def _run(self, config: DictConfig) -> None:
        cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            if self.check:
                from hydra.utils import get_object

                get_object(self.check.replace(":", "."))(cfg)
            else:
                check_config(cfg)
        except (ConfigError, DataError) as err:
            print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._run(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._run(config)


def _added(override: Any) -> str:
    """``override`` (parsed) as the ``+key=value`` that adds its key."""
    line = override.input_line
    return line if line.startswith("+") else f"+{line}"


def no_such_key(key: str, added: str) -> str:
    """The message for an override of ``key``, a key the config does not have; ``added`` is the
    override that would add it (``+key=value``)."""
    return f"{key}: no such key in the config; add it with {added}"


def composition_error(
    err: Exception,
    overrides: list[str],
    unknown_key: Callable[[str, str], str] = no_such_key,
) -> str:
    """One line, naming the override, for the error Hydra raised composing a config with
    ``overrides``.

    Args:
        err: Hydra's ``OverrideParseException``, ``MissingConfigException`` or
            ``ConfigCompositionException``.
        overrides: the command-line overrides.
        unknown_key: the message for a key the config does not have, from the key and the
            ``+key=value`` override that would add it (default :func:`no_such_key`).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import MissingConfigException, OverrideParseException

    def one_line(text: str) -> str:
        return " ".join(line.strip() for line in text.splitlines() if line.strip())

    if isinstance(err, OverrideParseException):
        return f"{err.override}: not a valid override ({err.message.splitlines()[0]})"
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - the error is reported without naming an override
        parsed = []
    if isinstance(err, ValueError) and "Config group override" in str(err):
        for o in parsed:  # e.g. experiment=null: Hydra drops a group's default with ~group
            if o.value() is None and "." not in o.key_or_group:
                return (
                    f"{o.input_line}: a config group takes one of its options; "
                    f"~{o.key_or_group} drops it"
                )
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        missing = err.missing_cfg_file
        for o in parsed:
            if missing.startswith(f"{o.key_or_group}/"):
                options = ", ".join(err.options or [])
                return f"{o.input_line}: no such {o.key_or_group} option ({options})"
        return f"{missing}: config not found ({', '.join(err.options or [])})"
    cause = err.__cause__
    full_key = getattr(cause, "full_key", None)
    if "not in struct" in str(cause) or "not in 'HydraConf'" in str(cause):
        for o in parsed:
            if full_key and (o.key_or_group + ".").startswith(f"{full_key}."):
                return unknown_key(o.key_or_group, _added(o))
    text = one_line(str(err))
    for o in parsed:
        if f"'{o.key_or_group}'" in text or f"'{o.input_line}'" in text:
            return f"{o.input_line}: {text}"
    return text


def _first_job(overrides: list[str]) -> list[str] | None:
    """The overrides of a multirun's first job (each sweep at its first value), or None when
    a sweep cannot be enumerated here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        out = []
        for o in parsed:
            if o.is_sweep_override():
                out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
            else:
                out.append(o.input_line)
        return out
    except Exception:  # noqa: BLE001 - a glob or interval sweep: the sweeper expands it
        return None


def check_command_line(
    config_name: str,
    argv: list[str],
    unknown_key: Callable[[str, str], str] = no_such_key,
) -> None:
    """Compose ``conf/<config_name>.yaml`` with the overrides of the command line ``argv`` as
    Hydra will (for ``-m``, the sweep's config and its first job's); an override that does not
    compose prints one line (:func:`composition_error`) and exits with status 2.

    Command lines that print help, or pick another config (``--config-name`` ...), are left to
    Hydra.
    """
    from hydra import initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode

    from liftpose.utils.run import CONF_DIR

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return  # Hydra's own parser reports it
    if (
        args.help
        or args.hydra_help
        or args.shell_completion
        or args.info
        or args.config_path
        or args.config_name
        or args.config_dir
        or args.experimental_rerun
    ):
        return
    overrides = list(args.overrides)
    runs = [(overrides, RunMode.MULTIRUN if args.multirun else RunMode.RUN)]
    if args.multirun:
        job = _first_job(overrides)
        if job is not None:
            runs.append((job, RunMode.RUN))
    for ovs, mode in runs:
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                gh = GlobalHydra.instance()
                assert gh.hydra is not None
                cfg = gh.hydra.compose_config(config_name, ovs, run_mode=mode, from_shell=True)
        except (HydraException, ValueError) as err:  # ValueError: e.g. a group set to null
            message = composition_error(err, overrides, unknown_key)  # as typed
            print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
            sys.exit(2)
        missing = [str(k) for k in cfg if k != "hydra" and OmegaConf.is_missing(cfg, k)]
        if missing:  # a mandatory value (???) left unset, e.g. liftpose-eval's ckpt_path
            print(f"{Path(sys.argv[0]).name}: error: {missing[0]}: required, give "
                  f"{missing[0]}=...", file=sys.stderr)  # fmt: skip
            sys.exit(2)
    message = earlier_run_folder(overrides, resume_ok=config_name == "train")
    if message is not None:
        print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
        sys.exit(2)


#: what a run leaves in its folder (Hydra's ``.hydra/`` is written before the run starts)
RUN_FILES = ("metrics.json", "checkpoints", "csv", ".hydra", "error.log")


def earlier_run_folder(overrides: list[str], resume_ok: bool = True) -> str | None:
    """The one-line refusal of a ``hydra.run.dir=`` override that names a folder an earlier run
    wrote into (runs never share a folder: Hydra would rewrite its ``.hydra/`` and the run its
    ``metrics.json`` and checkpoints), else None. (A multirun's ``hydra.sweep.dir`` holds one
    sub-folder per job; ``liftpose-tables`` reuses its table's to add the rows still missing.)

    A training run resuming from a checkpoint inside that folder (``ckpt_path=<dir>/checkpoints/
    last.ckpt``, a requeued job) continues its own run there and passes (``resume_ok``).
    """
    values = {}
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if sep:
            values[key] = value.strip("'\"")
    ckpt = values.get("ckpt_path")
    for key in ("hydra.run.dir",):
        folder = values.get(key)
        if not folder or "${" in folder:
            continue
        path = Path(folder).expanduser()
        found = [name for name in RUN_FILES if (path / name).exists()]
        if not found:
            continue
        if resume_ok and ckpt and path.resolve() in Path(ckpt).expanduser().resolve().parents:
            continue
        return (
            f"{key}={folder}: holds an earlier run ({', '.join(found)}); runs never share a "
            "folder: choose a new one, or resume that run there with ckpt_path="
            f"{folder}/checkpoints/last.ckpt"
        )
    return None

"""Load weights released with the official implementations into liftpose models.

Each supported official model is registered under a short name with :func:`register_official`.
A registered converter knows how to

* translate the official constructor arguments into ours (:meth:`OfficialConverter.model_args`),
* build our model from those (:meth:`OfficialConverter.build`),
* rename/reshape the official ``state_dict`` into ours (:meth:`OfficialConverter.convert`),
* say which call of our model gives what the official forward returns, in the official layout
  (:meth:`OfficialConverter.official_forward`).

:func:`from_official` returns the liftpose model itself, so it trains, evaluates and exports like
any other; its ``forward`` answers in liftpose's layout (a window lifter gives the centre frame in
eval mode). :func:`official_forward` gives the official layout. Per model:

============  =======================================  ==========================================
name          official forward returns                 our call (:func:`official_forward`)
============  =======================================  ==========================================
poseformer    centre frame ``(B, 1, J, 3)``             ``model(x)``
mixste        every frame ``(B, T, J, 3)``              ``model(x)``
mhformer      every frame ``(B, T, J, 3)``              ``model.forward_sequence(x)``
strided       ``(output, output_vte)``: STE centre      ``model.forward_outputs(x)`` as
              ``(B, 1, J, 3)``, VTE ``(B, T, J, 3)``    ``(out["single"], out["full"])``
refine        refined pose ``(B, 1, J, 3)`` from         ``model(pred, xyz)``
              ``(x, x_1)`` (Strided Transformer's)
videopose3d   one pose per window ``(B, T-RF+1, J, 3)``  ``model(x)``
hrnet         heatmaps ``(B, K, H/4, W/4)``             ``model(x)``
============  =======================================  ==========================================

Other model modules register themselves the same way::

    @register_official("mixste")
    class MixSTEOfficial(OfficialConverter):
        ...

:func:`from_official` imports ``liftpose.models.<name>`` on demand, so a converter defined in the
module of the same name needs no explicit import. The ``liftpose-convert`` console script
(:func:`convert_main`) converts a checkpoint file on disk.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from liftpose.models.poseformer import PoseFormer

__all__ = [
    "OfficialConverter",
    "OfficialWeightsError",
    "available_official",
    "convert_main",
    "convert_state_dict",
    "from_official",
    "get_official",
    "official_forward",
    "load_checkpoint",
    "register_official",
    "rename_prefixes",
    "to_tensor_dict",
]

StateDict = dict[str, torch.Tensor]
T = TypeVar("T")


class OfficialWeightsError(ValueError):
    """An official checkpoint does not fit the model it is loaded into."""


class OfficialConverter:
    """Base class of a registered official-weights converter; subclass and register it."""

    #: Registry name, set by :func:`register_official`.
    name: str = ""
    #: Where the official class lives (for messages), e.g. ``"repo: path::Class"``.
    official_class: str = ""

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        """Official constructor arguments -> keyword arguments of our model (default: copy)."""
        return dict(official_args)

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        """Our model from :meth:`model_args` output."""
        raise NotImplementedError

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        """Official ``state_dict`` (tensors) -> our ``state_dict``."""
        raise NotImplementedError

    def official_forward(self, model: nn.Module, *inputs: torch.Tensor) -> Any:
        """What the official model's forward returns for ``inputs``, in the official layout,
        computed by our converted ``model`` (default: ``model(*inputs)``)."""
        return model(*inputs)


_REGISTRY: dict[str, OfficialConverter] = {}


def register_official(
    name: str, *, overwrite: bool = False
) -> Callable[[type[OfficialConverter]], type[OfficialConverter]]:
    """Class decorator registering an :class:`OfficialConverter` subclass under ``name``."""

    def decorator(cls: type[OfficialConverter]) -> type[OfficialConverter]:
        if not (isinstance(cls, type) and issubclass(cls, OfficialConverter)):
            raise TypeError(f"@register_official({name!r}) expects an OfficialConverter subclass")
        prev = _REGISTRY.get(name)
        same = prev is not None and (
            (type(prev).__module__, type(prev).__qualname__) == (cls.__module__, cls.__qualname__)
        )  # a reloaded module re-registers its own class
        if prev is not None and not (overwrite or same):
            raise ValueError(
                f"official converter {name!r} is already registered by {type(prev).__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return decorator


def available_official() -> list[str]:
    """Names currently registered (sorted)."""
    return sorted(_REGISTRY)


def get_official(name: str) -> OfficialConverter:
    """The converter registered as ``name``; imports ``liftpose.models.<name>`` if needed."""
    if name not in _REGISTRY and name.isidentifier():
        module = f"liftpose.models.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown official model {name!r}; known official models: {available_official()}"
        )
    return _REGISTRY[name]


# --------------------------------------------------------------------------------------------
# state-dict helpers


def to_tensor_dict(state_dict: Mapping[str, Any]) -> StateDict:
    """Copy a mapping of numpy arrays and/or tensors into a dict of CPU tensors."""
    out: StateDict = {}
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu()
        elif isinstance(value, np.ndarray | np.generic):
            out[key] = torch.from_numpy(np.array(value, copy=True))
        else:
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, not an array")
    return out


def rename_prefixes(state_dict: Mapping[str, T], rules: Sequence[tuple[str, str]]) -> dict[str, T]:
    """Rename keys by their longest matching prefix in ``rules`` (``(official, ours)`` pairs).

    Keys no rule matches raise :class:`OfficialWeightsError` naming them.
    """
    ordered = sorted(rules, key=lambda r: len(r[0]), reverse=True)
    out: dict[str, T] = {}
    unmatched: list[str] = []
    for key, value in state_dict.items():
        for old, new in ordered:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise OfficialWeightsError(f"unexpected official keys (no conversion rule): {unmatched}")
    return out


def _check_against(model: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str) -> None:
    """Name missing, unexpected and mis-shaped keys before ``load_state_dict(strict=True)``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if shapes:
        problems.append(f"shape mismatches: {shapes}")
    if problems:
        raise OfficialWeightsError(
            f"official {name!r} weights do not match the model built from the given constructor "
            "args (converted key names): " + "; ".join(problems)
        )


def convert_state_dict(
    name: str, state_dict: Mapping[str, Any], constructor_args: Mapping[str, Any]
) -> tuple[StateDict, dict[str, Any]]:
    """Convert an official ``state_dict`` to ours.

    Returns:
        ``(our_state_dict, our_constructor_kwargs)``; checked against a freshly built model.
    """
    conv = get_official(name)
    model_args = conv.model_args(constructor_args)
    model = conv.build(model_args)
    ours = conv.convert(to_tensor_dict(state_dict), constructor_args)
    _check_against(model, ours, name)
    return ours, model_args


def from_official(
    name: str, state_dict: Mapping[str, Any], constructor_args: Mapping[str, Any]
) -> nn.Module:
    """Our model, in eval mode, carrying official weights.

    Args:
        name: registered official model (see :func:`available_official`), e.g. ``"poseformer"``.
        state_dict: official ``state_dict`` with official key names (numpy arrays or tensors).
        constructor_args: keyword arguments of the official constructor.

    Returns:
        The liftpose model (e.g. :class:`~liftpose.models.mhformer.MHFormer`) with the official
        weights. Its ``forward`` answers in liftpose's layout; ``official_forward(name, model,
        x)`` returns what the official forward returns, in the official layout (the table in
        the module docstring says which call that is for each model).

    Raises:
        KeyError: ``name`` is not registered.
        TypeError: an official constructor argument our model does not support.
        OfficialWeightsError: missing, unexpected or mis-shaped weights (named).
    """
    conv = get_official(name)
    model_args = conv.model_args(constructor_args)
    model = conv.build(model_args)
    ours = conv.convert(to_tensor_dict(state_dict), constructor_args)
    _check_against(model, ours, name)
    model.load_state_dict(ours, strict=True)
    return model.eval()


def official_forward(name: str, model: nn.Module, *inputs: torch.Tensor) -> Any:
    """The official forward's return value for ``inputs``, from a model of :func:`from_official`.

    Args:
        name: the registered official model ``model`` was converted from.
        model: our model (any mode; the official outputs are compared in eval mode).
        inputs: the official forward's inputs in the official layout (for the lifters one
            ``(B, T, J, C_in)`` window of normalised 2-D keypoints).

    Returns:
        A tensor, or a tuple in the official order (the Strided Transformer's ``(output,
        output_vte)``), each in the official layout.
    """
    return get_official(name).official_forward(model, *inputs)


# --------------------------------------------------------------------------------------------
# PoseFormer (zczcwh/PoseFormer, common/model_poseformer.py::PoseTransformer)


def _translate_kwargs(
    official_args: Mapping[str, Any], renames: Mapping[str, str], accepted: Iterable[str], what: str
) -> dict[str, Any]:
    accepted = set(accepted)
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in official_args.items():
        ours = renames.get(key, key)
        if ours in accepted:
            out[ours] = value
        else:
            unknown.append(key)
    if unknown:
        raise TypeError(f"unsupported {what} constructor argument(s): {unknown}")
    return out


_POSEFORMER_ARGS = (
    "num_frames",
    "num_joints",
    "in_chans",
    "embed_dim_ratio",
    "depth",
    "num_heads",
    "mlp_ratio",
    "qkv_bias",
    "qk_scale",
    "drop_rate",
    "attn_drop_rate",
    "drop_path_rate",
)


@register_official("poseformer")
class PoseFormerOfficial(OfficialConverter):
    """Official ``PoseTransformer`` -> :class:`~liftpose.models.poseformer.PoseFormer`."""

    official_class = "zczcwh/PoseFormer: common/model_poseformer.py::PoseTransformer"
    key_rules: tuple[tuple[str, str], ...] = (
        ("Spatial_patch_to_embedding.", "joint_embed."),
        ("Spatial_pos_embed", "spatial_pos_embed"),
        ("Temporal_pos_embed", "temporal_pos_embed"),
        ("Spatial_blocks.", "spatial_blocks."),
        ("blocks.", "temporal_blocks."),
        ("Spatial_norm.", "spatial_norm."),
        ("Temporal_norm.", "temporal_norm."),
        ("weighted_mean.", "frame_pool."),
        ("head.0.", "head_norm."),
        ("head.1.", "head."),
    )

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = dict(official_args)
        if args.pop("norm_layer", None) is not None:
            raise TypeError("PoseFormer conversion supports only the default norm_layer")
        return _translate_kwargs(args, {"num_frame": "num_frames"}, _POSEFORMER_ARGS, "PoseFormer")

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return PoseFormer(**model_args)

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        return rename_prefixes(state_dict, self.key_rules)


# --------------------------------------------------------------------------------------------
# checkpoint files and the console script

_WRAPPER_KEYS = ("model_pos", "state_dict", "model")

# Official training scripts pickle numpy RNG states next to the weights ('random_state'). These
# numpy globals (array/dtype reconstruction and RNG constructors) are let through
# ``torch.load(weights_only=True)``; anything else still fails.
_NUMPY_SAFE_GLOBALS = (
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._generator.Generator",
)


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            with warnings.catch_warnings():  # numpy 2 deprecates the numpy.core aliases
                warnings.simplefilter("ignore", DeprecationWarning)
                obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _is_safe_numpy_global(name: str) -> bool:
    return name in _NUMPY_SAFE_GLOBALS or (
        name.startswith("numpy.dtypes.") and name.endswith("DType")
    )


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, also accepting pickled numpy arrays and RNG states."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
        if lister is None:
            raise
        unsafe = lister(path)
        if not unsafe or not all(_is_safe_numpy_global(n) for n in unsafe):
            raise
        allowed = [obj for obj in map(_resolve, _NUMPY_SAFE_GLOBALS) if obj is not None]
        dtypes = getattr(np, "dtypes", None)  # dtype classes are not listed by the scan above
        if dtypes is not None:
            allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(path: str | Path) -> StateDict:
    """Read an official checkpoint as a flat ``{key: tensor}`` state dict.

    ``.npz`` files are read with numpy; anything else with ``torch.load(weights_only=True)``
    (numpy arrays and RNG states, which official scripts save next to the weights, allowed). A
    top-level ``model_pos`` / ``state_dict`` / ``model`` entry is unwrapped and a DataParallel
    ``module.`` prefix is stripped.
    """
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw: Mapping[str, Any] = {k: data[k] for k in data.files}
    else:
        raw = _torch_load(path)
    if not isinstance(raw, Mapping):
        raise OfficialWeightsError(f"{path}: expected a state dict, got {type(raw).__name__}")
    for key in _WRAPPER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping):
            raw = inner
            break
    sd = to_tensor_dict({k: v for k, v in raw.items()})
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _read_constructor_args(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object")
    args = cfg.get("constructor_args", cfg)
    if not isinstance(args, dict):
        raise ValueError(f"{path}: constructor_args must be a JSON object")
    return args


def convert_main(argv: Sequence[str] | None = None) -> int:
    """``liftpose-convert NAME CHECKPOINT --config config.json --out converted.pt``."""
    parser = argparse.ArgumentParser(
        prog="liftpose-convert",
        description="Convert an official checkpoint into a liftpose state_dict.",
    )
    parser.add_argument(
        "name", help=f"official model name; registered: {', '.join(available_official())}"
    )
    parser.add_argument("checkpoint", type=Path, help="official .pth/.bin/.npz checkpoint")
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="JSON with the official constructor arguments (flat, or under 'constructor_args')",
    )
    parser.add_argument("--out", type=Path, required=True, help="output .pt file")
    args = parser.parse_args(argv)

    try:
        get_official(args.name)  # an unknown name fails before any file is read
        official_args = _read_constructor_args(args.config)
        sd = load_checkpoint(args.checkpoint)
        ours, model_args = convert_state_dict(args.name, sd, official_args)
    except (KeyError, TypeError, ValueError, OSError, pickle.UnpicklingError) as err:
        print(f"liftpose-convert: error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "name": args.name,
            "official_constructor_args": official_args,
            "constructor_args": model_args,
            "state_dict": ours,
        },
        args.out,
    )
    print(f"wrote {len(ours)} tensors for {args.name!r} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(convert_main())

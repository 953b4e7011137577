"""Side-by-side timing of liftpose against the official implementations.

    python -m liftpose.bench --official <dir> --threads 1 --skip-data --skip-model \
        --skip-render --attention-frames --sequence

``<dir>`` holds checkouts of the official repositories under their own names
(``PoseFormer``, ``StridedTransformer-Pose3D``, ``MixSTE``, ``VideoPose3D``, ``MHFormer``);
none of their code is part of liftpose. For each case the official model is built from its own
module at the paper's dimensions, its freshly initialised weights are loaded into the liftpose
model with :func:`liftpose.models.official.from_official`, and both are timed in one
interleaved run (the same batch, the same threads, medians of ``--repeats`` rounds):

* training: one optimiser step as the official training loop takes it (the official model's
  forward, MPJPE on each of its outputs, backward, the official optimiser) against the liftpose
  module's (:meth:`~liftpose.modules.LiftingModule.training_loss`, the same optimiser) under
  the default recipe of the model's paper-dimension experiment config (``trainer.precision``,
  ``module.compile`` of ``<model>_h36m``); the official code runs in float32, as released;
* inference: the official test-time step (the input and its mirror, averaged) against
  :meth:`~liftpose.modules.LiftingModule.predict_eval`;
* ``videopose3d-243/test``: a whole 2000-frame test sequence, official
  ``UnchunkedGenerator``-style (``TemporalModel`` over the edge-padded sequence and its mirror)
  against :meth:`~liftpose.modules.LiftingModule.predict_sequence` and against the per-window
  path liftpose's test used before (a centred window per frame, ``forward_1f``);
* ``data``: training batches of the official ``ChunkedGenerator`` (VideoPose3D's
  ``common/generators.py``: 1024 windows of 243 frames, flips) against
  :class:`~liftpose.data.datamodule.LiftingDataModule` on the embedded data.

Modules the official code imports but never uses at these settings (``timm``'s helpers,
``local_attention``) get stand-ins when they are not installed: ``timm.models.layers.DropPath``
is liftpose's :class:`~liftpose.models.blocks.DropPath` (the same operation).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from liftpose.bench import _autocast, experiment_module, interleaved
from liftpose.data.skeleton import H36M17
from liftpose.data.windows import flip_pose
from liftpose.models.official import from_official

__all__ = ["CASES", "Case", "official_import", "print_side_by_side", "side_by_side"]

#: top-level packages of the official repositories (cleared between repositories)
_OFFICIAL_PACKAGES = ("common", "model")


@contextlib.contextmanager
def official_import(repo: Path) -> Iterator[None]:
    """Import from an official checkout (its ``common``/``model`` packages shadow nothing of
    another checkout's or of liftpose's; modules it imported stay referenced by its classes)."""
    if not repo.is_dir():
        raise FileNotFoundError(f"official checkout not found: {repo}")
    _install_stand_ins()
    saved = {
        k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in _OFFICIAL_PACKAGES
    }
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for k in [k for k in sys.modules if k.split(".")[0] in _OFFICIAL_PACKAGES]:
            del sys.modules[k]
        sys.modules.update(saved)


def _install_stand_ins() -> None:
    """Minimal ``timm`` and ``local_attention`` modules when they are not installed."""
    try:
        import timm  # noqa: F401
    except ImportError:
        from liftpose.models.blocks import DropPath

        def module(name: str, **attrs: Any) -> types.ModuleType:
            m = types.ModuleType(name)
            m.__dict__.update(attrs)
            sys.modules[name] = m
            return m

        def unavailable(*_: Any, **__: Any) -> None:
            raise RuntimeError("timm stand-in: pretrained loading is not available")

        module(
            "timm.data",
            IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406),
            IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225),
        )
        module("timm.models.helpers", load_pretrained=unavailable)
        module(
            "timm.models.layers",
            DropPath=DropPath,
            to_2tuple=lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x),
            trunc_normal_=torch.nn.init.trunc_normal_,
        )
        module("timm.models.registry", register_model=lambda fn: fn)
        module("timm.models")
        module("timm")
    try:
        import local_attention  # noqa: F401
    except ImportError:

        class LocalAttention(torch.nn.Module):
            def __init__(self, *_: Any, **__: Any) -> None:
                raise RuntimeError("local_attention stand-in: not used by MixSTE2")

        stand_in = types.ModuleType("local_attention")
        stand_in.LocalAttention = LocalAttention
        sys.modules["local_attention"] = stand_in


def _mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The official ``mpjpe`` (mean joint distance)."""
    return torch.norm(pred - target, dim=-1).mean()


def _mirror(x: torch.Tensor) -> torch.Tensor:
    return flip_pose(x, H36M17.flip_permutation)


@dataclass
class Case:
    """One model of the comparison.

    ``build(dir) -> (official train model, official eval model, official args)`` (the two share
    weights; different classes only for VideoPose3D); ``official_train(model, x, y)`` returns
    the loss of the official training step; ``official_out(model, x)`` the eval prediction
    ``(B, T_out, J, 3)`` of the official test code (before flip averaging).
    """

    repo: str
    name: str  # from_official name
    experiment: str  # the paper-dimension config whose recipe (and loss, optimiser) liftpose runs
    frames: int
    batch: int
    build: Callable[[Path], tuple[torch.nn.Module, torch.nn.Module, dict]]
    official_train: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    official_out: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    optimizer: Callable[..., torch.optim.Optimizer]
    target: str = "centre"


def _args(**kw: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(**kw)


#: constructor arguments PoseFormer and MixSTE2 share (their papers' settings)
_TRANSFORMER_ARGS = dict(
    num_joints=17, in_chans=2, num_heads=8, mlp_ratio=2.0, qkv_bias=True, qk_scale=None,
    drop_path_rate=0.1,
)  # fmt: skip


def _poseformer(frames: int) -> Callable[[Path], tuple]:
    def build(root: Path) -> tuple:
        with official_import(root / "PoseFormer"):
            cls = importlib.import_module("common.model_poseformer").PoseTransformer
        args = _TRANSFORMER_ARGS | dict(num_frame=frames, embed_dim_ratio=32, depth=4)
        m = cls(**args)
        return m, m, args

    return build


def _mixste(frames: int) -> Callable[[Path], tuple]:
    def build(root: Path) -> tuple:
        with official_import(root / "MixSTE"):
            cls = importlib.import_module("common.model_cross").MixSTE2
        args = _TRANSFORMER_ARGS | dict(num_frame=frames, embed_dim_ratio=512, depth=8)
        m = cls(**args)
        return m, m, args

    return build


_STRIDES = {27: [3, 3, 3], 81: [9, 3, 3], 243: [3, 9, 9], 351: [3, 9, 13]}


def _strided(frames: int) -> Callable[[Path], tuple]:
    def build(root: Path) -> tuple:
        with official_import(root / "StridedTransformer-Pose3D"):
            cls = importlib.import_module("model.strided_transformer").Model
        args = dict(frames=frames, n_joints=17, out_joints=17, layers=3, channel=256, d_hid=512,
                    stride_num=_STRIDES[frames], pad=frames // 2)  # fmt: skip
        m = cls(_args(**args))
        return m, m, args

    return build


def _mhformer(frames: int) -> Callable[[Path], tuple]:
    def build(root: Path) -> tuple:
        with official_import(root / "MHFormer"):
            cls = importlib.import_module("model.mhformer").Model
        args = dict(frames=frames, n_joints=17, out_joints=17, layers=3, channel=512, d_hid=1024,
                    pad=frames // 2)  # fmt: skip
        m = cls(_args(**args))
        return m, m, args

    return build


def _videopose3d(frames: int) -> Callable[[Path], tuple]:
    widths = [3] * round(np.log(frames) / np.log(3))

    def build(root: Path) -> tuple:
        with official_import(root / "VideoPose3D"):
            mod = importlib.import_module("common.model")
        args = dict(num_joints_in=17, in_features=2, num_joints_out=17, filter_widths=widths,
                    causal=False, dropout=0.25, channels=1024)  # fmt: skip
        train = mod.TemporalModelOptimized1f(**args)
        full = mod.TemporalModel(**args, dense=False)
        full.load_state_dict(train.state_dict())
        return train, full, {**args, "dense": False}

    return build


def _centre(t: torch.Tensor) -> torch.Tensor:
    c = t.shape[1] // 2
    return t[:, c : c + 1]


def _strided_train(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    single, full = m(x)  # the official full-to-single loss
    return _mpjpe(full, y) + _mpjpe(single, _centre(y))


_ADAMW = partial(torch.optim.AdamW, lr=2e-4, weight_decay=0.1)
_AMSGRAD = partial(torch.optim.Adam, lr=1e-3, amsgrad=True)

#: The comparison's cases; the issue's targets are poseformer-81, strided-243 and mixste-27.
CASES: dict[str, Case] = {
    "poseformer-81": Case("PoseFormer", "poseformer", "poseformer_h36m", 81, 16, _poseformer(81),
                          lambda m, x, y: _mpjpe(m(x), _centre(y)), lambda m, x: m(x), _ADAMW),
    "strided-243": Case("StridedTransformer-Pose3D", "strided", "strided_h36m", 243, 8,
                        _strided(243), _strided_train, lambda m, x: m(x)[0], _AMSGRAD, "sequence"),
    "mixste-27": Case("MixSTE", "mixste", "mixste_h36m", 27, 4, _mixste(27),
                      lambda m, x, y: _mpjpe(m(x), y), lambda m, x: m(x), _ADAMW, "sequence"),
    "mhformer-27": Case("MHFormer", "mhformer", "mhformer_h36m", 27, 16, _mhformer(27),
                        lambda m, x, y: _mpjpe(m(x), y), lambda m, x: _centre(m(x)), _AMSGRAD,
                        "sequence"),
    "videopose3d-243": Case("VideoPose3D", "videopose3d", "videopose3d_h36m", 243, 64,
                            _videopose3d(243), lambda m, x, y: _mpjpe(m(x), _centre(y)),
                            lambda m, x: m(x), _AMSGRAD),
}  # fmt: skip


def recipe_of(experiment: str) -> tuple[str, bool]:
    """``(precision, compile)`` of an experiment config: ``("bf16" | "fp32", module.compile)``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from liftpose.utils.run import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}"])
    finally:
        GlobalHydra.instance().clear()
    precision = "bf16" if "bf16" in str(cfg.trainer.precision) else "fp32"
    return precision, bool(cfg.module.get("compile", False))


def _ours(case: Case, official: torch.nn.Module, args: dict, compile: bool):
    """The liftpose module with the official weights (the experiment's loss terms replaced by
    plain MPJPE, as the official step; its optimiser is the official one)."""
    _, module = experiment_module(case.experiment, [f"frames={case.frames}"])
    model = from_official(case.name, official.state_dict(), args)
    module.model = model
    module.loss = type(module.loss)(terms={"mpjpe": {"weight": 1.0}})
    if compile:
        model.compile()
    return module


def side_by_side(root: Path, cases: list[str], device: str, repeats: int) -> list[tuple]:
    """Rows ``(case, what, official s, liftpose s, recipe)`` per case (training step,
    inference step; the VideoPose3D test sequence; the data generator)."""
    rows = []
    for key in cases:
        if key == "data":
            rows += _data_rows(root, repeats)
            continue
        case = CASES[key]
        torch.manual_seed(0)
        off_train, off_eval, args = case.build(root)
        precision, compile = recipe_of(case.experiment)
        module = _ours(case, off_train, args, compile).to(device)
        off_train.to(device)
        off_eval.to(device)
        recipe = precision + (" + compile" if compile else "")
        b, t = case.batch, case.frames
        x = torch.randn(b, t, 17, 2, device=device) * 0.3
        y = torch.randn(b, t, 17, 3, device=device) * 0.3
        if case.target == "centre":
            y_ours = _centre(y)
        else:
            y_ours = y
        opt_off = case.optimizer(off_train.parameters())
        opt_ours = case.optimizer(module.parameters())
        auto = _autocast(device, precision)

        def off_step(m=off_train, opt=opt_off, case=case, x=x, y=y) -> None:
            m.train()
            loss = case.official_train(m, x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def ours_step(m=module, opt=opt_ours, auto=auto, x=x, y=y_ours) -> None:
            m.train()
            with auto:
                loss, _ = m.training_loss(m.model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        @torch.no_grad()
        def off_infer(m=off_train, case=case, x=x) -> None:  # VideoPose3D: the 1-frame model
            m.eval()
            p = case.official_out(m, x)
            flipped = _mirror(case.official_out(m, _mirror(x)))
            (p + flipped) / 2

        @torch.no_grad()
        def ours_infer(m=module, auto=auto, x=x) -> None:
            m.eval()
            with auto:
                m.predict_eval(x)

        fns = {"off/train": off_step, "ours/train": ours_step}
        fns |= {"off/infer": off_infer, "ours/infer": ours_infer}
        times = interleaved(fns, repeats, device=device)
        rows.append((key, f"train, batch {b}", times["off/train"], times["ours/train"], recipe))
        rows.append((key, f"infer, batch {b}", times["off/infer"], times["ours/infer"], recipe))
        if case.name == "videopose3d":
            rows += _sequence_rows(key, off_eval, module, auto, device, repeats, recipe)
    return rows


def _sequence_rows(key, official, module, auto, device, repeats, recipe) -> list[tuple]:
    """A 2000-frame test sequence: the official whole-sequence evaluation, liftpose's
    ``predict_sequence`` and its former per-window test."""
    rf = module.model.receptive_field
    seq = torch.randn(2000, 17, 2, device=device) * 0.3

    @torch.no_grad()
    def off_seq() -> None:
        pad = rf // 2
        padded = torch.cat([seq[:1].expand(pad, -1, -1), seq, seq[-1:].expand(pad, -1, -1)])
        both = torch.stack([padded, _mirror(padded)])  # the generator's mirrored copy
        out = official.eval()(both)
        (out[0] + _mirror(out[1])) / 2

    def ours_seq() -> None:
        with auto:
            module.predict_sequence(seq)

    def ours_windows() -> None:
        with torch.no_grad(), auto:
            module._lift_windows(seq, None, rf, 1024)

    t = interleaved(
        {"off": off_seq, "ours": ours_seq, "windows": ours_windows}, repeats, device=device
    )
    return [
        (key, "test sequence, 2000 frames", t["off"], t["ours"], recipe),
        (key, "  per-window test (before)", t["off"], t["windows"], recipe),
    ]


def _data_rows(root: Path, repeats: int, frames: int = 243, batch: int = 1024) -> list[tuple]:
    """The official ``ChunkedGenerator`` against the DataModule, training batches."""
    from liftpose.data.datamodule import LiftingDataModule

    bench_root = Path(".cache/liftpose/bench")
    dm = LiftingDataModule(
        root=str(bench_root / "hdm05"), name="hdm05", keypoints="det",
        train_subjects=["bd", "bk"], test_subjects=["dg"], embedded=True,
        receptive_field=frames, batch_size=batch, cache_dir=str(bench_root / "cache"),
    )  # fmt: skip
    dm.prepare_data()  # the embedded data, built once
    dm.setup()
    arrays = dm.splits["train"]
    seq2 = [arrays.pose_2d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    seq3 = [arrays.pose_3d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    sk = dm.skeleton
    left, right = list(sk.left), list(sk.right)
    with official_import(root / "VideoPose3D"):
        gen_cls = importlib.import_module("common.generators").ChunkedGenerator
    gen = gen_cls(batch, None, seq3, seq2, 1, pad=frames // 2, shuffle=True, augment=True,
                  kps_left=left, kps_right=right, joints_left=left, joints_right=right,
                  endless=True)  # fmt: skip
    epoch = gen.next_epoch()
    loader = dm.train_dataloader()
    it = iter(loader)

    def official() -> None:
        for _ in range(4):
            next(epoch)

    def ours() -> None:
        nonlocal it
        for _ in range(4):
            try:
                next(it)
            except StopIteration:
                it = iter(loader)
                next(it)

    t = interleaved({"off": official, "ours": ours}, repeats)
    return [("data", f"4 batches of {batch} x {frames} frames", t["off"], t["ours"], "fp32")]


def print_side_by_side(con: Console, args: argparse.Namespace) -> None:
    cases = args.official_cases or [*CASES, "data"]
    rows = side_by_side(args.official, cases, args.device, args.repeats)
    tab = Table(
        title=f"Side by side with the official code, {args.device}, {torch.get_num_threads()} "
        f"threads, medians of {args.repeats} interleaved rounds"
    )
    for c in ("case", "step", "official ms", "liftpose ms", "official/liftpose", "liftpose recipe"):
        tab.add_column(c, justify="right")
    for key, what, off, ours, recipe in rows:
        tab.add_row(key, what, f"{off * 1e3:,.1f}", f"{ours * 1e3:,.1f}", f"{off / ours:.2f}x",
                    recipe)  # fmt: skip
    con.print(tab)
    con.print(
        "official: float32 as released; liftpose: its experiment config's recipe "
        "(trainer.precision, module.compile), official weights via from_official"
    )

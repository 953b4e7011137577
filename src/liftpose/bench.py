"""``make bench``: throughput figures on this machine.

* DataModule: training windows per second of the batched gather (flip augmentation on), against
  a reference generator doing the work of the official ``ChunkedGenerator`` (a Python loop
  over the batch, ``np.pad`` for windows crossing a sequence end, per-sample flips).
* Lifters at their papers' dimensions (PoseFormer; the SA/TA lifter of attn-2d3d-system):
  training samples per second (forward, backward, optimiser step; every output supervised) and
  inference samples per second (with test-time flip averaging), at 27 and 81 frames; on a CUDA
  device also the model FLOPs utilisation (``torch.utils.flop_counter`` FLOPs over the
  device's peak, :data:`PEAK_TFLOPS`).
* The Strided Transformer with dense and strided attention.
* One attention layer, dense vs strided (pairs only) vs the masked reference, at 81 to 1024
  frames: time and peak memory, training and inference, and the fitted growth exponents.
* Test-time lifting of a whole sequence (VideoPose3D's one pass) against a window per frame.
* ``--recipe``: fp32, bf16 autocast and ``torch.compile`` per experiment config, with the
  compile time (the configs' defaults come from it).
* ``--official DIR``: side by side with the official implementations
  (:mod:`liftpose.sidebyside`).
* The image -> 3-D system (``liftpose-infer``): frames per second of each stage (decode,
  detect with BlazePose, lift, draw) on a 2-second 25 fps clip of a real photo panned across
  the frame (``../shared/data/coco_mini``; a rendered person without it), lifted by the ready
  lifter (an untrained ``main_cpu`` PoseFormer where none is installed: the speed is the same).
* Images: rendered person images (400 px wide, the embedded COCO set) and 128x96 crops per
  second, and crops per second through a detector (HRNet-W32 + CAM, flip test) as in
  ``liftpose-data detect``.

    python -m liftpose.bench                      # defaults
    python -m liftpose.bench --frames 27 81 243 --device cuda --precision bf16
    python -m liftpose.bench --skip-data --models attn_lifter
    python -m liftpose.bench --threads 1 --recipe             # slow: compiles every model
    python -m liftpose.bench --threads 1 --official /path/to/checkouts

Timings marked interleaved run every contender once per round and report medians, so that a
shared machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table


def _rate(fn: Callable[[], int], min_seconds: float, warmup: int = 1, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of items per second of ``fn`` (returns items processed)."""
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            n += fn()
            dt = time.perf_counter() - t0
            if dt >= min_seconds / repeats:
                rates.append(n / dt)
                break
    return float(np.median(rates))


def per_sample_batches(arrays, receptive_field: int, batch_size: int, perm: np.ndarray, rng):
    """Batches built one window at a time, the way the official ``ChunkedGenerator``
    (VideoPose3D, PoseFormer, MixSTE: ``common/generators.py``) builds them, for comparison.

    Its work, written here independently: a table of ``(sequence, start, end, flip)`` pairs
    (every window twice, once mirrored) permuted once per epoch, then a Python loop over the
    batch that slices each window from its sequence into a preallocated buffer, calling
    ``np.pad`` (edge) only for windows that cross a sequence end, and mirrors the mirrored
    samples in place (x negated, left/right joints swapped by index lists).
    """
    pad = receptive_field // 2
    seqs2 = [arrays.pose_2d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    seqs3 = [arrays.pose_3d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    pairs = np.array(
        [(i, f, f + 1, flip) for i, n in enumerate(arrays.seq_len) for f in range(n)
         for flip in (0, 1)], dtype=np.int64,
    )  # fmt: skip
    swap = [int(j) for j in np.flatnonzero(perm != np.arange(len(perm)))]
    swapped = [int(perm[j]) for j in swap]
    b2 = np.empty((batch_size, receptive_field) + arrays.pose_2d.shape[1:], np.float32)
    b3 = np.empty((batch_size, 1) + arrays.pose_3d.shape[1:], np.float32)
    while True:  # epochs
        yield from _reference_epoch(
            rng.permutation(pairs), seqs2, seqs3, pad, b2, b3, swap, swapped
        )


def _reference_epoch(order, seqs2, seqs3, pad, b2, b3, swap, swapped):
    """One epoch of :func:`per_sample_batches` over the permuted ``order`` of pairs."""
    batch_size = len(b2)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        for k, (i, f0, f1, flip) in enumerate(order[start : start + batch_size]):
            seq2 = seqs2[i]
            lo, hi = f0 - pad, f1 + pad
            lo_c, hi_c = max(lo, 0), min(hi, len(seq2))
            if lo_c != lo or hi_c != hi:
                b2[k] = np.pad(seq2[lo_c:hi_c], ((lo_c - lo, hi - hi_c), (0, 0), (0, 0)), "edge")
            else:
                b2[k] = seq2[lo:hi]
            b3[k] = seqs3[i][f0:f1]
            if flip:
                b2[k, :, :, 0] *= -1
                b2[k, :, swap] = b2[k, :, swapped]
                b3[k, :, :, 0] *= -1
                b3[k, :, swap] = b3[k, :, swapped]
        yield torch.from_numpy(b2), torch.from_numpy(b3)


def bench_data(frames: list[int], batch_size: int, seconds: float, root: Path) -> list[tuple]:
    from liftpose.data.datamodule import LiftingDataModule

    rows = []
    for t in frames:
        dm = LiftingDataModule(
            root=str(root / "hdm05"),
            name="hdm05",
            keypoints="det",
            train_subjects=["bd", "bk"],
            test_subjects=["dg"],
            embedded=True,
            receptive_field=t,
            batch_size=batch_size,
            cache_dir=str(root / "cache"),
        )
        dm.prepare_data()
        dm.setup()

        loader = dm.train_dataloader()  # built once, as in training; each pass is an epoch

        def ours(loader=loader) -> int:
            n = 0
            for i, b in enumerate(loader):
                n += b["pose_2d"].shape[0]
                if i == 50:
                    break
            return n

        gen = per_sample_batches(
            dm.splits["train"],
            t,
            batch_size,
            dm.skeleton.flip_permutation,
            np.random.default_rng(0),
        )  # fmt: skip  (built once, as the official generator before training)

        def reference(gen=gen) -> int:
            return sum(next(gen)[0].shape[0] for _ in range(6))

        r_ours = _rate(ours, seconds)
        r_ref = _rate(reference, seconds)
        rows.append((t, r_ours, r_ref, r_ours / r_ref))
    return rows


def _models() -> dict[str, Callable[..., torch.nn.Module]]:
    """Bench names -> constructors at the papers' dimensions (``name:strided`` = strided
    sparse attention in the model's attention layers that take it)."""
    from functools import partial

    from liftpose.models.attn_lifter import AttentionLifter
    from liftpose.models.mixste import MixSTE
    from liftpose.models.poseformer import PoseFormer
    from liftpose.models.strided import StridedTransformer

    return {
        "poseformer": PoseFormer,
        "attn_lifter": AttentionLifter,
        "mixste": MixSTE,
        "strided": StridedTransformer,
        "strided:strided": partial(StridedTransformer, attention="strided"),
        "strided:strided-both": partial(
            StridedTransformer, attention="strided", attention_in="both"
        ),
    }


def _loss(out: torch.Tensor | dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Summed MPJPE of every output ``(B, 1 | T, J, 3)`` against ``y: (B, T, J, 3)``."""
    total = y.new_zeros(())
    for p in out.values() if isinstance(out, dict) else [out]:
        c = y.shape[1] // 2
        target = y if p.shape[1] == y.shape[1] else y[:, c : c + 1]
        total = total + torch.linalg.vector_norm(p.float() - target, dim=-1).mean()
    return total


def bench_model(
    frames: list[int],
    batch_size: int,
    seconds: float,
    device: str,
    precision: str,
    name: str = "poseformer",
) -> list[tuple]:
    from liftpose.data.skeleton import H36M17
    from liftpose.data.windows import flip_pose

    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    perm = torch.as_tensor(H36M17.flip_permutation, device=device)
    rows = []
    for t in frames:
        torch.manual_seed(0)
        model = _models()[name](num_frames=t).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(batch_size, t, 17, 2, device=device)
        y = torch.randn(batch_size, t, 17, 3, device=device)
        auto = torch.autocast(
            device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None
        )

        def sync() -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def train_step(model=model, auto=auto, x=x, y=y, opt=opt) -> int:
            model.train()
            with auto:
                loss = _loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            return batch_size

        @torch.no_grad()
        def infer_step(model=model, auto=auto, x=x) -> int:
            model.eval()
            with auto:
                p = model(x)
                p = (p + flip_pose(model(flip_pose(x, perm)), perm)) / 2
            sync()
            return batch_size

        params = sum(p.numel() for p in model.parameters()) / 1e6
        tr, inf = _rate(train_step, seconds), _rate(infer_step, seconds)
        mfu: tuple[float | None, float | None] = (None, None)
        peak = device_peak_tflops(device, precision)
        if peak:  # model FLOPs utilisation: counted FLOPs per step x steps/s over the peak
            flops_tr, flops_inf = count_flops(train_step), count_flops(infer_step)
            mfu = (
                flops_tr * tr / batch_size / (peak * 1e12),
                flops_inf * inf / batch_size / (peak * 1e12),
            )
        rows.append((t, params, tr, inf, *mfu))
    return rows


def bench_render(seconds: float, device: str) -> list[tuple[str, float]]:
    """Rendered images and crops per second, and crops per second through HRNet-W32 + CAM."""
    from liftpose.data.capture import RigConfig, place_cameras
    from liftpose.data.detect import detect_crops
    from liftpose.data.embedded import load_sample
    from liftpose.data.render import render_frames, render_person, scaled_camera
    from liftpose.models.backbones import HRNet

    clip = next(iter(next(iter(load_sample().values())).values()))[:64]  # (F, 17, 3) world
    cam = place_cameras({"clip": clip}, RigConfig(), np.random.default_rng(0))[0]
    joints = cam.world_to_camera(clip)
    small = scaled_camera(cam, 400 / cam.res_w)

    def images() -> int:
        for j in joints[:8]:
            render_person(j, small)
        return 8

    def crop_batch() -> int:
        return len(render_frames(joints[:16], cam, crop_size=(128, 96))[0])

    out = [
        ("render 400 px image", _rate(images, seconds)),
        ("render 128x96 crop", _rate(crop_batch, seconds)),
    ]
    crops = render_frames(joints[:32], cam, crop_size=(128, 96))[0]
    model = HRNet(width=32, cam={"branches": [3], "blocks": [-2, -1]}).to(device).eval()
    info = {"image_size": (128, 96), "heatmap_size": (32, 24), "flip_permutation": list(range(17))}
    out.append(
        (
            "HRNet-W32+CAM 128x96 crop, flip test",
            _rate(lambda: len(detect_crops(model, crops, info, 32, True, device)[0]), seconds),
        )
    )
    return out


def bench_system(device: str, frames: int = 50) -> dict[str, float]:
    """Frames per second of each stage of ``liftpose-infer`` on a short video (see above)."""
    import os
    import tempfile

    import cv2
    import imageio.v2 as imageio

    from liftpose.system.lifting import READY_LIFTER, Lifter, load_lifter
    from liftpose.system.pipeline import Settings, run

    shared = Path(os.environ.get("LIFTPOSE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    photo = shared / "data" / "coco_mini" / "val2017" / "000000397133.jpg"
    if photo.is_file():
        img = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    else:
        from liftpose.data.capture import RigConfig, place_cameras
        from liftpose.data.embedded import load_sample
        from liftpose.data.render import render_person, scaled_camera

        clip = next(iter(next(iter(load_sample().values())).values()))[:1]
        cam = place_cameras({"clip": clip}, RigConfig(), np.random.default_rng(0))[0]
        img = render_person(cam.world_to_camera(clip)[0], scaled_camera(cam, 0.5)).image
    if READY_LIFTER.is_file():
        lifter = load_lifter(READY_LIFTER)
    else:
        from liftpose.modules.build import build
        from liftpose.tables.run import compose_job

        cfg = compose_job([])
        _, module = build(cfg)
        lifter = Lifter(module.eval(), cfg, Path("untrained main_cpu"), cfg.frames, 50.0,
                        "centred", 17)  # fmt: skip
    h, w = img.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        with imageio.get_writer(video, fps=25, codec="libx264", macro_block_size=2,
                                ffmpeg_log_level="error") as wr:  # fmt: skip
            for i in range(frames):
                a = np.float32([[1, 0, 2 * i - frames], [0, 1, 0]])
                wr.append_data(cv2.warpAffine(img, a, (w, h), borderMode=cv2.BORDER_REFLECT))
        res = run(Settings(input=video, out=Path(tmp) / "out", lifter=lifter, device=device,
                           progress=False), log=lambda *_: None)  # fmt: skip
    t = res["times"]
    return {k: t.frames[k] / max(t.seconds[k], 1e-9) for k in t.seconds if t.frames.get(k)}


# --------------------------------------------------------------------------------------------
# interleaved timing, memory, FLOPs


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.0,
    device: str = "cpu",
) -> dict[str, float]:
    """Median seconds per call of each ``fn``, timed in rounds that call every ``fn`` in turn
    (so that a shared machine's load falls on all of them alike). A call is repeated within
    its round until ``min_seconds`` have passed (short calls); ``warmup`` untimed calls first.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
        _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                _sync(device)
                n += 1
                dt = time.perf_counter() - t0
                if dt >= min_seconds:
                    break
            times[name].append(dt / n)
    return {k: float(np.median(v)) for k, v in times.items()}


def peak_memory(fn: Callable[[], object], device: str) -> float | None:
    """Peak bytes allocated while ``fn`` runs, beyond what was allocated before: the CUDA
    allocator's statistics, or on the CPU ``torch.distributed._tools.mem_tracker.MemTracker``
    (None where unavailable)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:  # pragma: no cover - torch builds without distributed
        return None
    tracker = MemTracker()
    with tracker:
        fn()
    peak = tracker.get_tracker_snapshot("peak")
    return float(sum(v.get("Total", 0) for k, v in peak.items() if str(k).startswith("cpu")))


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of ``log(seconds)`` against ``log(size)``: ``t ~ n^slope``."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


#: Dense bf16 / fp32 (TF32) tensor-core peaks, TFLOP/s, by device name (vendor data sheets).
PEAK_TFLOPS = {
    "H200": (989.4, 494.7),
    "H100 SXM": (989.4, 494.7),
    "H100 PCIe": (756.0, 378.0),
    "H100": (989.4, 494.7),
    "A100": (312.0, 156.0),
    "L40S": (362.1, 183.0),
    "A10": (125.0, 62.5),
    "L4": (121.0, 60.0),
}


def device_peak_tflops(device: str, precision: str) -> float | None:
    """The peak of the CUDA device for ``precision`` (bf16, or fp32 with TF32 matmuls), from
    its name (:data:`PEAK_TFLOPS`); None for an unknown device or the CPU."""
    if not str(device).startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key, (bf16, tf32) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 if precision == "bf16" else tf32
    return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter``: matmuls, convolutions and
    attention kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# --------------------------------------------------------------------------------------------
# the attention layer: dense vs strided


def bench_attention(
    frames: list[int],
    device: str,
    batch: int = 4,
    dim: int = 128,
    heads: int = 8,
    repeats: int = 5,
    min_seconds: float = 0.05,
) -> tuple[list[tuple], dict[tuple[str, str], float]]:
    """One attention layer (``qkv``, attention, ``proj``; ``dim`` channels, ``heads`` heads,
    ``batch`` sequences) per pattern: ``dense``, ``strided`` (pairs only) and ``masked`` (the
    strided pattern as a mask over dense attention, the reference). Training = forward and
    backward, inference = forward without gradients; interleaved medians.

    Returns rows ``(n, kind, train s, infer s, train peak bytes, infer peak bytes)`` and the
    growth exponent of each ``(kind, mode)``.
    """
    from liftpose.models.blocks import Attention

    rows = []
    for n in frames:
        torch.manual_seed(0)
        x = torch.randn(batch, n, dim, device=device, requires_grad=True)
        layers = {
            "dense": Attention(dim, heads, qkv_bias=True),
            "strided": Attention(dim, heads, qkv_bias=True, pattern="strided"),
            "masked": Attention(dim, heads, qkv_bias=True, pattern="strided", sparse=False),
        }
        fns: dict[str, Callable[[], object]] = {}
        for kind, layer in layers.items():
            layer.to(device)

            def train(layer=layer, x=x) -> None:
                layer(x).sum().backward()

            @torch.no_grad()
            def infer(layer=layer, x=x) -> None:
                layer(x)

            fns[f"{kind}/train"], fns[f"{kind}/infer"] = train, infer
        t = interleaved(fns, repeats, min_seconds=min_seconds, device=device)
        for kind in layers:
            mem_t = peak_memory(fns[f"{kind}/train"], device)
            mem_i = peak_memory(fns[f"{kind}/infer"], device)
            rows.append((n, kind, t[f"{kind}/train"], t[f"{kind}/infer"], mem_t, mem_i))
    exps = {}
    for kind in ("dense", "strided", "masked"):
        sel = [r for r in rows if r[1] == kind]
        for col, mode in ((2, "train"), (3, "infer")):
            exps[(kind, mode)] = growth_exponent([r[0] for r in sel], [r[col] for r in sel])
    return rows, exps


# --------------------------------------------------------------------------------------------
# test-time lifting of whole sequences


def _lifting_module(model: torch.nn.Module, compile: bool = False):
    """A :class:`~liftpose.modules.LiftingModule` around ``model`` (MPJPE, AdamW, flip test)."""
    from functools import partial

    from liftpose.data.skeleton import H36M17
    from liftpose.modules import LiftingModule

    return LiftingModule(
        model,
        loss={"terms": {"mpjpe": {"weight": 1.0}}},
        optimizer=partial(torch.optim.AdamW, lr=1e-4),
        flip_permutation=H36M17.flip_permutation.tolist(),
        compile=compile,
    )


def _sequence_models() -> dict[str, Callable[[], torch.nn.Module]]:
    """Test-time benchmarks: VideoPose3D at 27 and 243 frames (paper dimensions), MixSTE-27."""
    from liftpose.models.mixste import MixSTE
    from liftpose.models.videopose3d import VideoPose3D

    return {
        "videopose3d-27": lambda: VideoPose3D(filter_widths=(3, 3, 3)),
        "videopose3d-243": lambda: VideoPose3D(filter_widths=(3, 3, 3, 3, 3)),
        "mixste-27": lambda: MixSTE(num_frames=27),
    }


def bench_sequence(
    names: list[str], length: int, device: str, precision: str, repeats: int = 3
) -> list[tuple[str, str, float, float]]:
    """Test-time frames per second of one ``length``-frame sequence, flip test on: the
    module's whole-sequence path (:meth:`~liftpose.modules.LiftingModule.predict_sequence`)
    against a centred window per frame (the per-window test, batches of 1024 windows)."""
    auto = _autocast(device, precision)
    rows = []
    for name in names:
        torch.manual_seed(0)
        module = _lifting_module(_sequence_models()[name]()).to(device).eval()
        x = torch.randn(length, 17, 2, device=device) * 0.3

        def whole(module=module, x=x) -> None:
            with auto:
                module.predict_sequence(x)

        def windows(module=module, x=x) -> None:
            rf = module.model.receptive_field
            with torch.no_grad(), auto:
                module._lift_windows(x, None, rf, 1024)

        t = interleaved({"whole": whole, "windows": windows}, repeats, device=device)
        rows.append((name, module.sequence_path, length / t["whole"], length / t["windows"]))
    return rows


def _autocast(device: str, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None)


# --------------------------------------------------------------------------------------------
# the speed recipe of each experiment config

#: Experiment configs whose recipe (trainer.precision, module.compile) is measured, per device.
RECIPE_EXPERIMENTS = {
    "cpu": [
        "main_cpu",
        "strided_cpu",
        "mixste_cpu",
        "mhformer_cpu",
        "videopose3d_cpu",
        "ampose_cpu",
        "attn_2d3d/lifter_cpu",
    ],
    "cuda": [
        "poseformer_h36m",
        "strided_h36m",
        "mixste_h36m",
        "mhformer_h36m",
        "videopose3d_h36m",
        "ampose_h36m",
        "attn_2d3d/lifter",
    ],
}
RECIPE_VARIANTS = ("fp32", "bf16", "compile", "compile+bf16")


def experiment_module(experiment: str, overrides: list[str] | None = None):
    """``(cfg, module)``: the LightningModule (with its lifter) of ``experiment=<name>``, built
    from the config without reading data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from liftpose.data.skeleton import get_layout
    from liftpose.utils.run import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}", *(overrides or [])])
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = "."
        cfg.module.compile = False
    model = instantiate(cfg.model)
    perm = get_layout(cfg.data.layout).flip_permutation.tolist()
    return cfg, instantiate(cfg.module, model=model, flip_permutation=perm)


def bench_recipe(
    experiments: list[str],
    device: str,
    variants: tuple[str, ...] = RECIPE_VARIANTS,
    repeats: int = 5,
    batch: int | None = None,
) -> list[tuple]:
    """Training samples/s and inference samples/s (flip test) of each experiment config's
    module under each variant: fp32, bf16 autocast, ``torch.compile`` (fp32), both.

    Training is the module's own loss, backward and optimiser step on random inputs of the
    config's shape (``data.batch_size`` windows, or ``batch``); inference is
    ``predict_eval`` of the same batch. A compiled variant's first training and inference
    calls (minus a steady call) are its compile seconds. Rows: ``(experiment, variant, train
    samples/s, infer samples/s, compile s)``.
    """
    import copy

    rows = []
    for exp in experiments:
        name, *overrides = exp.split(",")  # e.g. "mixste_h36m,frames=27"
        cfg, module = experiment_module(name, overrides)
        module.to(device)
        b = int(batch or cfg.data.batch_size)
        t = int(cfg.frames)
        j = module.model.num_joints
        c = getattr(module.model, "in_channels", 2)
        x = torch.randn(b, t, j, 2, device=device) * 0.3
        if c != 2:  # TMT-style inputs are not part of the recipe configs
            raise ValueError(f"{exp}: bench_recipe needs 2-D inputs, the model takes {c}")
        y = torch.randn(b, t if cfg.data.target == "sequence" else 1, j, 3, device=device)
        fns: dict[str, Callable[[], object]] = {}
        compile_s: dict[str, float] = {}
        for variant in variants:
            m = copy.deepcopy(module)
            if "compile" in variant:
                m.model.compile()
            opt = m.optimizer_factory(params=m.parameters())
            auto = _autocast(device, "bf16" if "bf16" in variant else "fp32")

            def train(m=m, opt=opt, auto=auto, x=x, y=y) -> None:
                m.train()
                with auto:
                    loss, _ = m.training_loss(m.model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            @torch.no_grad()
            def infer(m=m, auto=auto, x=x) -> None:
                m.eval()
                with auto:
                    m.predict_eval(x)

            if "compile" in variant:  # first calls compile; the second is steady
                for mode, fn in (("train", train), ("infer", infer)):
                    t0 = time.perf_counter()
                    fn()
                    _sync(device)
                    first = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    fn()
                    _sync(device)
                    compile_s[f"{variant}/{mode}"] = first - (time.perf_counter() - t0)
            fns[f"{variant}/train"], fns[f"{variant}/infer"] = train, infer
        times = interleaved(fns, repeats, device=device)
        for variant in variants:
            comp = sum(compile_s.get(f"{variant}/{m}", 0.0) for m in ("train", "infer"))
            rows.append(
                (
                    exp,
                    variant,
                    b / times[f"{variant}/train"],
                    b / times[f"{variant}/infer"],
                    comp if "compile" in variant else None,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, nargs="+", default=[27, 81])
    ap.add_argument("--data-batch", type=int, default=1024)
    ap.add_argument("--model-batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--root", type=Path, default=Path(".cache/liftpose/bench"))
    ap.add_argument("--skip-data", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--skip-system", action="store_true", help="skip liftpose-infer's stages")
    ap.add_argument("--models", nargs="+", default=["poseformer", "attn_lifter"])
    ap.add_argument(
        "--strided-frames",
        type=int,
        nargs="*",
        default=[27, 81, 243, 351],
        help="frames of the dense-vs-strided comparison (a bare --strided-frames skips it)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (medians)")
    ap.add_argument(
        "--attention-frames",
        type=int,
        nargs="*",
        default=[81, 243, 351, 729, 1024],
        help="lengths of the dense-vs-strided attention layer comparison (none: skip)",
    )
    ap.add_argument(
        "--sequence",
        nargs="*",
        default=["videopose3d-27", "videopose3d-243"],
        help="test-time whole-sequence vs per-window lifting (none: skip)",
    )
    ap.add_argument("--sequence-length", type=int, default=2000)
    ap.add_argument(
        "--recipe",
        nargs="*",
        default=None,
        metavar="EXPERIMENT",
        help="measure fp32 / bf16 / compile per experiment config, EXPERIMENT[,override...] "
        "(no names: those of the device, RECIPE_EXPERIMENTS); slow: torch.compile takes "
        "minutes per model on a CPU",
    )
    ap.add_argument("--recipe-variants", nargs="+", default=list(RECIPE_VARIANTS))
    ap.add_argument("--recipe-batch", type=int, default=None, help="default: data.batch_size")
    ap.add_argument(
        "--official",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder holding checkouts of the official repositories (PoseFormer, "
        "StridedTransformer-Pose3D, MixSTE, VideoPose3D, MHFormer): time them side by side",
    )
    ap.add_argument("--official-cases", nargs="+", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    con = Console(width=max(Console().width, 120))
    con.print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"medians of {args.repeats} interleaved rounds where marked"
    )
    if not args.skip_data:
        tab = Table(title=f"DataModule: training windows/s (batch {args.data_batch}, flips on)")
        for c in ("frames", "liftpose", "per-sample reference", "speed-up"):
            tab.add_column(c, justify="right")
        for t, a, b, r in bench_data(args.frames, args.data_batch, args.seconds, args.root):
            tab.add_row(str(t), f"{a:,.0f}", f"{b:,.0f}", f"{r:.1f}x")
        con.print(tab)
    for name in [] if args.skip_model else args.models:
        tab = Table(title=f"{name} (paper dimensions), batch {args.model_batch}, {args.device}")
        cols = ["frames", "precision", "params (M)", "train samples/s", "infer samples/s"]
        cuda = args.device.startswith("cuda")
        for c in cols + (["MFU train", "MFU infer"] if cuda else []):
            tab.add_column(c, justify="right")
        for precision in args.precision:
            rows = bench_model(
                args.frames, args.model_batch, args.seconds, args.device, precision, name
            )
            for t, p, tr, inf, *mfu in rows:
                extra = [f"{m:.1%}" if m is not None else "n/a" for m in mfu] if cuda else []
                tab.add_row(str(t), precision, f"{p:.2f}", f"{tr:,.1f}", f"{inf:,.1f}", *extra)
        con.print(tab)
        if cuda:
            con.print(
                "MFU: torch.utils.flop_counter FLOPs per step x steps/s / the device's dense "
                f"peak ({args.device}: {device_peak_tflops(args.device, 'bf16') or 'unknown'} "
                "TFLOP/s bf16, PEAK_TFLOPS)"
            )
    if not args.skip_model and args.strided_frames:
        tab = Table(
            title=f"Strided Transformer, dense vs strided attention, batch {args.model_batch}, "
            f"{args.device}, {args.precision[0]}"
        )
        for c in ("frames", "attention", "train samples/s", "infer frames/s"):
            tab.add_column(c, justify="right")
        for name in ("strided", "strided:strided", "strided:strided-both"):
            rows = bench_model(
                args.strided_frames, args.model_batch, args.seconds, args.device,
                args.precision[0], name,
            )  # fmt: skip
            for t, _, tr, inf, *_ in rows:
                kind = {"strided": "dense", "strided:strided": "strided (STE)"}.get(
                    name, "strided (VTE+STE)"
                )
                tab.add_row(str(t), kind, f"{tr:,.1f}", f"{inf:,.1f}")
        con.print(tab)
    if not args.skip_model:
        con.print("infer = forward of the input and of its mirror (test-time flip averaging)")
    if args.attention_frames:
        print_attention(con, args)
    if args.sequence:
        tab = Table(
            title=f"Test-time lifting of a {args.sequence_length}-frame sequence, flip test, "
            f"{args.device}, {args.precision[0]}: frames/s"
        )
        for c in ("model", "whole-sequence path", "whole sequence", "window per frame", "x"):
            tab.add_column(c, justify="right")
        for name, path, whole, win in bench_sequence(
            args.sequence, args.sequence_length, args.device, args.precision[0], args.repeats
        ):
            tab.add_row(name, path, f"{whole:,.0f}", f"{win:,.0f}", f"{whole / win:.1f}x")
        con.print(tab)
    if args.recipe is not None:
        print_recipe(con, args)
    if args.official is not None:
        from liftpose.sidebyside import print_side_by_side

        print_side_by_side(con, args)
    if not args.skip_render:
        tab = Table(title=f"Rendered images and the detector source ({args.device})")
        for c in ("what", "per second"):
            tab.add_column(c, justify="right")
        for what, rate in bench_render(args.seconds, args.device):
            tab.add_row(what, f"{rate:,.1f}")
        con.print(tab)
    if not args.skip_system:
        tab = Table(title=f"liftpose-infer stages on a 25 fps video ({args.device})")
        for c in ("stage", "frames/s"):
            tab.add_column(c, justify="right")
        for stage, rate in bench_system(args.device).items():
            tab.add_row(stage, f"{rate:,.1f}")
        con.print(tab)
        con.print("lift: frames per second of the input video (resampled to the lifter's rate)")


def print_attention(con: Console, args: argparse.Namespace) -> None:
    """The dense-vs-strided attention layer table and the fitted growth exponents."""
    rows, exps = bench_attention(args.attention_frames, args.device, repeats=args.repeats)
    tab = Table(
        title=f"Attention layer (dim 128, 8 heads, batch 4), {args.device}, fp32: ms and peak "
        "MiB; train = forward + backward"
    )
    for c in ("frames", "pattern", "train ms", "infer ms", "train MiB", "infer MiB", "dense/x"):
        tab.add_column(c, justify="right")
    dense = {r[0]: r for r in rows if r[1] == "dense"}

    def mib(v: float | None) -> str:
        return "n/a" if v is None else f"{v / 2**20:,.1f}"

    for n, kind, tr, inf, mt, mi in rows:
        speed = f"{dense[n][2] / tr:.2f} / {dense[n][3] / inf:.2f}"
        tab.add_row(str(n), kind, f"{tr * 1e3:,.1f}", f"{inf * 1e3:,.1f}", mib(mt), mib(mi), speed)
    con.print(tab)
    con.print(
        "dense/x: dense time over this pattern's (train / infer). Growth exponents (time ~ "
        "n^k, least squares over the lengths): "
        + ", ".join(f"{kind} {mode} {k:.2f}" for (kind, mode), k in exps.items())
    )


def print_recipe(con: Console, args: argparse.Namespace) -> None:
    """Per experiment config: samples/s of each variant, compile time, the fastest."""
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    experiments = args.recipe or RECIPE_EXPERIMENTS[kind]
    rows = bench_recipe(
        experiments, args.device, tuple(args.recipe_variants), args.repeats, args.recipe_batch
    )
    tab = Table(title=f"Speed recipe per experiment config, {args.device}: samples/s")
    for c in ("experiment", "variant", "train", "infer", "compile s", "pays off after"):
        tab.add_column(c, justify="right")
    for exp, variant, tr, inf, comp in rows:
        best_tr = max(r[2] for r in rows if r[0] == exp)
        best_inf = max(r[3] for r in rows if r[0] == exp)
        eager = max((r[2] for r in rows if r[0] == exp and r[4] is None), default=None)
        pays = ""
        if comp is not None and eager:  # training samples until the compile time is recovered
            gain = 1 / eager - 1 / tr
            pays = f"{comp / gain:,.0f} samples" if gain > 0 else "never"
        tab.add_row(
            exp,
            variant,
            f"{tr:,.1f}" + (" *" if tr == best_tr else ""),
            f"{inf:,.1f}" + (" *" if inf == best_inf else ""),
            "" if comp is None else f"{comp:,.0f}",
            pays,
        )
    con.print(tab)
    con.print(
        "* fastest; compile s: first calls minus steady ones (training + inference); pays off "
        "after: training samples until a compiled variant beats the fastest eager one"
    )


if __name__ == "__main__":
    main()

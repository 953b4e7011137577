"""``make bench``: throughput figures on this machine.

* DataModule: training windows per second of the batched gather (flip augmentation on), against
  a per-sample generator written the way the reference implementations build batches (a Python
  loop over the batch, one ``np.pad`` per window, per-sample flips).
* Lifters at their papers' dimensions (PoseFormer; the SA/TA lifter of attn-2d3d-system):
  training samples per second (forward, backward, optimiser step; every output supervised) and
  inference samples per second (with test-time flip averaging), at 27 and 81 frames.
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

bf16 uses autocast; on the development CPU (AVX512-BF16) it is the faster choice too.
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
    """Batches built one window at a time (the reference style), for comparison."""
    pad = receptive_field // 2
    seqs2 = [arrays.pose_2d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    seqs3 = [arrays.pose_3d[s : s + n] for s, n in zip(arrays.seq_start, arrays.seq_len)]
    pairs = [(i, f) for i, n in enumerate(arrays.seq_len) for f in range(n)]
    order = rng.permutation(len(pairs))
    b2 = np.empty((batch_size, receptive_field) + arrays.pose_2d.shape[1:], np.float32)
    b3 = np.empty((batch_size, 1) + arrays.pose_3d.shape[1:], np.float32)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        for k, j in enumerate(order[start : start + batch_size]):
            i, f = pairs[j]
            seq2, seq3 = seqs2[i], seqs3[i]
            lo, hi = f - pad, f + pad + 1
            lo_c, hi_c = max(lo, 0), min(hi, len(seq2))
            b2[k] = np.pad(seq2[lo_c:hi_c], ((lo_c - lo, hi - hi_c), (0, 0), (0, 0)), "edge")
            b3[k] = seq3[f : f + 1]
            if rng.random() < 0.5:
                b2[k, :, :, 0] *= -1
                b2[k] = b2[k][:, perm]
                b3[k, :, :, 0] *= -1
                b3[k] = b3[k][:, perm]
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

        rng = np.random.default_rng(0)
        perm = dm.skeleton.flip_permutation

        def reference(dm=dm, t=t, perm=perm, rng=rng) -> int:
            n = 0
            for i, (x, _) in enumerate(
                per_sample_batches(dm.splits["train"], t, batch_size, perm, rng)
            ):
                n += x.shape[0]
                if i == 5:
                    break
            return n

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
        rows.append((t, params, _rate(train_step, seconds), _rate(infer_step, seconds)))
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
        from liftpose.tables.run import compose_job
        from liftpose.train import build

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
    args = ap.parse_args(argv)
    con = Console()
    con.print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    if not args.skip_data:
        tab = Table(title=f"DataModule: training windows/s (batch {args.data_batch}, flips on)")
        for c in ("frames", "liftpose", "per-sample reference", "speed-up"):
            tab.add_column(c, justify="right")
        for t, a, b, r in bench_data(args.frames, args.data_batch, args.seconds, args.root):
            tab.add_row(str(t), f"{a:,.0f}", f"{b:,.0f}", f"{r:.1f}x")
        con.print(tab)
    for name in [] if args.skip_model else args.models:
        tab = Table(title=f"{name} (paper dimensions), batch {args.model_batch}, {args.device}")
        for c in ("frames", "precision", "params (M)", "train samples/s", "infer samples/s"):
            tab.add_column(c, justify="right")
        for precision in args.precision:
            rows = bench_model(
                args.frames, args.model_batch, args.seconds, args.device, precision, name
            )
            for t, p, tr, inf in rows:
                tab.add_row(str(t), precision, f"{p:.2f}", f"{tr:,.1f}", f"{inf:,.1f}")
        con.print(tab)
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
            for t, _, tr, inf in rows:
                kind = {"strided": "dense", "strided:strided": "strided (STE)"}.get(
                    name, "strided (VTE+STE)"
                )
                tab.add_row(str(t), kind, f"{tr:,.1f}", f"{inf:,.1f}")
        con.print(tab)
    if not args.skip_model:
        con.print("infer = forward of the input and of its mirror (test-time flip averaging)")
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


if __name__ == "__main__":
    main()

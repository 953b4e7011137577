"""``liftpose-infer``: lift a 2-D keypoint sequence to 3-D with a trained checkpoint.

    liftpose-infer run/checkpoints/last.ckpt keypoints.npz --width 1000 --height 1002 --out 3d.npz

The input ``.npz`` holds ``keypoints``: ``(T, 17, 2)`` pixels in the Human3.6M joint order (or
``(T, 17, 2)`` already normalised with ``--normalised``). The output holds ``poses_3d``:
``(T, 17, 3)`` camera-frame, root-relative metres, one per input frame (windows are centred on
every frame with edge padding, as in evaluation, and flip averaging follows the run's config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.data.datamodule import SplitArrays, WindowDataset
from liftpose.errors import DataError


def load_module(ckpt_path: str | Path):
    """The LightningModule of a liftpose checkpoint, in eval mode, and its run config."""
    from liftpose.train import build, load_run_checkpoint

    ckpt, cfg = load_run_checkpoint(ckpt_path)
    _, module = build(cfg)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval(), cfg


@torch.no_grad()
def lift(module, cfg, pose_2d: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Normalised 2-D ``(T, J, 2)`` -> 3-D ``(T, J, 3)`` (centre-frame predictions)."""
    t = len(pose_2d)
    arrays = SplitArrays(
        pose_2d=np.ascontiguousarray(pose_2d, dtype=np.float32),
        pose_3d=np.zeros((t, pose_2d.shape[1], 3), np.float32),
        seq_start=np.zeros(1, np.int64),
        seq_len=np.array([t], np.int64),
        seq_action=np.zeros(1, np.int64),
        action_names=["input"],
        seq_names=["input"],
    )
    ds = WindowDataset(arrays, int(cfg.data.receptive_field), "centre")
    out = []
    for s in range(0, len(ds), batch_size):
        x = ds.__getitems__(list(range(s, min(s + batch_size, len(ds)))))["pose_2d"]
        pred = module.predict_eval(x)
        out.append(pred[:, pred.shape[1] // 2])
    return torch.cat(out).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="liftpose-infer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("checkpoint")
    ap.add_argument("keypoints", help=".npz with 'keypoints' (T, 17, 2)")
    ap.add_argument("--width", type=float, default=None, help="image width in pixels")
    ap.add_argument("--height", type=float, default=None, help="image height in pixels")
    ap.add_argument("--normalised", action="store_true", help="keypoints already normalised")
    ap.add_argument("--out", default="poses_3d.npz")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")  # what np.savez writes
    try:
        kp = read_keypoints(args.keypoints)
        if not args.normalised:
            if args.width is None or args.height is None:
                raise DataError(
                    args.keypoints,
                    "keypoints",
                    "pixels need --width and --height (or pass --normalised)",
                )
            kp = normalize_screen_coordinates(kp, args.width, args.height)
        module, cfg = load_module(args.checkpoint)
        joints = getattr(module.model, "num_joints", kp.shape[1])
        if kp.shape[1] != joints:
            raise DataError(
                args.keypoints,
                "keypoints",
                f"{kp.shape[1]} joints, but the model was trained on {joints}",
            )
        poses = lift(module, cfg, kp)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, poses_3d=poses)
    except (DataError, OSError) as e:
        print(f"liftpose-infer: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: poses_3d {poses.shape}")
    return 0


def read_keypoints(path: str | Path) -> np.ndarray:
    """``keypoints`` ``(T, J, 2)`` from an ``.npz``, checked (a clear error names what is wrong)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file", "keypoints file not found")
    try:
        with np.load(p) as f:
            if "keypoints" not in f.files:
                raise DataError(p, "keypoints", f"missing key; the file has {f.files}")
            kp = f["keypoints"].astype(np.float64)
    except DataError:
        raise
    except Exception as e:  # truncated or not an npz
        raise DataError(p, "keypoints", f"unreadable file ({type(e).__name__}: {e})") from e
    if kp.ndim != 3 or kp.shape[-1] != 2 or len(kp) == 0:
        raise DataError(p, "keypoints", f"expected (T, J, 2), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise DataError(p, "keypoints", "contains NaN/inf")
    return kp


if __name__ == "__main__":
    sys.exit(main())

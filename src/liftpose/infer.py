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
from omegaconf import OmegaConf

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.data.datamodule import SplitArrays, WindowDataset
from liftpose.data.errors import DataError


def load_module(ckpt_path: str | Path):
    """The LightningModule of a liftpose checkpoint, in eval mode, and its run config."""
    from hydra.utils import instantiate

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if "liftpose_config" not in ckpt:
        raise DataError(ckpt_path, "liftpose_config", "not a liftpose checkpoint")
    cfg = OmegaConf.create(ckpt["liftpose_config"])
    model = instantiate(cfg.model)
    dm = instantiate(cfg.data)
    module = instantiate(
        cfg.module, model=model, flip_permutation=dm.skeleton.flip_permutation.tolist()
    )
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
    try:
        with np.load(args.keypoints) as f:
            if "keypoints" not in f.files:
                raise DataError(args.keypoints, "keypoints", f"missing; found {f.files}")
            kp = f["keypoints"].astype(np.float64)
        if kp.ndim != 3 or kp.shape[-1] != 2:
            raise DataError(args.keypoints, "keypoints", f"expected (T, J, 2), got {kp.shape}")
        if not np.isfinite(kp).all():
            raise DataError(args.keypoints, "keypoints", "contains NaN/inf")
        if not args.normalised:
            if args.width is None or args.height is None:
                raise DataError(args.keypoints, "keypoints", "pixels need --width and --height")
            kp = normalize_screen_coordinates(kp, args.width, args.height)
        module, cfg = load_module(args.checkpoint)
        poses = lift(module, cfg, kp)
    except DataError as e:
        print(f"liftpose-infer: {e}", file=sys.stderr)
        return 2
    np.savez(args.out, poses_3d=poses)
    print(f"wrote {args.out}: poses_3d {poses.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

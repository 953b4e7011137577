"""``liftpose-infer``: photos, videos and 2-D keypoint files in; 3-D poses and pictures out.

    liftpose-infer photo.jpg --out result/                      # BlazePose, the ready lifter
    liftpose-infer clip.mp4 --lifter run/checkpoints/last.ckpt --out result/
    liftpose-infer clip.mp4 --detector hrnet:<heatmap ckpt> --boxes previous --out result/
    liftpose-infer photos/ --person all --out result/           # each photo on its own
    liftpose-infer keypoints.npz --layout coco17 --width 1920 --height 1080 --out result/
    liftpose-infer openpose_json/ --fps 30 --width 1280 --height 720 --out result/
    liftpose-infer clip.mp4 --causal --lifter causal.ckpt --out result/

INPUT is an image, a folder of images (unrelated photos; with --fps, the frames of a video), a
video (anything OpenCV decodes; its frame rate is read from the container), or a 2-D keypoint
file: ``.npz`` (``keypoints (T, J, 2|3)``, ``--layout`` where J = 17), a COCO keypoint results
json, an OpenPose json folder (BODY_25, COCO-18) or an AlphaPose json (COCO-17, Halpe-26).

``--out`` receives ``poses.npz`` and ``poses.json`` (per person: frame times, the detector's
keypoints with confidences in pixels, Human3.6M-17 2-D, 3-D root-relative metres, joint names,
the lifter and the detector), ``overlay.mp4`` and ``skeleton3d.mp4`` (or ``.gif``) for a
sequence, ``overlay/<image>.png`` and ``skeleton3d/<image>.png`` for photos. It must be a new
or empty folder (or one an earlier run made, with --force); files are written under temporary
names and renamed. Without --lifter the ready lifter shipped in the package is used. Bad input
stops with one line naming the file and the field, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liftpose.errors import ConfigError, DataError
from liftpose.system.lifting import lift_sequence as lift_sequence  # noqa: F401 (the one path)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="liftpose-infer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("input", help="image, folder of images, video, or 2-D keypoint file")
    ap.add_argument("--out", required=True, help="output folder (new or empty)")
    ap.add_argument("--lifter", default=None, help="lifter checkpoint (default: the ready lifter)")
    ap.add_argument(
        "--detector", default="blazepose", help="blazepose (default) or hrnet:<heatmap ckpt>"
    )
    ap.add_argument(
        "--boxes", default=None,
        help="person boxes for hrnet: blazepose (default), previous, or a COCO detections json",
    )  # fmt: skip
    ap.add_argument("--layout", default=None, help="keypoint layout of a keypoint file")
    ap.add_argument(
        "--joint-map", default="standard",
        help="standard, or fitted:<data_2d_*.npz> (the fitted COCO map of liftpose-data detect)",
    )  # fmt: skip
    ap.add_argument("--person", default="largest", help="largest (default), all, or a track id")
    ap.add_argument("--fps", type=float, default=None, help="frame rate (folders, keypoint files)")
    ap.add_argument("--width", type=float, default=None, help="image width of a keypoint file")
    ap.add_argument("--height", type=float, default=None, help="image height of a keypoint file")
    ap.add_argument("--causal", action="store_true", help="online: each frame from past frames")
    ap.add_argument(
        "--threshold", type=float, default=0.3,
        help="joints below this confidence are filled by interpolation (default 0.3)",
    )  # fmt: skip
    ap.add_argument("--max-gap", type=int, default=10, help="longest gap filled, frames (10)")
    ap.add_argument("--force", action="store_true", help="replace an earlier run's files in --out")
    ap.add_argument("--animation", choices=("mp4", "gif"), default="mp4")
    ap.add_argument("--no-draw", action="store_true", help="write the poses only")
    ap.add_argument("--device", default="cpu", help="where the networks run (cpu, cuda)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from liftpose.system.pipeline import Settings, run

    size = None
    if (args.width is None) != (args.height is None):
        print("liftpose-infer: error: --width and --height go together", file=sys.stderr)
        return 2
    if args.width is not None:
        size = (args.width, args.height)
    settings = Settings(
        input=Path(args.input),
        out=Path(args.out),
        lifter=None if args.lifter is None else Path(args.lifter),
        detector=args.detector,
        boxes=args.boxes,
        layout=args.layout,
        joint_map=args.joint_map,
        person=args.person,
        fps=args.fps,
        image_size=size,
        causal=args.causal,
        threshold=args.threshold,
        max_gap=args.max_gap,
        force=args.force,
        animation=args.animation,
        draw=not args.no_draw,
        device=args.device,
    )
    try:
        run(settings)
    except (DataError, ConfigError) as e:
        print(f"liftpose-infer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

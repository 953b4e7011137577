"""``liftpose-data``: build and inspect lifting datasets.

Examples::

    liftpose-data embedded --root data/hdm05           # film the packaged HDM05 sample
    liftpose-data hdm05-sample --src ../shared/data/hdm05  # rebuild the packaged sample
    liftpose-data info --root data/hdm05 --name hdm05 --keypoints det
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="liftpose-data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embedded", help="write the virtual-capture dataset of the packaged sample")
    e.add_argument("--root", default="data/hdm05")
    e.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("hdm05-sample", help="rebuild the packaged HDM05 sample from ASF/AMC files")
    s.add_argument("--src", required=True)
    s.add_argument("--out", default=None)
    s.add_argument("--fps", type=float, default=50.0)
    i = sub.add_parser("info", help="summarise a dataset in the VideoPose3D layout")
    i.add_argument("--root", required=True)
    i.add_argument("--name", default="h36m")
    i.add_argument("--keypoints", default="gt")
    i.add_argument("--subjects", nargs="+", default=None)
    args = ap.parse_args(argv)

    from liftpose.data.errors import DataError

    try:
        if args.cmd == "embedded":
            from liftpose.data.embedded import ensure_embedded

            root = ensure_embedded(args.root, cfg={"seed": args.seed})
            print(f"embedded dataset ready in {root}")
        elif args.cmd == "hdm05-sample":
            from liftpose.data.embedded import sample_path
            from liftpose.data.mocap.hdm05 import build_hdm05_sample

            out = build_hdm05_sample(Path(args.src), Path(args.out or sample_path()), fps=args.fps)
            print(f"wrote {out}")
        elif args.cmd == "info":
            from liftpose.data.h36m import load_sequences

            subjects = args.subjects
            if subjects is None:
                from liftpose.data.h36m import _load_npz_dict, dataset_files

                p3 = dataset_files(args.root, args.name, args.keypoints)["3d"]
                subjects = sorted(k for k in _load_npz_dict(p3, "positions_3d") if k[:2] != "__")
            seqs = load_sequences(args.root, args.name, args.keypoints, subjects)
            frames = sum(len(s.pose_3d) for s in seqs)
            groups = sorted({s.action_group for s in seqs})
            print(f"{len(seqs)} sequences, {frames} frames, subjects {subjects}")
            print(f"action groups ({len(groups)}): {', '.join(groups)}")
            err = np.mean([np.abs(s.pose_2d).max() for s in seqs])
            print(f"mean max |2-D| (normalised): {err:.3f}")
    except DataError as err:
        print(f"liftpose-data: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

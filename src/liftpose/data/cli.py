"""``liftpose-data``: build and inspect lifting datasets.

Examples::

    liftpose-data embedded                             # film the packaged HDM05 sample
    liftpose-data hdm05-sample --src ../shared/data/hdm05  # rebuild the packaged sample
    liftpose-data info --root .cache/liftpose/embedded/hdm05 --name hdm05 --keypoints det
    liftpose-data bandai-3dhp --src ../shared/data/bandai1/data --root data/bandai_3dhp
    liftpose-data capture --src ../shared/data/bandai1/data --format bvh --root data/bandai \\
        --name bandai --person-height 400   # any mocap folder -> a lifting dataset
    liftpose-data render --root data/rendered --train 300 --val 100  # 2-D detector images
    liftpose-data detect --root .cache/liftpose/embedded/hdm05 --name hdm05 \\
        --ckpt <heatmap run>/last.ckpt --source hrnet_w32_cam --every 5  # a detector as 2-D
    liftpose-data crops --root /data/h36m --keypoints cpn_ft_h36m_dbb  # Human3.6M video crops
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: where the embedded dataset is built (``data.root`` of ``conf/data/embedded.yaml``)
EMBEDDED_ROOT = ".cache/liftpose/embedded/hdm05"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="liftpose-data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embedded", help="write the virtual-capture dataset of the packaged sample")
    e.add_argument("--root", default=EMBEDDED_ROOT, help="output folder (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="capture seed (default: %(default)s)")
    s = sub.add_parser("hdm05-sample", help="rebuild the packaged HDM05 sample from ASF/AMC files")
    s.add_argument("--src", required=True, help="folder with HDM_<actor>.asf and *.amc files")
    s.add_argument("--out", default=None, help="output .npz (default: the packaged sample)")
    s.add_argument("--fps", type=float, default=50.0, help="target rate (default: %(default)s)")
    b = sub.add_parser(
        "bandai-3dhp",
        help="film Bandai-Namco BVH motion as an MPI-INF-3DHP-style test set (data_test_3dhp.npz)",
    )
    b.add_argument("--src", required=True, help="folder with the Bandai dataset-1 *.bvh files")
    b.add_argument(
        "--root", default="data/bandai_3dhp", help="output folder (default: %(default)s)"
    )
    b.add_argument("--clips", type=int, default=30, help="clips used (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="camera seed (default: %(default)s)")
    c = sub.add_parser(
        "capture",
        help="film a folder of ASF/AMC or BVH motion capture into a dataset (VideoPose3D layout)",
    )
    c.add_argument("--src", required=True, help="folder of *.amc + *.asf or *.bvh files")
    c.add_argument("--format", required=True, choices=["amc", "bvh"], help="file format")
    c.add_argument("--root", required=True, help="output folder")
    c.add_argument("--name", required=True, help="dataset name in the file names")
    c.add_argument("--subjects", nargs="+", default=None, help="subjects to keep (default: all)")
    c.add_argument(
        "--pattern",
        default=None,
        help="regex on file stems with named groups subject (and action, take, fps); "
        "default: HDM05/CMU names (amc), Bandai-Namco names (bvh)",
    )
    c.add_argument("--skeleton", default=None, choices=["hdm05", "cmu", "bandai"],
                   help="joint map (default: cmu for amc, bandai for bvh)")  # fmt: skip
    c.add_argument("--fps", type=float, default=50.0, help="dataset frame rate (default: 50)")
    c.add_argument("--source-fps", type=float, default=120.0,
                   help="AMC capture rate when the file name has none (default: 120)")  # fmt: skip
    c.add_argument("--bvh-unit", type=float, default=0.01,
                   help="metres per BVH unit (default: 0.01, centimetres)")  # fmt: skip
    c.add_argument("--placement", choices=["clip", "subject"], default="clip",
                   help="one camera rig per clip (default) or per subject")  # fmt: skip
    c.add_argument("--person-height", type=float, default=None, metavar="PX",
                   help="place the cameras so that a person's standing height spans PX pixels "
                   "(default: fit the motion into the image)")  # fmt: skip
    c.add_argument(
        "--fit-quantile",
        type=float,
        default=100.0,
        help="percentile of the motion's reach fitted into the image (default: 100)",
    )
    c.add_argument(
        "--rig",
        choices=["ring", "random"],
        default="ring",
        help="four Human3.6M cameras on a ring (default) or random cameras",
    )
    c.add_argument("--seed", type=int, default=0, help="camera and noise seed (default: 0)")
    r = sub.add_parser("render", help="render COCO-format detector images from the sample")
    r.add_argument("--root", default="data/rendered", help="output folder (default: %(default)s)")
    r.add_argument("--train", type=int, default=300, help="training images (default: %(default)s)")
    r.add_argument("--val", type=int, default=100, help="validation images (default: %(default)s)")
    r.add_argument("--size", type=int, default=400, help="image width, px (default: %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="render seed (default: %(default)s)")
    r.add_argument("--force", action="store_true", help="rebuild even if built with these settings")
    d = sub.add_parser(
        "detect",
        help="run a trained 2-D detector over a dataset's rendered frames: data_2d_<name>_<source>",
    )
    d.add_argument("--root", default=EMBEDDED_ROOT, help="dataset folder (default: %(default)s)")
    d.add_argument("--name", default="hdm05", help="dataset name (default: %(default)s)")
    d.add_argument("--ckpt", required=True, help="a module=heatmap checkpoint")
    d.add_argument("--source", required=True, help="name of the new 2-D source")
    d.add_argument("--every", type=int, default=1, help="detect every k-th frame (default: 1)")
    d.add_argument("--no-flip", action="store_true", help="no flip test")
    d.add_argument("--batch-size", type=int, default=32, help="crops per batch (default: 32)")
    d.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    d.add_argument(
        "--train-subjects",
        nargs="+",
        default=["bd", "bk"],
        help="subjects whose exact 2-D fits the COCO -> Human3.6M joint map (default: bd bk)",
    )
    d.add_argument("--subjects", nargs="+", default=None, help="default: all in the 3-D file")
    d.add_argument("--actions", nargs="+", default=None, help="action groups (default: all)")
    c = sub.add_parser(
        "crops",
        help="cache person crops with their 2-D and 3-D (image lifting; data=h36m_images reads "
        "the same cache): from <root>/<subject>/Videos/<action>.<camera>.mp4 or rendered",
    )
    c.add_argument("--root", required=True, help="folder of the VideoPose3D-layout files")
    c.add_argument("--name", default="h36m", help="dataset name (default: %(default)s)")
    c.add_argument(
        "--keypoints", default="cpn_ft_h36m_dbb", help="2-D source (default: %(default)s)"
    )
    c.add_argument("--source", default="video", choices=["video", "render"])
    c.add_argument(
        "--video-root", default=None, help="folder of <subject>/Videos (default: --root)"
    )
    c.add_argument("--train-subjects", nargs="+", default=["S1", "S5", "S6", "S7", "S8"])
    c.add_argument("--test-subjects", nargs="+", default=["S9", "S11"])
    c.add_argument("--actions", nargs="+", default=None, help="action groups (default: all)")
    c.add_argument("--cameras", nargs="+", default=None, help="camera ids (default: all)")
    c.add_argument("--size", type=int, nargs=2, default=[256, 192], metavar=("H", "W"))
    c.add_argument("--train-every", type=int, default=10, help="frame step (default: 10, 5 fps)")
    c.add_argument("--test-every", type=int, default=10, help="frame step (default: 10)")
    c.add_argument("--stagger", action="store_true", help="staggered frame offsets per camera")
    c.add_argument("--cache-dir", default=".cache/liftpose", help="default: %(default)s")
    i = sub.add_parser("info", help="summarise a dataset in the VideoPose3D layout")
    i.add_argument("--root", required=True, help="folder holding the data_*.npz files")
    i.add_argument(
        "--name",
        default="h36m",
        help="dataset name in the file names (h36m, hdm05, ...; default: %(default)s)",
    )
    i.add_argument("--keypoints", default="gt", help="2-D source (default: %(default)s)")
    i.add_argument("--subjects", nargs="+", default=None, help="default: all in the 3-D file")
    args = ap.parse_args(argv)

    from liftpose.errors import ConfigError, DataError

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
        elif args.cmd == "bandai-3dhp":
            from liftpose.data.crossdata import build_bandai_3dhp
            from liftpose.data.mpi3dhp import load_3dhp_test

            out = build_bandai_3dhp(args.src, args.root, num_clips=args.clips, seed=args.seed)
            for seq in load_3dhp_test(out):
                print(
                    f"{seq.subject} ({seq.action_group}): {len(seq.valid)} frames, "
                    f"{int(seq.valid.sum())} valid"
                )
            print(f"wrote {out}")
        elif args.cmd == "capture":
            from liftpose.data.capture import CaptureConfig, RigConfig
            from liftpose.data.capture_folder import capture_folder

            rig = RigConfig(
                placement=args.placement,
                person_height_px=args.person_height,
                fit_quantile=args.fit_quantile,
                mode=args.rig,
            )
            summary = capture_folder(
                args.src, args.format, args.root, args.name,
                subjects=args.subjects, pattern=args.pattern, skeleton=args.skeleton,
                fps=args.fps, source_fps=args.source_fps, bvh_unit=args.bvh_unit,
                cfg=CaptureConfig(rig=rig, seed=args.seed),
            )  # fmt: skip
            h = summary["person_height_px"]
            print(
                f"wrote {args.name} to {args.root}: {summary['views']} views; people "
                f"{h['median']:.0f} px tall (5-95 %: {h['p5']:.0f}-{h['p95']:.0f}); "
                f"{summary['frames_with_joints_outside_image']} frames with joints outside "
                "the image"
            )
        elif args.cmd == "render":
            from liftpose.data.render import write_rendered_coco

            out = write_rendered_coco(
                args.root,
                num_train=args.train,
                num_val=args.val,
                image_size=args.size,
                seed=args.seed,
                force=args.force,
            )
            print(f"rendered COCO keypoint dataset ready in {out}")
        elif args.cmd == "detect":
            from liftpose.data.detect import DetectorSettings, detect_dataset

            settings = DetectorSettings(
                ckpt=args.ckpt,
                every=args.every,
                flip_test=not args.no_flip,
                batch_size=args.batch_size,
                device=args.device,
            )
            out = detect_dataset(
                args.root,
                args.name,
                args.source,
                settings,
                args.train_subjects,
                args.subjects,
                args.actions,
            )
            print(f"wrote {out}")
        elif args.cmd == "crops":
            from liftpose.data.image_lifting import ImageLiftingDataModule

            dm = ImageLiftingDataModule(
                str(Path(args.root).resolve()),
                name=args.name,
                keypoints=args.keypoints,
                train_subjects=args.train_subjects,
                test_subjects=args.test_subjects,
                actions=args.actions,
                cameras=args.cameras,
                source=args.source,
                video_root=args.video_root,
                image_size=args.size,
                train_every=args.train_every,
                test_every=args.test_every,
                stagger=args.stagger,
                cache_dir=args.cache_dir,
            )
            dm.prepare_data()
            dm.setup()
            n = {k: len(v) for k, v in dm.splits.items()}
            print(f"{n['train']} training and {n['test']} test crops in {dm.cache_path}")
        elif args.cmd == "info":
            from liftpose.data.h36m import (
                dataset_cameras,
                dataset_clip_cameras,
                dataset_files,
                load_sequences,
                read_npz_dict,
            )

            subjects = args.subjects
            if subjects is None:
                p3 = dataset_files(args.root, args.name, args.keypoints)["3d"]
                subjects = sorted(read_npz_dict(p3, "positions_3d")[0])
            seqs = load_sequences(args.root, args.name, args.keypoints, subjects)
            frames = sum(len(s.pose_3d) for s in seqs)
            groups = sorted({s.action_group for s in seqs})
            print(f"{len(seqs)} sequences, {frames} frames, subjects {subjects}")
            print(f"action groups ({len(groups)}): {', '.join(groups)}")
            cams = dataset_cameras(args.root, args.name)
            clip_cams = dataset_clip_cameras(args.root, args.name)
            for subject in subjects:
                if subject in clip_cams:
                    n = len(clip_cams[subject])
                    sizes = sorted({f"{c.res_w}x{c.res_h}" for cs in clip_cams[subject].values()
                                    for c in cs.values()})  # fmt: skip
                    print(f"cameras of {subject}: placed per clip ({n} clips; {', '.join(sizes)})")
                    continue
                desc = ", ".join(f"{c.id} ({c.res_w}x{c.res_h})" for c in cams[subject].values())
                print(f"cameras of {subject}: {desc}")
    except (DataError, ConfigError) as err:
        print(f"liftpose-data: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

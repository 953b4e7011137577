"""``make demo``: the whole system on real photos and on a rendered clip with known 3-D.

    python -m liftpose.system.demo --out demo [--lifter CKPT] [--detector-ckpt HEATMAP_CKPT]

1. Photos: every image of ``<shared>/data/coco_mini/val2017`` (when present) through
   ``liftpose-infer --person all`` with BlazePose; the 2-D is scored against the COCO
   annotations (OKS AP, ``COCOeval``) and every lifted person is checked for plausibility
   (:func:`liftpose.system.checks.plausibility`).
2. Clip: a sequence of the held-out actor ``dg`` of the embedded data, filmed by one of its
   virtual cameras and rendered to ``clip.mp4`` by :mod:`liftpose.data.render`; lifted from the
   exact 2-D of the same frames, and (with ``--detector-ckpt``) through ``liftpose-infer
   clip.mp4 --detector hrnet:<ckpt> --boxes boxes.json`` (the ground-truth person boxes).
   MPJPE and P-MPJPE against the known 3-D are printed.

Everything lands in ``--out`` (``photos/``, ``clip/``, ``exact_2d/``, ``hrnet/`` and
``demo_metrics.json``); it must be new or empty.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from liftpose.errors import ConfigError, DataError


def shared_root() -> Path:
    """``$LIFTPOSE_SHARED`` or ``../shared`` beside the repository."""
    env = os.environ.get("LIFTPOSE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared"


def photo_report(coco_root: Path, out: Path, lifter: Path | None, log=print) -> dict:
    """Photos of ``coco_root/val2017`` through the system; OKS AP and plausibility."""
    from liftpose.metrics.coco import evaluate_keypoints
    from liftpose.system.checks import coco_results, is_upright, plausibility
    from liftpose.system.person import Person
    from liftpose.system.pipeline import Settings, run

    ann = coco_root / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(ann.read_text())
    ids = {im["file_name"]: im["id"] for im in doc["images"]}
    people_in = {a["image_id"] for a in doc["annotations"] if a["num_keypoints"] > 0}
    res = run(Settings(input=coco_root / "val2017", out=out, lifter=lifter, person="all",
                       progress=False), log=log)  # fmt: skip
    results, checks = [], []
    for p in res["people"]:
        name = res["frames"][int(p.frames[0])].name
        person = Person(p.keypoints[0], p.scores[0], p.track.boxes[0])
        if name in ids:
            results += coco_results(ids[name], [person], "blazepose33")
        if ids.get(name) in people_in:  # plausibility where COCO has a person
            upright = is_upright(p.pose_2d[0])
            checks.append(
                {"image": name, "upright": upright, **plausibility(p.pose_3d[0], upright)}
            )
    stats = evaluate_keypoints(ann, results)
    passed = sum(c["ok"] for c in checks)
    log(f"photos: {len(res['frames'])} images, {len(res['people'])} people found, "
        f"{len(checks)} in photos with an annotated person; BlazePose OKS AP "
        f"{100 * stats['AP']:.1f} (AP50 {100 * stats['AP50']:.1f}); plausible 3-D "
        f"{passed}/{len(checks)}")  # fmt: skip
    return {"coco": stats, "people": len(checks), "plausible": passed, "checks": checks}


def render_clip(
    out: Path, frames: int = 100, scale: float = 1.0, action: str | None = None, seed: int = 0
) -> dict:
    """Render a ``dg`` sequence of the embedded data to ``out/clip.mp4``; write its exact 2-D
    (``exact_2d.npz``, Human3.6M-17 pixels) and return the known root-relative 3-D."""
    import imageio.v2 as imageio

    from liftpose.data.embedded import ensure_embedded
    from liftpose.data.h36m import dataset_cameras, dataset_files, read_npz_dict
    from liftpose.data.render import random_style, render_person, scaled_camera

    root = out / "hdm05"
    ensure_embedded(root, "hdm05")
    positions, _ = read_npz_dict(dataset_files(root, "hdm05", "gt")["3d"], "positions_3d")
    names = sorted(positions["dg"])
    throws = [n for n in names if n.startswith("throwBasketball")]  # upright, arms moving
    action = action or (throws or names)[0]
    cam = scaled_camera(next(iter(dataset_cameras(root, "hdm05")["dg"].values())), scale)
    world = np.asarray(positions["dg"][action], np.float64)[:frames]
    joints = cam.world_to_camera(world)
    style = random_style(np.random.default_rng(seed), background="room")
    clip = out / "clip.mp4"
    with imageio.get_writer(clip, fps=50, codec="libx264", quality=8, macro_block_size=2,
                            pixelformat="yuv420p", ffmpeg_log_level="error") as w:  # fmt: skip
        for j in joints:
            w.append_data(render_person(j, cam, style=style).image)
    pose_2d = cam.project(joints)
    # the ground-truth person boxes as COCO detections (image id: the frame index), the box
    # protocol of top-down evaluation and of liftpose-data detect
    boxes = [{"image_id": f, "category_id": 1, "score": 1.0,
              "bbox": [*(lo := p.min(0)).round(1).tolist(), *(p.max(0) - lo).round(1).tolist()]}
             for f, p in enumerate(pose_2d)]  # fmt: skip
    (out / "boxes.json").write_text(json.dumps(boxes))
    np.savez(out / "exact_2d.npz", keypoints=pose_2d, layout="h36m17", fps=50.0,
             image_size=np.array([cam.res_w, cam.res_h], np.float64))  # fmt: skip
    return {"action": action, "camera": cam.id, "pose_3d": joints - joints[:, :1],
            "size": (cam.res_w, cam.res_h), "frames": len(joints)}  # fmt: skip


def clip_report(
    out: Path, lifter: Path | None, detector_ckpt: Path | None, threshold: float = 0.3, log=print
) -> dict:
    """The rendered ``dg`` clip lifted from its exact 2-D and through the heatmap detector (on
    the ground-truth boxes; joints whose heatmap peak is below ``threshold`` are filled)."""
    import torch

    from liftpose.metrics.functional import mpjpe, p_mpjpe
    from liftpose.system.pipeline import Settings, run

    clip = render_clip(out / "clip")
    gt = torch.as_tensor(clip["pose_3d"], dtype=torch.float64)
    report = {"action": clip["action"], "camera": clip["camera"], "frames": clip["frames"]}
    runs = [("exact_2d", Settings(input=out / "clip" / "exact_2d.npz", out=out / "exact_2d",
                                  lifter=lifter, progress=False))]  # fmt: skip
    if detector_ckpt is not None:
        runs.append(("hrnet", Settings(input=out / "clip" / "clip.mp4", out=out / "hrnet",
                                       lifter=lifter, detector=f"hrnet:{detector_ckpt}",
                                       boxes=str(out / "clip" / "boxes.json"),
                                       threshold=threshold, progress=False)))  # fmt: skip
    for name, settings in runs:
        res = run(settings, log=log)
        p = res["people"][0]
        pred = torch.as_tensor(p.pose_3d, dtype=torch.float64)
        g = gt[torch.as_tensor(p.frames)]
        report[name] = {
            "mpjpe_mm": 1000 * float(mpjpe(pred, g)),
            "p_mpjpe_mm": 1000 * float(p_mpjpe(pred, g)),
            "frames": len(p.frames),
            "filled_joints": int(p.filled.sum()),
        }
        if name == "hrnet":
            exact = np.load(out / "clip" / "exact_2d.npz")["keypoints"][p.frames]
            report[name]["mean_2d_error_px"] = float(
                np.linalg.norm(p.pose_2d - exact, axis=-1).mean()
            )
        r = report[name]
        log(f"clip dg/{clip['action']} ({len(p.frames)} frames) from {name}: MPJPE "
            f"{r['mpjpe_mm']:.1f} mm, P-MPJPE {r['p_mpjpe_mm']:.1f} mm")  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m liftpose.system.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--out", default="demo")
    ap.add_argument("--lifter", default=None, help="lifter checkpoint (default: the ready one)")
    ap.add_argument("--detector-ckpt", default=None, help="a module=heatmap checkpoint")
    ap.add_argument("--skip-photos", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.3, help="for the heatmap detector run")
    args = ap.parse_args(argv)
    from liftpose.system.writers import check_output_folder

    out = Path(args.out)
    lifter = Path(args.lifter) if args.lifter else None
    try:
        if out.exists() and any(out.iterdir()):
            raise DataError(out, "--out", "exists and is not empty")
        check_output_folder(out, False)
        report: dict = {}
        coco = shared_root() / "data" / "coco_mini"
        if not args.skip_photos and (coco / "val2017").is_dir():
            report["photos"] = photo_report(coco, out / "photos", lifter)
        elif not args.skip_photos:
            print(f"demo: {coco} not found: photos skipped")
        det = Path(args.detector_ckpt) if args.detector_ckpt else None
        report["clip"] = clip_report(out, lifter, det, args.threshold)
    except (DataError, ConfigError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    (out / "demo_metrics.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"demo: wrote {out}/ (demo_metrics.json, photos/, clip/, exact_2d/, hrnet/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild the ready lifter shipped with the package (``make ready-lifter``).

1. ``liftpose-train experiment=ready_lifter`` (``conf/experiment/ready_lifter.yaml``: a compact
   VideoPose3D on the embedded HDM05 motion filmed by random cameras, detector-like 2-D);
2. ``liftpose-eval`` of its last checkpoint on the held-out actor ``dg`` (the same random-camera
   capture), on ``dg`` filmed by the four Human3.6M-like cameras of ``data=embedded``, and on the
   Bandai-Namco test set in the MPI-INF-3DHP layout of ``data=embedded_bandai3dhp`` (built from
   ``../shared/data/bandai1`` when missing);
3. the slim, portable checkpoint (:func:`liftpose.utils.checkpoint.pack_checkpoint`) and the
   held-out metrics, with the training time, into ``src/liftpose/system/assets/``.

Every step runs the project's own commands in a run folder of its own under
``logs/ready_lifter/<time>/``; extra Hydra overrides for the training (e.g. ``trainer.max_epochs=1``
for a quick look) follow ``--`` and need an ``--out`` of their own (the package's assets hold
the lifter of the recipe as it is)::

    python -m liftpose.ready_lifter [--out DIR] [-- override ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from liftpose.utils.checkpoint import pack_checkpoint
from liftpose.utils.io import atomic_write_text

ASSETS = Path(__file__).resolve().parent / "system" / "assets"
#: Overrides of the evaluations (merged into the checkpoint's config by ``liftpose-eval``).
EVALS: dict[str, list[str]] = {
    "dg_random_cameras": [],
    "dg_h36m_cameras": [  # the embedded default: data=embedded's rig and detector
        "+override.data.root=${paths.data_dir}/hdm05",
        "+override.data.capture.rig.mode=ring",
        "+override.data.capture.rig.placement=subject",
        "+override.data.capture.det.relative_to_px=null",
        "+override.data.capture.det.bias_px=0.0",
        "+override.data.capture.det.coco_blend=0.0",
    ],
    "bandai_3dhp": [  # data=embedded_bandai3dhp's test set
        "+override.data.test_set={format:mpi3dhp,root:'${paths.data_dir}/bandai_3dhp',"
        "file:data_test_3dhp.npz,build_from:'${paths.shared_dir}/data/bandai1/data',"
        "sequences:null}",
    ],
}
#: ``metrics.json`` entries copied into the shipped metrics file.
REPORTED = ("test/mpjpe", "test/p_mpjpe", "test/n_mpjpe", "test/mpjve", "test/pck", "test/auc")


def _run(cmd: list[str]) -> float:
    """Run a command, echoing it; its CPU seconds (user + system, children)."""
    print("liftpose:", " ".join(cmd), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _metrics(path: Path) -> dict:
    doc = json.loads(path.read_text())
    flat = doc.get("metrics", doc)
    out = {k: flat[k] for k in REPORTED if k in flat}
    out.update({k: v for k, v in flat.items() if k.startswith("test/pck/action/")})
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ap = argparse.ArgumentParser(prog="python -m liftpose.ready_lifter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--out", default=str(ASSETS), help="assets folder (default: the package's)")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if extra and Path(args.out).resolve() == ASSETS.resolve():
        print(f"liftpose: --out: training overrides ({' '.join(extra)}) change the shipped "
              "lifter's recipe; give --out DIR for this build", file=sys.stderr)  # fmt: skip
        return 2
    try:
        return _build(args, extra)
    except subprocess.CalledProcessError as err:  # the command printed its own error
        print(f"liftpose: {Path(err.cmd[0]).name} stopped (exit {err.returncode}); nothing was "
              f"written to {args.out}", file=sys.stderr)  # fmt: skip
        return err.returncode if err.returncode > 0 else 1


def _build(args: argparse.Namespace, extra: list[str]) -> int:
    """Train, test and pack (module docstring); ``0``."""
    bindir = Path(sys.executable).parent
    run = Path("logs") / "ready_lifter" / time.strftime("%Y-%m-%d_%H-%M-%S")
    if run.exists():
        print(f"liftpose: {run} exists; run again in a second", file=sys.stderr)
        return 2
    t0 = time.time()
    cpu = _run([str(bindir / "liftpose-train"), "experiment=ready_lifter",
                f"hydra.run.dir={run / 'train'}", *extra])  # fmt: skip
    train_wall = time.time() - t0
    ckpt = run / "train" / "checkpoints" / "last.ckpt"
    results = {}
    for name, overrides in EVALS.items():
        _run([str(bindir / "liftpose-eval"), f"ckpt_path={ckpt}",
              f"hydra.run.dir={run / name}", *overrides])  # fmt: skip
        results[name] = _metrics(run / name / "metrics.json")
    out = Path(args.out)
    packed = pack_checkpoint(ckpt, out / "ready_lifter.ckpt")
    doc = {
        "checkpoint": packed.name,
        "experiment": "ready_lifter",
        "overrides": extra,
        "units": "mm for MPJPE, P-MPJPE, N-MPJPE, MPJVE; percent for PCK and AUC",
        "held_out": results,
        "training": {
            "wall_seconds": round(train_wall, 1),
            "cpu_seconds": round(cpu, 1),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "size_mb": round(packed.stat().st_size / 1e6, 2),
    }
    atomic_write_text(out / "ready_lifter_metrics.json", json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""HDM05 (Mueller et al., 2007) clips as Human3.6M-17 poses, and the embedded derived sample.

File names: ``HDM_<actor>_<motion>_<nnn>_<fps>.amc`` with skeleton ``HDM_<actor>.asf`` beside it.
Units: the ASF says ``length 0.45`` -> one unit is 0.0254 / 0.45 = 0.05644 m (see
``liftpose.data.mocap.asf_amc``); the capture rate is 120 Hz.

The embedded sample ``liftpose/data/assets/hdm05_sample.npz`` (CC BY-SA 3.0, see
``HDM05_SAMPLE_LICENSE.md`` beside it) holds one array per clip under ``"<actor>/<motion>/<nnn>"``,
(T, 17, 3) float32 metres, world Z up, floor at z = 0, resampled to 50 Hz and recentred so that
the clip's mean pelvis x, y is 0; each bone keeps one length over a clip. Key ``"__meta__"``
holds a JSON string (see ``build_hdm05_sample``). ``load_hdm05_sample`` reads it back.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from liftpose.data.mocap.asf_amc import AsfSkeleton, load_asf_amc, read_asf
from liftpose.data.mocap.retarget import HDM05_MAP, resample, retarget_to_h36m17
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError

__all__ = [
    "HDM05_FPS",
    "SAMPLE_PATH",
    "build_hdm05_sample",
    "load_hdm05_clip",
    "load_hdm05_sample",
    "parse_hdm05_name",
]

HDM05_FPS = 120
#: The embedded sample shipped with the package.
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "assets" / "hdm05_sample.npz"
_NAME_RE = re.compile(r"^HDM_([A-Za-z]+)_(.+)_(\d+)_(\d+)\.amc$")


def parse_hdm05_name(path: str | Path) -> tuple[str, str, int]:
    """(actor, motion, take) of a clip name, e.g. ``("bd", "squat1Reps", 3)`` for
    ``HDM_bd_squat1Reps_003_120.amc``.

    Raises ``DataError`` for a name not of the form ``HDM_<actor>_<motion>_<nnn>_<fps>.amc``.
    """
    m = _NAME_RE.match(Path(path).name)
    if m is None:
        raise DataError(path, "file name", "expected HDM_<actor>_<motion>_<nnn>_<fps>.amc")
    return m.group(1), m.group(2), int(m.group(3))


def load_hdm05_clip(
    amc_path: str | Path, asf_path: str | Path | AsfSkeleton | None = None
) -> np.ndarray:
    """One HDM05 clip as Human3.6M-17 poses.

    Args:
        amc_path: ``HDM_<actor>_<motion>_<nnn>_120.amc``.
        asf_path: the skeleton (path or parsed); default ``HDM_<actor>.asf`` in the same folder.

    Returns:
        (T, 17, 3) float32, metres, world Z up with the floor at z = 0, 120 Hz.
    """
    amc_path = Path(amc_path)
    if asf_path is None:
        actor = parse_hdm05_name(amc_path)[0]
        asf_path = amc_path.with_name(f"HDM_{actor}.asf")
    pos, names = load_asf_amc(amc_path, asf_path, metres=True)
    return retarget_to_h36m17(pos, names, HDM05_MAP, path=amc_path).astype(np.float32)


def _balanced_subset(
    clips: dict[str, np.ndarray], budget_bytes: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Drop takes until the raw float32 size fits ``budget_bytes``, always from the (actor, motion)
    group with the most takes left (ties: the actor with the most clips left), highest take
    number first; every group keeps at least one take."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key in sorted(clips):
        actor, motion, _ = key.split("/")
        groups.setdefault((actor, motion), []).append(key)
    per_actor = {a: sum(len(g) for (b, _), g in groups.items() if b == a) for a, _ in groups}
    kept = dict(clips)
    dropped: list[str] = []
    size = sum(a.nbytes for a in kept.values())
    while size > budget_bytes:
        cands = [gk for gk, g in groups.items() if len(g) > 1]
        if not cands:
            break
        gk = max(cands, key=lambda k: (len(groups[k]), per_actor[k[0]]))
        key = groups[gk].pop()
        per_actor[gk[0]] -= 1
        size -= kept.pop(key).nbytes
        dropped.append(key)
    return kept, sorted(dropped)


def build_hdm05_sample(
    src_dir: str | Path,
    out_path: str | Path,
    fps: int = 50,
    actors: tuple[str, ...] = ("bd", "bk", "dg"),
    max_bytes: int = 5_000_000,
) -> Path:
    """Build the embedded HDM05-derived sample (see the module docstring for the format).

    Every ``HDM_<actor>_*_120.amc`` of ``actors`` in ``src_dir`` is retargeted to H36M-17,
    resampled from 120 Hz to ``fps`` and recentred (mean pelvis x, y = 0; z kept). If the
    compressed file exceeds ``max_bytes``, a balanced subset is kept: takes are dropped from the
    largest (actor, motion) groups first, every group keeps at least one, and the meta lists the
    dropped clips. The file is written to a temporary name in the target folder and moved into
    place with ``os.replace``.

    Returns:
        the path written.
    """
    src_dir, out_path = Path(src_dir), Path(out_path)
    clips: dict[str, np.ndarray] = {}
    skeletons: dict[str, AsfSkeleton] = {}
    frames_120 = 0
    for amc in sorted(src_dir.glob("HDM_*_120.amc")):
        actor, motion, take = parse_hdm05_name(amc)
        if actor not in actors:
            continue
        if actor not in skeletons:
            skeletons[actor] = read_asf(src_dir / f"HDM_{actor}.asf")
        pos = load_hdm05_clip(amc, skeletons[actor]).astype(np.float64)
        frames_120 += pos.shape[0]
        pos = resample(pos, HDM05_FPS, fps, H36M17)
        pos[..., :2] -= pos[:, 0, :2].mean(axis=0)
        clips[f"{actor}/{motion}/{take:03d}"] = pos.astype(np.float32)
    missing = sorted(set(actors) - set(skeletons))
    if missing:
        raise DataError(src_dir, "actors", f"no HDM_<actor>_*_120.amc clips for {missing}")

    kept, dropped = clips, []
    while True:
        meta = _meta(kept, dropped, len(clips), frames_120, fps, actors)
        size = _write_atomic(out_path, kept, meta, max_bytes)
        if size <= max_bytes:
            return out_path
        raw = sum(a.nbytes for a in kept.values())
        smaller, dropped = _balanced_subset(clips, int(raw * max_bytes / size * 0.98))
        if len(smaller) == len(kept):  # one take per (actor, motion) left: nothing more to drop
            _write_atomic(out_path, kept, meta, None)
            return out_path
        kept = smaller


def _write_atomic(
    out_path: Path, clips: dict[str, np.ndarray], meta: dict, max_bytes: int | None
) -> int:
    """Write the npz to a temporary name beside ``out_path`` and move it into place with
    ``os.replace`` -- unless it is larger than ``max_bytes``. Returns the compressed size."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, __meta__=np.array(json.dumps(meta)), **clips)
        size = tmp.stat().st_size
        if max_bytes is None or size <= max_bytes:
            os.replace(tmp, out_path)
        return size
    finally:
        tmp.unlink(missing_ok=True)


def _meta(
    kept: dict[str, np.ndarray],
    dropped: list[str],
    n_all: int,
    frames_120: int,
    fps: int,
    actors: tuple[str, ...],
) -> dict:
    per_actor = {
        a: {
            "clips": sum(k.startswith(a + "/") for k in kept),
            "frames": int(sum(v.shape[0] for k, v in kept.items() if k.startswith(a + "/"))),
        }
        for a in actors
    }
    return {
        "source": "HDM05",
        "citation": (
            "M. Mueller, T. Roeder, M. Clausen, B. Eberhardt, B. Krueger, A. Weber: "
            "Documentation Mocap Database HDM05. Tech. Rep. CG-2007-2, Universitaet Bonn, 2007"
        ),
        "licence": "CC BY-SA 3.0",
        "fps": fps,
        "source_fps": HDM05_FPS,
        "joints": "h36m17",
        "units": "m",
        "up": "z",
        "dtype": "float32",
        "key_format": "<actor>/<motion>/<nnn>",
        "shape": "(T, 17, 3)",
        "derivation": (
            "ASF/AMC forward kinematics (1 unit = 0.0254/0.45 m), retargeted to Human3.6M-17 "
            "with constant bone lengths (liftpose.data.mocap.retarget), linearly resampled "
            f"120 -> {fps} Hz with the bone lengths kept, mean pelvis x,y per clip moved to 0"
        ),
        "recentred": "mean pelvis x,y over each clip = 0; z kept (floor at z = 0)",
        "actors": list(actors),
        "motions": sorted({k.split("/")[1] for k in kept}),
        "num_clips": len(kept),
        "num_frames": int(sum(v.shape[0] for v in kept.values())),
        "num_clips_source": n_all,
        "num_frames_source_120hz": frames_120,
        "per_actor": per_actor,
        "subset": bool(dropped),
        "dropped": dropped,
    }


def load_hdm05_sample(path: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read the embedded sample: ``({"<actor>/<motion>/<nnn>": (T, 17, 3) float32}, meta)``."""
    path = Path(path) if path is not None else SAMPLE_PATH
    if not path.is_file():
        raise DataError(path, "file", "embedded HDM05 sample not found")
    with np.load(path, allow_pickle=False) as npz:
        if "__meta__" not in npz.files:
            raise DataError(path, "__meta__", "missing")
        meta = json.loads(str(npz["__meta__"]))
        clips = {k: npz[k] for k in npz.files if k != "__meta__"}
    return clips, meta

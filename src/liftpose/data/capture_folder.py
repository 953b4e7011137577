"""Any folder of motion capture filmed into a lifting dataset: ``liftpose-data capture``.

:func:`capture_folder` reads the clips of a folder of ASF/AMC or BVH files
(:mod:`liftpose.data.mocap.folder`: subjects and actions from the file names, Human3.6M-17 with
constant bones, resampled), films them with virtual cameras (:func:`liftpose.data.capture.film`:
rig per subject or per clip, a person height in pixels as a target, or random cameras) and
writes the VideoPose3D layout that :func:`liftpose.data.h36m.load_sequences` reads, as the
embedded dataset is written::

    <root>/data_3d_<name>.npz  data_2d_<name>_gt.npz  data_2d_<name>_det.npz  cameras_<name>.json
    <root>/.<name>.capture.json    what was written: files and their SHA-1, settings, summary

Users' data is never overwritten: a file of the dataset that already exists is replaced only if
the manifest lists it with the SHA-1 it still has (liftpose wrote it and nobody changed it
since); otherwise the build stops before reading anything. All input is read and checked, and
every file written under a temporary folder inside ``root``, before the first file is moved into
place, so a bad clip or an interruption leaves ``root`` as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from liftpose.data.capture import CaptureConfig, Filmed, film
from liftpose.data.h36m import dataset_files, write_dataset
from liftpose.data.mocap.folder import find_clips, load_collection
from liftpose.errors import DataError
from liftpose.utils.io import atomic_write_text, file_sha1

__all__ = ["MANIFEST_FORMAT", "capture_folder", "check_writable", "manifest_path"]

MANIFEST_FORMAT = "liftpose-capture/1"
SOURCES = ("gt", "det")


def manifest_path(root: str | Path, name: str) -> Path:
    """The manifest of dataset ``name`` in ``root``: ``.<name>.capture.json``."""
    return Path(root) / f".{name}.capture.json"


def _targets(root: Path, name: str) -> list[Path]:
    files = dataset_files(root, name, "gt")
    return [files["3d"], files["2d"], dataset_files(root, name, "det")["2d"], files["cameras"]]


def check_writable(root: str | Path, name: str) -> None:
    """Refuse to build dataset ``name`` in ``root`` over files liftpose did not write.

    Raises:
        DataError: naming the first dataset file that exists and is not in the manifest with
            its current SHA-1 (or the manifest, if it is unreadable).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(root, "--root", "exists and is not a folder")
    man = manifest_path(root, name)
    written: dict[str, str] = {}
    if man.exists():
        try:
            doc = json.loads(man.read_text())
            written = dict(doc["files"]) if doc.get("format") == MANIFEST_FORMAT else {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(man, "files", f"unreadable manifest ({e}); move it away") from None
    for path in _targets(root, name):
        if not (path.exists() or path.is_symlink()):
            continue
        if not path.is_file():  # a folder (or anything but a file) there is not liftpose's
            why = "was not written by liftpose-data capture (not a file)"
        elif written.get(path.name) != file_sha1(path):
            why = (
                "was changed since liftpose-data capture wrote it"
                if path.name in written
                else "was not written by liftpose-data capture"
            )
        else:
            continue  # liftpose's own file, unchanged: rebuilt
        raise DataError(
            path, "file", f"exists and {why}; choose another --root or --name, or move it away"
        )


def _summary(collection: dict, filmed: Filmed) -> dict:
    """Frames, clips and how the people look in the pictures (pixels, exact 2-D)."""
    heights, outside, frames = [], 0, 0
    for subject, actions in filmed.positions_2d["gt"].items():
        for action, views in actions.items():
            for cam, px in zip(filmed.cameras_of(subject, action), views):
                heights.append(np.ptp(px[..., 1], axis=1))
                inside = (
                    (px[..., 0] >= 0) & (px[..., 0] < cam.res_w)
                    & (px[..., 1] >= 0) & (px[..., 1] < cam.res_h)
                ).all(axis=1)  # fmt: skip
                outside += int((~inside).sum())
                frames += len(px)
    h = np.concatenate(heights)
    return {
        "subjects": {
            s: {"clips": len(a), "frames": int(sum(len(v) for v in a.values()))}
            for s, a in collection.items()
        },  # fmt: skip
        "views": frames,
        "person_height_px": {
            "median": float(np.median(h)),
            "p5": float(np.percentile(h, 5)),
            "p95": float(np.percentile(h, 95)),
        },  # fmt: skip
        "frames_with_joints_outside_image": outside,
    }


def capture_folder(
    src: str | Path,
    fmt: str,
    root: str | Path,
    name: str,
    *,
    subjects: Sequence[str] | None = None,
    pattern: str | None = None,
    skeleton: str | None = None,
    fps: float = 50.0,
    source_fps: float = 120.0,
    bvh_unit: float = 0.01,
    cfg: CaptureConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Film the motion capture of ``src`` into the dataset ``name`` in ``root`` (module doc).

    Args:
        src: folder of ``*.amc`` + ``*.asf`` or ``*.bvh`` files (sub-folders included).
        fmt: ``"amc"`` or ``"bvh"``.
        root: output folder (created).
        name: dataset name in the file names (letters, digits, ``-``, ``_``).
        subjects: the subjects to keep (None: all found).
        pattern, skeleton, fps, source_fps, bvh_unit: see
            :func:`liftpose.data.mocap.folder.find_clips` and ``load_collection``.
        cfg: the rig, the simulated detector and the seed.
        log: receives one progress line per subject and stage.

    Returns:
        the summary written to the manifest: subjects, clips, frames, the people's heights in
        the images and the count of views whose joints leave the image.

    Raises:
        DataError: bad input (one line naming the file or option and the field), or a file of
            the dataset that liftpose did not write.
    """
    root = Path(root)
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise DataError(None, "--name", f"{name!r}: use letters, digits, '-' and '_'")
    check_writable(root, name)
    cfg = cfg or CaptureConfig()
    clips = find_clips(src, fmt, pattern)
    found = sorted({c.subject for c in clips})
    if subjects:
        missing = sorted(set(subjects) - set(found))
        if missing:
            raise DataError(src, "--subjects", f"{missing} not found; the folder has {found}")
        clips = [c for c in clips if c.subject in set(subjects)]
    log(f"liftpose: {len(clips)} clips of {len({c.subject for c in clips})} subjects in {src}")
    collection = load_collection(
        clips, fmt, skeleton=skeleton, fps=fps, source_fps=source_fps, bvh_unit=bvh_unit, log=log
    )
    filmed = film(collection, cfg)
    summary = _summary(collection, filmed)
    settings = {
        "src": str(Path(src).resolve()),
        "format": fmt,
        "pattern": pattern,
        "skeleton": skeleton,
        "fps": fps,
        "source_fps": source_fps,
        "bvh_unit": bvh_unit,
        "capture": dataclasses.asdict(cfg),
    }
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.capture.", dir=root))
    try:
        write_dataset(
            staging, name, collection, filmed.positions_2d, filmed.cameras, filmed.clip_cameras,
            metadata={"writer": "liftpose-data capture", "fps": fps},
        )  # fmt: skip
        check_writable(root, name)  # nothing appeared meanwhile
        written = {}
        for target in _targets(root, name):
            os.replace(staging / target.name, target)
            written[target.name] = file_sha1(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    doc = {"format": MANIFEST_FORMAT, "files": written, "settings": settings, "summary": summary}
    atomic_write_text(manifest_path(root, name), json.dumps(doc, indent=1, default=str))
    return summary

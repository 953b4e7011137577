"""The embedded default dataset: the packaged HDM05-derived sample filmed by virtual cameras.

The sample (``assets/hdm05_sample.npz``, CC BY-SA 3.0, see ``assets/HDM05_SAMPLE_LICENSE.md``)
holds real motion capture of the HDM05 actors retargeted to the Human3.6M 17 joints at 50 Hz.
:func:`ensure_embedded` turns it into a Human3.6M-style dataset (actors -> subjects, clips ->
actions such as ``"squat1Reps 3"``, four virtual cameras with the Human3.6M intrinsics) written in
the VideoPose3D layout, once, and reuses it while the capture settings are unchanged.

The build goes to its own folder, ``data.root`` of ``conf/data/embedded.yaml``
(``<paths.cache_dir>/embedded/hdm05``; ``liftpose-data embedded --root`` elsewhere). Its files
carry liftpose markers (:mod:`liftpose.utils.io`): a folder holding a user's file of the same name
is never written into (:class:`~liftpose.errors.DataError` naming the file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from liftpose.data.capture import CaptureConfig, DetectorNoise, RigConfig, film
from liftpose.data.h36m import dataset_files, write_dataset
from liftpose.errors import ConfigError, DataError
from liftpose.utils.io import atomic_write_text, has_marker

SAMPLE_NAME = "hdm05_sample.npz"


def sample_path() -> Path:
    return Path(str(resources.files("liftpose.data") / "assets" / SAMPLE_NAME))


def load_sample(path: str | Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """``{actor: {"<motion> <take>": (T, 17, 3)}}`` world metres, Z up, 50 Hz."""
    p = Path(path) if path is not None else sample_path()
    if not p.exists():
        raise DataError(p, "file", "embedded motion sample missing from the package")
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(p) as f:
        for key in f.files:
            if key.startswith("__"):
                continue
            parts = key.split("/")
            if len(parts) != 3:
                raise DataError(p, key, "expected '<actor>/<motion>/<take>'")
            actor, motion, take = parts
            arr = f[key]
            if arr.ndim != 3 or arr.shape[1:] != (17, 3):
                raise DataError(p, key, f"expected (T, 17, 3), got {arr.shape}")
            out.setdefault(actor, {})[f"{motion} {int(take)}"] = arr.astype(np.float32)
    return out


def capture_config(cfg: dict | None) -> CaptureConfig:
    """A :class:`CaptureConfig` from a plain mapping with optional ``rig``, ``det``, ``seed``."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = dict(cfg or {})

    def fields(group: str, cls: type) -> dict:
        given = dict(cfg.get(group) or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"data.capture.{group}.{unknown[0]}: unknown key; known: {sorted(known)}"
            )
        return {k: _tuples(v) for k, v in given.items()}

    rig = RigConfig(**fields("rig", RigConfig))
    det = DetectorNoise(**fields("det", DetectorNoise))
    return CaptureConfig(rig=rig, det=det, seed=int(cfg.get("seed", 0)))


def _tuples(v):
    """Lists (from YAML) as tuples, nested ones too."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def ensure_embedded(root: str | Path, name: str = "hdm05", cfg: dict | None = None) -> Path:
    """Build the virtual-capture dataset under ``root`` unless an identical build is there.

    Raises:
        DataError: ``root`` holds files that liftpose did not write (a user's dataset, say);
            nothing is written then.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(root, "data.root", "is a file, not a folder")
    cc = capture_config(cfg)
    settings = dataclasses.asdict(cc)
    if cc.rig.mode == "ring":  # the random-camera ranges do not change a ring's films
        settings["rig"] = {k: v for k, v in settings["rig"].items() if not k.startswith("random_")}
    spec = json.dumps({"sample": sample_path().stat().st_size, "capture": settings}, sort_keys=True)
    digest = hashlib.sha1(spec.encode()).hexdigest()[:16]
    stamp = root / f".{name}.build"
    files = [*dataset_files(root, name, "gt").values(), dataset_files(root, name, "det")["2d"]]
    if stamp.exists() and stamp.read_text() == digest and all(f.exists() for f in files):
        return root
    foreign = foreign_files(root)
    if foreign:
        raise DataError(
            root / foreign[0],
            "file",
            f"data.root={root} holds {len(foreign)} file(s) liftpose did not write; the embedded "
            "data is built into its own folder (leave data.root at its default), and a dataset "
            "of yours is read with its own config (e.g. data=h36m data.root=... data.name=...)",
        )
    print(f"liftpose: filming the embedded HDM05 sample into {root} (virtual capture)")
    collection = load_sample()
    filmed = film(collection, cc)
    write_dataset(root, name, collection, filmed.positions_2d, filmed.cameras, filmed.clip_cameras)
    atomic_write_text(stamp, digest)
    return root


def foreign_files(root: str | Path) -> list[str]:
    """Names of the entries of ``root`` that liftpose did not write: anything but marked data
    files, build stamps (``.<name>.build``) and temporaries (``.<file>.<random>.tmp*``)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        ours = p.is_file() and (
            has_marker(p) or (p.name.startswith(".") and (p.suffix == ".build" or ".tmp" in p.name))
        )
        if not ours:
            out.append(p.name)
    return out

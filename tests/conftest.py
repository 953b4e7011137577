"""Shared fixtures: a tiny synthetic motion collection written in the VideoPose3D layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real data and official-implementation fixtures (``data/``, ``fixtures/``): ``../shared`` beside
#: the repository, or ``$LIFTPOSE_SHARED``. Tests that need them skip with a reason without them.
SHARED = Path(os.environ.get("LIFTPOSE_SHARED", REPO.parent / "shared"))
#: Official-implementation outputs: ``<model>/[<variant>/]`` with config, state_dict and io files
OFFICIAL = SHARED / "fixtures" / "official"


def official_fixture(folder: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(config, state_dict, io)`` of one official-implementation fixture folder, or a skip
    with the missing files named."""
    import json

    needed = [folder / n for n in ("config.json", "state_dict.npz", "io.npz")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.skip(f"official fixtures not found: {missing} (set LIFTPOSE_SHARED)")
    config = json.loads(needed[0].read_text())
    with np.load(needed[1]) as sd, np.load(needed[2]) as io:
        return config, {k: sd[k] for k in sd.files}, {k: io[k] for k in io.files}


# A standing pose in the 17-joint layout, metres, Z up, pelvis at 1 m.
REST_POSE = np.array([
    [0.00, 0.00, 1.00], [-0.12, 0.00, 1.00], [-0.12, 0.02, 0.55], [-0.12, 0.00, 0.10],
    [0.12, 0.00, 1.00], [0.12, 0.02, 0.55], [0.12, 0.00, 0.10], [0.00, 0.00, 1.25],
    [0.00, 0.00, 1.50], [0.00, -0.08, 1.60], [0.00, 0.00, 1.75], [0.18, 0.00, 1.48],
    [0.42, 0.00, 1.46], [0.65, 0.00, 1.45], [-0.18, 0.00, 1.48], [-0.42, 0.00, 1.46],
    [-0.65, 0.00, 1.45],
])  # fmt: skip


def synthetic_motion(frames: int, seed: int) -> np.ndarray:
    """A smooth, bone-length-free toy motion ``(T, 17, 3)``: sway, arm swing, slow walk."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 50.0
    pose = np.repeat(REST_POSE[None], frames, axis=0).copy()
    freq = rng.uniform(0.5, 1.5)
    pose[:, [12, 13], 1] += 0.3 * np.sin(2 * np.pi * freq * t)
    pose[:, [15, 16], 1] -= 0.3 * np.sin(2 * np.pi * freq * t)
    pose[:, [2, 3], 1] += 0.2 * np.sin(2 * np.pi * freq * t + 1.0)
    pose[:, [5, 6], 1] -= 0.2 * np.sin(2 * np.pi * freq * t + 1.0)
    pose[:, :, 0] += 0.3 * np.sin(0.5 * t) + rng.normal(0, 0.002, (frames, 17))
    pose[:, :, 1] += 0.2 * t
    return pose.astype(np.float32)


def synthetic_collection(
    subjects=("A", "B", "C"), actions=("Walk 1", "Walk 2", "Wave 1"), frames=90
) -> dict:
    return {
        s: {a: synthetic_motion(frames + 7 * i, seed=13 * si + i) for i, a in enumerate(actions)}
        for si, s in enumerate(subjects)
    }


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny dataset ``tiny`` (subjects A, B train; C test) with ``gt`` and ``det`` 2-D."""
    from liftpose.data.capture import capture
    from liftpose.data.h36m import write_dataset

    root = tmp_path_factory.mktemp("tiny")
    coll = synthetic_collection()
    cams, pos2d = capture(coll)
    write_dataset(root, "tiny", coll, pos2d, cams)
    return root

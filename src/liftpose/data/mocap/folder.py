"""A folder of motion capture as a collection of Human3.6M-17 clips (``liftpose-data capture``).

Clips are the ``*.amc`` (each with an ASF skeleton beside it) or ``*.bvh`` files under a folder,
sub-folders included. A clip's subject, action and take come from its file name (the stem,
without the extension) through a regular expression with the named groups ``subject``
(required), ``action`` and ``take`` (optional) and, for AMC, ``fps`` (the capture rate; else
``source_fps``). The first of the format's patterns that matches is used:

===========  =====================================================  ============================
format       pattern (``re.fullmatch`` on the stem)                 example -> subject, action
===========  =====================================================  ============================
amc (HDM05)  ``HDM_(?P<subject>[A-Za-z]+)_(?P<action>.+)_``          ``HDM_bd_squat1Reps_003_120``
             ``(?P<take>\\d+)_(?P<fps>\\d+)``                          -> ``bd``, ``squat1Reps 3``
amc (CMU)    ``(?P<subject>[0-9]+)_(?P<take>[0-9]+)``                ``07_01`` -> ``07``, ``take 1``
bvh (Bandai) ``dataset-\\d+_(?P<action>[^_]+)_(?P<subject>[^_]+)_``    ``dataset-1_walk_happy_001``
             ``(?P<take>\\d+)``                                       -> ``happy``, ``walk 1``
bvh (other)  ``(?P<subject>[^_]+)_(?P<action>.+)``                    ``actor1_jump`` -> ``actor1``
===========  =====================================================  ============================

Bandai-Namco files name no performer, so their *style* is the subject (15 styles, 22 clips each
but ``normal`` with 41). An action key is ``"<action> <take>"`` (``action`` alone without a take,
``"take <n>"`` without an action), so action groups (``data.actions``, per-action tables) are the
motion names. The ASF of an AMC is the ``.asf`` in its folder whose stem is the longest prefix of
the AMC's stem (``HDM_bd.asf`` for ``HDM_bd_...amc``, ``07.asf`` for ``07_01.amc``), or the only
``.asf`` there.

Each clip is read, retargeted with constant bone lengths
(:func:`liftpose.data.mocap.retarget.retarget_to_h36m17`), resampled to ``fps`` keeping the bone
lengths and recentred so that its mean pelvis x, y is 0 (z kept: HDM05, CMU and Bandai have their
floor at z = 0), as the embedded HDM05 sample is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftpose.data.mocap.asf_amc import AsfSkeleton, forward_kinematics, read_amc, read_asf
from liftpose.data.mocap.bvh import bvh_forward_kinematics, read_bvh
from liftpose.data.mocap.retarget import (
    BANDAI_MAP,
    SOURCE_MAPS,
    bandai_head_top_offset,
    resample,
    retarget_to_h36m17,
)
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError

__all__ = ["FORMATS", "NAME_PATTERNS", "MocapClip", "find_clips", "load_collection"]

FORMATS = ("amc", "bvh")
NAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "amc": (
        r"HDM_(?P<subject>[A-Za-z]+)_(?P<action>.+)_(?P<take>\d+)_(?P<fps>\d+)",
        r"(?P<subject>[0-9]+)_(?P<take>[0-9]+)",
    ),
    "bvh": (
        r"dataset-\d+_(?P<action>[^_]+)_(?P<subject>[^_]+)_(?P<take>\d+)",
        r"(?P<subject>[^_]+)_(?P<action>.+)",
    ),
}
#: The joint map of each format (keys of ``SOURCE_MAPS``).
DEFAULT_SKELETON = {"amc": "cmu", "bvh": "bandai"}


@dataclass(frozen=True)
class MocapClip:
    """One motion file: where it is and what it is called in the dataset."""

    path: Path
    subject: str
    action: str  # the dataset's action key, e.g. "walk 1"
    fps: float | None  # from the file name (AMC), else None


def _match(stem: str, patterns: Sequence[str]) -> re.Match | None:
    for pat in patterns:
        m = re.fullmatch(pat, stem)
        if m is not None:
            return m
    return None


def _action_key(m: re.Match) -> str:
    groups = m.groupdict()
    action, take = groups.get("action"), groups.get("take")
    if action and take:
        return f"{action} {int(take)}"
    if action:
        return action
    return f"take {int(take)}" if take else "motion"


def find_clips(src: str | Path, fmt: str, pattern: str | None = None) -> list[MocapClip]:
    """Every ``*.<fmt>`` file under ``src`` as a :class:`MocapClip` (sorted by path).

    Raises:
        DataError: ``src`` is no folder, holds no such file, a file name matches no pattern
            (``pattern``, else the format's defaults), or two files get the same subject and
            action.
    """
    src = Path(src)
    if fmt not in FORMATS:
        raise DataError(src, "--format", f"{fmt!r}: expected one of {FORMATS}")
    if not src.is_dir():
        raise DataError(src, "--src", "not a folder")
    files = sorted(p for p in src.rglob(f"*.{fmt}") if p.is_file())
    if not files:
        raise DataError(src, "--src", f"no *.{fmt} files in this folder or below")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise DataError(None, "--pattern", f"not a regular expression ({e})") from None
        if "(?P<subject>" not in pattern:
            raise DataError(None, "--pattern", "needs a named group (?P<subject>...)")
    patterns = (pattern,) if pattern is not None else NAME_PATTERNS[fmt]
    clips: list[MocapClip] = []
    seen: dict[tuple[str, str], Path] = {}
    for f in files:
        m = _match(f.stem, patterns)
        if m is None:
            raise DataError(
                f, "file name", f"matches no pattern of {list(patterns)} (set --pattern)"
            )
        fps = m.groupdict().get("fps")
        clip = MocapClip(f, m.group("subject"), _action_key(m), float(fps) if fps else None)
        key = (clip.subject, clip.action)
        if key in seen:
            raise DataError(
                f, "file name", f"subject {key[0]!r}, action {key[1]!r} again (as {seen[key]})"
            )
        seen[key] = f
        clips.append(clip)
    return clips


def _asf_for(amc: Path, cache: dict[Path, AsfSkeleton]) -> AsfSkeleton:
    candidates = sorted(amc.parent.glob("*.asf"))
    prefixed = [a for a in candidates if amc.stem.startswith(a.stem)]
    if prefixed:
        asf = max(prefixed, key=lambda a: len(a.stem))
    elif len(candidates) == 1:
        asf = candidates[0]
    else:
        found = [a.name for a in candidates] or "none"
        raise DataError(
            amc, "skeleton", f"no .asf whose name starts its name in its folder (found {found})"
        )
    if asf not in cache:
        cache[asf] = read_asf(asf)
    return cache[asf]


def _read_clip(
    clip: MocapClip,
    fmt: str,
    skeleton: str,
    source_fps: float,
    bvh_unit: float,
    asf_cache: dict[Path, AsfSkeleton],
) -> tuple[np.ndarray, float]:
    """(T, 17, 3) float64 metres, world Z up, constant bones, and the clip's frame rate."""
    if fmt == "amc":
        skel = _asf_for(clip.path, asf_cache)
        raw = forward_kinematics(skel, read_amc(clip.path, skel))
        pos = retarget_to_h36m17(
            raw, skel.joint_names, skeleton, scale=skel.metres_per_unit, path=clip.path
        )
        return pos, clip.fps or source_fps
    bvh = read_bvh(clip.path)
    mapping = SOURCE_MAPS[skeleton]
    ends = {}
    if mapping is BANDAI_MAP and "Head_end" in bvh.names:
        head_end = bvh.offsets[bvh.names.index("Head_end")]
        if not np.linalg.norm(head_end) > 0:  # a zero-length head: extrapolate its top
            ends["Head_end"] = bandai_head_top_offset(bvh)
    raw = bvh_forward_kinematics(bvh, ends)
    return retarget_to_h36m17(raw, bvh.names, mapping, scale=bvh_unit, path=clip.path), bvh.fps


def load_collection(
    clips: Sequence[MocapClip],
    fmt: str,
    *,
    skeleton: str | None = None,
    fps: float = 50.0,
    source_fps: float = 120.0,
    bvh_unit: float = 0.01,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Read ``clips`` into ``{subject: {action: (T, 17, 3) float32}}`` (module docstring).

    Args:
        clips: from :func:`find_clips`.
        fmt: ``"amc"`` or ``"bvh"``.
        skeleton: the joint map, a key of ``SOURCE_MAPS`` (default: ``cmu`` for AMC, ``bandai``
            for BVH).
        fps: the dataset's frame rate (Hz).
        source_fps: the capture rate of AMC files whose name does not give it (HDM05 and CMU:
            120 Hz).
        bvh_unit: metres per BVH file unit (Bandai-Namco: centimetres, 0.01).
        log: called with one line per subject read.

    Raises:
        DataError: an unreadable or malformed file, a skeleton that lacks a joint of the map,
            non-finite positions, or a clip of fewer than 2 frames.
    """
    skeleton = skeleton or DEFAULT_SKELETON[fmt]
    if skeleton not in SOURCE_MAPS:
        raise DataError(None, "--skeleton", f"{skeleton!r}: expected one of {sorted(SOURCE_MAPS)}")
    for name, v in (("--fps", fps), ("--source-fps", source_fps), ("--bvh-unit", bvh_unit)):
        if not (np.isfinite(v) and v > 0):
            raise DataError(None, name, f"must be a positive number, got {v}")
    out: dict[str, dict[str, np.ndarray]] = {}
    asf_cache: dict[Path, AsfSkeleton] = {}
    for subject in sorted({c.subject for c in clips}):
        frames = 0
        for clip in (c for c in clips if c.subject == subject):
            pos, rate = _read_clip(clip, fmt, skeleton, source_fps, bvh_unit, asf_cache)
            if len(pos) < 2:
                raise DataError(clip.path, "frames", f"{len(pos)} frame(s); a clip needs 2")
            pos = resample(pos, rate, fps, H36M17)
            pos[..., :2] -= pos[:, 0, :2].mean(axis=0)
            out.setdefault(subject, {})[clip.action] = pos.astype(np.float32)
            frames += len(pos)
        if log is not None:
            log(f"liftpose: read {len(out[subject])} clips of {subject} ({frames} frames)")
    return out

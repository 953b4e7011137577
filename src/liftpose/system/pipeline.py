"""The whole system: input -> people per frame -> tracks -> Human3.6M-17 -> lifted 3-D -> files.

:func:`run` is what ``liftpose-infer`` does (see :mod:`liftpose.infer` for the options). Every
bad input is found before ``--out`` is touched: the lifter is loaded, the input read and
checked, the output folder checked, the people detected and tracked, and each track's data
checked; only then is the folder claimed and written.

Per track: the keypoints map to Human3.6M-17 (:mod:`~liftpose.system.joints`), joints below the
confidence threshold are filled (:func:`~liftpose.system.timebase.fill_gaps`), each frame is
normalised by its own image size, the track is resampled to the lifter's frame rate, lifted
(:func:`~liftpose.system.lifting.lift_sequence`) and resampled back to the input's frame times.
Photos (no frame rate) are lifted one by one, each a one-frame sequence.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftpose.data.camera import normalize_screen_coordinates
from liftpose.errors import DataError
from liftpose.system.joints import H36M17_LAYOUT, get_layout, to_h36m
from liftpose.system.person import Detections, Frame
from liftpose.system.timebase import TrackError, fill_gaps, resample, uniform_times
from liftpose.system.tracking import Track, select_tracks, track_people

#: the longest ``--max-gap`` accepted, frames (over an hour at 250 frames/s)
MAX_GAP = 1_000_000


@dataclass
class Settings:
    """What ``liftpose-infer`` was asked (the command-line options, see :mod:`liftpose.infer`)."""

    input: Path
    out: Path
    lifter: Path | None = None  # or a loaded liftpose.system.lifting.Lifter
    detector: str = "blazepose"
    boxes: str | None = None
    layout: str | None = None
    joint_map: str = "standard"
    person: str = "largest"
    fps: float | None = None
    image_size: tuple[float, float] | None = None
    causal: bool = False
    threshold: float = 0.3
    max_gap: int = 10
    min_valid: float = 0.5
    force: bool = False
    animation: str = "mp4"
    draw: bool = True
    device: str = "cpu"
    progress: bool | None = None  # None: a bar on a terminal, plain lines otherwise


@dataclass
class StageTimes:
    """Seconds and frames per stage, for the frames/s summary."""

    seconds: dict[str, float] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)

    def add(self, stage: str, seconds: float, frames: int = 0) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.frames[stage] = self.frames.get(stage, 0) + frames

    def summary(self) -> str:
        parts = []
        for s in ("decode", "detect", "lift", "draw"):
            if s in self.seconds and self.frames.get(s):
                fps = self.frames[s] / max(self.seconds[s], 1e-9)
                parts.append(f"{s} {fps:,.1f}")
        return "frames/s: " + ", ".join(parts)


class Progress:
    """A bar over frames on a terminal (rich), plain lines every ~10 % otherwise."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.tty = sys.stderr.isatty() if enabled is None else enabled

    def iterate(self, items: Iterable, total: int, what: str) -> Iterator:
        if self.tty:
            from rich.console import Console
            from rich.progress import track

            console = Console(stderr=True)
            yield from track(items, total=total, description=what, transient=True, console=console)
            return
        step = max(1, total // 10)
        for i, item in enumerate(items):
            yield item
            if (i + 1) % step == 0 or i + 1 == total:
                print(f"liftpose-infer: {what} {i + 1}/{total} frames", file=sys.stderr)


@dataclass
class Lifted:
    """One lifted person: the track, its frame indices, times, pixels and 3-D."""

    track: Track
    frames: np.ndarray  # (N,) indices into the input frames
    times: np.ndarray  # (N,) seconds (NaN for photos)
    keypoints: np.ndarray  # (N, K, 2) detector pixels (NaN where absent)
    scores: np.ndarray  # (N, K)
    pose_2d: np.ndarray  # (N, 17, 2) Human3.6M-17 pixels, filled
    scores_2d: np.ndarray  # (N, 17) confidences (of the sources)
    filled: np.ndarray  # (N, 17) bool
    pose_3d: np.ndarray  # (N, 17, 3) metres, root-relative, camera frame


def run(settings: Settings, log=print) -> dict:
    """Run the system; returns a summary dict (files written, stage times, counts)."""
    from liftpose.system.lifting import READY_LIFTER, Lifter, load_lifter
    from liftpose.system.readers import is_keypoint_input, read_keypoints
    from liftpose.system.writers import check_output_folder

    s = settings
    check_settings(s)
    times = StageTimes()
    if not s.input.exists():
        raise DataError(s.input, "input", "not found")
    # ---- everything that can be wrong with the request, before any work
    if s.lifter is None and not READY_LIFTER.is_file():
        raise DataError(
            READY_LIFTER, "--lifter", "the ready lifter is not installed; pass --lifter CKPT"
        )
    lifter = s.lifter if isinstance(s.lifter, Lifter) else load_lifter(s.lifter or READY_LIFTER)
    if s.causal and lifter.window != "causal":
        raise DataError(
            lifter.path, "data.window", f"--causal needs a causally trained lifter "
            f"(data.window=causal); this one is {lifter.window}"
        )  # fmt: skip
    check_output_folder(s.out, s.force)
    media = None
    if is_keypoint_input(s.input):
        dets = read_keypoints(s.input, s.layout, s.image_size, s.fps)
    else:
        from liftpose.system.detectors import make_detector
        from liftpose.system.media import MediaSource

        if s.layout is not None:
            raise DataError(s.input, "--layout", "is for keypoint files; images are detected")
        media = MediaSource(s.input, s.fps)
        detector = make_detector(s.detector, media.fps is not None, s.boxes, s.device)
        dets = _detect(media, detector, s, times)
    layout = get_layout(dets.layout)
    if s.joint_map != "standard":
        layout = layout.with_map(_fitted_map(s.joint_map, layout.name))
    n_people = sum(len(p) for p in dets.people)
    if n_people == 0:
        raise DataError(s.input, "people", f"no person found in any of {len(dets.frames)} frames")
    no_person = [f.name for f, p in zip(dets.frames, dets.people) if not p]
    no_person = [] if dets.is_sequence else no_person  # photos in which nobody was found
    if no_person:
        shown = ", ".join(no_person[:10]) + (", ..." if len(no_person) > 10 else "")
        log(f"liftpose-infer: no person found in {len(no_person)} of {len(dets.frames)} photos: "
            f"{shown}")  # fmt: skip

    # ---- people over time, each checked
    if dets.is_sequence:
        tracks = track_people(dets, max_gap=s.max_gap)
    else:  # photos: each person of each photo on its own, ids in order of size per photo
        tracks = _photo_tracks(dets)
    try:
        chosen = select_tracks(tracks, s.person) if dets.is_sequence else _select_photos(tracks, s)
    except ValueError as e:
        raise DataError(s.input, "--person", str(e)) from e
    prepared, skipped = [], []
    for tr in chosen:
        try:
            prepared.append(_prepare(tr, dets, layout, lifter, s))
        except TrackError as e:
            if (s.person == "all" or not dets.is_sequence) and len(chosen) > 1:
                names = [dets.frames[int(f)].name for f in tr.frames]
                where = f" ({names[0]})" if not dets.is_sequence else ""
                log(f"liftpose-infer: track {tr.id}{where} skipped: {e}")
                skipped.append({"id": int(tr.id), "frame_names": names, "reason": str(e)})
                continue
            raise DataError(s.input, f"track {tr.id}", str(e)) from e
    if not prepared:
        raise DataError(s.input, "people", "no track with enough valid data to lift")

    # ---- lift
    t0 = time.perf_counter()
    lifted = [_lift(p, lifter) for p in prepared]
    n_lifted = sum(len(p.frames) for p in lifted)
    times.add("lift", time.perf_counter() - t0, n_lifted)

    # ---- write
    from liftpose.system.writers import OutputFolder

    with OutputFolder(s.out, s.force) as out:
        _write_poses(out, lifted, dets, layout, lifter, s, no_person, skipped)
        if s.draw:
            _draw(out, media, dets, lifted, layout, s, times)
    filled = sum(int(p.filled.sum()) for p in lifted)
    log(f"liftpose-infer: {len(lifted)} person(s), {n_lifted} poses, {filled} joints filled "
        f"by interpolation; lifter {lifter.name}")  # fmt: skip
    if s.causal:
        per = times.seconds["lift"] / max(n_lifted, 1) * 1000
        log(f"liftpose-infer: causal: 0 frames of look-ahead, {per:.2f} ms per frame to lift")
    log(f"liftpose-infer: {times.summary()}")
    tops = sorted({f.split("/")[0] + ("/" if "/" in f else "") for f in out.written})
    log(f"liftpose-infer: wrote {len(out.written)} files ({', '.join(tops)}) in {s.out}")
    return {"files": out.written, "times": times, "people": lifted, "frames": dets.frames}


def check_settings(s: Settings) -> None:
    """``DataError`` naming the option for a number out of its range (before any work)."""
    from liftpose.system.readers import MAX_IMAGE_SIDE

    def number(option: str, v, ok: bool, want: str) -> None:
        if not (np.isfinite(v) and ok):
            raise DataError(None, option, f"must be {want}, got {v:g}")

    if s.fps is not None:
        number("--fps", s.fps, s.fps > 0, "positive")
    if s.image_size is not None:
        for option, v in zip(("--width", "--height"), s.image_size):
            number(option, v, 0 < v <= MAX_IMAGE_SIDE, f"positive, at most {MAX_IMAGE_SIDE}")
    number("--threshold", s.threshold, s.threshold >= 0, "a confidence >= 0")
    gap = s.max_gap  # a whole number first: a huge Python int is no float for isfinite
    whole = isinstance(gap, (int, np.integer)) and not isinstance(gap, bool)
    whole = whole or (isinstance(gap, float) and gap.is_integer())
    if not (whole and 0 <= gap <= MAX_GAP):
        raise DataError(
            None, "--max-gap", f"must be a whole number of frames, 0 to {MAX_GAP}, got {gap}"
        )
    person = s.person
    if not (person in ("largest", "all") or (person.isascii() and person.isdigit())):
        raise DataError(
            None, "--person", f"largest, all or a track id (a whole number >= 0), got {person!r}"
        )
    number("min_valid", s.min_valid, 0 <= s.min_valid <= 1, "a fraction in [0, 1]")
    from liftpose.system.detectors import check_detector

    check_detector(s.detector)


# --------------------------------------------------------------------------- detection
def _detect(media, detector, s: Settings, times: StageTimes) -> Detections:
    people = []
    it = media.images()
    prog = Progress(s.progress)
    t_dec = t_det = 0.0
    for _ in prog.iterate(range(len(media.frames)), len(media.frames), "detect"):
        t0 = time.perf_counter()
        frame, img = next(it)
        t1 = time.perf_counter()
        people.append(detector(img, frame))
        t_dec, t_det = t_dec + t1 - t0, t_det + time.perf_counter() - t1
    times.add("decode", t_dec, len(media.frames))
    times.add("detect", t_det, len(media.frames))
    if hasattr(detector, "close"):
        detector.close()
    return Detections(media.frames, people, detector.layout, media.fps, detector.name)


def _photo_tracks(dets: Detections) -> list[Track]:
    out = []
    for f, people in enumerate(dets.people):
        for p in sorted(people, key=lambda q: -q.area):
            out.append(
                Track(len(out), np.array([f]), p.keypoints[None], p.scores[None], p.box[None])
            )
    return out


def _select_photos(tracks: list[Track], s: Settings) -> list[Track]:
    """``--person`` in each photo on its own: ``largest``, ``all`` or the ``id``-th largest."""
    chosen = []
    for f in sorted({int(t.frames[0]) for t in tracks}):
        here = [t for t in tracks if t.frames[0] == f]
        if s.person not in ("largest", "all"):
            here = [Track(i, t.frames, t.keypoints, t.scores, t.boxes) for i, t in enumerate(here)]
            if not any(str(t.id) == s.person for t in here):
                continue  # a photo with fewer people
        chosen += select_tracks(here, s.person)
    if not chosen:
        raise ValueError(f"--person {s.person}: no photo has that many people")
    return chosen


def _fitted_map(spec: str, layout: str) -> np.ndarray:
    """``fitted:<data_2d_*.npz>``: the COCO -> Human3.6M map a detector source file stores."""
    kind, _, path = spec.partition(":")
    if kind != "fitted" or not path:
        raise DataError(None, "--joint-map", f"expected standard or fitted:<file>, got {spec!r}")
    if layout != "coco17":
        raise DataError(path, "--joint-map", f"a fitted map is for coco17 keypoints, not {layout}")
    from liftpose.data.h36m import read_npz_dict

    _, meta = read_npz_dict(Path(path), "positions_2d")
    w = ((meta or {}).get("detector") or {}).get("h36m_from_coco")
    if w is None:
        raise DataError(path, "metadata.detector.h36m_from_coco", "no fitted joint map")
    return np.asarray(w, dtype=np.float64)


# --------------------------------------------------------------------------- per track
@dataclass
class _Prepared:
    track: Track
    frames: np.ndarray
    times: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    pose_2d: np.ndarray
    scores_2d: np.ndarray
    filled: np.ndarray
    norm: np.ndarray
    sequence: bool


def _prepare(tr: Track, dets: Detections, layout, lifter, s: Settings) -> _Prepared:
    """Dense frames of the track, Human3.6M-17 pixels, gaps filled, normalised; checked."""
    first, last = int(tr.frames[0]), int(tr.frames[-1])
    frames = np.arange(first, last + 1)
    k = tr.keypoints.shape[1]
    kp = np.full((len(frames), k, 2), np.nan)
    sc = np.zeros((len(frames), k))
    kp[tr.frames - first] = tr.keypoints
    sc[tr.frames - first] = tr.scores
    p2d, c2d = to_h36m(np.nan_to_num(kp, nan=0.0), sc, layout)
    absent_kp = ~np.isfinite(kp).all(-1)  # absent keypoints: every joint made from them is absent
    absent_j = (absent_kp[:, None, :] & (layout.to_h36m != 0)[None]).any(-1)
    p2d[absent_j] = np.nan
    c2d[absent_j] = 0.0
    seq = dets.is_sequence
    filled = fill_gaps(
        p2d, c2d, s.threshold, s.max_gap if seq else 0, s.min_valid, H36M17_LAYOUT.names,
        [dets.frames[f].name for f in frames],
    )  # fmt: skip
    sizes = np.array([[dets.frames[f].width, dets.frames[f].height] for f in frames], np.float64)
    norm = np.stack(  # each frame by its own size (normalize_screen_coordinates)
        [normalize_screen_coordinates(v, w, h) for v, (w, h) in zip(filled.values, sizes)]
    )
    if seq:
        rate = dets.fps if dets.fps else lifter.fps  # a keypoint file of unknown rate
        t = np.array([dets.frames[f].time for f in frames], dtype=object)
        t = np.array([f / rate if v is None else v for f, v in zip(frames, t)], np.float64)
    else:
        t = np.full(len(frames), np.nan)
    return _Prepared(tr, frames, t, kp, sc, filled.values, c2d, filled.filled, norm, seq)


def _lift(p: _Prepared, lifter) -> Lifted:
    """Resample to the lifter's rate, lift, and sample back at the track's frame times (a
    causal lifter: by holding the last sample both ways, so no later frame is used)."""
    from liftpose.system.lifting import lift_sequence

    if p.sequence and len(p.times) > 1:
        hold = lifter.window == "causal"
        grid = uniform_times(p.times[0], p.times[-1], lifter.fps)
        lifted = lift_sequence(lifter, resample(p.times, p.norm, grid, hold))
        pose_3d = resample(grid, lifted, p.times, hold)
    else:
        pose_3d = lift_sequence(lifter, p.norm)
    pose_3d[:, 0] = 0.0
    return Lifted(
        p.track, p.frames, p.times, p.keypoints, p.scores, p.pose_2d, p.scores_2d, p.filled,
        pose_3d.astype(np.float64),
    )  # fmt: skip


# --------------------------------------------------------------------------- outputs
def _json_array(a: np.ndarray, digits: int = 4) -> list:
    a = np.round(np.asarray(a, dtype=np.float64), digits)
    return np.where(np.isfinite(a), a, None).tolist()


def _write_poses(
    out, lifted: list[Lifted], dets: Detections, layout, lifter, s: Settings,
    no_person: list[str], skipped: list[dict],
) -> None:  # fmt: skip
    from liftpose.system.writers import write_json, write_npz

    arrays: dict[str, np.ndarray] = {
        "person_ids": np.array([p.track.id for p in lifted], np.int64),
        "joint_names": np.array(H36M17_LAYOUT.names),
        "keypoint_names": np.array(layout.names),
        "layout": np.array(layout.name),
        "lifter": np.array(str(lifter.path)),
        "detector": np.array(dets.source),
    }
    people = []
    for p in lifted:
        pre = f"person{p.track.id}/"
        arrays.update({
            pre + "frames": p.frames, pre + "times": p.times,
            pre + "keypoints": np.concatenate([p.keypoints, p.scores[..., None]], -1),
            pre + "pose_2d": np.concatenate([p.pose_2d, p.scores_2d[..., None]], -1),
            pre + "filled": p.filled, pre + "pose_3d": p.pose_3d.astype(np.float32),
        })  # fmt: skip
        people.append({
            "id": int(p.track.id),
            "frames": p.frames.tolist(),
            "frame_names": [dets.frames[f].name for f in p.frames],
            "times": _json_array(p.times),
            "keypoints": _json_array(np.concatenate([p.keypoints, p.scores[..., None]], -1), 2),
            "pose_2d": _json_array(np.concatenate([p.pose_2d, p.scores_2d[..., None]], -1), 2),
            "filled": p.filled.astype(int).tolist(),
            "pose_3d": _json_array(p.pose_3d, 4),
        })  # fmt: skip
    doc = {
        "input": str(s.input),
        "detector": dets.source,
        "lifter": str(lifter.path),
        "lifter_model": lifter.name,
        "lifter_fps": lifter.fps,
        "input_fps": dets.fps or None,
        "causal": s.causal,
        "layout": layout.name,
        "keypoint_names": list(layout.names),
        "joint_names": list(H36M17_LAYOUT.names),
        "units": {
            "keypoints": "[x, y, confidence], pixels of the frame",
            "pose_2d": "[x, y, confidence], Human3.6M-17, pixels (filled joints interpolated)",
            "pose_3d": "[x, y, z], metres, camera frame (x right, y down, z forward), "
            "root-relative",
            "times": "seconds from the first frame (null for photos)",
        },
        "people": people,
        "no_person": no_person,  # photos in which the detector found nobody
        "skipped": skipped,  # people found but not lifted, and why
    }
    write_npz(out, "poses.npz", arrays)
    write_json(out, "poses.json", doc)


def _draw(out, media, dets: Detections, lifted: list[Lifted], layout, s: Settings, times) -> None:
    from liftpose.system.draw import OverlayDrawer, Skeleton3DDrawer
    from liftpose.system.writers import VideoWriter, write_png

    by_frame: dict[int, list[tuple[Lifted, int]]] = {}
    for p in lifted:
        for i, f in enumerate(p.frames):
            by_frame.setdefault(int(f), []).append((p, i))
    seq = dets.is_sequence
    overlay, skel = OverlayDrawer(even=seq), Skeleton3DDrawer()
    rate = dets.fps or 50.0
    if seq:
        ov_video = VideoWriter(out, "overlay.mp4", rate)
        sk_video = VideoWriter(out, f"skeleton3d.{s.animation}", rate)
    # a sequence: every frame; photos: only those with a lifted person (the rest get no picture)
    todo = list(range(len(dets.frames))) if seq else sorted(by_frame)
    if media is not None:
        images = media.images(only=None if seq else set(todo))
    else:
        images = _blank_frames([dets.frames[f] for f in todo])
    slots = {p.track.id: k for k, p in enumerate(lifted)}
    t_dec = t_draw = 0.0
    n = 0
    for frame_no in Progress(s.progress).iterate(todo, len(todo), "draw"):
        t0 = time.perf_counter()
        frame, img = next(images)
        t1 = time.perf_counter()
        here = by_frame.get(frame_no, [])
        people = [(p.pose_2d[i], np.where(p.filled[i], 0.3, p.scores_2d[i])) for p, i in here]
        kps = [(p.keypoints[i], p.scores[i], layout) for p, i in here]
        label = f"{frame.name}  t={frame.time:.2f}s" if frame.time is not None else frame.name
        ov = overlay.draw(img, people, kps, label, size=(frame.width, frame.height))
        poses: list = [None] * (len(lifted) if seq else len(here))
        for k, (p, i) in enumerate(here):
            poses[slots[p.track.id] if seq else k] = p.pose_3d[i]
        sk = skel.draw(ov, poses)
        if seq:
            ov_video.append(ov)
            sk_video.append(sk)
        else:
            stem = Path(frame.name).stem
            write_png(out, f"overlay/{stem}.png", ov)
            write_png(out, f"skeleton3d/{stem}.png", sk)
        n += 1
        t_dec, t_draw = t_dec + t1 - t0, t_draw + time.perf_counter() - t1
    if seq:
        ov_video.close()
        sk_video.close()
    if media is not None and "decode" in times.seconds:
        times.add("decode", t_dec, len(todo))
    times.add("draw", t_draw, n)


def _blank_frames(frames: list[Frame], side: int = 960) -> Iterator[tuple[Frame, np.ndarray]]:
    """Mid-grey canvases of each frame's shape, at most ``side`` pixels on the long side
    (keypoint files have no pictures; the drawing is that size anyway)."""
    for f in frames:
        scale = min(1.0, side / max(f.width, f.height))
        h, w = max(1, round(f.height * scale)), max(1, round(f.width * scale))
        yield f, np.full((h, w, 3), 96, np.uint8)

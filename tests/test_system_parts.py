"""The pure parts of liftpose.system on hand-written values: joint maps, keypoint readers,
tracking, gap filling and resampling, the output folder rule."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from liftpose.data.render import COCO_H36M_INDEX
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError
from liftpose.system.joints import (
    BLAZEPOSE_TO_COCO,
    COCO_FROM_H36M,
    LAYOUTS,
    get_layout,
    layout_for_joint_count,
    to_h36m,
)
from liftpose.system.person import Detections, Frame, Person
from liftpose.system.readers import read_keypoints
from liftpose.system.timebase import TrackError, fill_gaps, resample, uniform_times
from liftpose.system.tracking import box_iou, select_tracks, track_people
from liftpose.system.writers import MARKER, OutputFolder, check_output_folder, write_json

H = {n: i for i, n in enumerate(H36M17.names)}


def numbered(k: int) -> np.ndarray:
    """Keypoint i at (i, 100 + 2 i): every source is recognisable in the mapped values."""
    return np.stack([np.arange(k), 100 + 2 * np.arange(k)], 1).astype(float)


# --------------------------------------------------------------------------- joint maps
# per layout: the source keypoint indices of each Human3.6M joint, written out by hand
HAND_MAPS = {
    "coco17": {"Hip": (11, 12), "RHip": (12,), "RKnee": (14,), "RFoot": (16,), "LHip": (11,),
               "LKnee": (13,), "LFoot": (15,), "Spine": (11, 12, 5, 6), "Thorax": (5, 6),
               "Neck/Nose": (0,), "Head": (1, 2), "LShoulder": (5,), "LElbow": (7,),
               "LWrist": (9,), "RShoulder": (6,), "RElbow": (8,), "RWrist": (10,)},
    "blazepose33": {"Hip": (23, 24), "RHip": (24,), "RKnee": (26,), "RFoot": (28,),
                    "LHip": (23,), "LKnee": (25,), "LFoot": (27,), "Spine": (23, 24, 11, 12),
                    "Thorax": (11, 12), "Neck/Nose": (0,), "Head": (2, 5), "LShoulder": (11,),
                    "LElbow": (13,), "LWrist": (15,), "RShoulder": (12,), "RElbow": (14,),
                    "RWrist": (16,)},
    "body25": {"Hip": (9, 12), "RHip": (9,), "RKnee": (10,), "RFoot": (11,), "LHip": (12,),
               "LKnee": (13,), "LFoot": (14,), "Spine": (9, 12, 2, 5), "Thorax": (2, 5),
               "Neck/Nose": (0,), "Head": (15, 16), "LShoulder": (5,), "LElbow": (6,),
               "LWrist": (7,), "RShoulder": (2,), "RElbow": (3,), "RWrist": (4,)},
    "coco18": {"Hip": (8, 11), "RHip": (8,), "RKnee": (9,), "RFoot": (10,), "LHip": (11,),
               "LKnee": (12,), "LFoot": (13,), "Spine": (8, 11, 2, 5), "Thorax": (2, 5),
               "Neck/Nose": (0,), "Head": (14, 15), "LShoulder": (5,), "LElbow": (6,),
               "LWrist": (7,), "RShoulder": (2,), "RElbow": (3,), "RWrist": (4,)},
    "halpe26": {"Hip": (11, 12), "RHip": (12,), "RKnee": (14,), "RFoot": (16,), "LHip": (11,),
                "LKnee": (13,), "LFoot": (15,), "Spine": (11, 12, 5, 6), "Thorax": (5, 6),
                "Neck/Nose": (0,), "Head": (17,), "LShoulder": (5,), "LElbow": (7,),
                "LWrist": (9,), "RShoulder": (6,), "RElbow": (8,), "RWrist": (10,)},
    "h36m17": {n: (i,) for n, i in H.items()},
}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(HAND_MAPS))
def test_joint_map_matches_hand_written_sources(layout):
    lay = get_layout(layout)
    kp = numbered(lay.num_joints)
    scores = np.linspace(0.9, 0.2, lay.num_joints)
    out, conf = to_h36m(kp, scores, layout)
    assert set(HAND_MAPS[layout]) == set(H)
    for name, src in HAND_MAPS[layout].items():
        np.testing.assert_allclose(out[H[name]], kp[list(src)].mean(0), err_msg=name)
        assert conf[H[name]] == pytest.approx(scores[list(src)].min()), name
    # batched input maps frame by frame
    out2, _ = to_h36m(np.stack([kp, kp + 5]), np.stack([scores, scores]), layout)
    np.testing.assert_allclose(out2[1], out + 5)


def test_joint_map_values_by_hand():
    """Two COCO-17 numbers worked out on paper: Hip = mean of the hips (11: (11, 122), 12:
    (12, 124)) = (11.5, 123); Spine = mean of hips and shoulders (5, 6) = (8.5, 117)."""
    out, _ = to_h36m(numbered(17), None, "coco17")
    np.testing.assert_allclose(out[0], [11.5, 123.0])
    np.testing.assert_allclose(out[7], [8.5, 117.0])
    np.testing.assert_allclose(out[10], [1.5, 103.0])  # Head: the eyes (1, 2)


def test_layout_tables_are_consistent():
    # names and pairs the data code shares: the renderer's COCO index, BlazePose's COCO points
    coco, blaze = get_layout("coco17"), get_layout("blazepose33")
    for c, h in enumerate(COCO_H36M_INDEX):
        if h >= 0:
            assert get_layout("coco17").to_h36m[h, c] == 1.0
    assert [blaze.names[i] for i in BLAZEPOSE_TO_COCO] == list(coco.names)
    assert len(COCO_FROM_H36M) == 12
    for lay in LAYOUTS.values():
        assert len(lay.left) == len(lay.right) and not set(lay.left) & set(lay.right)
        for a, b in zip(lay.left, lay.right):
            assert (
                lay.names[a].lower().replace("left", "")
                == lay.names[b].lower().replace("right", "")
                or lay.names[a][1:] == lay.names[b][1:]
            )
        assert all(0 <= a < lay.num_joints and 0 <= b < lay.num_joints for a, b in lay.edges)
        np.testing.assert_allclose(lay.to_h36m.sum(1), 1.0)
    assert layout_for_joint_count(25) == "body25" and layout_for_joint_count(17) is None
    with pytest.raises(ValueError, match="known"):
        get_layout("coco19")
    with pytest.raises(ValueError, match="17, 2"):
        to_h36m(np.zeros((5, 2)), None, "coco17")


# --------------------------------------------------------------------------- readers
def test_npz_reader_needs_layout_for_17_joints_and_checks_values(tmp_path):
    kp = np.concatenate([numbered(17)[None].repeat(4, 0), np.full((4, 17, 1), 0.8)], -1)
    p = tmp_path / "kp.npz"
    np.savez(p, keypoints=kp)
    with pytest.raises(DataError, match="--layout"):
        read_keypoints(p, image_size=(640, 480))
    d = read_keypoints(p, "coco17", image_size=(640, 480))
    assert d.layout == "coco17" and len(d.frames) == 4 and d.is_sequence
    assert (d.frames[2].width, d.frames[2].height) == (640, 480)
    np.testing.assert_array_equal(d.people[3][0].keypoints, numbered(17))
    np.testing.assert_array_equal(d.people[3][0].scores, 0.8)
    with pytest.raises(DataError, match="--width and --height"):
        read_keypoints(p, "coco17")
    with pytest.raises(DataError, match="17 keypoints per person, but --layout body25 has 25"):
        read_keypoints(p, "body25", image_size=(640, 480))
    # the file's own layout and size; a contradicting --layout is refused
    np.savez(p, keypoints=kp[..., :2], layout="h36m17", image_size=[1000, 1002], fps=25.0)
    d = read_keypoints(p)
    assert d.layout == "h36m17" and d.fps == 25.0 and d.frames[1].time == pytest.approx(0.04)
    with pytest.raises(DataError, match="says layout 'h36m17'"):
        read_keypoints(p, "coco17")
    for bad, match in [(np.nan, "NaN"), (-0.5, "negative")]:
        k = kp.copy()
        k[1, 3, 2] = bad
        np.savez(p, keypoints=k)
        with pytest.raises(DataError, match=match):
            read_keypoints(p, "coco17", image_size=(640, 480))
    # each field of the wrong type is named, with what it holds
    wrong = [
        ({"fps": "thirty"}, "fps: expected a number (frames per second), got 'thirty'"),
        ({"fps": [25.0, 30.0]}, "fps: expected a number (frames per second), got shape (2,)"),
        ({"image_size": ["640", "480"]}, "image_size: expected numbers (pixels), got dtype <U3"),
        ({"layout": 17}, "layout: expected a layout name, got 17"),
        ({"keypoints": np.full((4, 17, 3), "x")}, "keypoints: expected numbers (pixels), got"),
    ]
    for fields, message in wrong:
        np.savez(p, **{"keypoints": kp, "layout": "coco17", "image_size": [640, 480], **fields})
        with pytest.raises(DataError) as e:
            read_keypoints(p)
        assert str(e.value).startswith(f"{p}: {message}"), str(e.value)
    p.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="unreadable"):
        read_keypoints(p, "coco17", image_size=(640, 480))


def test_coco_results_reader(tmp_path):
    kp = numbered(17)
    tri = np.concatenate([kp, np.full((17, 1), 0.7)], 1).reshape(-1).tolist()
    res = [
        {"image_id": 7, "category_id": 1, "keypoints": tri, "score": 0.9},
        {"image_id": 3, "category_id": 1, "keypoints": tri, "score": 0.5},
        {"image_id": 7, "category_id": 1, "keypoints": tri, "score": 0.4},
    ]
    p = tmp_path / "res.json"
    p.write_text(json.dumps(res))
    d = read_keypoints(p, image_size=(320, 240))
    assert d.layout == "coco17" and [f.name for f in d.frames] == ["3", "7"]
    assert [len(x) for x in d.people] == [1, 2] and not d.is_sequence
    np.testing.assert_array_equal(d.people[1][0].keypoints, kp)
    np.testing.assert_allclose(d.people[1][0].box, [0, 100, 16, 132])
    with pytest.raises(DataError, match="26 keypoints per person, but --layout coco17 has 17"):
        p.write_text(json.dumps([{**res[0], "keypoints": tri + [1.0, 2.0, 0.5] * 9}]))
        read_keypoints(p, "coco17", image_size=(320, 240))


def test_openpose_reader_body25_and_coco18(tmp_path):
    for k, layout in [(25, "body25"), (18, "coco18")]:
        folder = tmp_path / layout
        folder.mkdir()
        for f in range(3):
            tri = np.concatenate([numbered(k) + f, np.full((k, 1), 0.6)], 1)
            tri[4] = 0.0  # a keypoint OpenPose did not find
            doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d":
                                               tri.reshape(-1).tolist()}]}  # fmt: skip
            (folder / f"clip_{f:012d}_keypoints.json").write_text(json.dumps(doc))
        d = read_keypoints(folder, image_size=(640, 480), fps=30)
        assert d.layout == layout and len(d.frames) == 3 and d.fps == 30
        person = d.people[2][0]
        np.testing.assert_array_equal(person.keypoints[0], numbered(k)[0] + 2)
        assert np.isnan(person.keypoints[4]).all() and person.scores[4] == 0
        with pytest.raises(DataError, match="--layout halpe26 has 26"):
            read_keypoints(folder, "halpe26", image_size=(640, 480))


def test_alphapose_reader_coco17_and_halpe26(tmp_path):
    for k, layout in [(17, "coco17"), (26, "halpe26")]:
        tri = np.concatenate([numbered(k), np.full((k, 1), 0.9)], 1).reshape(-1).tolist()
        doc = [
            {"image_id": "b.jpg", "category_id": 1, "keypoints": tri, "score": 2.1,
             "box": [1, 2, 30, 40], "idx": 4},
            {"image_id": "a.jpg", "category_id": 1, "keypoints": tri, "score": 2.0,
             "box": [1, 2, 30, 40], "idx": [4]},
        ]  # fmt: skip
        p = tmp_path / f"alphapose_{layout}.json"
        p.write_text(json.dumps(doc))
        d = read_keypoints(p, image_size=(200, 100))
        assert d.layout == layout and [f.name for f in d.frames] == ["a.jpg", "b.jpg"]
        person = d.people[0][0]
        assert person.track_id == 4
        np.testing.assert_allclose(person.box, [1, 2, 31, 42])
    out, _ = to_h36m(person.keypoints, person.scores, d.layout)
    np.testing.assert_allclose(out[H["Head"]], numbered(26)[17])  # Halpe's head keypoint


def test_confidence_zero_keypoints_are_absent_in_every_reader(tmp_path):
    """COCO's unlabelled ``[0, 0, 0]`` (and any confidence-0 keypoint) is absent, not a point
    at the image corner."""
    tri = np.concatenate([numbered(17), np.full((17, 1), 0.9)], 1)
    tri[1] = 0.0  # left_eye: [0, 0, 0]
    flat = tri.reshape(-1).tolist()
    (tmp_path / "res.json").write_text(
        json.dumps([{"image_id": 5, "category_id": 1, "keypoints": flat, "score": 1.0}])
    )
    (tmp_path / "ap.json").write_text(json.dumps([{"image_id": "a.jpg", "keypoints": flat}]))
    np.savez(tmp_path / "kp.npz", keypoints=tri[None], layout="coco17", image_size=[640, 480])
    for name in ("res.json", "ap.json", "kp.npz"):
        (person,) = read_keypoints(tmp_path / name, image_size=(640, 480)).people[0]
        assert np.isnan(person.keypoints[1]).all() and person.scores[1] == 0, name
        assert np.isfinite(np.delete(person.keypoints, 1, 0)).all(), name
    # the Head (mean of the eyes) of a single frame cannot be made: refused by its name
    p2d, c2d = to_h36m(np.nan_to_num(person.keypoints), person.scores, "coco17")
    p2d[H["Head"]] = np.nan  # what the pipeline does with a joint made from an absent keypoint
    assert c2d[H["Head"]] == 0
    names = H36M17.names
    with pytest.raises(TrackError, match=r"^Head is missing at frame 5 \(one frame"):
        fill_gaps(p2d[None], c2d[None], 0.3, 0, names=names, frame_names=["5"])


def test_image_sizes_and_coordinates_are_bounded(tmp_path):
    kp = numbered(17)[None].repeat(30, 0)
    p = tmp_path / "kp.npz"
    cases = [
        ({"image_size": [1e12, 5]}, r"shape \(2,\): 1 of 2 values are not in \(0, 100000\]"),
        ({"image_size": [0, 0]}, r"image_size: shape \(2,\): 2 of 2 values .* \(first: 0\)"),
        ({"image_size": np.zeros((30, 2))}, r"image_size: shape \(30, 2\): 60 of 60"),
        ({"image_size": np.ones((3, 2))}, r"expected \(2,\) or \(30, 2\), got \(3, 2\)"),
        ({"image_size": [640, 480], "keypoints": kp + 1e32}, "more than 2 image sizes outside"),
        ({"image_size": [640, 480], "fps": -5.0}, "fps: must be positive"),
    ]  # fmt: skip
    for arrays, match in cases:
        np.savez(p, **{"keypoints": kp, "layout": "coco17", **arrays})
        with pytest.raises(DataError, match=match):
            read_keypoints(p)
    # --width/--height or --fps that contradict the file are refused, never silently dropped
    np.savez(p, keypoints=kp, layout="coco17", image_size=[640, 480], fps=25.0)
    with pytest.raises(DataError, match="the file says 640x480 pixels, but --width 1920"):
        read_keypoints(p, image_size=(1920, 1080))
    with pytest.raises(DataError, match="fps: the file says 25, but --fps 30"):
        read_keypoints(p, fps=30.0)
    assert read_keypoints(p, image_size=(640, 480), fps=25.0).frames[0].width == 640
    # sizes given on the command line are bounded too
    np.savez(p, keypoints=kp, layout="coco17")
    with pytest.raises(DataError, match=r"--width/--height: shape \(2,\): 1 of 2"):
        read_keypoints(p, image_size=(640, 1e9))


def test_settings_are_checked_before_any_work(tmp_path):
    """Every number of the command line is checked first, by the option's name."""
    from liftpose.system.pipeline import Settings, check_settings

    base = {"input": tmp_path / "none.jpg", "out": tmp_path / "out"}
    cases = [
        ({"fps": -1.0}, "--fps: must be positive, got -1"),
        ({"fps": float("nan")}, "--fps: must be positive, got nan"),
        ({"image_size": (0.0, 480.0)}, "--width: must be positive, at most 100000, got 0"),
        ({"image_size": (640.0, 1e12)}, "--height: must be positive, at most 100000, got 1e+12"),
        ({"threshold": -0.1}, "--threshold: must be a confidence >= 0, got -0.1"),
        ({"max_gap": -1}, "--max-gap: must be a whole number of frames, 0 to 1000000, got -1"),
        (
            {"max_gap": 10**20},
            "--max-gap: must be a whole number of frames, 0 to 1000000, got 100000000000000000000",
        ),
        ({"max_gap": 2.5}, "--max-gap: must be a whole number of frames, 0 to 1000000, got 2.5"),
        ({"detector": "foo"}, "--detector: unknown detector 'foo' (blazepose, hrnet:<ckpt>)"),
    ]
    for person in ("foo", "-1", "1.5", "", " 1"):
        want = f"--person: largest, all or a track id (a whole number >= 0), got {person!r}"
        cases.append(({"person": person}, want))
    for extra, message in cases:
        with pytest.raises(DataError) as e:
            check_settings(Settings(**base, **extra))
        assert str(e.value) == message
    check_settings(Settings(**base, fps=30.0, image_size=(640.0, 480.0)))
    for person in ("largest", "all", "0", "12"):
        check_settings(Settings(**base, person=person))


def test_option_errors_name_the_option_not_a_file(tmp_path):
    from liftpose.data.capture_folder import capture_folder
    from liftpose.system.detectors import make_detector

    with pytest.raises(DataError) as e:
        make_detector("foo", video=False)
    assert str(e.value) == "--detector: unknown detector 'foo' (blazepose, hrnet:<ckpt>)"
    with pytest.raises(DataError) as e:
        capture_folder(tmp_path, "bvh", tmp_path / "root", "a/b")
    assert str(e.value) == "--name: 'a/b': use letters, digits, '-' and '_'"
    # a field of an array passed in memory is still marked so
    assert str(DataError(None, "joints_cam", "bad")) == "<in-memory>: joints_cam: bad"


# --------------------------------------------------------------------------- tracking
def _dets(boxes_per_frame: list[list[list[float]]]) -> Detections:
    people = []
    for boxes in boxes_per_frame:
        people.append([Person(np.zeros((17, 2)), np.ones(17), np.array(b, float)) for b in boxes])
    frames = [Frame(i, i / 25, 640, 480, str(i)) for i in range(len(people))]
    return Detections(frames, people, "coco17", 25.0, "test")


def test_tracks_follow_boxes_across_frames_and_gaps():
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(
        50 / 150
    )
    small, big = [0, 0, 10, 20], [100, 0, 160, 120]
    shift = lambda b, d: [b[0] + d, b[1], b[2] + d, b[3]]  # noqa: E731
    frames = [[small, big], [shift(big, 3), shift(small, 1)], [], [shift(small, 2)]]
    frames += [[shift(big, 6)]]
    tracks = track_people(_dets(frames), max_gap=2)
    assert [t.frames.tolist() for t in tracks] == [[0, 1, 3], [0, 1, 4]]
    assert tracks[0].boxes[1][0] == 1 and tracks[1].boxes[1][0] == 103
    assert select_tracks(tracks, "largest")[0].id == 1
    assert select_tracks(tracks, "0")[0].id == 0 and len(select_tracks(tracks, "all")) == 2
    with pytest.raises(ValueError, match="no such track"):
        select_tracks(tracks, "7")
    # a gap longer than max_gap ends the track
    assert len(track_people(_dets(frames), max_gap=0)) == 4


# --------------------------------------------------------------------------- time
def test_fill_gaps_interpolates_within_the_limit():
    t = np.arange(8, dtype=float)
    v = np.stack([t, 2 * t], -1)[:, None].repeat(2, 1)  # (8, 2 joints, 2)
    s = np.ones((8, 2))
    s[2:4, 0] = 0.1  # a 2-frame gap: filled
    v[2:4, 0] = 99.0
    s[0, 1] = 0.0  # the first frame: held from frame 1
    f = fill_gaps(v, s, threshold=0.3, max_gap=2)
    np.testing.assert_allclose(f.values[2:4, 0], [[2, 4], [3, 6]])
    np.testing.assert_allclose(f.values[0, 1], [1, 2])
    assert f.num_filled == 3 and not f.low.any()
    # beyond the limit: the detector's own values stay, marked low
    f = fill_gaps(v, s, threshold=0.3, max_gap=1)
    np.testing.assert_allclose(f.values[2:4, 0], 99.0)
    assert f.low[2:4, 0].all() and f.num_filled == 1
    v[2:4, 0] = np.nan
    with pytest.raises(TrackError, match="joint 0 is missing at frame 2 and has no confident"):
        fill_gaps(v, s, threshold=0.3, max_gap=1)
    with pytest.raises(TrackError, match="^Hip is missing at frame f2 and"):
        fill_gaps(v, s, 0.3, 1, names=["Hip", "RHip"], frame_names=[f"f{i}" for i in range(8)])
    with pytest.raises(TrackError, match="above the confidence threshold"):
        fill_gaps(v, np.full((8, 2), 0.1), threshold=0.3, max_gap=2)


def test_resample_round_trip():
    times = np.arange(0, 31) / 30.0  # 1 s at 30 fps
    grid = uniform_times(times[0], times[-1], 50.0)
    assert len(grid) == 51 and grid[-1] == pytest.approx(1.0)
    x = np.stack([np.sin(times), np.cos(times)], -1)[:, None]
    back = resample(grid, resample(times, x, grid), times)
    np.testing.assert_allclose(back, x, atol=2e-4)
    # zero-order hold: each new time takes the last sample at or before it, never a later one
    held = resample(times, x, grid, hold=True)
    src = np.floor(grid * 30 + 1e-6).astype(int)
    np.testing.assert_array_equal(held, x[src])


# --------------------------------------------------------------------------- output folder
def test_output_folder_rules(tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not made by liftpose"):
        check_output_folder(foreign, force=True)
    out = tmp_path / "out"
    with OutputFolder(out) as o:
        write_json(o, "poses.json", {"a": 1})
        write_json(o, "overlay/x.json", {"x": 1})
    files = json.loads((out / MARKER).read_text())["files"]
    assert sorted(files) == ["overlay/x.json", "poses.json"]
    assert files["poses.json"] == hashlib.sha1((out / "poses.json").read_bytes()).hexdigest()
    with pytest.raises(DataError, match="earlier liftpose-infer run"):
        check_output_folder(out, force=False)
    (out / "notes.txt").write_text("a file liftpose did not write")
    with OutputFolder(out, force=True) as o:
        write_json(o, "poses.json", {"a": 2})
        with pytest.raises(DataError, match="not written by liftpose"):
            o.path("notes.txt")
    assert json.loads((out / "poses.json").read_text()) == {"a": 2}
    # the earlier run's file this run did not write is gone, and the marker lists what is there
    assert not (out / "overlay").exists() and (out / "notes.txt").is_file()
    assert list(json.loads((out / MARKER).read_text())["files"]) == ["poses.json"]
    # a listed file its user changed since: --force is refused before anything is written
    (out / "poses.json").write_text('{"a": "edited"}')
    with pytest.raises(DataError, match=r"poses.json: --force: was changed since liftpose-infer"):
        check_output_folder(out, force=True)
    with pytest.raises(DataError, match="was changed since"):
        OutputFolder(out, force=True)
    assert json.loads((out / "poses.json").read_text()) == {"a": "edited"}
    # a failing run removes the folder it created and leaves no temporary file
    new = tmp_path / "new"
    with pytest.raises(RuntimeError), OutputFolder(new) as o:
        o.path("poses.json").write_text("half")
        raise RuntimeError("interrupted")
    assert not new.exists()


def test_plausibility_checks_limb_proportions_not_only_symmetry():
    from liftpose.data.embedded import load_sample
    from liftpose.system.checks import plausibility

    world = load_sample()["dg"]["grabHighR 11"][0].astype(np.float64)
    pose = world[:, [0, 2, 1]] * [1, -1, 1]  # z up -> y down (camera-like)
    ok = plausibility(pose, upright=True)
    assert ok["ok"], ok
    short = pose.copy()  # both forearms at 40 %: symmetric, still implausible
    for elbow, wrist in ((12, 13), (15, 16)):
        short[wrist] = pose[elbow] + 0.4 * (pose[wrist] - pose[elbow])
    bad = plausibility(short, upright=True)
    assert bad["forearm"] == pytest.approx(ok["forearm"]) and bad["twins_ok"]
    assert not bad["proportions_ok"] and not bad["ok"]
    assert bad["forearm / trunk"] == pytest.approx(0.4 * ok["forearm / trunk"], rel=0.05)
    flipped = pose * [1, -1, 1]  # head below the pelvis
    assert plausibility(flipped, upright=True)["head_above_pelvis"] is False


def test_render_module_runs_as_liftpose_data_render():
    r = subprocess.run([sys.executable, "-m", "liftpose.data.render", "--help"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("usage: liftpose-data render"), r

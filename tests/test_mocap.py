"""Mocap readers, retargeting and the embedded HDM05 sample, on the real files of ../shared/data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from liftpose.data.mocap import (
    HDM05_FPS,
    SAMPLE_PATH,
    build_hdm05_sample,
    fixed_point_on_chain,
    forward_kinematics,
    load_bandai_clip,
    load_hdm05_clip,
    load_hdm05_sample,
    parse_hdm05_name,
    read_amc,
    read_asf,
    read_bvh,
    resample,
    retarget_to_h36m17,
    set_bone_lengths,
    source_points,
    y_up_to_z_up,
)
from liftpose.data.mocap.bvh import bvh_forward_kinematics
from liftpose.data.mocap.retarget import bandai_head_top_offset
from liftpose.data.skeleton import H36M17
from liftpose.errors import DataError

from .conftest import SHARED

HDM05_CLIPS = (
    "HDM_bd_squat1Reps_001_120.amc",
    "HDM_bk_grabHighR_005_120.amc",
    "HDM_dg_lieDownFloor_011_120.amc",
    "HDM_bk_jogLeftCircle4StepsRstart_003_120.amc",
)
BANDAI_CLIPS = ("dataset-1_walk_normal_001.bvh", "dataset-1_bow_angry_001.bvh")
PELVIS, HEAD, RHIP, RKNEE, RFOOT, LHIP, LKNEE, LFOOT = 0, 10, 1, 2, 3, 4, 5, 6


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = SHARED / "data"
    if not (root / "hdm05").is_dir() or not (root / "bandai1" / "data").is_dir():
        pytest.skip(
            f"real mocap data not found at {root} (expects hdm05/ and bandai1/data/; "
            "set LIFTPOSE_SHARED to the folder holding data/)"
        )
    return root


@pytest.fixture(scope="session")
def hdm05(shared_data: Path) -> Path:
    return shared_data / "hdm05"


@pytest.fixture(scope="session")
def bandai(shared_data: Path) -> Path:
    return shared_data / "bandai1" / "data"


def _rel_std(pos: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    bl = H36M17.bone_lengths(pos.astype(np.float64))[:, list(edges)]
    return bl.std(axis=0) / bl.mean(axis=0)


def _check_body(pos: np.ndarray, standing: bool = True) -> None:
    """Head above pelvis, floor at z ~ 0, plausible height, anatomical left on the left."""
    assert pos.dtype == np.float32 and pos.shape[1:] == (17, 3)
    z = pos[..., 2]
    above = (z[:, HEAD] > z[:, PELVIS]).mean()
    assert above >= (0.9 if standing else 0.5), above
    ankles = np.minimum(z[:, RFOOT], z[:, LFOOT])
    assert -0.05 < ankles.min() < 0.2, ankles.min()  # ankles just above a floor at z = 0
    height = np.percentile(z[:, HEAD], 95)  # head top above the floor
    assert 1.4 <= height <= 2.1, height
    if not standing:
        return
    # forward = where the knees point (both sources stand with flexed knees); left = up x forward
    knees = pos[:, [RKNEE, LKNEE]] - 0.5 * (pos[:, [RHIP, LHIP]] + pos[:, [RFOOT, LFOOT]])
    fwd = knees.sum(axis=1) * np.array([1.0, 1.0, 0.0])
    left = np.cross(np.array([0.0, 0.0, 1.0]), fwd)
    side = np.einsum("tc,tc->t", pos[:, LHIP] - pos[:, RHIP], left)
    assert (side > 0).mean() > 0.8


# ------------------------------------------------------------------------------------------ ASF/AMC
def test_read_asf(hdm05: Path) -> None:
    skel = read_asf(hdm05 / "HDM_bd.asf")
    assert skel.length_unit == pytest.approx(0.45)
    assert skel.metres_per_unit == pytest.approx(0.0254 / 0.45)
    assert len(skel.bones) == 30 and skel.joint_names[0] == "root"
    names = skel.joint_names
    assert names[skel.parents[names.index("lfemur")]] == "lhipjoint"
    assert skel.bone("rtibia").dof == ("rx",) and skel.bone("rtibia").limits.shape == (1, 2)
    assert all(skel.parents[j] < j for j in range(1, len(names)))


@pytest.mark.parametrize("clip", HDM05_CLIPS[:2])
def test_amc_frame_count_matches_file(hdm05: Path, clip: str) -> None:
    text = (hdm05 / clip).read_bytes().decode("latin-1")
    numbers = [int(m) for m in re.findall(r"^\s*(\d+)\s*$", text, flags=re.MULTILINE)]
    motion = read_amc(hdm05 / clip, read_asf(hdm05 / f"HDM_{clip[4:6]}.asf"))
    assert motion.num_frames == len(numbers)
    assert motion.frame_numbers[0] == numbers[0] and motion.frame_numbers[-1] == numbers[-1]
    assert motion.values["root"].shape == (len(numbers), 6)


def _rodrigues(axis: np.ndarray, rad: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(rad) * k + (1 - np.cos(rad)) * (k @ k)


def _acclaim_euler(deg: list[float], order: str) -> np.ndarray:
    """First listed axis applied first, about fixed axes."""
    r = np.eye(3)
    for a, ax in zip(deg, order.lower()):
        r = _rodrigues(np.eye(3)["xyz".index(ax)], np.deg2rad(a)) @ r
    return r


def _naive_asf_fk(skel, amc_text: str, frame: int) -> np.ndarray:
    """Per-frame recursive reference, reading the frame's lines straight from the AMC text."""
    lines = amc_text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == str(frame))
    vals = {}
    for ln in lines[start + 1 :]:
        t = ln.split()
        if len(t) == 1 and t[0].isdigit():  # the next frame
            break
        vals[t[0]] = [float(v) for v in t[1:]]
    pos = {"root": np.array(vals["root"][:3]) + skel.root_position}
    glob = {"root": _acclaim_euler(vals["root"][3:], "xyz")}
    names = skel.joint_names
    for j, bone in enumerate(skel.bones, start=1):
        parent = names[skel.parents[j]]
        c = _acclaim_euler(list(np.rad2deg(bone.axis)), bone.axis_order)
        m = _acclaim_euler(vals.get(bone.name, []), "".join(d[1] for d in bone.dof))
        glob[bone.name] = glob[parent] @ c @ m @ np.linalg.inv(c)
        pos[bone.name] = pos[parent] + bone.length * glob[bone.name] @ bone.direction
    return np.stack([pos[n] for n in names])


def test_asf_fk_matches_naive_reference(hdm05: Path) -> None:
    skel = read_asf(hdm05 / "HDM_dg.asf")
    path = hdm05 / HDM05_CLIPS[2]
    fast = forward_kinematics(skel, read_amc(path, skel))
    text = path.read_bytes().decode("latin-1")
    for frame in (1, 100, fast.shape[0]):
        np.testing.assert_allclose(fast[frame - 1], _naive_asf_fk(skel, text, frame), atol=1e-9)


@pytest.mark.parametrize("clip", HDM05_CLIPS)
def test_hdm05_retargeted_bodies(hdm05: Path, clip: str) -> None:
    pos = load_hdm05_clip(hdm05 / clip)
    assert (
        pos.shape[0] == read_amc(hdm05 / clip, read_asf(hdm05 / f"HDM_{clip[4:6]}.asf")).num_frames
    )
    assert (_rel_std(pos, tuple(range(16))) < 1e-6).all()
    _check_body(pos, standing="lieDown" not in clip)


def test_parse_hdm05_name() -> None:
    assert parse_hdm05_name("/x/HDM_bd_squat1Reps_003_120.amc") == ("bd", "squat1Reps", 3)
    with pytest.raises(DataError, match="file name"):
        parse_hdm05_name("squat.amc")


# ---------------------------------------------------------------------------------------------- BVH
@pytest.mark.parametrize("clip", BANDAI_CLIPS)
def test_bandai_retargeted_bodies(bandai: Path, clip: str) -> None:
    bvh = read_bvh(bandai / clip)
    n_frames = int(re.search(r"Frames:\s*(\d+)", (bandai / clip).read_text()).group(1))
    assert bvh.num_frames == n_frames and bvh.fps == pytest.approx(30.0, rel=1e-4)
    assert "Head_end" in bvh.names and bvh.names[bvh.parents[bvh.names.index("Head_end")]] == "Head"
    pos, fps = load_bandai_clip(bandai / clip)
    assert pos.shape[0] == n_frames and fps == pytest.approx(30.0, rel=1e-4)
    assert (_rel_std(pos, tuple(range(16))) < 1e-6).all()
    _check_body(pos)
    head_len = np.linalg.norm(pos[:, HEAD] - pos[:, 9], axis=-1)  # extrapolated head top
    assert (head_len > 0.05).all()


def _naive_bvh_fk(bvh, frame: int) -> np.ndarray:
    """Per-frame reference with 4x4 homogeneous transforms."""
    mats: list[np.ndarray] = []
    for j, parent in enumerate(bvh.parents):
        local = np.eye(4)
        local[:3, 3] = bvh.offsets[j]
        chans = bvh.channels[j]
        vals = bvh.values[frame, bvh.columns[j] : bvh.columns[j] + len(chans)]
        for c, v in zip(chans, vals):
            if c.endswith("position"):
                local[:3, 3]["XYZ".index(c[0])] = v
        for c, v in zip(chans, vals):
            if c.endswith("rotation"):
                local[:3, :3] = local[:3, :3] @ _rodrigues(
                    np.eye(3)["XYZ".index(c[0])], np.deg2rad(v)
                )
        mats.append(local if parent < 0 else mats[parent] @ local)
    return np.stack([m[:3, 3] for m in mats])


def test_bvh_fk_matches_naive_reference(bandai: Path) -> None:
    bvh = read_bvh(bandai / BANDAI_CLIPS[1])
    fast = bvh_forward_kinematics(bvh)
    for frame in (0, 37, bvh.num_frames - 1):
        np.testing.assert_allclose(fast[frame], _naive_bvh_fk(bvh, frame), atol=1e-9)


# ----------------------------------------------------------------------------------------- resample
def test_fixed_point_on_chain_and_axes() -> None:
    # segments of length 1 and 3: half the arc (2) is a third of the way along the second bone
    chain = np.array([[[0.0, 0, 0], [1, 0, 0], [1, 3, 0]]])
    np.testing.assert_allclose(fixed_point_on_chain(chain, 0.5), [[1.0, 1.0, 0.0]])
    np.testing.assert_allclose(fixed_point_on_chain(chain, 1.0), [[1.0, 3.0, 0.0]])
    # the point is carried by that bone: turning the bone keeps it a third of the way along
    turned = np.array([[[0.0, 0, 0], [1, 0, 0], [1 + 3 / np.sqrt(2), 3 / np.sqrt(2), 0]]])
    moving = np.concatenate([chain, turned])
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(fixed_point_on_chain(moving, 0.5)[1], [1 + r, r, 0])
    # Y-up -> Z-up is a proper rotation: up goes to +z, handedness is kept
    basis = y_up_to_z_up(np.eye(3))
    np.testing.assert_array_equal(basis[1], [0.0, 0.0, 1.0])
    assert np.linalg.det(basis) == pytest.approx(1.0)


def test_set_bone_lengths_keeps_directions() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(5, 17, 3))
    lengths = rng.uniform(0.1, 0.5, 16)
    out = set_bone_lengths(pos, lengths)
    np.testing.assert_allclose(H36M17.bone_lengths(out), np.broadcast_to(lengths, (5, 16)))
    np.testing.assert_array_equal(out[:, 0], pos[:, 0])  # the root stays
    for j, p in H36M17.edges():
        d_in, d_out = pos[:, j] - pos[:, p], out[:, j] - out[:, p]
        cos = (
            np.sum(d_in * d_out, -1)
            / np.linalg.norm(d_in, axis=-1)
            / np.linalg.norm(d_out, axis=-1)
        )
        np.testing.assert_allclose(cos, 1.0)


@pytest.mark.parametrize(
    ("T", "src", "dst"), [(241, 120, 50), (100, 30, 50), (7, 120, 120), (2, 50, 10)]
)
def test_resample_endpoints_and_length(T: int, src: float, dst: float) -> None:
    rng = np.random.default_rng(T)
    x = rng.normal(size=(T, 17, 3)).astype(np.float32)
    y = resample(x, src, dst)
    # (T - 1) * dst / src intervals, rounded; at least one so that both endpoints are kept
    assert y.shape == (max(round((T - 1) * dst / src), 1) + 1, 17, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0], x[0])
    np.testing.assert_allclose(y[-1], x[-1], atol=1e-6)
    if src == dst:
        np.testing.assert_allclose(y, x, atol=1e-6)
    # with the skeleton, interpolated (shortened) bones get the input's lengths back
    rigid = set_bone_lengths(x.astype(np.float64), np.full(16, 0.3))
    z = resample(rigid, src, dst, H36M17)
    np.testing.assert_allclose(H36M17.bone_lengths(z), 0.3, atol=1e-9)
    np.testing.assert_array_equal(z[0, 0], rigid[0, 0])


def test_resample_is_exact_on_linear_motion() -> None:
    t = np.arange(241) / 120.0
    x = (t[:, None, None] * np.array([1.0, -2.0, 0.5]) + np.arange(4)[None, :, None]).copy()
    y = resample(x, 120, 50)
    ty = np.linspace(0, t[-1], y.shape[0])
    np.testing.assert_allclose(
        y, ty[:, None, None] * np.array([1.0, -2.0, 0.5]) + np.arange(4)[None, :, None]
    )
    with pytest.raises(ValueError):
        resample(x, 0, 50)


# ----------------------------------------------------------------------------------- embedded asset
def test_embedded_sample_loads_with_documented_keys() -> None:
    assert SAMPLE_PATH.is_file() and SAMPLE_PATH.stat().st_size <= 5_200_000
    assert (SAMPLE_PATH.parent / "HDM05_SAMPLE_LICENSE.md").is_file()
    clips, meta = load_hdm05_sample()
    for key, val in {"source": "HDM05", "fps": 50, "joints": "h36m17", "units": "m", "up": "z",
                     "licence": "CC BY-SA 3.0"}.items():  # fmt: skip
        assert meta[key] == val
    assert meta["num_clips"] == len(clips)
    keys = [k.split("/") for k in clips]
    assert all(len(k) == 3 and re.fullmatch(r"\d{3}", k[2]) for k in keys)
    assert {k[0] for k in keys} == {"bd", "bk", "dg"}
    assert len({k[1] for k in keys}) == 11
    for k in ("bd", "bk", "dg"):
        assert len({m for a, m, _ in keys if a == k}) == 11  # every actor has every motion
    for arr in clips.values():
        assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[1:] == (17, 3)
        np.testing.assert_allclose(arr[:, PELVIS, :2].mean(axis=0), 0.0, atol=1e-4)
        assert H36M17.bone_lengths(arr.astype(np.float64)).std(axis=0).max() < 1e-5  # metres
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        assert json.loads(str(npz["__meta__"]))["licence"] == "CC BY-SA 3.0"


def test_build_sample_small(hdm05: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("HDM_bd.asf", HDM05_CLIPS[0], "HDM_bd_hopBothLegs1hops_001_120.amc"):
        (src / name).symlink_to(hdm05 / name)
    out = build_hdm05_sample(src, tmp_path / "assets" / "s.npz", fps=50, actors=("bd",))
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.npz"]  # no temporary left over
    clips, meta = load_hdm05_sample(out)
    assert sorted(clips) == ["bd/hopBothLegs1hops/001", "bd/squat1Reps/001"]
    assert (
        meta["num_clips"] == 2 and meta["subset"] is False and meta["per_actor"]["bd"]["clips"] == 2
    )


def test_embedded_sample_matches_source(hdm05: Path) -> None:
    clips, meta = load_hdm05_sample()
    key = "bd/squat1Reps/001"
    pos = resample(
        load_hdm05_clip(hdm05 / HDM05_CLIPS[0]).astype(np.float64), HDM05_FPS, meta["fps"], H36M17
    )
    pos[..., :2] -= pos[:, PELVIS, :2].mean(axis=0)
    np.testing.assert_allclose(clips[key], pos, atol=1e-5)


# ---------------------------------------------------------------------------------- malformed input
def _copy(src: Path, dst: Path, edit) -> Path:
    text = src.read_bytes().decode("latin-1")
    new = edit(text)
    assert new != text, "the edit did not apply"
    dst.write_bytes(new.encode("latin-1"))
    return dst


def test_truncated_amc_raises(hdm05: Path, tmp_path: Path) -> None:
    skel = read_asf(hdm05 / "HDM_bd.asf")
    text = (hdm05 / HDM05_CLIPS[0]).read_bytes().decode("latin-1")
    cut = text.index("lhumerus", len(text) // 2)  # last kept frame stops at the left arm
    bad = tmp_path / "truncated.amc"
    bad.write_bytes(text[:cut].encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_amc(bad, skel)
    assert err.value.path == str(bad) and err.value.field.startswith("frame ")
    assert str(bad) in str(err.value)
    # truncated in the middle of the last line: the last bone has too few values
    bad2 = tmp_path / "truncated2.amc"
    bad2.write_bytes(text[: text.rindex("ltoes ") + len("ltoes")].encode("latin-1"))
    with pytest.raises(DataError, match=r"frame \d+: bone 'ltoes': expected 1 values, got 0"):
        read_amc(bad2, skel)


def test_unknown_bone_in_amc_raises(hdm05: Path, tmp_path: Path) -> None:
    bad = _copy(hdm05 / HDM05_CLIPS[0], tmp_path / "unknown.amc",
                lambda t: t.replace("\nlradius ", "\nlbanana ", 5))  # fmt: skip
    with pytest.raises(DataError) as err:
        read_amc(bad, read_asf(hdm05 / "HDM_bd.asf"))
    assert err.value.path == str(bad) and "lbanana" in err.value.field


def test_bvh_wrong_channel_count_raises(bandai: Path, tmp_path: Path) -> None:
    src = bandai / BANDAI_CLIPS[1]
    # a CHANNELS line that declares 6 channels but lists 5
    full = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n    JOINT Spine"
    short = full.replace(" Yrotation", "")
    bad = _copy(src, tmp_path / "chan.bvh", lambda t: t.replace(full, short, 1))
    with pytest.raises(DataError) as err:
        read_bvh(bad)
    assert err.value.path == str(bad) and err.value.field == "HIERARCHY/Hips/CHANNELS"
    # a motion line with one value missing
    lines = src.read_bytes().decode("latin-1").splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("Frame Time")) + 5
    lines[k] = lines[k].rsplit(maxsplit=1)[0]
    bad2 = tmp_path / "motion.bvh"
    bad2.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err2:
        read_bvh(bad2)
    assert err2.value.path == str(bad2) and err2.value.field == "MOTION/frame 4"


# ------------------------------------------------------------------------------- rigid skeleton
def _check_rigid(pos: np.ndarray, fixed: np.ndarray, where: str) -> tuple[float, float]:
    """Every bone constant over the clip (std < 1 um); returns the joints' (mean, max) move
    from their fixed points in mm."""
    assert np.isfinite(pos).all(), where
    std = H36M17.bone_lengths(pos).std(axis=0).max()
    assert std < 1e-6, f"{where}: a bone's length varies (std {std * 1000:.4f} mm)"
    move = np.linalg.norm(pos - fixed, axis=-1) * 1000
    return float(move.mean()), float(move.max())


def test_every_shared_clip_has_rigid_bones(hdm05: Path, bandai: Path) -> None:
    """Constant bone lengths on every HDM05 (all actors) and Bandai file; the joints stay within
    millimetres of the fixed points they come from. Every 4th frame, for speed."""
    moves = {}
    for actor_asf in sorted(hdm05.glob("HDM_*.asf")):
        skel = read_asf(actor_asf)
        for amc in sorted(hdm05.glob(f"{actor_asf.stem}_*.amc")):
            raw = forward_kinematics(skel, read_amc(amc, skel, stride=4))
            pos = retarget_to_h36m17(raw, skel.joint_names, "hdm05", scale=skel.metres_per_unit)
            fixed = y_up_to_z_up(source_points(raw, skel.joint_names, "hdm05"))
            moves[amc.name] = _check_rigid(pos, fixed * skel.metres_per_unit, amc.name)
    assert len(moves) == len(list(hdm05.glob("*.amc"))) >= 188
    for bvh_path in sorted(bandai.glob("*.bvh")):
        bvh = read_bvh(bvh_path, stride=4)
        raw = bvh_forward_kinematics(bvh, {"Head_end": bandai_head_top_offset(bvh)})
        pos = retarget_to_h36m17(raw, bvh.names, "bandai", scale=0.01)
        fixed = y_up_to_z_up(source_points(raw, bvh.names, "bandai")) * 0.01
        moves[bvh_path.name] = _check_rigid(pos, fixed, bvh_path.name)
    assert len(moves) >= 188 + 174
    mean = np.array([v[0] for v in moves.values()])
    assert mean.mean() < 2.0 and mean.max() < 10.0, (mean.mean(), mean.max())


# A CMU-style Acclaim skeleton (the bone names, hierarchy, units and root of the CMU Graphics Lab
# files): name, parent, direction, length, axis, dof.
_CMU_BONES = (
    ("lhipjoint", "root", (0.64, -0.70, 0.32), 2.4, (0, 0, 0), ""),
    ("lfemur", "lhipjoint", (0.34, -0.94, 0), 7.2, (0, 0, 20), "rx ry rz"),
    ("ltibia", "lfemur", (0.34, -0.94, 0), 7.4, (0, 0, 20), "rx"),
    ("lfoot", "ltibia", (0.15, -0.42, 0.89), 2.3, (-90, 7, 20), "rx rz"),
    ("rhipjoint", "root", (-0.64, -0.70, 0.32), 2.4, (0, 0, 0), ""),
    ("rfemur", "rhipjoint", (-0.34, -0.94, 0), 7.2, (0, 0, -20), "rx ry rz"),
    ("rtibia", "rfemur", (-0.34, -0.94, 0), 7.4, (0, 0, -20), "rx"),
    ("rfoot", "rtibia", (-0.15, -0.42, 0.89), 2.3, (-90, -7, -20), "rx rz"),
    ("lowerback", "root", (0.01, 0.99, -0.09), 2.0, (0, 0, 0), "rx ry rz"),
    ("upperback", "lowerback", (0.0, 1.0, 0.02), 2.0, (0, 0, 0), "rx ry rz"),
    ("thorax", "upperback", (0.0, 1.0, 0.02), 2.0, (0, 0, 0), "rx ry rz"),
    ("lowerneck", "thorax", (0.0, 0.97, -0.24), 1.6, (0, 0, 0), "rx ry rz"),
    ("upperneck", "lowerneck", (0.0, 0.99, 0.1), 1.6, (0, 0, 0), "rx ry rz"),
    ("head", "upperneck", (0.0, 0.99, 0.05), 1.6, (0, 0, 0), "rx ry rz"),
    ("lclavicle", "thorax", (0.91, 0.39, -0.1), 3.4, (0, 0, 0), "ry rz"),
    ("lhumerus", "lclavicle", (1, 0, 0), 5.3, (0, 0, 90), "rx ry rz"),
    ("lradius", "lhumerus", (1, 0, 0), 3.5, (0, 0, 90), "rx"),
    ("lwrist", "lradius", (1, 0, 0), 1.7, (0, 0, 90), "ry"),
    ("rclavicle", "thorax", (-0.91, 0.39, -0.1), 3.4, (0, 0, 0), "ry rz"),
    ("rhumerus", "rclavicle", (-1, 0, 0), 5.3, (0, 0, -90), "rx ry rz"),
    ("rradius", "rhumerus", (-1, 0, 0), 3.5, (0, 0, -90), "rx"),
    ("rwrist", "rradius", (-1, 0, 0), 1.7, (0, 0, -90), "ry"),
)


def write_cmu_style(
    folder: Path, frames: int, seed: int, bom: bool = False, subject: str = "07", takes: int = 1
) -> tuple[Path, list[Path]]:
    """``<subject>.asf`` and ``<subject>_01.amc`` ... (``takes`` motions, CMU names) whose every
    DOF moves through wide smooth random angles."""
    lines = [":version 1.10", ":name VICON", ":units", "  mass 1.0", "  length 0.45",
             "  angle deg", ":root", "   order TX TY TZ RX RY RZ", "   axis XYZ",
             "   position 0 0 0", "   orientation 0 0 0", ":bonedata"]  # fmt: skip
    for k, (name, _, d, length, axis, dof) in enumerate(_CMU_BONES, start=1):
        lines += ["  begin", f"     id {k}", f"     name {name}",
                  "     direction {} {} {}".format(*d), f"     length {length}",
                  "     axis {} {} {}  XYZ".format(*axis)]  # fmt: skip
        if dof:
            lines += [
                f"     dof {dof}",
                "     limits " + " ".join(["(-180 180)"] * len(dof.split())),
            ]
        lines.append("  end")
    children: dict[str, list[str]] = {}
    for name, parent, *_ in _CMU_BONES:
        children.setdefault(parent, []).append(name)
    lines += [":hierarchy", "  begin", *(f"    {p} {' '.join(c)}" for p, c in children.items()),
              "  end"]  # fmt: skip
    prefix = b"\xef\xbb\xbf" if bom else b""
    asf = folder / f"{subject}.asf"
    asf.write_bytes(prefix + "\n".join(lines).encode() + b"\n")
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 30.0
    paths = []
    for take in range(1, takes + 1):
        amc = ["#!OML:ASF", ":FULLY-SPECIFIED", ":DEGREES"]
        root = [rng.normal(0, 5, (1, 3)) + 0.5 * t * rng.normal(size=3),
                45 * np.sin(t * rng.uniform(1, 3, 3))]  # fmt: skip
        motion = {"root": np.concatenate(root, axis=1)}
        for name, *_, dof in _CMU_BONES:
            if dof:
                n = len(dof.split())
                motion[name] = 60 * np.sin(t * rng.uniform(1, 6, n) + rng.uniform(0, 6, n))
        for f in range(frames):
            amc.append(str(f + 1))
            amc += [f"{n} " + " ".join(f"{v:.4f}" for v in vals[f]) for n, vals in motion.items()]
        paths.append(folder / f"{subject}_{take:02d}.amc")
        paths[-1].write_bytes(prefix + "\n".join(amc).encode() + b"\n")
    return asf, paths


def test_cmu_style_asf_amc_is_rigid(tmp_path: Path) -> None:
    """Wide random motion of every DOF of a CMU-style skeleton (a UTF-8 byte-order mark in
    front of both files): constant bones; legs and arms exactly at their source joints."""
    asf, (amc,) = write_cmu_style(tmp_path, frames=120, seed=3, bom=True)
    skel = read_asf(asf)
    raw = forward_kinematics(skel, read_amc(amc, skel)) * skel.metres_per_unit
    pos = retarget_to_h36m17(raw, skel.joint_names, "cmu")
    fixed = y_up_to_z_up(source_points(raw, skel.joint_names, "cmu"))
    _check_rigid(pos, fixed, "cmu")
    names = skel.joint_names
    for joint, bone in ((2, "rfemur"), (3, "rtibia"), (5, "lfemur"), (6, "ltibia")):
        np.testing.assert_allclose(pos[:, joint], y_up_to_z_up(raw[:, names.index(bone)]))
    bones = H36M17.bone_lengths(retarget_to_h36m17(raw, names, "cmu", rigid=False))
    assert bones.std(axis=0).max() > 0.005  # the fixed points alone are not rigid here


_TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 0 0 0
1 90 0 0 30 0 0 0 45
"""


def test_bvh_with_byte_order_mark(tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain.bvh", tmp_path / "bom.bvh"
    plain.write_text(_TINY_BVH)
    marked.write_bytes(b"\xef\xbb\xbf" + _TINY_BVH.encode())
    a, b = read_bvh(plain), read_bvh(marked)
    assert a.names == b.names == ("Hips", "Chest", "Chest_end")
    np.testing.assert_array_equal(a.values, b.values)
    # frame 1: root at (1, 90, 0) turned 30 degrees about x; the chest's y-turn keeps its y-axis
    np.testing.assert_allclose(
        bvh_forward_kinematics(b)[1, 2], [1, 90 + 15 * np.cos(np.pi / 6), 15 * 0.5], atol=1e-9
    )
    assert read_bvh(marked, stride=2).num_frames == 1


def test_amc_fast_path_matches_checked_parser(hdm05: Path) -> None:
    from liftpose.data.mocap.asf_amc import _amc_table_checked, _amc_table_fast

    skel = read_asf(hdm05 / "HDM_bk.asf")
    n_dof = {"root": 6} | {b.name: len(b.dof) for b in skel.bones}
    lines = (hdm05 / HDM05_CLIPS[1]).read_text(encoding="latin-1").splitlines()
    body = lines[next(i for i, ln in enumerate(lines) if ln.strip() == "1") :]
    fast = _amc_table_fast("\n".join(body).split(), n_dof)
    checked = _amc_table_checked(hdm05 / HDM05_CLIPS[1], body, n_dof)
    assert fast is not None and fast[1] == checked[1]
    np.testing.assert_array_equal(fast[0], checked[0])
    np.testing.assert_array_equal(fast[2], checked[2])
    every3 = read_amc(hdm05 / HDM05_CLIPS[1], skel, stride=3)
    np.testing.assert_array_equal(every3.frame_numbers, checked[0][::3])

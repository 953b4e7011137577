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
    forward_kinematics,
    load_bandai_clip,
    load_hdm05_clip,
    load_hdm05_sample,
    parse_hdm05_name,
    point_on_chain,
    read_amc,
    read_asf,
    read_bvh,
    resample,
    y_up_to_z_up,
)
from liftpose.data.mocap.bvh import bvh_forward_kinematics
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
# Indices into H36M17.edges() (edge e ends at joint e + 1) of bones that are rigid in the source.
LEGS_ARMS = (0, 1, 2, 3, 4, 5, 11, 12, 14, 15)  # hip halves, thighs, shins, upper arms, forearms
CLAVICLES = (10, 13)  # Thorax -> shoulder: rigid in the ASF skeleton (clavicle bone), not in Bandai
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
    assert (_rel_std(pos, LEGS_ARMS + CLAVICLES) < 1e-4).all()
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
    assert (_rel_std(pos, LEGS_ARMS) < 1e-4).all()
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
def test_point_on_chain_and_axes() -> None:
    chain = np.array([[[0.0, 0, 0], [1, 0, 0], [1, 3, 0]]])  # arc length 4
    np.testing.assert_allclose(point_on_chain(chain, 0.5), [[1.0, 1.0, 0.0]])
    np.testing.assert_allclose(point_on_chain(chain, 1.0), [[1.0, 3.0, 0.0]])
    # Y-up -> Z-up is a proper rotation: up goes to +z, handedness is kept
    basis = y_up_to_z_up(np.eye(3))
    np.testing.assert_array_equal(basis[1], [0.0, 0.0, 1.0])
    assert np.linalg.det(basis) == pytest.approx(1.0)


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
        load_hdm05_clip(hdm05 / HDM05_CLIPS[0]).astype(np.float64), HDM05_FPS, meta["fps"]
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

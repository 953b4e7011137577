"""Cameras, projection, normalisation, skeleton layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from liftpose.data.camera import (
    H36M_CAMERA_IDS,
    camera_to_world,
    image_coordinates,
    load_cameras,
    look_at,
    matrix_to_quat,
    normalize_screen_coordinates,
    qmul,
    qrot,
    quat_to_matrix,
    world_to_camera,
)
from liftpose.data.skeleton import H36M16, H36M17, reduce_32_to_17, to_layout

finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


def random_quat(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def test_h36m_calibration_values():
    cams = load_cameras()
    assert set(cams) == {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
    c = cams["S1"]["54138969"]
    assert (c.res_w, c.res_h) == (1000, 1002)
    np.testing.assert_allclose(c.focal_length, [1145.0494384765625, 1143.7811279296875])
    np.testing.assert_allclose(c.center, [512.54150390625, 515.4514770507812])
    np.testing.assert_allclose(
        c.translation, [1.8411070556640625, 4.95528466796875, 1.5634454345703125]
    )
    assert list(cams["S9"]) == list(H36M_CAMERA_IDS)
    # the camera looks at the capture volume: the origin is in front of it and inside the image
    x = c.world_to_camera(np.array([[0.0, 0.0, 1.0]]))
    assert x[0, 2] > 2
    px = c.project(x)[0]
    assert 0 < px[0] < c.res_w and 0 < px[1] < c.res_h


@given(arrays(np.float64, (6, 3), elements=finite), st.integers(0, 2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_world_camera_round_trip(x, seed):
    rng = np.random.default_rng(seed)
    q, t = random_quat(rng), rng.normal(size=3)
    np.testing.assert_allclose(camera_to_world(world_to_camera(x, q, t), q, t), x, atol=1e-9)


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_quaternion_matrix_consistency(seed):
    rng = np.random.default_rng(seed)
    q, r = random_quat(rng), random_quat(rng)
    v = rng.normal(size=3)
    m = quat_to_matrix(q)
    np.testing.assert_allclose(m @ v, qrot(q, v), atol=1e-12)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    q2 = matrix_to_quat(m)
    np.testing.assert_allclose(quat_to_matrix(q2), m, atol=1e-9)
    np.testing.assert_allclose(qrot(qmul(q, r), v), qrot(q, qrot(r, v)), atol=1e-12)


@given(
    arrays(np.float64, (5, 2), elements=st.floats(0, 1000)),
    st.sampled_from([1000, 1920]),
    st.sampled_from([1000, 1002, 1080]),
)
@settings(max_examples=50, deadline=None)
def test_screen_normalisation_round_trip(px, w, h):
    n = normalize_screen_coordinates(px, w, h)
    np.testing.assert_allclose(image_coordinates(n, w, h), px, atol=1e-9)
    # [0, w] maps to [-1, 1]
    np.testing.assert_allclose(
        normalize_screen_coordinates(np.array([[0.0, 0], [w, 0]]), w, h)[:, 0], [-1, 1]
    )


def test_projection_centre_and_distortion():
    c = load_cameras()["S1"]["55011271"]
    # a point on the optical axis lands on the principal point, with or without distortion
    np.testing.assert_allclose(c.project(np.array([0.0, 0.0, 3.0])), c.center)
    off = np.array([0.8, 0.5, 3.0])
    assert not np.allclose(c.project(off), c.project(off, distort=False))
    # undistorted projection is the pinhole model
    np.testing.assert_allclose(
        c.project(off, distort=False), c.focal_length * off[:2] / 3.0 + c.center
    )


@given(st.integers(0, 2**31 - 1), st.sampled_from(list(H36M_CAMERA_IDS)))
@settings(max_examples=30, deadline=None)
def test_projection_round_trip_with_distortion(seed, cam_id):
    cam = load_cameras()["S9"][cam_id]
    rng = np.random.default_rng(seed)
    # points of a person 3-7 m in front of the camera, inside the image
    x = np.stack(
        [rng.uniform(-1.2, 1.2, 20), rng.uniform(-1.2, 1.2, 20), rng.uniform(3.0, 7.0, 20)], axis=-1
    )
    px = cam.project(x)
    assert ((px > 0) & (px < 1000)).all()
    np.testing.assert_allclose(cam.back_project(px, x[:, 2]), x, atol=1e-6)
    np.testing.assert_allclose(
        cam.back_project(cam.project(x, distort=False), x[:, 2], distort=False), x, atol=1e-9
    )


def test_look_at_points_camera_at_target():
    pos, target = np.array([4.0, 1.0, 1.6]), np.array([0.0, 0.0, 0.9])
    q = look_at(pos, target)
    x = world_to_camera(target[None], q, pos)[0]
    np.testing.assert_allclose(x[:2], 0.0, atol=1e-9)
    assert x[2] > 0
    # world up maps to image up (negative camera y)
    up = world_to_camera((target + [0, 0, 1])[None], q, pos)[0]
    assert up[1] < 0


def test_skeleton_layouts():
    assert H36M17.num_joints == 17 and H36M16.num_joints == 16
    assert "Neck/Nose" not in H36M16.names
    assert H36M16.parents[H36M16.names.index("Head")] == H36M16.names.index("Thorax")
    perm = H36M17.flip_permutation
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    assert perm[4] == 1 and perm[13] == 16
    x = np.random.default_rng(0).normal(size=(2, 32, 3))
    assert reduce_32_to_17(x).shape == (2, 17, 3)
    np.testing.assert_array_equal(reduce_32_to_17(x)[:, 7], x[:, 12])
    assert to_layout(np.zeros((3, 17, 2)), "h36m16").shape == (3, 16, 2)
    with pytest.raises(ValueError, match="unknown joint layout"):
        to_layout(np.zeros((3, 17, 2)), "coco")

"""The software person renderer and the rendered COCO keypoint dataset."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from liftpose.data.camera import Camera
from liftpose.data.render import (
    COCO_H36M_INDEX,
    COCO_KEYPOINT_NAMES,
    box_from_keypoints,
    camera_from_json,
    coco_keypoints_3d,
    crop_affine,
    random_style,
    render_frames,
    render_person,
    write_rendered_coco,
)

#: COCO keypoint indices used below
NOSE, L_EAR, R_EAR, R_ELBOW, R_WRIST, L_WRIST = 0, 3, 4, 8, 10, 9


def _camera(w: int = 400, h: int = 400, f: float = 460.0, distort: bool = True) -> Camera:
    return Camera(
        id="test",
        res_w=w,
        res_h=h,
        center=np.array([w / 2 + 3.0, h / 2 - 2.0]),
        focal_length=np.array([f, f * 0.999]),
        radial_distortion=np.array([-0.2, 0.24, 0.0]) if distort else np.zeros(3),
        tangential_distortion=np.array([-0.001, -0.0015]) if distort else np.zeros(2),
    )


def _facing_pose(depth: float = 4.0, arm_behind: bool = True) -> np.ndarray:
    """A standing person facing the camera (camera frame: x right, y down, z forward).

    Facing the camera, the person's left side is on the image's right (+x). With
    ``arm_behind`` the right elbow and wrist are tucked behind the back.
    """
    j = np.array(
        [
            [0.0, 0.0, 0],  # Hip
            [-0.1, 0.0, 0],  # RHip
            [-0.1, 0.45, 0],  # RKnee
            [-0.1, 0.9, 0],  # RFoot
            [0.1, 0.0, 0],  # LHip
            [0.1, 0.45, 0],  # LKnee
            [0.1, 0.9, 0],  # LFoot
            [0.0, -0.25, 0],  # Spine
            [0.0, -0.5, 0],  # Thorax
            [0.0, -0.62, 0],  # Neck/Nose
            [0.0, -0.77, 0],  # Head
            [0.19, -0.48, 0],  # LShoulder
            [0.22, -0.2, 0],  # LElbow
            [0.24, 0.05, 0],  # LWrist
            [-0.19, -0.48, 0],  # RShoulder
            [-0.22, -0.2, 0],  # RElbow
            [-0.24, 0.05, 0],  # RWrist
        ]
    )
    if arm_behind:
        j[15] = [-0.02, -0.3, 0.35]
        j[16] = [0.03, -0.12, 0.35]
    j[:, 2] += depth
    return j


def _style(seed: int = 3, background: str = "flat"):
    return dataclasses.replace(random_style(np.random.default_rng(seed), background), girth=1.0)


def test_body_is_where_the_keypoints_are():
    cam = _camera()
    pose = _facing_pose(arm_behind=False)
    style = _style()
    r = render_person(pose, cam, style=style)
    empty = render_person(pose + [30.0, 0, 0], cam, style=style)  # person far outside the image
    assert r.image.shape == (400, 400, 3) and r.image.dtype == np.uint8
    assert not empty.mask.any()
    assert np.all(r.visible == 2)
    # the keypoints are the distorted projections
    np.testing.assert_allclose(r.keypoints, cam.project(pose), atol=1e-9)
    differs = np.abs(r.image.astype(int) - empty.image.astype(int)).sum(-1) > 12
    for x, y, v in r.coco:
        assert v == 2
        u, w = int(round(x)), int(round(y))
        assert r.mask[w, u], (x, y)
        assert differs[w, u], (x, y)
    # the silhouette spans the keypoints
    ys, xs = np.nonzero(r.mask)
    kp = r.coco[:, :2]
    assert xs.min() <= kp[:, 0].min() and xs.max() >= kp[:, 0].max()
    assert ys.min() <= kp[:, 1].min() and ys.max() >= kp[:, 1].max()


def test_arm_behind_the_back_is_occluded_and_face_follows_the_view():
    cam = _camera()
    r = render_person(_facing_pose(arm_behind=True), cam, style=_style())
    v = r.coco[:, 2]
    assert v[R_ELBOW] == 1 and v[R_WRIST] == 1
    assert v[L_WRIST] == 2 and v[NOSE] == 2
    assert r.visible[15] == 1 and r.visible[16] == 1
    # seen from behind (turned 180 degrees about the vertical axis through the hip)
    pose = _facing_pose(arm_behind=False)
    c = pose[0]
    back = (pose - c) * [-1, 1, -1] + c
    rb = render_person(back, cam, style=_style())
    assert rb.coco[NOSE, 2] == 1 and rb.coco[1, 2] == 1 and rb.coco[2, 2] == 1
    # side view: the near ear is visible, the far one hidden behind the head
    side = (pose - c) @ np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]]).T + c  # left side to camera
    rs = render_person(side, cam, style=_style())
    assert {rs.coco[L_EAR, 2], rs.coco[R_EAR, 2]} == {1, 2}


def test_out_of_frame_is_zero():
    cam = _camera()
    pose = _facing_pose(arm_behind=False) + [1.6, 0, 0]  # partly off the right edge
    r = render_person(pose, cam, style=_style(background="room"))
    inside = (r.keypoints[:, 0] >= 0) & (r.keypoints[:, 0] <= 399)
    assert np.all((r.visible == 0) == ~inside) and (~inside).any()


def test_coco_face_points_on_the_head():
    pose = _facing_pose(arm_behind=False)
    kp = coco_keypoints_3d(pose)
    assert kp.shape == (17, 3) and len(COCO_KEYPOINT_NAMES) == 17
    for c, h in enumerate(COCO_H36M_INDEX):
        if h >= 0:
            np.testing.assert_array_equal(kp[c], pose[h])
    # nose towards the camera (-z), eyes above the nose, left eye/ear on the person's left (+x)
    assert kp[0, 2] < pose[10, 2] - 0.05
    assert kp[1, 1] < kp[0, 1] and kp[2, 1] < kp[0, 1]
    assert kp[1, 0] > 0 > kp[2, 0] and kp[3, 0] > 0 > kp[4, 0]
    assert np.all(np.abs(kp[:5] - (pose[9] + pose[10]) / 2).max(axis=1) < 0.15)


def test_render_frames_crops_and_affines():
    cam = _camera(1000, 1000, 1145.0)
    poses = np.stack([_facing_pose(5.0, arm_behind=False) + [0.05 * i, 0, 0] for i in range(3)])
    crops, aff = render_frames(poses, cam, crop_size=(256, 192), seed=4)
    assert crops.shape == (3, 256, 192, 3) and crops.dtype == np.uint8
    assert aff.shape == (3, 2, 3)
    px = cam.project(poses)
    box = box_from_keypoints(px)
    np.testing.assert_allclose(aff, crop_affine(box, (256, 192)))
    inside = np.einsum("fij,fkj->fki", aff[..., :2], px) + aff[:, None, :, 2]
    eps = 1e-6  # the padding leaves exactly 10 % of the crop free along the longer side
    assert np.all(inside[..., 0] >= 0.1 * 192 - eps) and np.all(inside[..., 0] <= 0.9 * 192 + eps)
    assert np.all(inside[..., 1] >= 0.1 * 256 - eps) and np.all(inside[..., 1] <= 0.9 * 256 + eps)
    # box rule: aspect 3:4 and 1.25 padding of the joints' extent
    bh = box[:, 3] - box[:, 1]
    np.testing.assert_allclose(
        256 / aff[:, 1, 1], 1.25 * np.maximum(bh, (box[:, 2] - box[:, 0]) / 0.75)
    )
    back = cv2.invertAffineTransform(aff[0])
    np.testing.assert_allclose(inside[0] @ back[:, :2].T + back[:, 2], px[0], atol=1e-9)
    # a crop renders the same person as the full image, resampled
    full = render_person(poses[0], cam, style=random_style(np.random.default_rng(4))).image
    warped = cv2.warpAffine(full, aff[0], (192, 256), flags=cv2.INTER_LINEAR)
    m = render_person(poses[0], cam, (256, 192), aff[0], random_style(np.random.default_rng(4)))
    assert np.mean(np.abs(warped.astype(int) - crops[0].astype(int))[m.mask]) < 12
    # given boxes are used as they are (then the aspect and padding rule)
    crops2, aff2 = render_frames(poses[:1], cam, boxes=box[:1] + 40, seed=4)
    np.testing.assert_allclose(aff2[0, :, 2], aff[0, :, 2] - 40 * aff[0, 0, 0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco") / "rendered"
    write_rendered_coco(root, num_train=6, num_val=3, seed=7)
    return root


def test_writer_is_atomic_and_kept_when_unchanged(tiny):
    root = tiny
    assert sorted(p.name for p in root.parent.iterdir()) == ["rendered"]  # no temp folders left
    assert len(list((root / "train").glob("*.jpg"))) == 6
    assert len(list((root / "val").glob("*.jpg"))) == 3
    stamp = (root / "annotations" / "person_keypoints_train.json").stat().st_mtime_ns
    write_rendered_coco(root, num_train=6, num_val=3, seed=7)  # same settings: kept
    assert (root / "annotations" / "person_keypoints_train.json").stat().st_mtime_ns == stamp


def test_writer_coco_format_and_3d_sidecar(tiny):
    from pycocotools.coco import COCO

    root = tiny
    for split, n in (("train", 6), ("val", 3)):
        path = root / "annotations" / f"person_keypoints_{split}.json"
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == n and len(coco.getAnnIds()) == n
        cat = coco.loadCats([1])[0]
        assert cat["keypoints"] == list(COCO_KEYPOINT_NAMES) and len(cat["skeleton"]) == 19
        side = np.load(root / "annotations" / f"poses3d_{split}.npz")
        for k, ann in enumerate(coco.loadAnns(coco.getAnnIds())):
            img = coco.loadImgs([ann["image_id"]])[0]
            pic = cv2.imread(str(root / split / img["file_name"]))
            assert pic.shape == (img["height"], img["width"], 3)
            assert ann["iscrowd"] == 0 and ann["category_id"] == 1 and ann["area"] > 100
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            assert ann["num_keypoints"] == int(np.sum(kp[:, 2] > 0)) > 5
            x, y, w, h = ann["bbox"]
            vis = kp[kp[:, 2] > 0]
            assert np.all(vis[:, 0] >= x - 1) and np.all(vis[:, 0] <= x + w + 1)
            assert np.all(vis[:, 1] >= y - 1) and np.all(vis[:, 1] <= y + h + 1)
            assert 0.15 * img["width"] < max(w, h) < img["width"]  # a person-sized box
            # the 3-D pose and camera reproduce the 2-D keypoints
            cam = camera_from_json(img["camera"])
            j3 = np.asarray(ann["joints_3d"])
            px = cam.project(j3)
            for c, hj in enumerate(COCO_H36M_INDEX):
                if hj >= 0 and kp[c, 2] > 0:
                    np.testing.assert_allclose(kp[c, :2], px[hj], atol=0.5)
            np.testing.assert_allclose(np.asarray(ann["joints_2d"]), px, atol=0.01)
            face = cam.project(coco_keypoints_3d(j3)[:5])
            on = kp[:5, 2] > 0
            np.testing.assert_allclose(kp[:5][on, :2], face[on], atol=0.5)
            # the npz holds the same, in json order
            assert side["image_id"][k] == ann["image_id"]
            np.testing.assert_allclose(side["joints_3d"][k], j3, atol=1e-4)
            np.testing.assert_allclose(side["joints_2d"][k], px, atol=1e-2)
            np.testing.assert_array_equal(side["joints_vis"][k], ann["joints_vis"])
            np.testing.assert_allclose(side["intrinsics"][k, 2:4], cam.focal_length, rtol=1e-6)
            np.testing.assert_allclose(side["extrinsics"][k, 4:], cam.translation, atol=1e-5)
            world = cam.camera_to_world(j3)
            assert -0.1 < world[:, 2].min() < 0.8  # feet near the floor (or hopping), Z up


def test_writer_deterministic(tiny, tmp_path):
    root = tiny
    again = write_rendered_coco(tmp_path / "again", num_train=6, num_val=3, seed=7)
    other = write_rendered_coco(tmp_path / "other", num_train=6, num_val=3, seed=8)
    name = "annotations/person_keypoints_train.json"
    assert (again / name).read_bytes() == (root / name).read_bytes()
    assert (other / name).read_bytes() != (root / name).read_bytes()
    first = sorted((root / "val").glob("*.jpg"))[0]
    assert (again / "val" / first.name).read_bytes() == first.read_bytes()
    doc = json.loads((root / name).read_text())
    assert doc["info"]["settings"]["seed"] == 7


def test_liftpose_data_render_writes_a_coco_dataset(tmp_path):
    import json

    from liftpose.data.cli import main

    assert main(["render", "--root", str(tmp_path / "r"), "--train", "2", "--val", "1"]) == 0
    doc = json.loads((tmp_path / "r" / "annotations" / "person_keypoints_val.json").read_text())
    assert len(doc["images"]) == 1 and len(doc["annotations"]) == 1
    assert len(list((tmp_path / "r" / "train").glob("*.jpg"))) == 2


def test_a_file_at_the_root_is_refused_untouched(tmp_path, capsys):
    """liftpose-data render and the embedded build never replace a file that stands where
    their folder goes."""
    from liftpose.data.cli import main
    from liftpose.data.embedded import ensure_embedded
    from liftpose.errors import DataError

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["render", "--root", str(notes), "--train", "1", "--val", "1"]) == 2
    assert "notes.txt: folder: is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(DataError, match="is a file, not a folder"):
        ensure_embedded(notes)
    assert notes.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

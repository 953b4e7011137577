"""Top-down COCO keypoints: geometry, heatmaps, the dataset, COCO evaluation, the module."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from liftpose.data.transforms2d import (
    COCO_FLIP_PERMUTATION,
    affine_matrix,
    box_to_centre_scale,
    decode_heatmaps,
    flip_heatmaps,
    flip_matrix,
    flip_points,
    flip_test_average,
    gaussian_heatmaps,
    heatmap_to_image,
    transform_points,
    warp_image,
)
from liftpose.errors import DataError

from .conftest import SHARED

COCO_MINI = SHARED / "data" / "coco_mini"
VAL_ANN = COCO_MINI / "annotations" / "person_keypoints_val2017.json"

needs_coco = pytest.mark.skipif(
    not VAL_ANN.is_file(), reason=f"COCO sample not found at {COCO_MINI} (set LIFTPOSE_SHARED)"
)


def gt_persons(path: Path = VAL_ANN) -> tuple[list[dict], np.ndarray]:
    """Non-crowd persons with keypoints, and their keypoints ``(N, 17, 3)``."""
    anns = [
        a
        for a in json.loads(path.read_text())["annotations"]
        if not a["iscrowd"] and a["num_keypoints"] > 0
    ]
    return anns, np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)


# ------------------------------------------------------------------------------ geometry
def test_box_to_centre_scale_fixed_aspect_and_padding():
    centre, scale = box_to_centre_scale(np.array([[10.0, 20.0, 30.0, 100.0], [0, 0, 90, 40]]))
    np.testing.assert_allclose(centre, [[25, 70], [45, 20]])
    np.testing.assert_allclose(scale[:, 0] / scale[:, 1], 0.75, rtol=1e-6)
    np.testing.assert_allclose(scale, [[75 * 1.25, 100 * 1.25], [90 * 1.25, 120 * 1.25]])


def test_warp_and_inverse_round_trip():
    rng = np.random.default_rng(0)
    n = 32
    centre = rng.uniform(50, 500, (n, 2))
    scale = rng.uniform(40, 400, (n, 1)) * [0.75, 1.0]
    rot = rng.uniform(-90, 90, n)
    pts = rng.uniform(0, 640, (n, 17, 2))
    fwd = affine_matrix(centre, scale, rot, (192, 256))
    inv = affine_matrix(centre, scale, rot, (192, 256), inverse=True)
    back = transform_points(transform_points(pts, fwd.astype(np.float64)), inv.astype(np.float64))
    assert np.abs(back - pts).max() < 1e-3
    # the torch version agrees, and the centre lands at the crop centre
    t = affine_matrix(torch.tensor(centre), torch.tensor(scale), torch.tensor(rot), (192, 256))
    np.testing.assert_allclose(t.numpy(), fwd, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        transform_points(centre[:, None], fwd)[:, 0], [[96, 128]] * n, atol=1e-3
    )


def test_warp_image_moves_a_dot_where_transform_points_says():
    image = np.zeros((300, 400), dtype=np.float32)
    dot = np.array([250.0, 120.0])
    image[120, 250] = 1.0
    import cv2

    image = cv2.GaussianBlur(image, (0, 0), 3.0)
    m = affine_matrix(np.array([200.0, 150.0]), np.array([180.0, 240.0]), 30.0, (96, 128))
    crop = warp_image(image, m, (96, 128))
    assert crop.shape == (128, 96)
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    expected = transform_points(dot[None], m)[0]
    assert np.abs(np.array([x, y]) - expected).max() <= 1.0


def test_flip_twice_is_identity():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 192, (4, 17, 3))
    np.testing.assert_allclose(
        flip_points(flip_points(pts, 192, COCO_FLIP_PERMUTATION), 192, COCO_FLIP_PERMUTATION), pts
    )
    hm = torch.rand(2, 17, 8, 6)
    assert torch.equal(
        flip_heatmaps(flip_heatmaps(hm, COCO_FLIP_PERMUTATION), COCO_FLIP_PERMUTATION), hm
    )
    # flipping in the affine map equals flipping the crop's points
    m = affine_matrix(np.array([100.0, 80.0]), np.array([60.0, 80.0]), 10.0, (192, 256))
    direct = transform_points(pts[0, :, :2], flip_matrix(m, 192))
    np.testing.assert_allclose(
        direct, flip_points(transform_points(pts[0, :, :2], m), 192, list(range(17))), atol=1e-3
    )


def test_flip_test_average_of_a_mirror_symmetric_net_is_shifted_by_one_pixel():
    hm = torch.zeros(1, 17, 8, 6)
    hm[:, :, 4, 2] = 1.0
    out_for_mirror = flip_heatmaps(hm, COCO_FLIP_PERMUTATION)  # a perfectly equivariant net
    avg = flip_test_average(hm, out_for_mirror, COCO_FLIP_PERMUTATION)
    assert avg[0, 0, 4, 2] == 0.5 and avg[0, 0, 4, 3] == 0.5


# ------------------------------------------------------------------------------ heatmaps
def test_heatmap_encode_decode_round_trip_quarter_pixel():
    rng = np.random.default_rng(2)
    w, h = 48, 64
    pts = np.stack([rng.uniform(1, w - 2, (8, 17)), rng.uniform(1, h - 2, (8, 17))], -1)
    hm, weight = gaussian_heatmaps(pts, np.full((8, 17), 2), (w, h), sigma=2.0)
    assert hm.shape == (8, 17, h, w) and weight.all()
    coords, maxvals = decode_heatmaps(torch.from_numpy(hm))
    assert coords.shape == (8, 17, 2) and maxvals.shape == (8, 17)
    assert np.abs(coords.numpy() - pts).max() <= 0.25 + 1e-5
    assert (maxvals > 0.8).all()


def test_heatmap_weights_zero_for_invisible_and_outside():
    pts = np.array([[10.0, 10.0], [10.0, 10.0], [-20.0, 5.0], [47.0, 63.0]])
    hm, weight = gaussian_heatmaps(pts, np.array([2, 0, 2, 1]), (48, 64))
    np.testing.assert_array_equal(weight, [1, 0, 0, 1])
    assert hm[1].max() == 0 and hm[2].max() == 0 and hm[0].max() == pytest.approx(1.0)


def test_heatmap_to_image_inverts_the_crop():
    centre, scale = torch.tensor([[300.0, 200.0]]), torch.tensor([[150.0, 200.0]])
    m = affine_matrix(centre.numpy(), scale.numpy(), 0.0, (48, 64))
    pts = torch.tensor([[[320.0, 180.0], [290.0, 250.0]]])
    hm_pts = torch.from_numpy(transform_points(pts.numpy(), m))
    torch.testing.assert_close(heatmap_to_image(hm_pts, centre, scale, (48, 64)), pts)


# ------------------------------------------------------------------------------ evaluation
@needs_coco
def test_ground_truth_keypoints_score_ap_one():
    from liftpose.metrics.coco import CocoKeypointAP

    anns, kps = gt_persons()
    kps[..., 2] = kps[..., 2] > 0
    metric = CocoKeypointAP(VAL_ANN)
    metric.update(
        torch.tensor([a["image_id"] for a in anns]),
        torch.from_numpy(kps),
        torch.ones(len(anns)),
        torch.tensor([float(a["area"]) for a in anns]),
    )
    res = metric.compute()
    assert float(res["AP"]) == pytest.approx(100.0)  # percent
    assert float(res["AR"]) == pytest.approx(100.0)


@needs_coco
def test_evaluation_equals_pycocotools_on_a_perturbed_file(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from liftpose.metrics.coco import evaluate_keypoints

    anns, kps = gt_persons()
    rng = np.random.default_rng(3)
    scale = np.sqrt([a["area"] for a in anns])[:, None, None]
    kps[..., :2] += rng.normal(0, 1, kps[..., :2].shape) * 0.05 * scale
    kps[..., 2] = rng.uniform(0.1, 1.0, kps.shape[:2])
    results = [
        {
            "image_id": a["image_id"],
            "category_id": 1,
            "keypoints": k.reshape(-1).round(2).tolist(),
            "score": float(rng.uniform(0.3, 1.0)),
        }
        for a, k in zip(anns, kps)
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    ours = evaluate_keypoints(VAL_ANN, path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(VAL_ANN))
        ev = COCOeval(gt, gt.loadRes(str(path)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP50", "AP75", "APM", "APL", "AR"]
    assert [ours[k] for k in names] == pytest.approx(list(ev.stats[:6]), abs=1e-12)
    assert 0.1 < ours["AP"] < 1.0
    # in-memory results give the same numbers and write the same file
    again = evaluate_keypoints(VAL_ANN, results, results_file=tmp_path / "out" / "r.json")
    assert again == ours
    assert json.loads((tmp_path / "out" / "r.json").read_text()) == results


def test_oks_nms_drops_near_duplicates():
    from liftpose.metrics.coco import keypoint_results, oks_matrix

    rng = np.random.default_rng(4)
    base = np.concatenate([rng.uniform(0, 100, (1, 17, 2)), np.ones((1, 17, 1))], -1)
    other = base.copy()
    other[..., :2] += 200
    kps = np.concatenate([base, base + [0.5, 0.5, -0.5], other])  # second: a duplicate
    areas = np.full(3, 100.0**2)
    oks = oks_matrix(kps, kps, areas, areas)
    np.testing.assert_allclose(np.diag(oks), 1.0)
    res = keypoint_results([7, 7, 7], kps, [1.0, 0.9, 0.8], areas)
    assert len(res) == 2 and res[0]["score"] == pytest.approx(1.0)
    assert res[1]["score"] == pytest.approx(0.8)


# ------------------------------------------------------------------------------ dataset
@needs_coco
def test_dataset_sample_shapes_and_target_weights():
    from liftpose.data.coco import CocoKeypoints

    ds = CocoKeypoints(COCO_MINI, "val2017")
    anns, kps = gt_persons()
    assert len(ds) == len(anns)
    for i in range(0, len(ds), 17):
        s = ds[i]
        assert s["image"].shape == (3, 256, 192) and s["image"].dtype == torch.float32
        assert s["heatmaps"].shape == (17, 64, 48) and s["target_weight"].shape == (17,)
        invisible = s["joints"][:, 2] == 0
        assert invisible.any() or s["target_weight"].sum() > 0
        assert (s["target_weight"][invisible] == 0).all()
        assert (s["heatmaps"][invisible].amax(dim=(-1, -2)) == 0).all()
        assert s["image_id"].dtype == torch.int64 and s["scale"].shape == (2,)
        # labelled joints of an unaugmented crop come back to their image position
        vis = ~invisible
        m = affine_matrix(s["centre"].numpy(), s["scale"].numpy(), 0.0, (192, 256), inverse=True)
        back = transform_points(s["joints"][vis, :2].numpy(), m)
        np.testing.assert_allclose(back, ds.records.joints[i][vis.numpy(), :2], atol=1e-2)
    torch.manual_seed(0)
    train = CocoKeypoints(COCO_MINI, "train2017", train=True, image_size=(128, 96))
    s = train[3]
    assert s["image"].shape == (3, 128, 96) and s["heatmaps"].shape == (17, 32, 24)
    assert (s["target_weight"][s["joints"][:, 2] == 0] == 0).all()


@needs_coco
def test_dataset_from_detections(tmp_path):
    from liftpose.data.coco import CocoKeypoints

    anns, _ = gt_persons()
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.5} for a in anns
    ] + [{"image_id": anns[0]["image_id"], "category_id": 3, "bbox": [0, 0, 9, 9], "score": 1}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    ds = CocoKeypoints(COCO_MINI, "val2017", use_gt_boxes=False, det_file=det_file)
    assert len(ds) == len(anns)
    assert float(ds[0]["score"]) == 0.5
    del dets[0]["score"]
    det_file.write_text(json.dumps(dets))
    with pytest.raises(DataError, match=r"dets\.json: \[0\]\.score: missing"):
        CocoKeypoints(COCO_MINI, "val2017", use_gt_boxes=False, det_file=det_file)


def test_missing_annotations_file_names_it(tmp_path):
    from liftpose.data.coco import CocoDataModule, CocoKeypoints

    missing = tmp_path / "annotations" / "person_keypoints_val2017.json"
    with pytest.raises(DataError, match="person_keypoints_val2017.json"):
        CocoKeypoints(tmp_path, "val2017")
    with pytest.raises(DataError, match="person_keypoints_train2017.json"):
        CocoDataModule(str(tmp_path)).prepare_data()
    missing.parent.mkdir(parents=True)
    missing.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DataError, match=r"<top level>\.annotations: missing field"):
        CocoKeypoints(tmp_path, "val2017")
    missing.write_text("{not json")
    with pytest.raises(DataError, match="malformed JSON"):
        CocoKeypoints(tmp_path, "val2017")


@needs_coco
def test_unreadable_image_names_the_file(tmp_path):
    from liftpose.data.coco import CocoKeypoints

    (tmp_path / "annotations").mkdir()
    shutil.copy(VAL_ANN, tmp_path / "annotations" / VAL_ANN.name)
    (tmp_path / "val2017").mkdir()
    ds = CocoKeypoints(tmp_path, "val2017")
    name = ds.records.file[0].name
    (tmp_path / "val2017" / name).write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=name):
        ds[0]


# ------------------------------------------------------------------------------ the module
class TinyHeatmapNet(nn.Module):
    """``(B, 3, H, W) -> (B, 17, H/4, W/4)``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 17, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_joints_mse_loss_convention():
    from liftpose.modules.pose2d import joints_mse_loss

    pred, target = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    per_joint = [
        torch.nn.functional.mse_loss(
            pred[:, k] * w[:, k, None, None], target[:, k] * w[:, k, None, None]
        )
        for k in range(3)
    ]
    torch.testing.assert_close(
        joints_mse_loss(pred, target, w), 0.5 * torch.stack(per_joint).mean()
    )


@needs_coco
def test_heatmap_module_fit_and_test(tmp_path):
    import lightning as L

    from liftpose.data.coco import CocoDataModule
    from liftpose.modules.pose2d import HeatmapModule

    L.seed_everything(0)
    dm = CocoDataModule(
        str(COCO_MINI), image_size=[128, 96], heatmap_size=None, batch_size=8, test_batch_size=32
    )
    module = HeatmapModule(TinyHeatmapNet(), results_file=str(tmp_path / "results.json"))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    assert "val/AP" in trainer.callback_metrics and "train/loss" in trainer.callback_metrics
    trainer.test(module, datamodule=dm, verbose=False)
    metrics = trainer.callback_metrics
    for k in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
        assert f"test/{k}" in metrics and np.isfinite(float(metrics[f"test/{k}"]))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results and {"image_id", "category_id", "keypoints", "score"} <= set(results[0])


@needs_coco
def test_decoded_targets_score_near_perfect_ap():
    """The heatmap targets of the unaugmented crops, decoded and mapped back to the image, are
    the ground truth up to the heatmap grid (checks the crop / heatmap / image conventions)."""
    from torch.utils.data import DataLoader

    from liftpose.data.coco import CocoKeypoints
    from liftpose.metrics.coco import CocoKeypointAP

    ds = CocoKeypoints(COCO_MINI, "val2017", image_size=(128, 96))
    metric = CocoKeypointAP(ds.ann_file)
    for b in DataLoader(ds, batch_size=64):
        coords, maxvals = decode_heatmaps(b["heatmaps"])
        xy = heatmap_to_image(coords, b["centre"], b["scale"], (24, 32))
        keypoints = torch.cat([xy, maxvals[..., None]], dim=-1)
        metric.update(b["image_id"], keypoints, b["score"], b["area"])
    assert float(metric.compute()["AP"]) > 0.9


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_undefined_coco_stats_are_nan_not_minus_100(monkeypatch):
    """COCOeval's -1 (no person in an area range) must not reach a table as -100 %."""
    import liftpose.metrics.coco as coco_metrics

    stats = dict.fromkeys(coco_metrics.COCO_KEYPOINT_STATS, 0.5)
    stats["APL"] = stats["ARL"] = -1.0
    monkeypatch.setattr(coco_metrics, "evaluate_keypoints", lambda *a, **k: dict(stats))
    monkeypatch.setattr(coco_metrics.CocoKeypointAP, "gt", None)
    res = coco_metrics.CocoKeypointAP("unused.json").compute()
    assert float(res["AP"]) == pytest.approx(50.0)
    assert torch.isnan(res["APL"]) and torch.isnan(res["ARL"])

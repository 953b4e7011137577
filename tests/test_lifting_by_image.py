"""Lifting by Image: the blocks (cross-attention, eq. 2, AFSM), the model, background attention,
the stages of the training module, and the crop caches (rendered and from videos)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from liftpose.metrics.attention import (
    background_attention,
    keypoint_disc_mask,
    mask_background_attention,
    token_centres,
)
from liftpose.models.blocks import (
    AdaptiveFeatureSelection,
    CrossAttention,
    CrossTransformerLayer,
    PoseGuidedAttention,
    PoseGuidedTransformerLayer,
    retained_count,
)
from liftpose.models.lifting_by_image import LiftingByImage

from .conftest import OFFICIAL

#: a small HRNet (one module per stage, one block per branch, width 8)
TINY_ENCODER = {"width": 8, "stage_modules": [1, 1, 1], "stage_blocks": 1}


def tiny_model(**kw) -> LiftingByImage:
    args = dict(image_size=(64, 32), encoder=TINY_ENCODER, embed_dim=16, num_heads=2)
    return LiftingByImage(**{**args, **kw})


# --------------------------------------------------------------------------- blocks
def test_cross_attention_fused_and_explicit_paths_agree():
    torch.manual_seed(0)
    attn = CrossAttention(16, num_heads=4, qkv_bias=True).eval()
    x, ctx = torch.randn(3, 5, 16), torch.randn(3, 11, 16)
    fused, none = attn(x, ctx)
    explicit, weights = attn(x, ctx, need_weights=True)
    assert none is None and weights.shape == (3, 4, 5, 11)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 5))
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the shared bf16 CPU path of attend
        half, _ = attn(x, ctx)
    torch.testing.assert_close(half.float(), explicit, rtol=0.05, atol=0.05)


def _identity_linear(layer: torch.nn.Linear) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.eye(layer.weight.shape[0]))
        if layer.bias is not None:
            layer.bias.zero_()


def test_pose_guided_attention_is_eq2_on_a_hand_example():
    """One head, identity projections: A = softmax(T_J T_I^T / sqrt(d)), dJ = A T_I,
    dI = A^T T_J."""
    pga = PoseGuidedAttention(2, num_heads=1)
    for layer in (pga.q, pga.k, pga.v_image, pga.v_joints, pga.proj_joints, pga.proj_image):
        _identity_linear(layer)
    tj = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # N = 2 keypoints
    ti = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, -1.0]]])  # M = 3 image tokens
    with torch.no_grad():
        d_j, d_i, a = pga(tj, ti)
    # by hand: logits = T_J T_I^T / sqrt(2)
    logits = np.array([[1.0, 2.0, 0.0], [2.0, 0.0, -2.0]]) / math.sqrt(2.0)
    expect_a = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(a[0, 0].numpy(), expect_a, rtol=1e-6)
    np.testing.assert_allclose(d_j[0].numpy(), expect_a @ ti[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(d_i[0].numpy(), expect_a.T @ tj[0].numpy(), rtol=1e-5)
    # normalised before the transposition: an image token gets as much as it is attended to
    col = expect_a.sum(0)
    assert not np.allclose(col, 1.0)
    np.testing.assert_allclose(a[0, 0].sum(0).numpy(), col, rtol=1e-6)


@pytest.mark.parametrize("normalization", ["after", "double", "independent"])
def test_other_normalisations_give_each_image_token_unit_weight(normalization):
    torch.manual_seed(1)
    pga = PoseGuidedAttention(8, num_heads=2, normalization=normalization)
    tj, ti = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    q = pga.q(tj).reshape(2, 4, 2, 4).transpose(1, 2)
    k = pga.k(ti).reshape(2, 6, 2, 4).transpose(1, 2)
    logits = q @ k.transpose(-2, -1) * pga.scale
    attn = logits.softmax(-1)
    with torch.no_grad():
        w = pga.image_weights(attn, logits, tj, ti)
    assert w.shape == (2, 2, 6, 4)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 6))


def test_layers_shapes_and_which_tokens_they_update():
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 17, 16), torch.randn(2, 40, 16)
    tl = CrossTransformerLayer(16, num_heads=4)
    y, c, a = tl(x, ctx, need_weights=True)
    assert y.shape == x.shape and c is ctx and a.shape == (2, 4, 17, 40)
    assert tl(x, ctx)[2] is None
    pg = PoseGuidedTransformerLayer(16, num_heads=4, image_mlp=True)
    y, c, a = pg(x, ctx)
    assert y.shape == x.shape and c.shape == ctx.shape and a.shape == (2, 4, 17, 40)
    assert not torch.allclose(c, ctx)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 60),
    ratio=st.floats(0.005, 1.0),
    seed=st.integers(0, 10_000),
)
def test_afsm_keeps_exactly_the_top_r_tokens(m, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    attn = torch.rand(2, 3, 5, m, generator=g).softmax(-1)
    tokens = torch.randn(2, m, 4, generator=g)
    kept, index = AdaptiveFeatureSelection(ratio)(tokens, attn)
    k = retained_count(m, ratio)
    assert k == max(1, math.ceil(round(ratio * m, 9))) and kept.shape == (2, k, 4)
    score = attn.sum(dim=(1, 2))
    for b in range(2):
        chosen = set(index[b].tolist())
        assert len(chosen) == k and index[b].tolist() == sorted(chosen)
        threshold = score[b].sort(descending=True).values[k - 1]
        assert all(score[b, i] >= threshold for i in chosen)
        assert all(score[b, i] <= threshold for i in set(range(m)) - chosen)
        torch.testing.assert_close(kept[b], tokens[b, index[b]])


def test_afsm_rejects_bad_ratios_and_rounds_exactly():
    assert retained_count(10, 0.3) == 3 and retained_count(768, 0.3) == 231
    assert retained_count(768, 0.01) == 8 and retained_count(768, 1.0) == 768
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="retention"):
            AdaptiveFeatureSelection(bad)


# --------------------------------------------------------------------------- the model
def test_shapes_through_every_layer():
    torch.manual_seed(0)
    model = tiny_model(retention=0.25).eval()
    image, kp = torch.randn(2, 3, 64, 32), torch.rand(2, 17, 2)
    tokens, grid = model.image_tokens(image)
    assert grid == (16, 8) and tokens.shape == (2, 128, 16)
    tj = model.keypoint_tokens(kp)
    assert tj.shape == (2, 17, 16)
    ti = tokens
    for layer, kind in zip(model.stage1, ("tl", "pgtl", "tl")):
        new_j, new_i, attn = layer(tj, ti, need_weights=True)
        assert new_j.shape == (2, 17, 16) and new_i.shape == (2, 128, 16)
        assert attn.shape == (2, 2, 17, 128)
        assert (new_i is ti) == (kind == "tl")
        tj, ti = new_j, new_i
    out = model(image, kp, need_attention=True)
    assert out.coarse.shape == out.fine.shape == (2, 17, 3)
    assert out.attention.shape == (2, 2, 17, 128) and out.kept.shape == (2, 32)
    assert model(image, kp, stages=1).fine is None
    with pytest.raises(ValueError, match="keypoints must be"):
        model(image, kp[:, :16])


def test_stage_orders_and_bad_layer_names():
    m = tiny_model(stage1_layers=["pgtl", "pgtl", "tl"])
    assert [type(x).__name__ for x in m.stage1] == [
        "PoseGuidedTransformerLayer", "PoseGuidedTransformerLayer", "CrossTransformerLayer"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="stage1_layers"):
        tiny_model(stage1_layers=["tl", "mlp"])


def test_retention_one_keeps_every_token_and_matches_no_selection():
    torch.manual_seed(0)
    model = tiny_model(retention=1.0, stage2_init="random").eval()
    image, kp = torch.randn(1, 3, 64, 32), torch.rand(1, 17, 2)
    out = model(image, kp)
    assert out.kept.shape == (1, 128)
    model.selection.ratio = 0.999  # 128 of 128 kept through the gather: the same pose
    torch.testing.assert_close(model(image, kp).fine, out.fine)


def test_stage2_starts_as_the_identity_on_the_coarse_pose():
    torch.manual_seed(0)
    model = tiny_model().eval()
    image, kp = torch.randn(2, 3, 64, 32), torch.rand(2, 17, 2)
    assert not torch.allclose(model(image, kp).fine, model(image, kp).coarse)
    model.start_stage2()
    out = model(image, kp)
    torch.testing.assert_close(out.fine, out.coarse)
    fresh = tiny_model(stage2_init="random").eval()
    fresh.start_stage2()
    out = fresh(image, kp)
    assert not torch.allclose(out.fine, out.coarse)


def test_frozen_stage1_keeps_eval_mode_and_has_no_gradients():
    model = tiny_model()
    model.freeze_stage1()
    model.train()
    assert not model.image_tokens.training and not model.stage1.training
    assert model.stage2.training
    out = model(torch.randn(2, 3, 64, 32), torch.rand(2, 17, 2))
    assert not out.coarse.requires_grad and out.fine.requires_grad


def test_encoder_loads_official_hrnet_weights(tmp_path):
    """The official HRNet fixture's weights give its heatmaps through our encoder's features."""
    from .conftest import official_fixture

    config, sd, io = official_fixture(OFFICIAL / "hrnet")
    from liftpose.models.official import get_official

    args = get_official("hrnet").model_args(config["constructor_args"])
    args.pop("num_joints")
    model = LiftingByImage(encoder=args, embed_dim=16, num_heads=2)
    path = tmp_path / "w.pth"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    model.load_encoder(path)
    final = torch.nn.Conv2d(args["width"], io["output"].shape[1], 1)
    final.load_state_dict({"weight": torch.from_numpy(sd["final_layer.weight"]),
                           "bias": torch.from_numpy(sd["final_layer.bias"])})  # fmt: skip
    enc = model.image_tokens.encoder.eval()
    with torch.no_grad():
        out = final(enc.forward_features(torch.from_numpy(io["input"])))
    ref = torch.from_numpy(io["output"])
    scale = ref.abs().max().item()  # the fixture is ill-conditioned in float32 (test_hrnet.py)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * scale)


def test_encoder_loads_a_liftpose_heatmap_checkpoint(tmp_path):
    from liftpose.errors import DataError
    from liftpose.models.backbones import HRNet
    from liftpose.utils.checkpoint import checkpoint_hash

    torch.manual_seed(3)
    detector = HRNet(**TINY_ENCODER, num_joints=17)
    sd = {f"model.{k}": v for k, v in detector.state_dict().items()}
    config = {
        "model": {"_target_": "liftpose.models.backbones.HRNet"},
        "module": {"_target_": "liftpose.modules.pose2d.HeatmapModule"},
        "data": {},
    }
    path = tmp_path / "last.ckpt"
    ckpt = {
        "liftpose_config": config,
        "state_dict": sd,
        "liftpose_hash": checkpoint_hash(sd, config),
    }
    torch.save(ckpt, path)
    model = tiny_model()
    model.load_encoder(path)
    for k, v in model.image_tokens.encoder.state_dict().items():
        torch.testing.assert_close(v, detector.state_dict()[k])
    # a damaged checkpoint (weights that no longer match their saved hash) is refused
    first = next(iter(sd))
    torch.save({**ckpt, "state_dict": {**sd, first: sd[first] + 1}}, path)
    with pytest.raises(DataError, match="hash"):
        tiny_model().load_encoder(path)


def test_encoder_weights_of_another_architecture_are_refused(tmp_path):
    from liftpose.errors import DataError

    other = LiftingByImage(encoder={**TINY_ENCODER, "width": 16}, embed_dim=16, num_heads=2)
    path = tmp_path / "w.pth"
    torch.save(other.image_tokens.encoder.state_dict(), path)
    with pytest.raises(DataError, match="model.encoder"):
        tiny_model().load_encoder(path)
    with pytest.raises(DataError, match="not found"):
        tiny_model().load_encoder(tmp_path / "missing.pth")


# --------------------------------------------------------------------------- background attention
def test_token_centres_are_cell_centres():
    c = token_centres((2, 3), (8, 12))
    assert c.tolist()[:4] == [[1.5, 1.5], [5.5, 1.5], [9.5, 1.5], [1.5, 5.5]]


def test_background_attention_on_a_hand_made_map():
    # 4x4 tokens on a 16x16 crop (cells of 4 px); one keypoint at the centre of token 0
    attn = torch.zeros(1, 2, 1, 16)
    attn[0, 0, 0, 0], attn[0, 0, 0, 15] = 0.25, 0.75  # head 0: a quarter on the keypoint
    attn[0, 1, 0, 1], attn[0, 1, 0, 10] = 0.5, 0.5  # head 1: token 1 is 4 px away
    kp = torch.tensor([[[1.5, 1.5]]])
    inside = keypoint_disc_mask(kp, (4, 4), (16, 16), 4.0)[0]
    assert inside.nonzero().squeeze(1).tolist() == [0, 1, 4]
    bg = background_attention(attn, kp, (4, 4), (16, 16), radius=4.0, reference_height=None)
    assert bg.item() == pytest.approx((0.75 + 0.5) / 2)
    # the paper's 30 px at 256 px is 1.875 px at 16 px: only token 0 is inside
    bg = background_attention(attn, kp, (4, 4), (16, 16), radius=30.0, reference_height=256)
    assert bg.item() == pytest.approx((0.75 + 1.0) / 2)
    # the body mask: the left half of the crop (tokens of columns 0 and 1)
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, :, :8] = True
    assert mask_background_attention(attn, mask, (4, 4)).item() == pytest.approx((0.75 + 0.5) / 2)
    mask[:, :, :6] = False  # token 1 now half covered
    expect = (0.25 + 0.75 + 0.5 * 0.5 + 0.5) / 2
    assert mask_background_attention(attn, mask, (4, 4)).item() == pytest.approx(expect)


# --------------------------------------------------------------------------- flips
def test_training_flip_mirrors_image_2d_3d_together_and_twice_is_identity():
    from liftpose.data.image_lifting import flip_samples
    from liftpose.data.skeleton import H36M17

    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(3, 3, 8, 6, generator=g),
        "mask": torch.rand(3, 8, 6, generator=g) > 0.5,
        "pose_2d": torch.rand(3, 17, 2, generator=g) * 5,
        "pose_2d_image": torch.rand(3, 17, 2, generator=g),
        "pose_3d": torch.randn(3, 17, 3, generator=g),
        "affine": torch.randn(3, 2, 3, generator=g),
        "flipped": torch.zeros(3, dtype=torch.bool),
    }
    perm = torch.as_tensor(H36M17.flip_permutation)
    which = torch.tensor([True, False, True])
    once = flip_samples(batch, which, perm, width=6)
    assert torch.equal(once["image"][0], batch["image"][0].flip(-1))
    assert torch.equal(once["image"][1], batch["image"][1])
    assert torch.allclose(once["pose_2d"][0, 1, 0], 5 - batch["pose_2d"][0, 4, 0])  # RHip <- LHip
    assert torch.allclose(
        once["pose_3d"][2, 11], batch["pose_3d"][2, 14] * torch.tensor([-1, 1, 1])
    )
    # the flipped affine maps image points to the mirrored crop points
    p = torch.tensor([2.0, 3.0, 1.0])
    u = batch["affine"][0] @ p
    assert torch.allclose(once["affine"][0] @ p, torch.stack([5 - u[0], u[1]]), atol=1e-5)
    twice = flip_samples(once, which, perm, width=6)
    for k, v in batch.items():
        assert torch.allclose(twice[k].float(), v.float(), atol=1e-6), k


# --------------------------------------------------------------------------- optimiser
def test_step_decay_restarts_at_each_stage():
    from liftpose.optim import StepDecay

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = StepDecay(opt, step_size=4, gamma=0.5, restarts=[6])
    assert [sched.factor(e) for e in range(10)] == [1, 1, 1, 1, 0.5, 0.5, 1, 1, 1, 1]


def _tiny_video_layout(root: Path, frames: int = 20, video_frames: int | None = None) -> dict:
    """A Human3.6M-layout folder: data_3d_vid.npz, data_2d_vid_gt.npz, cameras_vid.json and
    <subject>/Videos/<action>.<camera>.mp4 (one camera, 160x120), each frame a grey level
    ``8 f`` with the projected joints as white dots. Returns the frames written, per video."""
    import cv2

    from liftpose.data.camera import Camera, look_at
    from liftpose.data.h36m import write_dataset

    from .conftest import synthetic_motion

    pos = np.array([6.0, 0.5, 1.0])
    cam = Camera(
        id="cam0", res_w=160, res_h=120, center=np.array([80.0, 60.0]),
        focal_length=np.array([110.0, 110.0]), orientation=look_at(pos, np.array([0, 0.1, 0.95])),
        translation=pos,
    )  # fmt: skip
    motions = {
        "S1": {"Walking 1": synthetic_motion(frames, 1), "Photo 1": synthetic_motion(frames, 2)},
        "S9": {"Walking 1": synthetic_motion(frames, 3)},
    }
    pos2d = {
        s: {a: [cam.project(cam.world_to_camera(w.astype(np.float64)))] for a, w in acts.items()}
        for s, acts in motions.items()
    }
    write_dataset(root, "vid", motions, {"gt": pos2d}, {s: [cam] for s in motions})
    written = {}
    for s, acts in pos2d.items():
        for a, (kp,) in acts.items():
            name = a.replace("Photo", "TakingPhoto")  # the video file name of Photo
            path = root / s / "Videos" / f"{name}.cam0.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50, (160, 120))
            imgs = []
            for f in range(video_frames or frames):
                img = np.full((120, 160, 3), 8 * f, np.uint8)
                for u, v in kp[min(f, frames - 1)]:
                    cv2.circle(img, (int(round(u)), int(round(v))), 2, (255, 255, 255), -1)
                out.write(img)
                imgs.append(img)
            out.release()
            written[(s, a)] = imgs
    return written


def test_crops_from_a_tiny_video_in_the_h36m_layout(tmp_path, capsys):
    import cv2

    from liftpose.data.cli import main as data_main
    from liftpose.data.image_lifting import CropArrays, ImageLiftingDataModule

    written = _tiny_video_layout(tmp_path / "vid")
    cache = str(tmp_path / "cache")
    args = ["crops", "--root", str(tmp_path / "vid"), "--name", "vid", "--keypoints", "gt",
            "--train-subjects", "S1", "--test-subjects", "S9", "--size", "64", "32",
            "--train-every", "5", "--test-every", "5", "--cache-dir", cache]  # fmt: skip
    assert data_main(args) == 0
    assert "8 training and 4 test crops" in capsys.readouterr().out
    dm = ImageLiftingDataModule(
        str(tmp_path / "vid"), name="vid", keypoints="gt", train_subjects=["S1"],
        test_subjects=["S9"], source="video", image_size=[64, 32], train_every=5, test_every=5,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert dm.cache_path.is_file()  # the datamodule finds the cache the command wrote
    from liftpose.utils.io import has_marker

    assert has_marker(dm.cache_path)  # liftpose's own file
    arrays = CropArrays.load(dm.cache_path, "train")
    assert arrays.seq_names == ["S1/Photo 1/cam0", "S1/Walking 1/cam0"]
    assert arrays.frame.tolist() == [0, 5, 10, 15] * 2 and not arrays.has_mask
    crops, _ = dm.dataset("train").read(np.arange(8))
    for row in range(8):
        seq = arrays.seq_names[arrays.seq[row]].split("/")
        frame = cv2.cvtColor(written[(seq[0], seq[1])][arrays.frame[row]], cv2.COLOR_BGR2RGB)
        expected = cv2.warpAffine(frame, arrays.affine[row].astype(np.float64), (32, 64))
        assert np.abs(crops[row].astype(int) - expected).mean() < 6, row
    # the 2-D in crop pixels is the gt projection mapped by the affine
    kp = np.load(tmp_path / "vid" / "data_2d_vid_gt.npz", allow_pickle=True)["positions_2d"].item()
    a = arrays.affine[4]
    src = kp["S1"]["Walking 1"][0][0]
    np.testing.assert_allclose(arrays.pose_2d[4], src @ a[:, :2].T + a[:, 2], atol=1e-3)
    # training: flips travel in the index (i + n is sample i mirrored) and the order is the
    # resumable one of the lifting data (a function of the seed and the epoch)
    from liftpose.data.image_lifting import flip_samples
    from liftpose.data.sampler import ResumableLoader

    train = dm.dataset("train", train=True)
    n, plain = len(train), dm.dataset("train")
    mixed = train.__getitems__([0, n + 1])
    ref = plain.__getitems__([0, 1])
    mirrored = flip_samples(ref, torch.tensor([False, True]), train.perm, 32)
    for key in ("image", "pose_2d", "pose_3d", "affine", "flipped"):
        torch.testing.assert_close(mixed[key], mirrored[key])
    torch.manual_seed(3)
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableLoader) and loader.sampler.flip
    first = [b["frame"].tolist() + b["flipped"].tolist() for b in loader]
    torch.manual_seed(3)
    assert [b["frame"].tolist() + b["flipped"].tolist() for b in dm.train_dataloader()] == first


def test_crop_errors_name_the_file_and_field_and_write_nothing(tmp_path, capsys):
    from liftpose.data.cli import main as data_main

    root = tmp_path / "vid"
    _tiny_video_layout(root, frames=20, video_frames=12)  # videos shorter than the 3-D
    cache = tmp_path / "cache"
    base = ["crops", "--root", str(root), "--name", "vid", "--keypoints", "gt",
            "--train-subjects", "S1", "--test-subjects", "S9", "--size", "64", "32",
            "--train-every", "5", "--cache-dir", str(cache)]  # fmt: skip
    assert data_main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "TakingPhoto 1.cam0.mp4: frame 12:" in err and "frame counts disagree" in err
    assert not cache.exists() or not list(cache.iterdir())


def test_missing_video_and_box_outside_the_image(tmp_path, capsys):
    import json

    from liftpose.data.cli import main as data_main

    root = tmp_path / "vid"
    _tiny_video_layout(root)
    cache = tmp_path / "cache"
    base = ["crops", "--root", str(root), "--name", "vid", "--keypoints", "gt",
            "--train-subjects", "S1", "--test-subjects", "S9", "--size", "64", "32",
            "--train-every", "5", "--cache-dir", str(cache)]  # fmt: skip
    (root / "S9" / "Videos" / "Walking 1.cam0.mp4").unlink()
    assert data_main(base) == 2
    err = capsys.readouterr().err
    assert "S9/Videos/Walking 1.cam0.mp4: file: video of S9 Walking 1 camera cam0 not found" in err
    cams = json.loads((root / "cameras_vid.json").read_text())
    cams["intrinsics"]["cam0"]["center"] = [900.0, 60.0]  # everyone projects far to the right
    (root / "cameras_vid.json").write_text(json.dumps(cams))
    assert data_main(base) == 2
    err = capsys.readouterr().err
    assert "positions_3d[S1][Photo 1]: frame 0: the person box" in err
    assert "outside the 160x120 image of camera cam0" in err
    assert not cache.exists() or not list(cache.iterdir())


def test_corrupt_cache_is_one_clear_error(tmp_path):
    from liftpose.data.image_lifting import CropArrays
    from liftpose.errors import DataError

    bad = tmp_path / "crops.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="corrupt crop cache"):
        CropArrays.load(bad, "train")


# --------------------------------------------------------------------------- the training module
def tiny_image_cfg(root: Path, out: Path, extra: list[str]):
    from omegaconf import open_dict

    from .test_configs import compose_cfg

    cfg = compose_cfg(
        "train",
        [
            "experiment=lifting_by_image_cpu",
            f"data.root={root}",
            "data.name=tiny",
            "data.embedded=false",
            "data.keypoints=gt",
            "data.train_subjects=[A,B]",
            "data.test_subjects=[C]",
            "data.image_size=[64,32]",
            "data.train_every=15",
            "data.test_every=30",
            f"data.cache_dir={out.parent / 'cache'}",
            "data.batch_size=8",
            "data.test_batch_size=16",
            "model.encoder.width=8",
            "model.encoder.stage_modules=[1,1,1]",
            "model.encoder.stage_blocks=1",
            "model.embed_dim=16",
            "model.num_heads=2",
            "trainer.max_epochs=1",
            "++trainer.limit_train_batches=3",
            "trainer.enable_progress_bar=false",
            "~callbacks.rich_progress_bar",
            "logger=none",
            *extra,
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


@pytest.mark.parametrize(
    "override,refused",
    [
        ("model.retention=0", "model.retention=0: Input should be greater than 0"),
        ("model.retention=1.5", "model.retention=1.5: Input should be less than or equal to 1"),
        ("data.train_every=0", "data.train_every=0: Input should be greater than or equal to 1"),
        ("model.stage1_layers=tl", "model.stage1_layers='tl': 'str' instances are not allowed"),
        ("+model.retension=0.3", "model.retension: not a parameter of"),
    ],
)
def test_config_check_refuses_bad_lifting_by_image_values(override, refused):
    from liftpose.errors import ConfigError
    from liftpose.utils.config_check import check_config

    from .test_configs import compose_cfg

    check_config(compose_cfg("train", ["experiment=lifting_by_image_cpu"]))
    with pytest.raises(ConfigError, match=refused):
        check_config(compose_cfg("train", ["experiment=lifting_by_image_cpu", override]))


def test_module_stages_freeze_what_they_do_not_train():
    from liftpose.losses import CompositeLoss
    from liftpose.modules import ImageLiftingModule

    def module(stage, **kw):
        return ImageLiftingModule(
            tiny_model(), CompositeLoss({"mse": {}}), torch.optim.Adam, stage=stage, **kw
        )

    def trainable(m):
        return {
            part: any(p.requires_grad for x in parts for p in x.parameters())
            for part, parts in (("s1", m.model.stage1_modules()), ("s2", m.model.stage2_modules()))
        }

    m = module("progressive", stage1_epochs=3)
    assert [m.stage_at(e) for e in range(5)] == [1, 1, 1, 2, 2]
    assert trainable(m) == {"s1": True, "s2": False}
    m.apply_stage(2)
    assert trainable(m) == {"s1": False, "s2": True} and m.model.stage1_frozen
    assert trainable(module("joint")) == {"s1": True, "s2": True}
    assert module("joint").stage_at(7) == "joint"
    from liftpose.errors import ConfigError

    with pytest.raises(ConfigError, match="init_ckpt"):
        module(2)
    with pytest.raises(ConfigError, match="module.stage"):
        module("3")


def test_symmetric_bones_at_evaluation():
    from liftpose.data.skeleton import H36M17
    from liftpose.losses import CompositeLoss
    from liftpose.modules import ImageLiftingModule
    from liftpose.modules.lifting import symmetrise_bones

    torch.manual_seed(0)
    batch = {"image": torch.randn(2, 3, 64, 32), "pose_2d": torch.rand(2, 17, 2) * 32}

    def predict(symmetric: bool) -> torch.Tensor:
        torch.manual_seed(1)
        m = ImageLiftingModule(
            tiny_model(), CompositeLoss({"mse": {"weight": 1.0}}), torch.optim.Adam,
            stage=1, symmetric_bones=symmetric, figures_dir=None,
            flip_permutation=list(H36M17.flip_permutation),
        )  # fmt: skip
        return m.eval().predict_batch(batch)[0]

    plain, sym = predict(False), predict(True)
    torch.testing.assert_close(sym, symmetrise_bones(plain, list(H36M17.flip_permutation)))
    assert not torch.allclose(sym, plain)


@pytest.mark.slow
def test_stage1_then_stage2_changes_no_stage1_weight(tiny_root, tmp_path):
    import json

    from omegaconf import open_dict

    from liftpose.eval import run_eval
    from liftpose.modules.image_lifting import STAGE1_PREFIXES
    from liftpose.train import run_train

    from .test_configs import compose_cfg

    run1, run2 = tmp_path / "s1", tmp_path / "s2"
    doc1 = run_train(tiny_image_cfg(tiny_root, run1, ["module.stage=1"]))
    ckpt1 = run1 / "checkpoints" / "last.ckpt"
    doc2 = run_train(
        tiny_image_cfg(tiny_root, run2, ["module.stage=2", f"module.init_ckpt={ckpt1}"])
    )
    sd1 = torch.load(ckpt1, weights_only=False)["state_dict"]
    sd2 = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    stage1 = [k for k in sd1 if k[len("model.") :].startswith(STAGE1_PREFIXES)]
    assert any("running_mean" in k for k in stage1)  # BatchNorm statistics are compared too
    for k in stage1:
        assert torch.equal(sd1[k], sd2[k]), k
    stage2 = [k for k in sd1 if k.startswith(("model.stage2.", "model.fine_head."))]
    assert stage2 and any(not torch.equal(sd1[k], sd2[k]) for k in stage2)
    for doc in (doc1, doc2):
        m = doc["metrics"]
        assert 0.0 <= m["test/bg_attention"] <= 100.0 and 0.0 <= m["test/bg_attention_mask"] <= 100
        assert np.isfinite(m["test/mpjpe"]) and np.isfinite(m["test/p_mpjpe"])
    figures = sorted((run2 / "attention").glob("test_*.png"))
    assert figures and json.loads((run2 / "metrics.json").read_text())["config"]["module"][
        "stage"
    ] in (2, "2")
    # an evaluation of the checkpoint writes its pictures into its own run folder and leaves
    # the training run's as they were
    before = {p.name: p.read_bytes() for p in figures}
    ev = tmp_path / "eval"
    cfg = compose_cfg("eval", [f"ckpt_path={run2 / 'checkpoints' / 'last.ckpt'}", "logger=none"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(ev)
    doc_eval = run_eval(cfg)
    assert doc_eval["metrics"]["test/mpjpe"] == pytest.approx(doc2["metrics"]["test/mpjpe"])
    assert sorted(p.name for p in (ev / "attention").glob("test_*.png")) == sorted(before)
    assert {p.name: p.read_bytes() for p in figures} == before

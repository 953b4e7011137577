"""Tests of the shared transformer blocks, PoseFormer and official-weight loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from liftpose.models import PoseFormer, from_official
from liftpose.models.blocks import SLOT_NAMES, Attention, Block, DropPath, make_slots
from liftpose.models.official import (
    OfficialWeightsError,
    available_official,
    convert_main,
    load_checkpoint,
)

from .conftest import SHARED, official_fixture


def _fixture_root() -> Path:
    return SHARED / "fixtures" / "official"


def _official_fixture(model: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    return official_fixture(_fixture_root() / model)


def _small_poseformer(**kwargs) -> PoseFormer:
    args = dict(num_frames=9, num_joints=17, embed_dim_ratio=8, depth=2, num_heads=4)
    args.update(kwargs)
    return PoseFormer(**args)


class AddConstant(nn.Module):
    """Slot test module: adds a fixed per-channel offset ``value * ramp`` to ``(B, N, C)``.

    The offset varies over channels because a channel-uniform shift is invisible to LayerNorm.
    """

    def __init__(self, dim: int, value: float = 0.5) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))
        self.register_buffer("ramp", torch.linspace(-1.0, 1.0, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value * self.ramp


# ---------------------------------------------------------------------------------------------
# official weights


def test_poseformer_reproduces_official_outputs() -> None:
    config, state_dict, io = _official_fixture("poseformer")
    model = from_official("poseformer", state_dict, config["constructor_args"])
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"]))
    torch.testing.assert_close(out, torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)


def test_poseformer_eps_matters_for_official_outputs() -> None:
    """Block/stage norms use eps=1e-6, the head norm PyTorch's default 1e-5."""
    config, state_dict, io = _official_fixture("poseformer")
    model = from_official("poseformer", state_dict, config["constructor_args"])
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert model.head_norm.eps == 1e-5
    assert all(m.eps == 1e-6 for m in norms if m is not model.head_norm)
    model.head_norm.eps = 1e-6
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"]))
    assert not torch.allclose(out, torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)


def test_from_official_accepts_tensors_and_names_bad_keys() -> None:
    ref = _small_poseformer()
    official = {
        k.replace("joint_embed", "Spatial_patch_to_embedding")
        .replace("spatial_pos_embed", "Spatial_pos_embed")
        .replace("temporal_pos_embed", "Temporal_pos_embed")
        .replace("spatial_blocks", "Spatial_blocks")
        .replace("temporal_blocks", "blocks")
        .replace("spatial_norm", "Spatial_norm")
        .replace("temporal_norm", "Temporal_norm")
        .replace("frame_pool", "weighted_mean")
        .replace("head_norm", "head.0")
        .replace("head.weight", "head.1.weight")
        .replace("head.bias", "head.1.bias"): v
        for k, v in ref.state_dict().items()
    }
    args = dict(num_frame=9, num_joints=17, embed_dim_ratio=8, depth=2, num_heads=4)
    model = from_official("poseformer", official, args)
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.eval()(x), rtol=0, atol=0)

    missing = dict(official)
    del missing["head.1.bias"]
    with pytest.raises(OfficialWeightsError, match=r"missing keys: \['head.bias'\]"):
        from_official("poseformer", missing, args)
    extra = dict(official, **{"Spatial_blocks.5.norm1.weight": torch.ones(8)})
    with pytest.raises(OfficialWeightsError, match=r"unexpected keys: \['spatial_blocks.5"):
        from_official("poseformer", extra, args)
    stray = dict(official, bogus=torch.ones(1))
    with pytest.raises(OfficialWeightsError, match="bogus"):
        from_official("poseformer", stray, args)
    with pytest.raises(OfficialWeightsError, match="shape mismatches"):
        from_official("poseformer", official, dict(args, num_frame=27))


def test_from_official_unknown_name_lists_known() -> None:
    assert "poseformer" in available_official()
    with pytest.raises(KeyError, match="poseformer"):
        from_official("no_such_model", {}, {})


def test_convert_cli_roundtrip(tmp_path: Path) -> None:
    config, state_dict, io = _official_fixture("poseformer")
    ckpt = tmp_path / "official.pth"
    wrapped = {"module." + k: torch.from_numpy(v) for k, v in state_dict.items()}
    # Official scripts save a numpy RandomState next to the weights.
    torch.save({"epoch": 3, "random_state": np.random.RandomState(0), "model_pos": wrapped}, ckpt)
    assert set(load_checkpoint(ckpt)) == set(state_dict)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "converted.pt"
    assert convert_main(["poseformer", str(ckpt), "--config", str(cfg), "--out", str(out)]) == 0

    saved = torch.load(out, weights_only=True)
    model = PoseFormer(**saved["constructor_args"]).eval()
    model.load_state_dict(saved["state_dict"], strict=True)
    with torch.no_grad():
        got = model(torch.from_numpy(io["input"]))
    torch.testing.assert_close(got, torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)

    npz = _fixture_root() / "poseformer" / "state_dict.npz"
    out2 = tmp_path / "from_npz.pt"
    assert convert_main(["poseformer", str(npz), "--config", str(cfg), "--out", str(out2)]) == 0
    saved2 = torch.load(out2, weights_only=True)
    assert all(torch.equal(saved2["state_dict"][k], v) for k, v in saved["state_dict"].items())
    assert convert_main(["nope", str(npz), "--config", str(cfg), "--out", str(out2)]) == 1


# ---------------------------------------------------------------------------------------------
# PoseFormer


def test_poseformer_parameter_count_81_frames() -> None:
    model = PoseFormer(num_frames=81)
    n = sum(p.numel() for p in model.parameters())
    assert math.isclose(n, 9.60e6, rel_tol=1e-3), n
    assert model.receptive_field == 81
    assert model.output_mode == "centre"
    assert model.in_channels == 2


def test_poseformer_forward_backward() -> None:
    model = _small_poseformer(drop_rate=0.1, attn_drop_rate=0.1)
    model.train()
    x = torch.randn(3, 9, 17, 2, requires_grad=True)
    out = model(x)
    assert out.shape == (3, 1, 17, 3)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("shape", [(2, 9, 16, 2), (2, 8, 17, 2), (2, 9, 17, 3), (9, 17, 2)])
def test_poseformer_shape_errors(shape: tuple[int, ...]) -> None:
    model = _small_poseformer()
    with pytest.raises(ValueError, match=r"\(B, 9, 17, 2\)"):
        model(torch.randn(*shape))


# ---------------------------------------------------------------------------------------------
# slots


@pytest.mark.parametrize("slot", SLOT_NAMES)
@pytest.mark.parametrize("stage", ["spatial", "temporal"])
def test_slots_change_output(slot: str, stage: str) -> None:
    torch.manual_seed(0)
    plain = _small_poseformer().eval()
    spec = {slot: lambda dim: AddConstant(dim, 0.5)}
    slotted = _small_poseformer(**{f"{stage}_slots": spec}).eval()
    missing, unexpected = slotted.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == []
    assert sorted(missing) == [f"{stage}_blocks.{i}.slots.{slot}.value" for i in range(2)]
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        assert not torch.allclose(slotted(x), plain(x))


def test_empty_slots_are_identical_to_no_slots() -> None:
    torch.manual_seed(0)
    plain = _small_poseformer().eval()
    empty = _small_poseformer(
        spatial_slots={name: None for name in SLOT_NAMES},
        temporal_slots=lambda index, dim: make_slots("none", nn.Identity),
    ).eval()
    empty.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        assert torch.equal(empty(x), plain(x))


def test_block_slots_registered_and_validated() -> None:
    blk = Block(16, 4, slots=make_slots("after_msa", lambda: AddConstant(16, 1.0)))
    assert "slots.after_msa.value" in blk.state_dict()
    assert make_slots(None, nn.Identity) == {}
    with pytest.raises(ValueError, match="before_msa"):
        Block(16, 4, slots={"middle": nn.Identity()})
    with pytest.raises(ValueError, match="after_mlp"):
        make_slots("sideways", nn.Identity)

    # Slot order on the residual stream: before_msa acts before norm1 sees x.
    torch.manual_seed(0)
    blk0 = Block(16, 4).eval()
    shift = AddConstant(16, 2.0)
    blk1 = Block(16, 4, slots={"before_msa": shift}).eval()
    blk1.load_state_dict(blk0.state_dict(), strict=False)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(blk1(x), blk0(shift(x)))


# ---------------------------------------------------------------------------------------------
# blocks


def _naive_attention(attn: Attention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    B, N, C = x.shape
    H, D = attn.num_heads, C // attn.num_heads
    q, k, v = attn.qkv(x).reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * attn.scale
    if mask is not None:
        logits = (
            logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
        )
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "bool_per_head"])
@pytest.mark.parametrize("qk_scale", [None, 0.3])
def test_attention_matches_naive(mask_kind: str | None, qk_scale: float | None) -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True, qk_scale=qk_scale).eval()
    x = torch.randn(3, 7, 32)
    mask: torch.Tensor | None = None
    if mask_kind == "bool":  # (N, N) banded, diagonal always kept
        idx = torch.arange(7)
        mask = (idx[:, None] - idx[None, :]).abs() <= 2
    elif mask_kind == "bool_per_head":  # (B, H, N, N)
        mask = torch.rand(3, 4, 7, 7) > 0.5
        mask |= torch.eye(7, dtype=torch.bool)
    elif mask_kind == "float":  # (B, 1, N, N) additive
        mask = torch.randn(3, 1, 7, 7)
    with torch.no_grad():
        got = attn(x, attn_mask=mask)
        ref = _naive_attention(attn, x, mask)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_drop_path() -> None:
    dp = DropPath(0.5)
    x = torch.ones(1000, 3, 4)
    dp.eval()
    assert dp(x) is x
    dp.train()
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample
    assert 0.35 < (per_sample[:, 0] == 0).float().mean() < 0.65
    with pytest.raises(ValueError):
        DropPath(1.0)


# ---------------------------------------------------------------------------------------------
# strided (sparse) attention


@pytest.mark.parametrize("n", [27, 81, 243, 351])
def test_strided_mask_pattern_and_density(n: int) -> None:
    from liftpose.models.blocks.attention import strided_mask

    mask = strided_mask(n, num_heads=8)
    ell = round(math.sqrt(n))
    i = torch.arange(n)
    d = i[:, None] - i[None, :]
    assert mask.shape == (8, n, n) and mask.dtype == torch.bool
    assert torch.equal(mask[0], d.abs() <= ell // 2)  # nearby positions, both sides
    assert torch.equal(mask[7], d.remainder(ell) == 0)  # every l-th position, both sides
    assert torch.equal(mask[:4], mask[:1].expand(4, n, n))
    assert torch.all(mask.diagonal(dim1=1, dim2=2))  # every query sees itself
    density = (mask[0] | mask[7]).float().mean().item()
    assert density == pytest.approx(2 / math.sqrt(n), rel=0.25), density
    assert mask.float().mean().item() == pytest.approx(1 / math.sqrt(n), rel=0.25)


def test_strided_attention_is_masked_attention() -> None:
    from liftpose.models.blocks.attention import strided_mask

    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True, pattern="strided").eval()
    x = torch.randn(2, 27, 32)
    with torch.no_grad():
        got = attn(x)
        ref = _naive_attention(attn, x, strided_mask(27, 4))
        dense = Attention(32, num_heads=4, qkv_bias=True).eval()
        dense.load_state_dict(attn.state_dict())
        assert not torch.allclose(dense(x), got)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert not attn._mask_cache  # the sparse path builds no (H, n, n) mask
    attn.sparse = False  # the masked reference
    with torch.no_grad():
        torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-6)
    assert list(attn._mask_cache) == [(27, "cpu")]  # built once per length and device
    with pytest.raises(ValueError, match="pattern"):
        Attention(32, pattern="sparse")


def test_strided_attention_is_a_config_choice_with_the_same_weights() -> None:
    torch.manual_seed(0)
    dense = _small_poseformer().eval()
    strided = _small_poseformer(attention="strided").eval()
    strided.load_state_dict(dense.state_dict())  # no new parameters
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        assert not torch.allclose(dense(x), strided(x))
    assert all(b.attn.pattern == "strided" for b in strided.temporal_blocks)
    assert all(b.attn.pattern == "dense" for b in strided.spatial_blocks)

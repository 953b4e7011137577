"""Strided Transformer: official weights and outputs, parameter counts, training/eval outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftpose.losses import CompositeLoss
from liftpose.models import from_official
from liftpose.models.strided import StdLayerNorm, StridedTransformer
from liftpose.modules import LiftingModule

from .conftest import SHARED, official_fixture

FIXTURES = SHARED / "fixtures" / "official" / "strided"
VARIANTS = {"main": FIXTURES, "extra_stride1": FIXTURES / "extra_stride1"}
SMALL = dict(num_frames=9, num_joints=17, layers=2, channel=16, d_hid=32, strides=[3, 3])


def _fixture(variant: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    return official_fixture(VARIANTS[variant])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_strided_reproduces_official_outputs(variant: str) -> None:
    config, state_dict, io = _fixture(variant)
    args = config["constructor_args"]
    model = from_official("strided", state_dict, args)
    assert not model.training
    assert list(model.strides) == args["stride_num"]
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        out = model.forward_outputs(x)
        pred = model(x)
    # official forward returns (output, output_vte): the STE centre frame, the VTE sequence
    torch.testing.assert_close(out["single"], torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)
    torch.testing.assert_close(
        out["full"], torch.from_numpy(io["output_vte"]), rtol=1e-6, atol=2e-6
    )
    torch.testing.assert_close(pred, out["single"], rtol=0, atol=0)


def test_strided_std_layernorm_eps_matters_for_official_outputs() -> None:
    """Every norm is ``(x - mean) / (std + 1e-6)``; eps 1e-5 moves the outputs past tolerance."""
    config, state_dict, io = _fixture("main")
    model = from_official("strided", state_dict, config["constructor_args"])
    norms = [m for m in model.modules() if isinstance(m, StdLayerNorm)]
    assert len(norms) == 2 * 2 + 2 * 3 + 2 and all(m.eps == 1e-6 for m in norms)
    for m in norms:
        m.eps = 1e-5
    with torch.no_grad():
        out = model.forward_outputs(torch.from_numpy(io["input"]))
    ref = torch.from_numpy(io["output"])
    assert not torch.allclose(out["single"], ref, rtol=1e-6, atol=2e-6)


#: ``sum(p.numel())`` of the official ``Model`` at its default sizes (layers 3, channel 256,
#: d_hid 512), counted here from the official code; the paper reports 4.01 M and 4.35 M.
OFFICIAL_COUNTS = [(27, [3, 3, 3], 4_014_438, 4.01), (351, [3, 9, 13], 4_346_214, 4.35)]


@pytest.mark.parametrize("frames,strides,count,millions", OFFICIAL_COUNTS)
def test_strided_parameter_counts_match_official(frames, strides, count, millions) -> None:
    with torch.device("meta"):  # count without allocating or initialising
        model = StridedTransformer(num_frames=frames)
    assert list(model.strides) == strides
    n = sum(p.numel() for p in model.parameters())
    assert n == count
    # 4.0144 M is 0.11 % above the paper's rounded 4.01 M; both agree to two decimals
    assert round(n / 1e6, 2) == millions
    assert n / 1e6 == pytest.approx(millions, rel=2e-3)


def test_strided_train_returns_both_outputs_eval_returns_centre() -> None:
    torch.manual_seed(0)
    model = StridedTransformer(**SMALL)
    assert model.output_mode == "seq2centre" and model.receptive_field == 9
    x = torch.randn(3, 9, 17, 2)
    model.train()
    out = model(x)
    assert isinstance(out, dict) and list(out) == ["full", "single"]
    assert out["full"].shape == (3, 9, 17, 3) and out["single"].shape == (3, 1, 17, 3)
    (out["full"].square().mean() + out["single"].square().mean()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    # the official encoders' final norms are never applied: kept frozen, without gradients
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"vte_norm.weight", "vte_norm.bias", "ste_norm.weight", "ste_norm.bias"}
    model.eval()
    with torch.no_grad():
        both = model.forward_outputs(x)
        pred = model(x)
    assert pred.shape == (3, 1, 17, 3)
    torch.testing.assert_close(pred, both["single"], rtol=0, atol=0)


def test_strided_full_to_single_loss() -> None:
    """Each output is compared with the target frames it predicts, weighted per output."""
    torch.manual_seed(0)
    model = StridedTransformer(**SMALL, drop_rate=0.0, attn_drop_rate=0.0, embed_drop=0.0)
    module = LiftingModule(
        model,
        CompositeLoss({"mpjpe": {"weight": 1.0}}),
        optimizer=torch.optim.Adam,
        output_weights={"full": 0.4, "single": 0.6},
        flip_permutation=list(range(17)),
    )
    x, y = torch.randn(4, 9, 17, 2), torch.randn(4, 9, 17, 3)
    model.train()
    out = {k: v.detach() for k, v in model(x).items()}  # BatchNorm uses batch statistics
    total, _ = module.training_loss(model(x), y)

    def mpjpe(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.linalg.vector_norm(a - b, dim=-1).mean())

    expected = 0.4 * mpjpe(out["full"], y) + 0.6 * mpjpe(out["single"], y[:, 4:5])
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("strides", [[3, 3], [9], [3, 1, 3], [1, 9, 1, 1]])
def test_strided_other_channels_joints_and_strides(strides: list[int]) -> None:
    cfg = {**SMALL, "in_chans": 5, "out_joints": 16, "strides": strides}
    model = StridedTransformer(**cfg)
    assert model.embed.proj.in_channels == 17 * 5
    assert model.ste_pos_embed.shape == (len(strides), 9, 16)
    assert len(model.ste_blocks) == len(strides)
    x = torch.randn(2, 9, 17, 5)
    model.train()
    out = model(x)
    assert out["full"].shape == (2, 9, 16, 3) and out["single"].shape == (2, 1, 16, 3)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 1, 16, 3)
    with pytest.raises(ValueError, match="expects input of shape"):
        model(torch.randn(2, 9, 17, 2))


def test_strided_ste_block_subsamples_the_residual() -> None:
    """An STE layer maps T frames to ceil(T / s); with a zero MLP it keeps every s-th frame."""
    model = StridedTransformer(**SMALL).eval()
    blk = model.ste_blocks[0]
    for p in (*blk.attn.proj.parameters(), *blk.mlp.fc2.parameters()):
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(blk(x), x[:, ::3], rtol=0, atol=0)
        assert model.ste_blocks[1](torch.randn(2, 8, 16)).shape == (2, 3, 16)


def test_strided_needs_known_or_explicit_strides() -> None:
    with pytest.raises(ValueError, match="no default strides for num_frames=9"):
        StridedTransformer(num_frames=9)
    with pytest.raises(ValueError, match="product of strides"):
        StridedTransformer(num_frames=27, strides=[3, 3])
    assert StridedTransformer(num_frames=81, channel=16, d_hid=32).strides == (9, 3, 3)
    assert StridedTransformer(num_frames=243, channel=16, d_hid=32).strides == (3, 9, 9)


def test_strided_official_args_are_checked() -> None:
    with pytest.raises(TypeError, match="unsupported StridedTransformer constructor argument"):
        from_official("strided", {}, {"frames": 27, "in_channels": 2})


def test_strided_attention_option_keeps_the_weights() -> None:
    from liftpose.models.strided import StridedTransformer

    torch.manual_seed(0)
    dense = StridedTransformer(num_frames=27, channel=32, d_hid=64, layers=2).eval()
    sparse = StridedTransformer(
        num_frames=27, channel=32, d_hid=64, layers=2, attention="strided"
    ).eval()
    sparse.load_state_dict(dense.state_dict())
    assert [b.attn.pattern for b in sparse.ste_blocks] == ["strided"] * 3
    assert [b.attn.pattern for b in sparse.vte_blocks] == ["dense"] * 2
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        assert not torch.allclose(dense(x), sparse(x))
    with pytest.raises(ValueError, match="attention_in"):
        StridedTransformer(num_frames=27, attention_in="all")


def test_strided_block_slots_on_the_mlp_branch() -> None:
    """An STE layer takes the after_norm2 and in_mlp slots too; a ReLU in place of the
    activation is the plain layer (its activation is ReLU)."""
    from torch import nn

    from liftpose.models.strided import StridedBlock

    torch.manual_seed(0)
    plain = StridedBlock(16, 4, hidden_features=32, stride=3).eval()
    relu = StridedBlock(16, 4, hidden_features=32, stride=3, slots={"in_mlp": nn.ReLU()}).eval()
    zero = StridedBlock(16, 4, hidden_features=32, stride=3, slots={"after_norm2": nn.Identity()})
    relu.load_state_dict(plain.state_dict())
    zero.load_state_dict(plain.state_dict())
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(relu(x), plain(x), rtol=0, atol=0)
        torch.testing.assert_close(zero.eval()(x), plain(x), rtol=0, atol=0)
        assert relu(x).shape == (2, 3, 16)


def test_std_layernorm_mixed_precision_form_is_the_same_norm() -> None:
    """Under autocast the norm takes a faster two-pass form: the same values to float32
    rounding (the fp32 path stays torch.std, which the official fixtures pin)."""
    from liftpose.models.strided import StdLayerNorm

    torch.manual_seed(0)
    norm = StdLayerNorm(64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(4, 30, 64) * 3 + 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = norm(x)
    torch.testing.assert_close(fast, norm(x), rtol=1e-5, atol=1e-5)

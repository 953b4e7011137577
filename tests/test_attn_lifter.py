"""SA/TA modules and the lifter of attn-2d3d-system.txt (section II-B), and its loss (eq. 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftpose.losses import CompositeLoss
from liftpose.models import PoseFormer
from liftpose.models.attn_lifter import AttentionLifter
from liftpose.models.blocks.conv_attention import (
    DepthwiseConvAttention,
    spatial_attention,
    temporal_attention,
)
from liftpose.modules import LiftingModule

PLACEMENTS = ["before_msa", "after_msa", "after_norm2", "in_mlp", "after_mlp", "none"]
SMALL = dict(num_frames=9, num_joints=17, embed_dim_ratio=8, depth=2, num_heads=2)


def test_sa_mixes_only_along_joints_of_one_frame():
    """Spatial tokens are (B*T, J, c): changing one frame's tokens changes only that frame,
    and within it a joint's output depends on the joints within the two kernels' reach."""
    torch.manual_seed(0)
    sa = spatial_attention(8).eval()
    with torch.no_grad():
        for p in sa.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # non-trivial norm affine
    x = torch.randn(6, 17, 8)  # 6 frames of 17 joints
    y = sa(x)
    x2 = x.clone()
    x2[3, 0] += 1.0  # frame 3, joint 0
    d = (sa(x2) - y).abs().amax(dim=-1)  # (frames, joints)
    assert torch.all(d[[0, 1, 2, 4, 5]] == 0)
    assert torch.all(d[3] > 0)  # GroupNorm(1) statistics reach every joint of the frame


def test_ta_mixes_only_along_frames_of_one_joint():
    """Temporal tokens are (B, T, J*c): changing one joint's channels at one frame changes
    only that joint's channels, at frames within reach of the two kernels (2 * 1 each side)."""
    torch.manual_seed(0)
    J, c, T = 17, 8, 11
    ta = temporal_attention(J * c, norm_groups=J).eval()
    x = torch.randn(2, T, J * c)
    y = ta(x)
    x2 = x.clone()
    x2[0, 5, 3 * c : 4 * c] += 1.0  # sequence 0, frame 5, joint 3
    d = (ta(x2) - y).abs().reshape(2, T, J, c).amax(dim=-1)  # (B, T, J)
    assert torch.all(d[1] == 0)
    others = [j for j in range(J) if j != 3]
    assert torch.all(d[0][:, others] == 0)
    assert torch.all(d[0, :, 3] > 0)  # the norm's statistics span the frames of that joint


def test_conv_attention_shapes_and_checks():
    m = DepthwiseConvAttention(12, 5, norm_groups=3)
    assert m(torch.randn(2, 7, 12)).shape == (2, 7, 12)
    assert m.conv1.groups == 12 and m.conv1.kernel_size == (5,)
    with pytest.raises(ValueError, match="odd"):
        DepthwiseConvAttention(12, 4)
    with pytest.raises(ValueError, match="divide"):
        DepthwiseConvAttention(12, 5, norm_groups=5)


@pytest.mark.parametrize(("sa", "ta"), list(zip(PLACEMENTS, PLACEMENTS[::-1], strict=True)))
def test_every_placement_runs_forward_and_backward(sa, ta):
    torch.manual_seed(0)
    model = AttentionLifter(**SMALL, sa_placement=sa, ta_placement=ta)
    x = torch.randn(3, 9, 17, 2)
    out = model(x)
    assert set(out) == {"spatial", "temporal"}
    assert out["spatial"].shape == out["temporal"].shape == (3, 9, 17, 3)
    (out["spatial"].sum() + out["temporal"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    for stage, where in (("spatial_blocks", sa), ("temporal_blocks", ta)):
        for blk in getattr(model, stage):
            assert list(blk.slots) == ([] if where == "none" else [where])
    model.eval()
    assert model(x).shape == (3, 1, 17, 3)


def test_default_placement_is_between_norm2_and_the_mlp():
    """The default (II-B2: "between the LN layer and MLP"): the module transforms the MLP's
    input LN2(x) and leaves the residual stream alone; in_mlp works at the hidden width."""
    model = AttentionLifter(**SMALL)
    assert all(list(b.slots) == ["after_norm2"] for b in model.spatial_blocks)
    assert all(list(b.slots) == ["after_norm2"] for b in model.temporal_blocks)
    in_mlp = AttentionLifter(**SMALL, sa_placement="in_mlp", ta_placement="in_mlp")
    hidden_s, hidden_t = 8 * 2, 17 * 8 * 2  # mlp_ratio 2
    assert in_mlp.spatial_blocks[0].slots["in_mlp"].conv1.in_channels == hidden_s
    assert in_mlp.temporal_blocks[0].slots["in_mlp"].conv1.in_channels == hidden_t
    assert in_mlp.temporal_blocks[0].slots["in_mlp"].norm.num_groups == 17


def test_slot_positions_in_the_block():
    """after_norm2 acts on norm2's output only; in_mlp replaces the MLP activation."""
    from torch import nn

    from liftpose.models.blocks import Block

    torch.manual_seed(0)
    plain = Block(16, 4, mlp_ratio=2.0).eval()
    x = torch.randn(2, 5, 16)
    # a GELU module in place of the activation is the plain block (its activation is GELU)
    gelu = Block(16, 4, mlp_ratio=2.0, slots={"in_mlp": nn.GELU()}).eval()
    gelu.load_state_dict(plain.state_dict())
    # a shift of norm2's output equals a shifted norm2 bias
    shift = torch.linspace(-1.0, 1.0, 16)

    class Shift(nn.Module):
        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return h + shift

    after_norm2 = Block(16, 4, mlp_ratio=2.0, slots={"after_norm2": Shift()}).eval()
    after_norm2.load_state_dict(plain.state_dict())
    biased = Block(16, 4, mlp_ratio=2.0).eval()
    biased.load_state_dict(plain.state_dict())
    with torch.no_grad():
        biased.norm2.bias.add_(shift)
        torch.testing.assert_close(gelu(x), plain(x), rtol=0, atol=0)
        torch.testing.assert_close(after_norm2(x), biased(x))
        assert not torch.allclose(after_norm2(x), plain(x))


def test_placement_none_equals_poseformer_with_the_same_weights():
    torch.manual_seed(0)
    base = PoseFormer(**SMALL, drop_path_rate=0.0).eval()
    lifter = AttentionLifter(
        **SMALL,
        drop_rate=0.0,
        drop_path_rate=0.0,
        sa_placement="none",
        ta_placement="none",
        head="pool",
        spatial_head=False,
    ).eval()
    assert lifter.load_state_dict(base.state_dict(), strict=True)
    assert sum(p.numel() for p in lifter.parameters()) == sum(p.numel() for p in base.parameters())
    x = torch.randn(4, 9, 17, 2)
    torch.testing.assert_close(lifter(x), base(x), rtol=0, atol=0)


def test_sequence_head_predicts_the_centre_frame():
    torch.manual_seed(0)
    model = AttentionLifter(**SMALL).eval()
    x = torch.randn(2, 9, 17, 2)
    seq = model.forward_outputs(x)["temporal"]
    torch.testing.assert_close(model(x), seq[:, 4:5])


def test_temporal_input_estimate_reads_the_spatial_estimate():
    torch.manual_seed(0)
    model = AttentionLifter(**SMALL, temporal_input="estimate").eval()
    assert model.estimate_embed.in_features == 17 * 3
    x = torch.randn(2, 9, 17, 2)
    before = model(x)
    with torch.no_grad():
        model.spatial_head.bias.add_(1.0)  # moves X'_3D, hence the temporal input
    assert not torch.allclose(model(x), before)
    with pytest.raises(ValueError, match="spatial_head"):
        AttentionLifter(**SMALL, temporal_input="estimate", spatial_head=False)


def test_parameter_count_at_paper_dimensions():
    """81 frames, 32 channels per joint, 4 + 4 blocks: PoseFormer plus the SA/TA modules and
    the spatial head, minus the frame pooling (the paper prints 9.86 M; see its Table IX spec)."""
    base = sum(p.numel() for p in PoseFormer(num_frames=81).parameters())
    lifter = sum(p.numel() for p in AttentionLifter(num_frames=81).parameters())
    c, E = 32, 17 * 32
    sa = 2 * (c * 5 + c) + 2 * c  # two depthwise convs and the GroupNorm affine
    ta = 2 * (E * 3 + E) + 2 * E
    expected = base - (81 + 1) + 4 * sa + 4 * ta + (c * 3 + 3)
    assert lifter == expected
    assert round(lifter / 1e6, 2) == 9.63


def test_combined_loss_matches_hand_computation():
    """eq. 15: lambda_s * L_s + lambda_t * L_t with MPJPE terms over all frames."""
    torch.manual_seed(0)
    model = AttentionLifter(**SMALL, drop_rate=0.0, drop_path_rate=0.0)
    module = LiftingModule(
        model,
        CompositeLoss({"mpjpe": {"weight": 1.0}}),
        optimizer=torch.optim.Adam,
        output_weights={"spatial": 0.3, "temporal": 0.7},
        flip_permutation=list(range(17)),
    )
    x, y = torch.randn(4, 9, 17, 2), torch.randn(4, 9, 17, 3)
    model.train()
    out = {k: v.detach().numpy() for k, v in model(x).items()}
    total, parts = module.training_loss(model(x), y)
    t = y.numpy()

    def mpjpe(a):
        return np.linalg.norm(a - t, axis=-1).mean()

    expected = 0.3 * mpjpe(out["spatial"]) + 0.7 * mpjpe(out["temporal"])
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(parts["spatial"].detach()) == pytest.approx(mpjpe(out["spatial"]), rel=1e-5)
    # a centre-frame target supervises the centre frame of each sequence output
    total_c, _ = module.training_loss(model(x), y[:, 4:5])
    centre = 0.3 * np.linalg.norm(out["spatial"][:, 4:5] - t[:, 4:5], axis=-1).mean()
    centre += 0.7 * np.linalg.norm(out["temporal"][:, 4:5] - t[:, 4:5], axis=-1).mean()
    assert float(total_c.detach()) == pytest.approx(centre, rel=1e-5)
    module.hparams.output_weights = {"spacial": 1.0}
    with pytest.raises(ValueError, match="spacial"):
        module.training_loss(model(x), y)

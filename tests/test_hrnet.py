"""Tests of HRNet, its official-weight converter and the channel attention module (CAM)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from liftpose.models import from_official
from liftpose.models.backbones import HRNet
from liftpose.models.backbones.hrnet import BasicBlock, cam_positions
from liftpose.models.blocks.cam import ChannelAttentionModule, ChannelGate
from liftpose.models.official import available_official, get_official

from .conftest import OFFICIAL, official_fixture

FIXTURE = OFFICIAL / "hrnet"

#: The fixture's tiny configuration (widths 8..64, one block per branch).
TINY = dict(
    width=8,
    stage_modules=(1, 1, 2),
    stage_blocks=1,
    stage_channels=([8, 16], [8, 16, 32], [8, 16, 32, 64]),
)
#: Table VII rows (HRNet-W32): ``cam`` placement and the number of CAMs it adds.
TABLE_VII = {
    "Sub-Net 1": ({"branches": [3]}, 6),
    "Sub-Net 2+1": ({"branches": [2, 3]}, 20),
    "Sub-Net 3+2+1": ({"branches": [1, 2, 3]}, 36),
    "Stage 1": ({"stages": [4], "branches": "newest"}, 6),
    "Stage 2+1": ({"stages": [3, 4], "branches": "newest"}, 14),
    "Stage 3+2+1": ({"stages": [2, 3, 4], "branches": "newest"}, 16),
}
PAPER_DEFAULT = {"reduction": 4, "branches": [3], "blocks": [-2, -1]}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convolutions on a shared CPU run far faster on one thread than on several."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(**kwargs) -> HRNet:
    with torch.device("meta"):
        return HRNet(**kwargs)


@functools.cache
def _plain(width: int) -> tuple[int, int]:
    """``(parameters, BasicBlocks)`` of plain HRNet-W``width``."""
    model = _meta(width=width)
    return _params(model), sum(isinstance(m, BasicBlock) for m in model.modules())


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


# ---------------------------------------------------------------------------------------------
# official weights


def test_hrnet_reproduces_official_outputs() -> None:
    config, sd, io = official_fixture(FIXTURE)
    model = from_official("hrnet", sd, config["constructor_args"])
    assert isinstance(model, HRNet) and not model.training and model.num_cam == 0
    assert _params(model) == config["num_parameters"]
    assert set(model.state_dict()) == set(sd)  # official names: the conversion is the identity
    x, ref = torch.from_numpy(io["input"]), torch.from_numpy(io["output"])
    with torch.no_grad():
        out = model(x)
    assert out.shape == ref.shape == (*x.shape[:1], 17, x.shape[2] // 4, x.shape[3] // 4)
    # The randomly initialised fixture network is ill-conditioned in float32: rounding alone
    # (CPU thread count, conv kernel choice, float32 vs float64 of this very model) moves the
    # heatmaps by 1-9e-5 (about 5e-6 of their range); one BatchNorm eps 1e-5 -> 1e-4 moves
    # them by 2e-4 and a wrong upsampling by O(1).
    scale = ref.abs().max().item()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * scale)
    assert (out - ref).pow(2).mean().sqrt() < 3e-6 * scale


def test_hrnet_registered() -> None:
    conv = get_official("hrnet")
    assert "hrnet" in available_official()
    cfg = {
        "MODEL": {
            "NUM_JOINTS": 17,
            "EXTRA": {
                "FINAL_CONV_KERNEL": 1,
                **{
                    f"STAGE{s}": {
                        "NUM_MODULES": m,
                        "NUM_BRANCHES": s,
                        "BLOCK": "BASIC",
                        "NUM_BLOCKS": [4] * s,
                        "NUM_CHANNELS": [32 * 2**b for b in range(s)],
                        "FUSE_METHOD": "SUM",
                    }
                    for s, m in ((2, 1), (3, 4), (4, 3))
                },
            },
        }
    }
    args = conv.model_args(cfg)
    assert args["width"] == 32 and args["stage_modules"] == [1, 4, 3]
    assert _params(_meta(**args)) == _plain(32)[0]
    cfg["MODEL"]["EXTRA"]["STAGE3"]["BLOCK"] = "BOTTLENECK"
    with pytest.raises(TypeError, match="BASIC"):
        conv.model_args(cfg)


# ---------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize("width,millions", [(32, 28.54), (48, 63.60)])
def test_hrnet_parameter_counts(width: int, millions: float) -> None:
    n = _plain(width)[0]
    assert abs(n / 1e6 - millions) <= 1e-3 * millions


def test_hrnet_output_shape_256x192() -> None:
    model = HRNet(num_joints=17, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 256, 192))
    assert out.shape == (2, 17, 64, 48)


def test_hrnet_rejects_inconsistent_stage_config() -> None:
    with pytest.raises(ValueError, match="branches"):
        HRNet(width=8, stage_channels=([8, 16], [8, 16, 32], [8, 16, 32]))
    with pytest.raises(ValueError, match="one per branch"):
        HRNet(width=8, stage_blocks=([1, 1], [1, 1], [1, 1, 1, 1]))


# ---------------------------------------------------------------------------------------------
# channel attention module


def _cam_reference(cam: ChannelAttentionModule, x: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)-(3) written out with functional ops on the module's parameters (eval mode)."""

    def cbr(layer: nn.Sequential, t: torch.Tensor, act: bool = True) -> torch.Tensor:
        conv, bn = layer[0], layer[1]
        t = F.conv2d(t, conv.weight, conv.bias, padding=conv.padding)
        t = F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
        return F.relu(t) if act else t

    a = cam.attn
    gap = x.mean(dim=(2, 3), keepdim=True)
    x_att = torch.sigmoid(cbr(a.fc3, cbr(a.fc2, cbr(a.fc1, gap))))  # (1)
    y = x * x_att  # (2)
    path = cbr(nn.Sequential(cam.conv1, cam.bn1), x)
    path = cbr(nn.Sequential(cam.conv2, cam.bn2), path)
    return path + x + y  # (3)


def test_cam_matches_equations() -> None:
    torch.manual_seed(0)
    cam = _randomise_bn(ChannelAttentionModule(16, reduction=4)).eval()
    assert [cam.attn.fc1[0].out_channels, cam.attn.fc2[0].out_channels] == [4, 4]
    assert cam.attn.fc3[0].out_channels == 16
    x = torch.randn(3, 16, 9, 7)
    with torch.no_grad():
        z = cam(x)
        torch.testing.assert_close(z, _cam_reference(cam, x))
    assert z.shape == x.shape


def test_cam_attention_is_channel_wise_and_residual() -> None:
    """With the 3x3 path silenced (``bn2`` zero), ``Z = X * (1 + X')`` and ``X'`` depends on
    the channel means only: ``Z / X`` is constant over space and permuting the pixels of ``X``
    permutes those of ``Z``."""
    torch.manual_seed(1)
    cam = _randomise_bn(ChannelAttentionModule(8, reduction=2)).eval()
    with torch.no_grad():
        cam.bn2.weight.zero_()
        cam.bn2.bias.zero_()
        x = torch.rand(2, 8, 5, 6) + 0.5
        z = cam(x)
        ratio = z / x
        gate = cam.attn(x)
        assert gate.shape == (2, 8, 1, 1)
        assert ((gate >= 0.5) & (gate < 1)).all()  # sigmoid after ReLU (literal eq. (1))
        torch.testing.assert_close(ratio, (1 + gate).expand_as(ratio))
        assert ratio.std(dim=(2, 3)).max() < 1e-6 and ratio.std(dim=1).max() > 1e-3
        perm = torch.randperm(30)
        xp = x.flatten(2)[..., perm].view_as(x)
        torch.testing.assert_close(cam(xp).flatten(2), z.flatten(2)[..., perm])
        # the paper's open choices are arguments: a (0, 1) gate, BasicBlock layout, no conv path
        gate2 = ChannelGate(8, 2, act_last=False).eval()(x - 10)
        assert (gate2 < 0.5).any()
        bare = ChannelAttentionModule(8, reduction=2, conv_path=False).eval()
        torch.testing.assert_close(bare(x), x + bare.attention(x))


# ---------------------------------------------------------------------------------------------
# CAM placement


@pytest.mark.parametrize("row", list(TABLE_VII))
def test_table_vii_rows_add_expected_cams(row: str) -> None:
    placement, count = TABLE_VII[row]
    plain_params, plain_blocks = _plain(32)
    model = _meta(width=32, cam={"reduction": 4, "blocks": [-2, -1], **placement})
    cams = [m for m in model.modules() if isinstance(m, ChannelAttentionModule)]
    assert model.num_cam == len(cams) == count
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == plain_blocks - count
    # a CAM replaces a BasicBlock of the same width: only the attention branch is new
    gates = sum(_params(c.attn) for c in cams)
    assert _params(model) == plain_params + gates


def test_paper_default_placement_is_last_two_blocks_of_final_subnetwork() -> None:
    positions = cam_positions(
        (1, 4, 3),
        [[4] * 2, [4] * 3, [4] * 4],
        **{k: v for k, v in PAPER_DEFAULT.items() if k != "reduction"},
    )
    assert positions == {(4, m, 3, k) for m in range(3) for k in (2, 3)}
    # the tiny fixture layout: one block per branch, both blocks selectors hit block 0
    tiny = HRNet(**TINY, cam=PAPER_DEFAULT)
    assert tiny.cam_positions == [(4, 0, 3, 0), (4, 1, 3, 0)]
    assert isinstance(tiny.stage4[1].branches[3][0], ChannelAttentionModule)


def test_cam_model_loads_plain_weights_into_conv_paths() -> None:
    config, sd, io = official_fixture(FIXTURE)
    plain = from_official("hrnet", sd, config["constructor_args"])
    args = get_official("hrnet").model_args(config["constructor_args"])
    model = HRNet(**args, cam={"reduction": 2, "stages": [4], "branches": "newest"})
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".attn." in k for k in missing)
    with pytest.raises(ValueError, match="out of range"):
        HRNet(**TINY, cam={"branches": [4]})
    with pytest.raises(ValueError, match="newest"):
        HRNet(**TINY, cam={"branches": "oldest"})


def test_config_rows_compose() -> None:
    """``conf/model/hrnet.yaml`` and the override lines of its comments give Table VII."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from liftpose.utils.run import CONF_DIR

    lines = {
        "Sub-Net 1": [],
        "Sub-Net 2+1": ["model.cam.branches=[2,3]"],
        "Sub-Net 3+2+1": ["model.cam.branches=[1,2,3]"],
        "Stage 1": ["model.cam.stages=[4]", "model.cam.branches=newest"],
        "Stage 2+1": ["model.cam.stages=[3,4]", "model.cam.branches=newest"],
        "Stage 3+2+1": ["model.cam.stages=[2,3,4]", "model.cam.branches=newest"],
    }
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for row, overrides in lines.items():
            cfg = compose("train", ["model=hrnet", "~experiment", *overrides]).model
            assert cfg.width == 32 and cfg.num_joints == 17
            cam = OmegaConf.to_container(cfg.cam)
            assert cam.pop("reduction") == 4
            n = len(cam_positions(cfg.stage_modules, [[4] * s for s in (2, 3, 4)], **cam))
            assert n == TABLE_VII[row][1], row
        cfg = compose("train", ["model=hrnet", "~experiment", "model.cam=null", "model.width=48"])
    GlobalHydra.instance().clear()
    assert cfg.model.cam is None and cfg.model.width == 48
    model = _meta(**{k: v for k, v in OmegaConf.to_container(cfg.model).items() if k[0] != "_"})
    assert model.num_cam == 0 and abs(_params(model) / 1e6 - 63.60) < 0.064


def test_tiny_cam_model_trains_one_step() -> None:
    torch.manual_seed(0)
    model = HRNet(**TINY, cam=PAPER_DEFAULT)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(torch.randn(2, 3, 64, 64))
    out.pow(2).mean().backward()
    opt.step()
    cam = model.stage4[0].branches[3][0]
    assert cam.attn.fc1[0].weight.grad is not None
    assert not torch.equal(before["final_layer.weight"], model.final_layer.weight)


def test_input_sides_not_divisible_by_32_are_refused():
    model = HRNet(width=8, stage_modules=(1, 1, 1), stage_blocks=1).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="divisible by 32"):
        model(torch.zeros(1, 3, 64, 48))
    assert model(torch.zeros(1, 3, 64, 32)).shape == (1, 17, 16, 8)

"""Tests of VideoPose3D and its official-weight converter."""

from __future__ import annotations

import math

import pytest
import torch

from liftpose.models import from_official
from liftpose.models.official import OfficialWeightsError, available_official, get_official
from liftpose.models.videopose3d import TemporalBlock, VideoPose3D, VideoPose3DOfficial

from .conftest import SHARED, official_fixture

FIXTURE = SHARED / "fixtures" / "official" / "videopose3d"
TOL = dict(rtol=1e-6, atol=2e-6)


SMALL = dict(num_joints=5, filter_widths=(3, 3, 3), channels=16, dropout=0.25)


def _small(seed: int = 0, **kwargs) -> VideoPose3D:
    """A small random model in eval mode, with non-trivial BatchNorm parameters and statistics."""
    torch.manual_seed(seed)
    model = VideoPose3D(**{**SMALL, **kwargs})
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.add_(0.1 * torch.randn_like(m.weight))
                m.bias.add_(0.1 * torch.randn_like(m.bias))
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _to_official_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our key names -> ``TemporalModel``'s, written out independently of the converter."""
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            k, name, rest = int(parts[1]), parts[2], parts[3:]
            layer, index = {
                "conv": ("layers_conv", 2 * k),
                "proj": ("layers_conv", 2 * k + 1),
                "norm1": ("layers_bn", 2 * k),
                "norm2": ("layers_bn", 2 * k + 1),
            }[name]
            out[".".join([layer, str(index), *rest])] = value
        else:
            top = {"embed_conv": "expand_conv", "embed_norm": "expand_bn", "head": "shrink"}
            out[".".join([top[parts[0]], *parts[1:]])] = value
    assert len(out) == len(state_dict)
    return out


# ---------------------------------------------------------------------------------------------
# official weights


@pytest.mark.parametrize("variant", ["", "extra_causal"])
def test_videopose3d_reproduces_official_outputs(variant: str) -> None:
    config, sd, io = official_fixture(FIXTURE / variant if variant else FIXTURE)
    model = from_official("videopose3d", sd, config["constructor_args"])
    assert isinstance(model, VideoPose3D) and not model.training
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    assert model.causal == config["constructor_args"]["causal"]
    x, x1 = torch.from_numpy(io["input"]), torch.from_numpy(io["input_1f"])
    ref, ref1 = torch.from_numpy(io["output"]), torch.from_numpy(io["output_1f"])
    assert x.shape[1] > model.receptive_field == x1.shape[1]
    with torch.no_grad():
        # a sequence longer than the receptive field, evaluated whole (TemporalModel)
        torch.testing.assert_close(model(x), ref, **TOL)
        torch.testing.assert_close(model.forward_sequence(x), ref, **TOL)
        # one window: strided (TemporalModelOptimized1f) and dilated paths
        torch.testing.assert_close(model.forward_1f(x1), ref1, **TOL)
        torch.testing.assert_close(model(x1), ref1, **TOL)
        torch.testing.assert_close(model.forward_sequence(x1), ref1, **TOL)


def test_videopose3d_official_1f_args_and_state_dict_load() -> None:
    config, sd, _ = official_fixture(FIXTURE)
    model = from_official("videopose3d", sd, config["constructor_args_1f"])  # no ``dense``
    ours = model.state_dict()
    for key, value in _to_official_keys(ours).items():
        torch.testing.assert_close(value, torch.from_numpy(sd[key]), rtol=0, atol=0)


def test_videopose3d_converter_registered_and_round_trips() -> None:
    assert "videopose3d" in available_official()
    assert isinstance(get_official("videopose3d"), VideoPose3DOfficial)
    ref = _small(seed=3, num_joints=17, out_joints=16, in_chans=3, causal=True)
    args = dict(
        num_joints_in=17,
        in_features=3,
        num_joints_out=16,
        filter_widths=[3, 3, 3],
        causal=True,
        dropout=0.25,
        channels=16,
        dense=False,
    )
    model = from_official("videopose3d", _to_official_keys(ref.state_dict()), args)
    x = torch.randn(2, 30, 17, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    with pytest.raises(OfficialWeightsError, match="shape mismatches"):
        from_official("videopose3d", _to_official_keys(ref.state_dict()), {**args, "channels": 8})
    with pytest.raises(TypeError, match="unsupported"):
        from_official("videopose3d", _to_official_keys(ref.state_dict()), {**args, "foo": 1})


# ---------------------------------------------------------------------------------------------
# architecture


@pytest.mark.parametrize(
    "widths,frames,millions",
    [((3, 3, 3), 27, 8.56), ((3, 3, 3, 3), 81, 12.75), ((3, 3, 3, 3, 3), 243, 16.95)],
)
def test_videopose3d_paper_parameter_counts(widths, frames, millions) -> None:
    with torch.device("meta"):
        model = VideoPose3D(num_joints=17, filter_widths=widths, channels=1024, num_frames=frames)
    assert model.receptive_field == frames
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(millions * 1e6, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"causal": True}, {"dense": True}, {"filter_widths": (3, 5)}, {"filter_widths": (1, 3)}],
)
def test_videopose3d_sequence_equals_sliding_windows(kwargs) -> None:
    model = _small(seed=1, **kwargs)
    rf = model.receptive_field
    assert rf == math.prod(model.filter_widths)
    x = torch.randn(2, rf + 6, 5, 2)
    with torch.no_grad():
        whole = model(x)
        assert whole.shape == (2, 7, 5, 3)
        windows = torch.cat([model(x[:, t : t + rf]) for t in range(7)], dim=1)
        dilated = torch.cat([model.forward_sequence(x[:, t : t + rf]) for t in range(7)], dim=1)
        strided = torch.cat([model.forward_1f(x[:, t : t + rf]) for t in range(7)], dim=1)
    torch.testing.assert_close(whole, windows, **TOL)
    torch.testing.assert_close(whole, dilated, **TOL)
    torch.testing.assert_close(whole, strided, **TOL)


def test_videopose3d_causal_crops_residual_at_window_end() -> None:
    block = TemporalBlock(4, width=3, dilation=3, causal=True)
    assert (block.pad, block.shift, block.strided_shift) == (3, 3, 1)
    assert _small(causal=True).causal_shift == 13 and _small().causal_shift == 0
    centred, causal = _small(seed=2), _small(seed=2, causal=True)
    x = torch.randn(1, 27, 5, 2)
    with torch.no_grad():
        assert not torch.allclose(centred(x), causal(x))


def test_videopose3d_forward_backward_train_mode() -> None:
    model = VideoPose3D(**SMALL).train()
    x = torch.randn(4, 27, 5, 2, requires_grad=True)
    out = model(x)  # single windows take the strided path, as official training
    assert out.shape == (4, 1, 5, 3)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())
    seq = model(torch.randn(2, 31, 5, 2))  # whole sequences in train mode too
    assert seq.shape == (2, 5, 5, 3)
    model.set_bn_momentum(0.001)
    assert all(m.momentum == 0.001 for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))


def test_videopose3d_other_input_and_output_joints() -> None:
    model = _small(in_chans=5, out_joints=4)
    assert model.in_channels == 5 and model.embed_conv.in_channels == 25
    with torch.no_grad():
        assert model(torch.randn(3, 27, 5, 5)).shape == (3, 1, 4, 3)
        assert model(torch.randn(3, 40, 5, 5)).shape == (3, 14, 4, 3)


def test_videopose3d_checks_inputs_and_arguments() -> None:
    model = _small()
    assert model.output_mode == "centre" and model.num_frames == 27
    for bad in (torch.zeros(1, 26, 5, 2), torch.zeros(1, 27, 4, 2), torch.zeros(27, 5, 2)):
        with pytest.raises(ValueError, match="expects input"):
            model(bad)
    with pytest.raises(ValueError, match="exactly"):
        model.forward_1f(torch.zeros(1, 28, 5, 2))
    with pytest.raises(ValueError, match="receptive field 27"):
        VideoPose3D(filter_widths=(3, 3, 3), num_frames=81)
    with pytest.raises(ValueError, match="odd"):
        VideoPose3D(filter_widths=(3, 2))
    assert VideoPose3D(filter_widths=(3, 3), num_frames=9, channels=8).receptive_field == 9

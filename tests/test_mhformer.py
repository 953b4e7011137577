"""MHFormer: official weights and outputs, parameter counts, training/eval outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from liftpose.models import from_official
from liftpose.models.mhformer import MHFormer

from .conftest import SHARED, official_fixture

FIXTURES = SHARED / "fixtures" / "official" / "mhformer"
VARIANTS = {"main": FIXTURES, "extra_frames_gt27": FIXTURES / "extra_frames_gt27"}
SMALL = dict(num_frames=9, num_joints=17, layers=2, channel=16, d_hid=32)


def _fixture(variant: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    return official_fixture(VARIANTS[variant])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mhformer_reproduces_official_outputs(variant: str) -> None:
    config, state_dict, io = _fixture(variant)
    args = config["constructor_args"]
    model = from_official("mhformer", state_dict, args)
    assert not model.training
    assert model.embed_norm == (args["frames"] <= 27)  # the two official code branches
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    x, ref = torch.from_numpy(io["input"]), torch.from_numpy(io["output"])
    with torch.no_grad():
        out = model.forward_sequence(x)
        centre = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=2e-6)
    t = ref.shape[1] // 2
    torch.testing.assert_close(centre, ref[:, t : t + 1], rtol=1e-6, atol=2e-6)


def test_mhformer_eps_matters_for_official_outputs() -> None:
    """The MHG stage pre-norms use eps=1e-5 (PyTorch default), every other LayerNorm 1e-6."""
    config, state_dict, io = _fixture("main")
    model = from_official("mhformer", state_dict, config["constructor_args"])
    pre = [g.pre_norm for g in model.generators]
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert all(m.eps == 1e-5 for m in pre)
    assert all(m.eps == 1e-6 for m in norms if all(m is not p for p in pre))
    for m in pre:
        m.eps = 1e-6
    with torch.no_grad():
        out = model.forward_sequence(torch.from_numpy(io["input"]))
    assert not torch.allclose(out, torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)


@pytest.mark.parametrize("frames,millions", [(27, 19.18), (81, 19.84), (243, 25.17), (351, 31.52)])
def test_mhformer_parameter_counts_match_paper(frames: int, millions: float) -> None:
    with torch.device("meta"):  # count without allocating or initialising
        model = MHFormer(num_frames=frames)
    n = sum(p.numel() for p in model.parameters())
    assert n / 1e6 == pytest.approx(millions, rel=1e-3)


def test_mhformer_train_returns_sequence_eval_returns_centre() -> None:
    torch.manual_seed(0)
    model = MHFormer(**SMALL)
    assert model.output_mode == "seq2centre" and model.receptive_field == 9
    x = torch.randn(3, 9, 17, 2)
    model.train()
    out = model(x)
    assert out.shape == (3, 9, 17, 3)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        seq = model.forward_sequence(x)
        centre = model(x)
    assert seq.shape == (3, 9, 17, 3) and centre.shape == (3, 1, 17, 3)
    torch.testing.assert_close(centre, seq[:, 4:5], rtol=0, atol=0)


@pytest.mark.parametrize("frames", [9, 36])
def test_mhformer_other_input_channels_and_output_joints(frames: int) -> None:
    model = MHFormer(**{**SMALL, "num_frames": frames, "in_chans": 5, "out_joints": 16}).eval()
    assert model.generators[0].pos_embed.shape == (1, 17 * 5, frames)
    assert model.embeds[0].proj.in_features == 17 * 5
    with torch.no_grad():
        assert model(torch.randn(2, frames, 17, 5)).shape == (2, 1, 16, 3)
    with pytest.raises(ValueError, match="expects input of shape"):
        model(torch.randn(2, frames, 17, 2))


def test_mhformer_official_args_are_checked() -> None:
    with pytest.raises(TypeError, match="unsupported MHFormer constructor argument"):
        from_official("mhformer", {}, {"frames": 9, "in_channels": 2})

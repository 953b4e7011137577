"""Tests of MixSTE and its official-weight converter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from liftpose.models import from_official
from liftpose.models.blocks import SLOT_NAMES
from liftpose.models.mixste import MixSTE, MixSTEOfficial, frames_to_joints, joints_to_frames
from liftpose.models.official import OfficialWeightsError, available_official, get_official

from .conftest import OFFICIAL, official_fixture
from .test_models import AddConstant

FIXTURE = OFFICIAL / "mixste"


def _official_fixture() -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    return official_fixture(FIXTURE)


SMALL = dict(num_frames=9, num_joints=17, embed_dim_ratio=16, depth=2, num_heads=4)


def _small_mixste(**kwargs) -> MixSTE:
    return MixSTE(**{**SMALL, **kwargs})


def _to_official_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our key names -> ``MixSTE2``'s, written out independently of the converter's rules."""
    renames = [
        ("joint_embed.", "Spatial_patch_to_embedding."),
        ("spatial_pos_embed", "Spatial_pos_embed"),
        ("temporal_pos_embed", "Temporal_pos_embed"),
        ("spatial_blocks.", "STEblocks."),
        ("temporal_blocks.", "TTEblocks."),
        ("spatial_norm.", "Spatial_norm."),
        ("temporal_norm.", "Temporal_norm."),
        ("head_norm.", "head.0."),
        ("head.", "head.1."),
    ]
    out = {}
    for key, value in state_dict.items():
        for ours, theirs in renames:
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value
                break
    assert len(out) == len(state_dict)
    return out


# ---------------------------------------------------------------------------------------------
# official weights


def test_mixste_reproduces_official_outputs() -> None:
    config, state_dict, io = _official_fixture()
    model = from_official("mixste", state_dict, config["constructor_args"])
    assert isinstance(model, MixSTE) and not model.training
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"]))
    assert out.shape == io["output"].shape
    torch.testing.assert_close(out, torch.from_numpy(io["output"]), rtol=1e-6, atol=2e-6)


def test_mixste_official_keys_all_have_rules() -> None:
    config, state_dict, _ = _official_fixture()
    assert sorted(state_dict) == sorted(config["state_dict_keys"])
    converted = get_official("mixste").convert(
        {k: torch.from_numpy(v) for k, v in state_dict.items()}, config["constructor_args"]
    )
    model = MixSTE(**get_official("mixste").model_args(config["constructor_args"]))
    assert sorted(converted) == sorted(model.state_dict())


def test_mixste_norm_eps_matters_for_official_outputs() -> None:
    """Block and shared stage norms use eps=1e-6, the head norm PyTorch's default 1e-5."""
    config, state_dict, io = _official_fixture()
    model = from_official("mixste", state_dict, config["constructor_args"])
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 2 * model.depth + 3  # blocks, spatial/temporal norm, head norm
    assert model.head_norm.eps == 1e-5
    assert all(m.eps == 1e-6 for m in norms if m is not model.head_norm)
    x, ref = torch.from_numpy(io["input"]), torch.from_numpy(io["output"])
    model.head_norm.eps = 1e-6
    with torch.no_grad():
        assert not torch.allclose(model(x), ref, rtol=1e-6, atol=2e-6)


def test_mixste_initialisation_matches_official_order() -> None:
    """Same seed, same weights: every tensor the fixture did not perturb equals our init."""
    config, state_dict, _ = _official_fixture()
    conv = get_official("mixste")
    official = {k: torch.from_numpy(v) for k, v in state_dict.items()}
    ours = conv.convert(official, config["constructor_args"])
    perturbed = set(conv.convert(dict.fromkeys(config["perturbed_parameters"]), {}))
    torch.manual_seed(config["seed"])
    fresh = MixSTE(**conv.model_args(config["constructor_args"])).state_dict()
    compared = [k for k in fresh if k not in perturbed]
    assert compared, "nothing left to compare"
    for key in compared:
        assert torch.equal(fresh[key], ours[key]), key
    # pos embeddings and norms start constant (zero / one / zero), as in the official code
    assert torch.count_nonzero(MixSTE(**SMALL).temporal_pos_embed) == 0


def test_from_official_round_trip_and_bad_keys() -> None:
    ref = _small_mixste().eval()
    official = _to_official_keys(ref.state_dict())
    args = dict(SMALL)
    args["num_frame"] = args.pop("num_frames")
    model = from_official("mixste", official, args)
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)

    missing = dict(official)
    del missing["head.1.bias"]
    with pytest.raises(OfficialWeightsError, match=r"missing keys: \['head.bias'\]"):
        from_official("mixste", missing, args)
    extra = dict(official, **{"STEblocks.5.norm1.weight": torch.ones(16)})
    with pytest.raises(OfficialWeightsError, match=r"unexpected keys: \['spatial_blocks.5"):
        from_official("mixste", extra, args)
    stray = dict(official, weighted_mean=torch.ones(1))
    with pytest.raises(OfficialWeightsError, match="no conversion rule.*weighted_mean"):
        from_official("mixste", stray, args)
    with pytest.raises(OfficialWeightsError, match="shape mismatches.*temporal_pos_embed"):
        from_official("mixste", official, dict(args, num_frame=27))
    with pytest.raises(TypeError, match="changedim"):
        from_official("mixste", official, dict(args, changedim=True))
    with pytest.raises(TypeError, match="norm_layer"):
        from_official("mixste", official, dict(args, norm_layer=nn.LayerNorm))


def test_mixste_is_registered() -> None:
    assert "mixste" in available_official()
    assert isinstance(get_official("mixste"), MixSTEOfficial)


# ---------------------------------------------------------------------------------------------
# model


@pytest.mark.parametrize("frames,millions", [(81, 33.70), (243, 33.78)])
def test_mixste_parameter_count_official_defaults(frames: int, millions: float) -> None:
    with torch.device("meta"):
        model = MixSTE(num_frames=frames)
    n = sum(p.numel() for p in model.parameters())
    assert math.isclose(n, millions * 1e6, rel_tol=1e-3), n
    assert model.receptive_field == frames
    assert model.output_mode == "sequence"
    assert model.in_channels == 2 and model.num_joints == 17


@pytest.mark.parametrize("in_chans", [2, 5])
def test_mixste_forward_backward(in_chans: int) -> None:
    model = _small_mixste(in_chans=in_chans, drop_rate=0.1, attn_drop_rate=0.1).train()
    x = torch.randn(3, 9, 17, in_chans, requires_grad=True)
    out = model(x)
    assert out.shape == (3, 9, 17, 3)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def test_mixste_is_seq2seq_and_batch_independent() -> None:
    """Each frame's output depends on every input frame; samples do not mix."""
    torch.manual_seed(0)
    model = _small_mixste().eval()
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        out = model(x)
        y = x.clone()
        y[0, 0] += 1.0  # change the first frame of the first sample only
        moved = model(y)
    assert not torch.allclose(moved[0, -1], out[0, -1])  # reaches the last frame
    torch.testing.assert_close(moved[1], out[1], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(x[1:]), out[1:], rtol=1e-5, atol=1e-6)


def test_regrouping_round_trip() -> None:
    B, T, J, c = 2, 5, 3, 4
    x = torch.arange(B * T * J * c, dtype=torch.float32).reshape(B, T, J, c)
    spatial = x.reshape(B * T, J, c)
    temporal = joints_to_frames(spatial, B)
    assert temporal.shape == (B * J, T, c)
    torch.testing.assert_close(temporal.reshape(B, J, T, c), x.transpose(1, 2))
    assert torch.equal(frames_to_joints(temporal, B), spatial)


@pytest.mark.parametrize("shape", [(2, 9, 16, 2), (2, 8, 17, 2), (2, 9, 17, 3), (9, 17, 2)])
def test_mixste_shape_errors(shape: tuple[int, ...]) -> None:
    model = _small_mixste()
    with pytest.raises(ValueError, match=r"\(B, 9, 17, 2\)"):
        model(torch.randn(*shape))


@pytest.mark.parametrize("slot", SLOT_NAMES)
@pytest.mark.parametrize("stage", ["spatial", "temporal"])
def test_mixste_slots(slot: str, stage: str) -> None:
    torch.manual_seed(0)
    plain = _small_mixste().eval()
    empty = _small_mixste(**{f"{stage}_slots": {slot: None}}).eval()
    empty.load_state_dict(plain.state_dict(), strict=True)
    slotted = _small_mixste(**{f"{stage}_slots": {slot: lambda dim: AddConstant(dim)}}).eval()
    missing, unexpected = slotted.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == []
    assert sorted(missing) == [f"{stage}_blocks.{i}.slots.{slot}.value" for i in range(2)]
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        assert torch.equal(empty(x), plain(x))
        assert not torch.allclose(slotted(x), plain(x))


def test_mixste_config_file_matches_defaults() -> None:
    """conf/model/mixste.yaml repeats the constructor defaults."""
    import inspect

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[1] / "conf" / "model" / "mixste.yaml"
    cfg = OmegaConf.load(path)
    assert cfg._target_ == "liftpose.models.mixste.MixSTE"
    defaults = {
        k: p.default
        for k, p in inspect.signature(MixSTE).parameters.items()
        if k not in ("num_frames", "num_joints", "spatial_slots", "temporal_slots")
    }
    assert {k: cfg[k] for k in defaults} == defaults

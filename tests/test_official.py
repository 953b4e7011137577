"""One check over every official-weights converter: ``official_forward`` of the model that
``from_official`` returns gives the official outputs of its fixtures, in the official layout."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import liftpose.models
from liftpose.models.official import available_official, from_official, official_forward

from .conftest import OFFICIAL, official_fixture

#: Fixtures made here with the official code (small ones, in the repository; see their
#: config.json for how each was produced); the others are in the shared official fixtures.
LOCAL = Path(__file__).parent / "fixtures" / "official"


def _import_all_models() -> None:
    """Import every ``liftpose.models`` module, so that every converter is registered."""
    for info in pkgutil.walk_packages(liftpose.models.__path__, "liftpose.models."):
        importlib.import_module(info.name)


_import_all_models()
CONVERTERS = available_official()


def _folders(name: str) -> list[Path]:
    """The fixture folder of ``name`` and its variants (``extra_*``)."""
    root = LOCAL / name if (LOCAL / name).is_dir() else OFFICIAL / name
    return [root, *sorted(p for p in root.glob("extra_*") if p.is_dir())]


CASES = [(name, folder) for name in CONVERTERS for folder in _folders(name)]


def test_every_model_module_registers_its_converter() -> None:
    assert {"poseformer", "mixste", "mhformer", "strided", "refine", "videopose3d", "hrnet"} <= set(
        CONVERTERS
    )


@pytest.mark.parametrize(
    ("name", "folder"), CASES, ids=[f"{n}/{f.name}" if f.name != n else n for n, f in CASES]
)
def test_official_forward_gives_the_official_outputs(name: str, folder: Path) -> None:
    config, state_dict, io = official_fixture(folder)
    model = from_official(name, state_dict, config["constructor_args"])
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == config["num_parameters"]
    inputs = [torch.from_numpy(io[k]) for k in config.get("official_inputs", ["input"])]
    returns = config.get("official_returns")
    if returns is None:  # the shared fixtures name a tuple in their semantics (strided)
        returns = ["output", "output_vte"] if "output_vte" in io else ["output"]
    with torch.no_grad():
        out = official_forward(name, model, *inputs)
    outs = list(out) if isinstance(out, tuple) else [out]
    assert len(outs) == len(returns)
    for got, key in zip(outs, returns, strict=True):
        ref = torch.from_numpy(io[key])
        assert got.shape == ref.shape, key
        # HRNet's random fixture network is ill-conditioned in float32 (see test_hrnet.py)
        scale = ref.abs().max().item() if name == "hrnet" else 1.0
        tol = 1e-5 if name == "hrnet" else 2e-6
        torch.testing.assert_close(got, ref, rtol=max(1e-6, tol / 2), atol=tol * scale)


def test_from_official_returns_the_liftpose_model() -> None:
    """``from_official`` gives our own model, whose forward keeps liftpose's layout."""
    from liftpose.models.mhformer import MHFormer

    config, state_dict, io = official_fixture(OFFICIAL / "mhformer")
    model = from_official("mhformer", state_dict, config["constructor_args"])
    assert isinstance(model, MHFormer)
    x, ref = torch.from_numpy(io["input"]), torch.from_numpy(io["output"])
    with torch.no_grad():
        centre = model(x)
    t = ref.shape[1] // 2
    torch.testing.assert_close(centre, ref[:, t : t + 1], rtol=1e-6, atol=2e-6)


def test_refine_back_projection_is_the_official_one() -> None:
    """``uvd_to_xyz`` equals ``get_uvd2xyz`` of the official code on the refine fixture."""
    from liftpose.models.refine import uvd_to_xyz

    config, state_dict, io = official_fixture(LOCAL / "refine")
    t = {k: torch.from_numpy(v) for k, v in io.items()}
    xyz = uvd_to_xyz(t["uv"], t["input"][..., 2], t["root"], t["camera"])
    torch.testing.assert_close(xyz, t["input_xyz"], rtol=1e-6, atol=1e-6)
    model = from_official("refine", state_dict, config["constructor_args"])
    with torch.no_grad():
        out = model.refine(t["input"], t["uv"], t["root"], t["camera"])
    torch.testing.assert_close(out, t["output"], rtol=1e-6, atol=2e-6)
    with pytest.raises(TypeError, match="in_channels=2"):
        from_official("refine", state_dict, {**config["constructor_args"], "in_channels": 5})


def test_local_fixtures_are_small() -> None:
    sizes = {p.name: p.stat().st_size for p in LOCAL.rglob("*") if p.is_file()}
    assert sizes and sum(sizes.values()) < 200_000, sizes
    assert np.load(LOCAL / "refine" / "io.npz")["output"].shape == (4, 1, 17, 3)

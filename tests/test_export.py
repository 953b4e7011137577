"""liftpose-export: every lifter (and one trained with TMT) as ONNX (onnxruntime equals
PyTorch within 1e-5) and as TorchScript; bad input gets one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liftpose.export import FORMATS, EvalLifter, example_input, export, onnx_run
from liftpose.export import main as export_main
from liftpose.system.lifting import Lifter
from liftpose.train import build

from .test_configs import compose_cfg

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

#: every lifter at a small size (the CPU experiments with fewer channels and 9 frames)
LIFTERS = {
    "poseformer": ["experiment=main_cpu", "frames=9", "model.embed_dim_ratio=8", "model.depth=1"],
    "attn_lifter": ["experiment=attn_2d3d/lifter_cpu", "frames=9", "model.embed_dim_ratio=8",
                    "model.depth=1"],
    "mixste": ["experiment=mixste_cpu", "frames=9", "model.embed_dim_ratio=16", "model.depth=1"],
    "mhformer": ["experiment=mhformer_cpu", "frames=9", "model.channel=32", "model.d_hid=64"],
    "strided": ["experiment=strided_cpu", "frames=9", "model.channel=32", "model.d_hid=64",
                "model.layers=1", "model.strides=[3,3]"],
    "videopose3d": ["experiment=videopose3d_cpu", "frames=9", "model.channels=32",
                    "model.filter_widths=[3,3]"],
    # equal left and right bones at evaluation (the ready lifter's setting)
    "videopose3d_symmetric": ["experiment=videopose3d_cpu", "frames=9", "model.channels=32",
                              "model.filter_widths=[3,3]", "module.symmetric_bones=true"],
    "ampose": ["experiment=ampose_cpu", "model.embed_dim=32", "model.depth=1"],
    # a lifter trained with TMT takes 2 + k channels: the export feeds zero motion channels
    "poseformer_tmt": ["experiment=main_cpu", "module=tmt", "module.motion=va3", "frames=9",
                       "model.embed_dim_ratio=8", "model.depth=1"],
}  # fmt: skip


def tiny_lifter(name: str) -> Lifter:
    cfg = compose_cfg("train", LIFTERS[name])
    _, module = build(cfg)
    torch.manual_seed(0)
    for p in module.parameters():  # not the initial zeros/ones: every weight matters
        p.data.add_(torch.randn_like(p) * 0.02)
    return Lifter(
        module.eval(), cfg, Path(name), int(cfg.data.receptive_field), 50.0, "centred", 17
    )


@pytest.mark.parametrize("name", sorted(LIFTERS))
def test_onnx_equals_pytorch(name, tmp_path):
    lifter = tiny_lifter(name)
    path = tmp_path / f"{name}.onnx"
    err = export(lifter, "onnx", path)
    assert path.is_file() and err <= 1e-5
    # a different batch size through the dynamic axis, against the eval path itself
    x = example_input(lifter, batch=5, seed=1)
    with torch.no_grad():
        ref = lifter.module.predict_eval(x).numpy()
    np.testing.assert_allclose(onnx_run(path, x.numpy()), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["poseformer", "videopose3d"])
def test_torchscript_equals_pytorch(name, tmp_path):
    lifter = tiny_lifter(name)
    path = tmp_path / f"{name}.pt"
    export(lifter, "torchscript", path)
    x = example_input(lifter, batch=3, seed=2)
    with torch.no_grad():
        np.testing.assert_allclose(
            torch.jit.load(str(path))(x).numpy(), EvalLifter(lifter.module)(x).numpy(), atol=1e-5
        )


def test_export_cli_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert export_main([str(tmp_path / "missing.ckpt"), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.ckpt" in err[0] and not out.exists()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert export_main([str(bad), "--format", "onnx", "--out", str(out)]) == 2
    assert not out.exists() and set(FORMATS) == {"onnx", "torchscript"}


def test_a_missing_checkpoint_names_the_argument(tmp_path, capsys):
    from liftpose.export import main

    assert main([str(tmp_path / "nope.ckpt"), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip().endswith("nope.ckpt: CKPT: checkpoint not found")

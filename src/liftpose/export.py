"""``liftpose-export``: a lifter checkpoint as ONNX or TorchScript, for use outside Python.

    liftpose-export run/checkpoints/last.ckpt --format onnx --out lifter.onnx
    liftpose-export run/checkpoints/last.ckpt --format torchscript --out lifter.pt

The exported graph is the lifter's evaluation path, what ``liftpose-infer`` runs per window:
input ``pose_2d (B, T, J, 2)`` normalised 2-D windows (``T`` the checkpoint's frames; ``B``
free), output ``pose_3d (B, T_out, J, 3)`` in metres, root joint zeroed, averaged with the
mirrored input's prediction when the run tests with flips. ``T_out`` is 1 (the target frame)
or ``T`` (seq2seq lifters); the target frame is the centre, or the last for a causal lifter.
Every lifter exports (PoseFormer, MixSTE, MHFormer, the Strided Transformer, VideoPose3D, the
SA/TA lifter, AMPose); the written file is checked against PyTorch on a random window before
it is renamed into place. Bad input: one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from liftpose.errors import ConfigError, DataError
from liftpose.modules.lifting import symmetrise_bones
from liftpose.utils.io import atomic_path

FORMATS = ("onnx", "torchscript")


class EvalLifter(nn.Module):
    """A :class:`~liftpose.modules.lifting.LiftingModule`'s ``predict_eval`` as a plain module,
    ``(B, T, J, C) -> (B, T_out, J, 3)``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.model = module.model
        # TMT's lifters take 2 + k channels and see zero motion channels at inference
        steps = getattr(module, "steps", ("plain",))
        self.zero_channels = 0 if steps == ("plain",) else int(module.input_channels) - 2
        self.test_flip = bool(module.hparams.test_flip)
        self.zero_root = bool(module.hparams.zero_root_eval)
        self.symmetric = bool(module.hparams.get("symmetric_bones", False))
        self.perm_list = [int(j) for j in module.flip_perm.tolist()]
        self.register_buffer("perm", module.flip_perm.clone().long())

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        y = x.index_select(-2, self.perm)
        sign = torch.ones(y.shape[-1], dtype=y.dtype, device=y.device)
        sign[0] = -1.0
        return y * sign

    def _lift(self, x: torch.Tensor) -> torch.Tensor:
        if self.zero_channels:
            x = torch.cat([x, x.new_zeros(*x.shape[:-1], self.zero_channels)], dim=-1)
        return self.model(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self._lift(x)
        if self.test_flip:
            pred = (pred + self._flip(self._lift(self._flip(x)))) / 2
        if self.zero_root:
            pred = torch.cat([torch.zeros_like(pred[..., :1, :]), pred[..., 1:, :]], dim=-2)
        if self.symmetric:
            pred = symmetrise_bones(pred, self.perm_list)
        return pred


def example_input(lifter, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random normalised 2-D window batch ``(B, T, J, 2)`` for ``lifter`` (a loaded Lifter)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, lifter.frames, lifter.num_joints, 2, generator=g) * 1.6 - 0.8


def export(lifter, fmt: str, path: str | Path, atol: float = 1e-5) -> float:
    """Write ``lifter`` (a :class:`~liftpose.system.lifting.Lifter`) to ``path`` as ``fmt`` and
    return the largest difference from PyTorch on a random batch (``DataError`` above ``atol``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {FORMATS}, got {fmt!r}")
    net = EvalLifter(lifter.module).eval()
    x = example_input(lifter)
    with torch.no_grad():
        ref = net(x)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # shape checks in the models' forward are constants of the traced graph: expected
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(net, (x,), check_trace=False)
            traced.save(str(tmp))
            with torch.no_grad():
                got = torch.jit.load(str(tmp))(x)
        else:
            with torch.no_grad():
                torch.onnx.export(
                    net, (x,), str(tmp), input_names=["pose_2d"], output_names=["pose_3d"],
                    dynamic_axes={"pose_2d": {0: "batch"}, "pose_3d": {0: "batch"}},
                    opset_version=18, dynamo=False,
                )  # fmt: skip
            got = torch.from_numpy(onnx_run(tmp, x.numpy()))
        err = float((got - ref).abs().max())
        if not err <= atol:
            raise DataError(path, "--format", f"{fmt} output differs from PyTorch by {err:.2e}")
    return err


def onnx_run(path: str | Path, x):
    """Run an exported lifter with onnxruntime (CPU): ``(B, T, J, C)`` -> ``(B, T_out, J, 3)``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"pose_2d": x})[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="liftpose-export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("checkpoint", help="a lifter checkpoint written by liftpose-train")
    ap.add_argument("--format", choices=FORMATS, required=True)
    ap.add_argument("--out", default=None, help="output file (default: beside the checkpoint)")
    args = ap.parse_args(argv)
    from liftpose.system.lifting import load_lifter

    ckpt = Path(args.checkpoint)
    out = (
        Path(args.out)
        if args.out
        else ckpt.with_suffix(".onnx" if args.format == "onnx" else ".pt")
    )
    try:
        if out.exists():
            raise DataError(out, "--out", "exists; liftpose-export does not overwrite files")
        lifter = load_lifter(ckpt, "CKPT")
        err = export(lifter, args.format, out)
    except (DataError, ConfigError) as e:
        print(f"liftpose-export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.format}; largest difference from PyTorch {err:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pose-refinement stage: a trained lifter's target-frame pose refined through the camera.

The second training stage of the official Strided Transformer (``main.py --refine --reload``),
which gives its 351-frame result, and AMPose's "refinement" row (the module of Cai et al. [4]):

1. the lifter (with ``model.refine=true``, so it owns a
   :class:`~liftpose.models.refine.PoseRefinement`) starts from the weights of a trained run
   (``init_weights``, a liftpose checkpoint; the refinement module starts fresh);
2. each batch, its target-frame prediction (the output named ``output`` of a multi-output
   lifter, e.g. the Strided Transformer's ``single``; the centre frame of a sequence output)
   is refined with the window's centre 2-D keypoints, the camera and the ground-truth root
   depth (:func:`~liftpose.models.refine.uvd_to_xyz`), and only the refined pose is
   supervised (the official loss drops the full-sequence term in this stage);
3. lifter and refinement train together (the official code: one Adam over both, lr 1e-5);
4. evaluation refines the flip-averaged prediction with the un-flipped 2-D, then zeroes the
   root, as the official test.

The data must carry the camera (``data.camera_context=true``; ``module=refine`` sets it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from liftpose.data.windows import flip_pose
from liftpose.errors import ConfigError, DataError
from liftpose.modules.lifting import LiftingModule

__all__ = ["RefineModule"]


class RefineModule(LiftingModule):
    """Refinement stage on any lifter that has ``model.refine`` (see the module docstring).

    Args (beyond :class:`~liftpose.modules.lifting.LiftingModule`'s):
        init_weights: a liftpose checkpoint (``<run>/checkpoints/last.ckpt``) whose lifter
            weights start the stage; every weight must load except those of ``model.refine``.
            ``None``: start from scratch (a smoke test).
        output: the training output to refine for a lifter with named outputs (the Strided
            Transformer's ``single``); ignored for a lifter with one output.
    """

    def __init__(
        self, *args: Any, init_weights: str | None = None, output: str = "single", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.model, "refine", None) is None:
            raise ConfigError(
                f"module=refine needs a lifter with a refinement module: set model.refine=true "
                f"({type(self.model).__name__} has none)"
            )
        self._context: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.hparams.init_weights:
            self.load_lifter(self.hparams.init_weights)

    def load_lifter(self, path: str | Path) -> None:
        """Load the lifter weights of a liftpose checkpoint (``model.*``), all but
        ``model.refine.*``, which must be the only missing keys."""
        from liftpose.utils.checkpoint import read_checkpoint_file

        if not Path(path).is_file():
            raise DataError(path, "file", "module.init_weights: checkpoint not found")
        ckpt = read_checkpoint_file(path)  # a truncated file: one line, not a traceback
        state = ckpt.get("state_dict")
        if not isinstance(state, dict):
            raise DataError(path, "state_dict", "not a Lightning checkpoint")
        weights = {k: v for k, v in state.items() if k.startswith("model.")}
        missing, unexpected = self.load_state_dict(weights, strict=False)
        missing = [
            k for k in missing if k.startswith("model.") and not k.startswith("model.refine.")
        ]
        if missing or unexpected:
            raise DataError(
                path,
                "state_dict",
                f"does not fit the lifter: missing {missing[:5]}, unexpected {unexpected[:5]}"
                f"{' ...' if len(missing) > 5 or len(unexpected) > 5 else ''}",
            )

    # ------------------------------------------------------------------ the refinement
    def _target_frame(self, out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """The prediction to refine, ``(B, 1, J, 3)``, from a lifter output."""
        if isinstance(out, dict):
            if self.hparams.output not in out:
                raise ConfigError(
                    f"module.output={self.hparams.output!r} but the model returns {sorted(out)}"
                )
            out = out[self.hparams.output]
        t = out.shape[1]
        return out[:, t // 2 : t // 2 + 1]

    def refine(
        self, pred: torch.Tensor, x: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """``pred (B, 1, J, 3)`` refined with the centre 2-D of ``x (B, T, J, 2)`` and the
        batch's ``camera (B, 4)`` and ``root_3d (B, 1 | T, 3)``."""
        if "camera" not in batch or "root_3d" not in batch:
            raise ConfigError("module=refine needs the camera in the batches: data.camera_context")
        t, r = x.shape[1] // 2, batch["root_3d"]
        uv = x[:, t : t + 1, :, :2]
        root = r[:, r.shape[1] // 2 : r.shape[1] // 2 + 1]
        camera = batch["camera"].to(pred.dtype)
        return self.model.refine.refine(pred, uv.to(pred.dtype), root.to(pred.dtype), camera)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch["pose_2d"], batch["pose_3d"]
        refined = self.refine(self._target_frame(self.model(x)), x, batch)
        loss, parts = self.loss(*self._match(refined, y))
        bs = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=bs)
        return loss

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: Any) -> None:
        self._context = batch
        try:
            super()._eval_step(batch, metrics)
        finally:
            self._context = None

    def predict_eval(self, x: torch.Tensor) -> torch.Tensor:
        """The flip-averaged target-frame prediction refined with the un-flipped 2-D, its root
        then zeroed: ``(B, T, J, C_in) -> (B, 1, J, 3)``."""
        if self._context is None:
            raise RuntimeError("RefineModule.predict_eval needs the batch: use the eval steps")
        pred = self._target_frame(self(x))
        if self.hparams.test_flip:
            flipped = self._target_frame(self(flip_pose(x, self.flip_perm)))
            pred = (pred + flip_pose(flipped, self.flip_perm)) / 2
        pred = self.refine(pred, x, self._context)
        if self.hparams.zero_root_eval:
            pred = torch.cat([torch.zeros_like(pred[..., :1, :]), pred[..., 1:, :]], dim=-2)
        return pred

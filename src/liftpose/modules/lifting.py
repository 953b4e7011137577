"""The supervised lifting scheme: any lifter, a weighted list of losses, optimiser and schedule.

The lifter maps 2-D windows ``(B, T, J, C_in)`` to 3-D ``(B, T_out, J, 3)`` where ``T_out`` is 1
(centre frame) or ``T`` (the whole window). In training a lifter may instead return named
outputs ``{name: (B, T_out, J, 3)}`` (e.g. a per-frame auxiliary estimate beside the final
one); the loss is then ``sum_k output_weights[k] * loss(output_k, target)``, each output
compared with the centre frame or the whole window of the target, whichever it predicts.
Evaluation zeroes the predicted root joint (poses
are root-relative; the root is scored and contributes zero error) and, with ``test_flip``,
averages the prediction with the un-mirrored prediction of the mirrored input.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from liftpose.data.windows import flip_pose, target_position
from liftpose.losses import CompositeLoss
from liftpose.metrics import pose_metrics
from liftpose.modules.base import RunModule
from liftpose.utils.report import format_results_table, split_results


class LiftingModule(RunModule):
    """Supervised 2-D -> 3-D lifting.

    Args:
        model: the lifter (``nn.Module``), ``(B, T, J, C_in) -> (B, T_out, J, 3)``.
        loss: a :class:`~liftpose.losses.CompositeLoss` (or mapping of its terms).
        optimizer: partial constructor ``params -> Optimizer``.
        scheduler: partial constructor ``optimizer -> LRScheduler`` or None.
        scheduler_interval: ``epoch`` or ``step``.
        test_flip: test-time flip averaging.
        zero_root_eval: zero the root joint of predictions at evaluation.
        flip_permutation: left/right joint permutation (defaults to the data layout's).
        output_weights: weight of each named training output of the model (absent names
            weigh 1; a weight of 0 leaves that output unsupervised).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: CompositeLoss | dict,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        test_flip: bool = True,
        zero_root_eval: bool = True,
        flip_permutation: list[int] | None = None,
        output_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "loss"], logger=False)
        self.model = model
        self.loss = loss if isinstance(loss, nn.Module) else CompositeLoss(**loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.register_buffer(
            "flip_perm",
            torch.as_tensor(
                flip_permutation if flip_permutation is not None else [], dtype=torch.long
            ),
            persistent=False,
        )
        self.val_metrics: nn.Module | None = None
        self.test_metrics: nn.Module | None = None
        #: ``[epoch, seconds of training so far, val/mpjpe]`` after each validation (for the
        #: time-to-convergence columns of the paper tables)
        self.action_names: list[str] = []
        #: window alignment of the data (``centred`` or ``causal``): which frame of a sequence
        #: output is the target of a one-frame target
        self.window = "centred"

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            self.window = str(getattr(dm, "hparams", {}).get("window", "centred"))
            self.action_names = list(dm.action_names)
            if self.flip_perm.numel() == 0:
                self.flip_perm = torch.as_tensor(dm.skeleton.flip_permutation)
        if not self.action_names:
            raise RuntimeError("LiftingModule needs a datamodule with action_names")
        # PCK/AUC joint subset of the test set (e.g. the 14 joints of MPI-INF-3DHP)
        pck_joints = getattr(dm, "pck_joints", None) if dm is not None else None
        self.val_metrics = pose_metrics(self.action_names, pck_joints=pck_joints)
        self.test_metrics = pose_metrics(self.action_names, pck_joints=pck_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C_in) -> (B, T_out, J, 3)``."""
        return self.model(x)

    # ------------------------------------------------------------------ training
    def _match(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction and target over the same frames: the target frame (the centre; the last
        in a causal window) of whichever of the two is a sequence when the other is one frame.

        ``pred``: ``(B, 1 | T, J, 3)``; ``target``: ``(B, 1 | T, J, 3)``.
        """
        if pred.shape[1] != target.shape[1]:
            if target.shape[1] == 1:
                c = target_position(pred.shape[1], self.window)
                return pred[:, c : c + 1], target
            if pred.shape[1] == 1:
                c = target_position(target.shape[1], self.window)
                return pred, target[:, c : c + 1]
        return pred, target

    def training_loss(
        self, out: torch.Tensor | dict[str, torch.Tensor], y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted loss of the model output(s) against ``y: (B, 1 | T, J, 3)``, and its parts."""
        if isinstance(out, torch.Tensor):
            return self.loss(*self._match(out, y))
        weights = dict(self.hparams.output_weights or {})
        unknown = set(weights) - set(out)
        if unknown:
            raise ValueError(
                f"module.output_weights names {sorted(unknown)} but the model returns {sorted(out)}"
            )
        total = y.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for name, pred in out.items():
            w = float(weights.get(name, 1.0))
            if not w:
                continue
            value, terms = self.loss(*self._match(pred, y))
            total = total + w * value
            parts[f"{name}"] = value
            parts.update({f"{name}/{k}": v for k, v in terms.items()})
        return total, parts

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """``batch["pose_2d"]``: ``(B, T, J, 2)``; ``batch["pose_3d"]``: ``(B, 1 | T, J, 3)``."""
        x, y = batch["pose_2d"], batch["pose_3d"]
        total, parts = self.training_loss(self.model(x), y)
        bs = x.shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=bs)
        return total

    # ------------------------------------------------------------------ evaluation
    def predict_eval(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C_in)`` -> ``(B, T_out, J, 3)``, root zeroed, optionally flip-averaged."""
        pred = self(x)
        if self.hparams.test_flip:
            flipped = self(flip_pose(x, self.flip_perm))
            pred = (pred + flip_pose(flipped, self.flip_perm)) / 2
        if self.hparams.zero_root_eval:
            pred = torch.cat([torch.zeros_like(pred[..., :1, :]), pred[..., 1:, :]], dim=-2)
        return pred

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: nn.Module) -> None:
        """Score a batch (as in :meth:`training_step`); every output frame counts once, and
        frames that ``batch["valid"]`` ``(B, 1 | T)`` marks invalid never count."""
        x, y = batch["pose_2d"], batch["pose_3d"]
        pred, y = self._match(self.predict_eval(x), y)
        pred = pred.float()
        t = y.shape[1]
        centre = batch["frame"]
        frames = batch["frames"] if t > 1 else centre[:, None]
        # overlapping sequence outputs: keep, per frame, the window position nearest the
        # centre, then the window with the smallest centre (deterministic under DDP)
        offset = (torch.arange(t, device=y.device) - target_position(t, self.window)).abs()
        priority = offset[None, :] * (1 << 32) + centre[:, None]
        rows = [
            pred.reshape(-1, *pred.shape[2:]),
            y.reshape(-1, *y.shape[2:]),
            batch["action"].repeat_interleave(t),
            batch["seq"].repeat_interleave(t),
            frames.reshape(-1),
            priority.reshape(-1),
        ]
        valid = batch.get("valid")  # only where the split has invalid frames (no sync otherwise)
        if valid is not None:
            if valid.shape[1] != t:  # flags of a whole window, a centre-frame output
                c = target_position(valid.shape[1], self.window)
                valid = valid[:, c : c + 1]
            keep = valid.reshape(-1).bool()
            rows = [r[keep] for r in rows]
        metrics.update(*rows)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        with warnings.catch_warnings():  # MPJVE is undefined when val windows are strided
            warnings.simplefilter("ignore", UserWarning)
            res = {
                k: v
                for k, v in self.val_metrics.compute().items()
                if "/action/" not in k and torch.isfinite(v)
            }
        self.val_metrics.reset()
        values = {
            f"val/{k.replace('/avg', '')}": float(v) for k, v in res.items() if k.endswith("/avg")
        }
        self._log_synced(values, prog_bar=True)
        if "val/mpjpe" in values:
            self.record_validation(values["val/mpjpe"])

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        res = {k: float(v) for k, v in self.test_metrics.compute().items()}
        self.test_metrics.reset()
        self._log_synced({f"test/{k.replace('/avg', '')}": v for k, v in res.items()})
        if self.trainer.is_global_zero:
            from rich.console import Console

            Console().print(format_results_table(split_results(res), self.action_names))

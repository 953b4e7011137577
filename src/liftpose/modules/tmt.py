"""Two-step Mixed Training (TMT, tmt.txt): motion channels in the input during training only.

The lifter takes ``C = 2 + k`` channels per joint: the 2-D position and ``k`` motion channels.
Each training batch makes up to two updates, the parameters changing after each one:

* step 1 feeds ``[P2, 0]`` (the motion channels zero), as at inference;
* step 2 feeds ``[P2, M]`` with ``M`` computed from the ground truth of the window.

Inference always feeds zeros (:meth:`TMTModule.forward`), so the model never sees motion it
could not have in use. Variants (config):

``steps``
    ``tmt`` (step 1 then step 2, the paper's), ``tmt1`` (step 1 only), ``tmt2`` (step 2 only),
    ``none`` (no motion channels at all: the plain 2-channel baseline trained by this module).
``motion``
    ``v3``: 3-D velocity, eq. 1 (5 channels in all); ``v2``: 2-D velocity, eq. 3 (4);
    ``a3``: 3-D acceleration, eq. 4 (5); ``va3``: velocity and acceleration (8).

``velocity``
    the frame of the 3-D motion. ``root_relative`` (default): the targets' frame, camera axes
    with the root joint at the origin of every frame, so the root's own velocity is 0 and the
    other joints move relative to it (the paper's ``P_3``, "the ground truth 3D positions",
    are the lifter's targets, which are root-relative). ``global``: camera-frame positions,
    the root's trajectory included (``P_3 + root``; needs ``data.camera_context=true``).

Velocities are first differences over the frames of the window (``dT = 1``) with the first
frame's set to 0 (eq. 1), in metres per frame of the data (Human3.6M at 50 Hz: 1 m/s is 0.02
per frame; ``data.downsample`` makes a frame longer); the acceleration is the first difference
of that velocity, metres per frame squared, again 0 at the first frame. 3-D motion needs the
whole window's ground truth, so the data must give sequence targets (``data.target=sequence``;
a centre-frame model is then supervised on the centre frame). The paper's ``V2`` differentiates
the ground-truth 2-D; with exact 2-D input (its GT rows) that is the input itself, and with
detected input liftpose differentiates the detected 2-D the model receives (the exact 2-D is
not in the batch).
"""

from __future__ import annotations

from typing import Any

import torch

from liftpose.errors import ConfigError
from liftpose.modules.lifting import LiftingModule

__all__ = [
    "MOTION_CHANNELS",
    "STEPS",
    "VELOCITY_FRAMES",
    "TMTModule",
    "first_difference",
    "tmt_in_channels",
]

#: extra input channels of each motion variant
MOTION_CHANNELS: dict[str, int] = {"v3": 3, "v2": 2, "a3": 3, "va3": 6}
#: the training steps of each variant: ``zeros`` (step 1) and ``motion`` (step 2)
STEPS: dict[str, tuple[str, ...]] = {
    "tmt": ("zeros", "motion"),
    "tmt1": ("zeros",),
    "tmt2": ("motion",),
    "none": ("plain",),
}
#: the frame of the 3-D motion channels (see the module docstring)
VELOCITY_FRAMES = ("root_relative", "global")


def tmt_in_channels(motion: str, steps: str) -> int:
    """Input channels per joint the lifter needs: 2, plus the motion channels unless ``none``."""
    if steps not in STEPS:
        raise ConfigError(f"module.steps={steps!r}: one of {sorted(STEPS)}")
    if motion not in MOTION_CHANNELS:
        raise ConfigError(f"module.motion={motion!r}: one of {sorted(MOTION_CHANNELS)}")
    return 2 if steps == "none" else 2 + MOTION_CHANNELS[motion]


def first_difference(x: torch.Tensor) -> torch.Tensor:
    """``x[t] - x[t-1]`` over frames with 0 at the first frame: ``(B, T, J, C) -> (B, T, J, C)``."""
    return torch.cat([torch.zeros_like(x[:, :1]), x.diff(dim=1)], dim=1)


class TMTModule(LiftingModule):
    """TMT on any lifter ``(B, T, J, 2 + k) -> (B, T_out, J, 3)`` (see the module docstring).

    Args (beyond :class:`~liftpose.modules.lifting.LiftingModule`'s):
        steps: ``tmt``, ``tmt1``, ``tmt2`` or ``none``.
        motion: ``v3``, ``v2``, ``a3`` or ``va3``.
        velocity: ``root_relative`` or ``global`` (the frame of the 3-D motion).

    Optimisation is manual (two optimiser steps per batch for ``tmt``); the learning-rate
    schedule advances once per epoch (``scheduler_interval=epoch``) or once per batch
    (``step``), not once per optimiser step.
    """

    def __init__(
        self,
        *args: Any,
        steps: str = "tmt",
        motion: str = "v3",
        velocity: str = "root_relative",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if velocity not in VELOCITY_FRAMES:
            raise ConfigError(f"module.velocity={velocity!r}: one of {list(VELOCITY_FRAMES)}")
        self.input_channels = tmt_in_channels(motion, steps)
        self.automatic_optimization = False

    @property
    def steps(self) -> tuple[str, ...]:
        return STEPS[self.hparams.steps]

    @property
    def needs_sequence_target(self) -> bool:
        """Whether training reads the 3-D ground truth of every frame (3-D motion in step 2)."""
        return "motion" in self.steps and self.hparams.motion != "v2"

    # ------------------------------------------------------------------ inputs
    def motion_channels(
        self, x: torch.Tensor, y: torch.Tensor, root: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``M`` of step 2 from the 2-D input ``x: (B, T, J, 2)``, the root-relative 3-D ground
        truth ``y: (B, T, J, 3)`` of the whole window and, for ``velocity=global``, the
        camera-frame root positions ``root: (B, T, 3)``: ``(B, T, J, k)``, metres per frame."""
        kind = self.hparams.motion
        if kind == "v2":
            return first_difference(x)
        if y.shape[1] != x.shape[1]:
            raise ConfigError(
                "TMT's 3-D motion needs the ground truth of every frame of the window: set "
                "data.target=sequence"
            )
        if self.hparams.velocity == "global":
            if root is None:
                raise ConfigError(
                    "module.velocity=global needs the root trajectory: set data.camera_context=true"
                )
            y = y + root[:, :, None, :]
        v3 = first_difference(y)
        if kind == "v3":
            return v3
        a3 = first_difference(v3)
        return a3 if kind == "a3" else torch.cat([v3, a3], dim=-1)

    def model_input(
        self,
        x: torch.Tensor,
        step: str,
        y: torch.Tensor | None = None,
        root: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The lifter's input for ``step`` (``plain``, ``zeros`` or ``motion``) from the 2-D
        ``x: (B, T, J, 2)`` (and, for ``motion``, the targets ``y`` and the ``root`` positions
        of :meth:`motion_channels`): ``(B, T, J, input_channels)``."""
        if step == "plain":
            return x
        k = self.input_channels - 2
        if step == "zeros":
            return torch.cat([x, x.new_zeros(*x.shape[:-1], k)], dim=-1)
        assert y is not None
        return torch.cat([x, self.motion_channels(x, y, root).to(x.dtype)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: ``(B, T, J, 2)`` with zero motion channels -> ``(B, T_out, J, 3)``."""
        return self.model(self.model_input(x, "plain" if self.steps == ("plain",) else "zeros"))

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """``batch["pose_2d"]``: ``(B, T, J, 2)``; ``batch["pose_3d"]``: ``(B, T, J, 3)``."""
        x, y, root = batch["pose_2d"], batch["pose_3d"], batch.get("root_3d")
        opt = self.optimizers()
        bs = x.shape[0]
        total = x.new_zeros(())
        for step in self.steps:
            loss, parts = self.training_loss(self.model(self.model_input(x, step, y, root)), y)
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()
            total = total + loss.detach()
            self.log(f"train/{step}/loss", loss.detach(), batch_size=bs)
            for name, value in parts.items():
                self.log(f"train/{step}/{name}", value, batch_size=bs)
        self.log("train/loss", total / len(self.steps), prog_bar=True, batch_size=bs)
        sched = self.lr_schedulers()
        if sched is not None and self.hparams.scheduler_interval == "step":
            sched.step()
        return total

    def on_train_epoch_end(self) -> None:
        sched = self.lr_schedulers()
        if sched is not None and self.hparams.scheduler_interval == "epoch":
            sched.step()

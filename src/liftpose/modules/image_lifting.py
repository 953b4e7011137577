"""Training scheme of image-conditioned lifters (lifting-by-image.txt): stages, losses,
evaluation with flips, background attention and attention pictures.

The model (:class:`~liftpose.models.lifting_by_image.LiftingByImage`) maps a crop and its 2-D
keypoints to a coarse (Stage 1) and a refined (Stage 2) 3-D pose. ``stage`` chooses what trains:

``1``
    the encoder and Stage 1 on the coarse pose (the paper's first 20 epochs); Stage 2 is left
    out; evaluation scores the coarse pose.
``2``
    Stage 2 on the refined pose with Stage 1 frozen (no gradients, BatchNorm and dropout in eval
    mode); Stage 1 comes from ``init_ckpt``, a ``stage=1`` checkpoint (only its Stage-1 weights
    are read). Evaluation scores the refined pose.
``progressive``
    both, in one run: ``stage1_epochs`` epochs of stage 1, then stage 2 for the remaining epochs
    (the paper's progressive training). The schedule starts again at the initial learning rate
    when Stage 2 starts (the scheduler gets ``restarts=[stage1_epochs]`` when it takes that
    argument, as :class:`liftpose.optim.StepDecay` does). Under DDP use ``1`` then ``2``.
``joint``
    end to end: both heads supervised, weighted by ``output_weights`` (``{coarse: 0, fine: 1}``
    is Table 4's "end-to-end w/ fine supervision", ``{coarse: 1, fine: 1}`` "w/ both").

The loss of each supervised output is the configured ``loss`` (eq. 3: the squared joint error,
``mse``; it averages over joints where eq. 3 sums, a constant factor Adam is insensitive to).

The 2-D input (``keypoint_frame``): ``crop`` (default) gives the model the keypoints in the
crop's frame, normalised as ``x = (2u + 1) / W - 1``, ``y = (2v + 1) / W - H / W`` (so that a
mirrored crop mirrors ``x`` exactly), the frame of the image tokens; ``image`` gives the usual
normalised image coordinates (VideoPose3D's). The paper does not say which.

Evaluation zeroes the predicted root and, with ``test_flip``, averages with the un-mirrored
prediction of the mirrored crop and 2-D. At test time it also logs (in percent, over the test
crops) ``test/bg_attention``, the share of the last Stage-1 attention outside 30-pixel discs
around the 2-D input keypoints (:func:`liftpose.metrics.attention.background_attention`, radius
scaled to the crop height), and, where the data has body masks, ``test/bg_attention_mask``, the
share outside the body; and writes attention pictures of a few test crops to ``figures_dir``
(:func:`liftpose.utils.figures.attention_figure`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric

from liftpose.data.transforms2d import IMAGENET_MEAN, IMAGENET_STD
from liftpose.data.windows import flip_pose
from liftpose.errors import ConfigError, DataError
from liftpose.metrics.attention import background_attention, mask_background_attention
from liftpose.modules.lifting import LiftingModule

__all__ = ["STAGES", "ImageLiftingModule"]

STAGES = ("1", "2", "progressive", "joint")
#: the model parts whose weights a ``stage=2`` run takes from its ``init_ckpt``
STAGE1_PREFIXES = ("image_tokens.", "keypoint_tokens.", "stage1.", "coarse_head.")


class ImageLiftingModule(LiftingModule):
    """Image-conditioned lifting (module docstring).

    Args (beyond :class:`~liftpose.modules.lifting.LiftingModule`'s):
        stage: ``1``, ``2``, ``progressive`` or ``joint``.
        stage1_epochs: epochs of stage 1 in ``progressive`` (paper: 20).
        init_ckpt: a ``stage=1`` checkpoint whose Stage-1 weights a ``stage=2`` run starts from.
        keypoint_frame: ``crop`` or ``image``.
        background_radius: disc radius of the background rule, pixels of a
            ``background_reference_height``-high crop (paper: 30 at 256).
        background_reference_height: see ``background_radius``.
        figures_dir: folder of the test-time attention pictures (None: none); a relative path
            is taken under the trainer's ``default_root_dir`` (the run folder), so an evaluation
            of a checkpoint writes into its own run, never into the training run's.
        figure_frames: how many test crops get a picture (spread over the test set).
        figure_joints: joint names with an attention panel of their own.
    """

    input_channels = 3

    def __init__(
        self,
        model: nn.Module,
        loss: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        test_flip: bool = True,
        zero_root_eval: bool = True,
        flip_permutation: list[int] | None = None,
        output_weights: dict[str, float] | None = None,
        symmetric_bones: bool = False,
        stage: str | int = "progressive",
        stage1_epochs: int = 20,
        init_ckpt: str | None = None,
        keypoint_frame: str = "crop",
        background_radius: float = 30.0,
        background_reference_height: float = 256.0,
        figures_dir: str | None = None,
        figure_frames: int = 4,
        figure_joints: Sequence[str] = ("RKnee", "LElbow", "LWrist", "Head"),
    ) -> None:
        stage = str(stage)
        if stage not in STAGES:
            raise ConfigError(f"module.stage={stage!r}: one of {list(STAGES)}")
        if keypoint_frame not in ("crop", "image"):
            raise ConfigError(f"module.keypoint_frame={keypoint_frame!r}: 'crop' or 'image'")
        if stage == "progressive" and stage1_epochs < 1:
            raise ConfigError("module.stage1_epochs must be >= 1 for stage=progressive")
        if not hasattr(model, "freeze_stage1"):
            raise ConfigError(
                f"module=image_lifting trains image-conditioned lifters (model=lifting_by_image), "
                f"got {type(model).__name__}"
            )
        if stage == "2" and init_ckpt is None:
            raise ConfigError("module.stage=2 trains Stage 2 on a trained Stage 1: set "
                              "module.init_ckpt to a stage=1 checkpoint")  # fmt: skip
        super().__init__(
            model,
            loss,
            optimizer,
            scheduler=scheduler,
            scheduler_interval=scheduler_interval,
            test_flip=test_flip,
            zero_root_eval=zero_root_eval,
            flip_permutation=flip_permutation,
            output_weights=output_weights,
            symmetric_bones=symmetric_bones,
        )
        names = list(getattr(model, "joint_names", None) or _h36m_names())
        unknown = [j for j in figure_joints if j not in names]
        if unknown:
            raise ConfigError(f"module.figure_joints: unknown joints {unknown}; known: {names}")
        self.figure_joint_ids = [names.index(j) for j in figure_joints]
        self.test_background = MeanMetric()
        self.test_background_mask = MeanMetric()
        self._figure_every = 1
        self._active: int | str | None = None
        self.apply_stage(self.stage_at(0))

    # ------------------------------------------------------------------ stages
    def stage_at(self, epoch: int) -> int | str:
        """What trains in ``epoch``: 1, 2 or ``"joint"``."""
        stage = self.hparams.stage
        if stage == "progressive":
            return 1 if epoch < self.hparams.stage1_epochs else 2
        return stage if stage == "joint" else int(stage)

    @property
    def eval_stages(self) -> int:
        """Stages run at evaluation: the coarse pose (1) or the refined one (2)."""
        if self.hparams.stage == "progressive" and self._trainer is not None:
            if self.trainer.training or self.trainer.sanity_checking or self.trainer.validating:
                return 1 if self.stage_at(self.current_epoch) == 1 else 2
        return 1 if self.hparams.stage == "1" else 2

    def apply_stage(self, stage: int | str) -> None:
        """Freeze what ``stage`` does not train (Stage 1 in stage 2, Stage 2 in stage 1)."""
        if stage == self._active:
            return
        self.model.freeze_stage1(stage == 2)
        for m in self.model.stage2_modules():
            m.requires_grad_(stage != 1)
        self._active = stage

    def on_train_epoch_start(self) -> None:
        stage = self.stage_at(self.current_epoch)
        if self.hparams.stage == "progressive" and self.current_epoch == self.hparams.stage1_epochs:
            print(f"liftpose: epoch {self.current_epoch}: stage 2 (Stage 1 frozen)")
            self.model.start_stage2()
        self.apply_stage(stage)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        epoch = int(checkpoint.get("epoch", 0))
        self.apply_stage(self.stage_at(epoch + 1 if self.hparams.stage == "progressive" else 0))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and not hasattr(dm, "image_size"):
            raise ConfigError(
                f"{type(self).__name__} needs image crops with 2-D and 3-D (data=embedded_images"
                f" or data=h36m_images), got {type(dm).__name__}"
            )
        if stage == "fit":
            if self.hparams.stage == "2":
                self.load_stage1(self.hparams.init_ckpt)
                self.model.start_stage2()
            else:
                self.model.load_encoder()
            if self.hparams.stage == "progressive" and self.trainer.max_epochs is not None:
                if self.trainer.max_epochs <= self.hparams.stage1_epochs:
                    print(
                        f"liftpose: warning: trainer.max_epochs={self.trainer.max_epochs} <= "
                        f"module.stage1_epochs={self.hparams.stage1_epochs}: Stage 2 never trains"
                    )

    def load_stage1(self, path: str | Path) -> None:
        """The Stage-1 weights of a liftpose checkpoint (``init_ckpt``) into the model.

        Raises:
            DataError: the file is missing, truncated or damaged (its weight hash differs), not a
                liftpose checkpoint, or lacks Stage-1 weights.
        """
        from liftpose.utils.checkpoint import load_run_checkpoint

        state, _ = load_run_checkpoint(path)
        sd = {
            k[6:]: v
            for k, v in state["state_dict"].items()
            if k.startswith("model.") and k[6:].startswith(STAGE1_PREFIXES)
        }
        own = {k for k in self.model.state_dict() if k.startswith(STAGE1_PREFIXES)}
        missing = sorted(own - set(sd))
        if missing or not sd:
            raise DataError(path, "module.init_ckpt", f"no Stage-1 weights {missing[:3]}")
        try:
            self.model.load_state_dict(sd, strict=False)
        except RuntimeError as e:
            raise DataError(path, "module.init_ckpt", f"does not fit model (first: {e})") from e

    def configure_optimizers(self) -> Any:
        progressive = self.hparams.stage == "progressive"
        params = [p for p in self.parameters() if progressive or p.requires_grad]
        opt = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return opt
        kwargs = {}
        if progressive and _accepts(self.scheduler_factory, "restarts"):
            kwargs["restarts"] = [int(self.hparams.stage1_epochs)]
        sched = self.scheduler_factory(optimizer=opt, **kwargs)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": self.hparams.scheduler_interval},
        }

    # ------------------------------------------------------------------ inputs
    def keypoints(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's 2-D input ``(B, N, 2)`` (``keypoint_frame``)."""
        if self.hparams.keypoint_frame == "image":
            return batch["pose_2d_image"]
        h, w = batch["image"].shape[-2:]
        kp = batch["pose_2d"]
        offset = kp.new_tensor([1.0, h / w])
        return (2.0 * kp + 1.0) / w - offset

    def forward(self, image: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)``, normalised ``(B, N, 2)`` -> the evaluated pose ``(B, N, 3)``."""
        return self.model(image, keypoints, stages=self.eval_stages).final

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        stage = self.stage_at(self.current_epoch)
        out = self.model(batch["image"], self.keypoints(batch), stages=1 if stage == 1 else 2)
        y = batch["pose_3d"][:, None]
        if stage == "joint":
            total, parts = self.training_loss({k: v[:, None] for k, v in out.poses().items()}, y)
        else:
            total, parts = self.training_loss((out.coarse if stage == 1 else out.fine)[:, None], y)
        bs = y.shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=bs)
        return total

    # ------------------------------------------------------------------ evaluation
    def predict_batch(self, batch: dict[str, torch.Tensor], need_attention: bool = False):
        """``(pose (B, N, 3), output of the un-mirrored pass)``: root zeroed, flip-averaged with
        ``test_flip``."""
        image, kp = batch["image"], self.keypoints(batch)
        stages = self.eval_stages
        out = self.model(image, kp, stages=stages, need_attention=need_attention)
        pred = out.final
        if self.hparams.test_flip:
            # x -> -x (exactly, in the crop frame) with left and right swapped
            flipped = self.model(image.flip(-1), flip_pose(kp, self.flip_perm), stages=stages).final
            pred = (pred + flip_pose(flipped, self.flip_perm)) / 2
        return self.finish_eval(pred), out

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: nn.Module) -> None:
        testing = self._trainer is not None and self.trainer.testing
        pred, out = self.predict_batch(batch, need_attention=testing)
        frame = batch["frame"]
        metrics.update(pred.float(), batch["pose_3d"], batch["action"], batch["seq"], frame, frame)
        if not testing:
            return
        hw = tuple(batch["image"].shape[-2:])
        self.test_background.update(
            background_attention(
                out.attention,
                batch["pose_2d"],
                out.grid,
                hw,
                self.hparams.background_radius,
                self.hparams.background_reference_height,
            )
        )
        if "mask" in batch:
            self.test_background_mask.update(
                mask_background_attention(out.attention, batch["mask"], out.grid)
            )

    def on_test_epoch_start(self) -> None:
        n = self.trainer.num_test_batches
        total = int(n[0]) if isinstance(n, list | tuple) and n else 1
        self._figure_every = max(1, total // max(1, int(self.hparams.figure_frames)))

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)
        hp = self.hparams
        if (
            hp.figures_dir
            and hp.figure_frames > 0
            and batch_idx % self._figure_every == 0
            and batch_idx // self._figure_every < hp.figure_frames
            and self.trainer.is_global_zero
        ):
            self.write_figure(batch, self.figures_path() / f"test_{batch_idx:05d}.png")

    def figures_path(self) -> Path:
        """``figures_dir``, under the trainer's ``default_root_dir`` when relative."""
        path = Path(self.hparams.figures_dir)
        if path.is_absolute() or self._trainer is None:
            return path
        return Path(self.trainer.default_root_dir) / path

    @torch.no_grad()
    def write_figure(self, batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Attention pictures of the first crop of ``batch`` (Stage-1 attention, AFSM's kept
        tokens when Stage 2 runs) as a PNG at ``path``."""
        from liftpose.utils.figures import attention_figure, write_png

        image, kp = batch["image"][:1], self.keypoints(batch)[:1]
        out = self.model(image, kp, stages=self.eval_stages, need_attention=True)
        mean = image.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = image.new_tensor(IMAGENET_STD).view(3, 1, 1)
        rgb = ((image[0] * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
        kept = out.kept[0].cpu().numpy() if out.kept is not None else None
        h = image.shape[-2]
        fig = attention_figure(
            rgb.cpu().numpy(),
            batch["pose_2d"][0].cpu().numpy(),
            out.attention[0].cpu().numpy(),
            out.grid,
            self.figure_joint_ids,
            kept=kept if kept is not None and len(kept) < np.prod(out.grid) else None,
            radius=self.hparams.background_radius * h / self.hparams.background_reference_height,
        )
        return write_png(path, fig)

    def on_test_epoch_end(self) -> None:
        bg = {"test/bg_attention": 100.0 * float(self.test_background.compute())}
        if self.test_background_mask.update_count:
            bg["test/bg_attention_mask"] = 100.0 * float(self.test_background_mask.compute())
        self.test_background.reset()
        self.test_background_mask.reset()
        self._log_synced(bg)
        super().on_test_epoch_end()
        if self.trainer.is_global_zero:
            text = ", ".join(f"{k.split('/')[-1]} {v:.1f} %" for k, v in bg.items())
            print(f"background attention (last Stage-1 layer): {text}")


def _h36m_names() -> tuple[str, ...]:
    from liftpose.data.skeleton import H36M_JOINT_NAMES

    return H36M_JOINT_NAMES


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    """Whether ``factory`` (a partial or a class) takes a keyword ``name``."""
    target = getattr(factory, "func", factory)
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False

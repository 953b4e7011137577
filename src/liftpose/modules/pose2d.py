"""The top-down heatmap scheme: any image -> heatmap network, COCO keypoint AP evaluation.

The model maps person crops ``(B, 3, H, W)`` to joint heatmaps ``(B, K, H/4, W/4)``. Training
regresses Gaussian targets with the weighted mean squared error of HRNet (``0.5 x`` the mean
over joints of the MSE between ``w * pred`` and ``w * target``). Evaluation decodes the
heatmaps (arg-max with quarter-pixel refinement), optionally averaged with those of the
mirrored crop, maps the joints back to the image, and scores them with ``COCOeval`` after
rescoring and OKS-NMS (:class:`~liftpose.metrics.coco.CocoKeypointAP`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from liftpose.data.transforms2d import (
    COCO_FLIP_PERMUTATION,
    decode_heatmaps,
    flip_images,
    flip_test_average,
    heatmap_to_image,
)
from liftpose.metrics.coco import CocoKeypointAP
from liftpose.modules.base import RunModule

#: the metrics logged under ``val/`` and ``test/``
LOGGED_STATS: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR")


def joints_mse_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``0.5 * mean_k MSE(w_k * pred_k, w_k * target_k)`` over ``(B, K, H, W)`` heatmaps and
    ``weight (B, K)`` (None: all 1)."""
    diff = pred.float() - target.float()
    if weight is not None:
        diff = diff * weight.float()[..., None, None]
    return 0.5 * diff.pow(2).mean()


class HeatmapModule(RunModule):
    """Top-down 2-D pose estimation with heatmaps.

    Args:
        model: ``(B, 3, H, W) -> (B, K, H/4, W/4)`` heatmaps (e.g. HRNet).
        optimizer: partial constructor ``params -> Optimizer`` (default Adam, lr 1e-3).
        scheduler: partial constructor ``optimizer -> LRScheduler`` or None (default
            MultiStepLR at epochs 170 and 200, gamma 0.1).
        scheduler_interval: ``epoch`` or ``step``.
        flip_test: average with the heatmaps of the mirrored crop at evaluation.
        flip_shift: shift the un-mirrored heatmaps one pixel right (flip test).
        use_target_weight: weigh the loss of each joint by its target weight.
        flip_permutation: left/right joint permutation (default COCO's, or the datamodule's).
        vis_threshold: keypoint scores above it count in the person score.
        nms_threshold: OKS-NMS threshold per image (None: off).
        results_file: write the COCO results json of the test set here.

    Batches are dicts with ``image``, ``heatmaps``, ``target_weight``, ``centre``, ``scale``,
    ``score``, ``area`` and ``image_id`` (see :class:`~liftpose.data.coco.CocoKeypoints`); the
    datamodule gives the ground truth (``annotation_file(stage)``). Logged: ``train/loss``,
    ``val/loss``, ``val/AP`` ... ``test/AP``, ``test/AP50``, ``test/AP75``, ``test/APM``,
    ``test/APL``, ``test/AR``.
    """

    #: channels of the model input (RGB), for the shared data/model compatibility check
    input_channels = 3

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None | str = "default",
        scheduler_interval: str = "epoch",
        flip_test: bool = True,
        flip_shift: bool = True,
        use_target_weight: bool = True,
        flip_permutation: list[int] | None = None,
        vis_threshold: float = 0.2,
        nms_threshold: float | None = 0.9,
        results_file: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"], logger=False)
        self.model = model
        self.optimizer_factory = optimizer or functools.partial(torch.optim.Adam, lr=1e-3)
        if isinstance(scheduler, str):
            if scheduler != "default":
                raise ValueError(f"scheduler must be a partial, None or 'default': {scheduler!r}")
            scheduler = functools.partial(
                torch.optim.lr_scheduler.MultiStepLR, milestones=[170, 200], gamma=0.1
            )
        self.scheduler_factory = scheduler
        self.flip_permutation = list(
            flip_permutation if flip_permutation is not None else COCO_FLIP_PERMUTATION
        )
        self.val_metric: CocoKeypointAP | None = None
        self.test_metric: CocoKeypointAP | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "annotation_file"):
            raise RuntimeError("HeatmapModule needs a datamodule with annotation_file(stage)")
        hp = self.hparams
        if hp.flip_permutation is None and hasattr(dm, "skeleton"):
            self.flip_permutation = [int(i) for i in dm.skeleton.flip_permutation]
        kw = {"vis_threshold": hp.vis_threshold, "nms_threshold": hp.nms_threshold}
        if stage in ("fit", "validate"):
            self.val_metric = CocoKeypointAP(dm.annotation_file("val"), **kw)
        if stage == "test":
            self.test_metric = CocoKeypointAP(
                dm.annotation_file("test"), results_file=hp.results_file, **kw
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, K, H/4, W/4)``."""
        return self.model(images)

    # ------------------------------------------------------------------ training
    def loss(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = batch["target_weight"] if self.hparams.use_target_weight else None
        return joints_mse_loss(pred, batch["heatmaps"], weight)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.model(batch["image"]), batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    # ------------------------------------------------------------------ evaluation
    def predict_heatmaps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain heatmaps and the evaluation heatmaps (flip-averaged with ``flip_test``),
        float32 ``(B, K, h, w)`` each."""
        heatmaps = self.model(images).float()
        if not self.hparams.flip_test:
            return heatmaps, heatmaps
        flipped = self.model(flip_images(images)).float()
        avg = flip_test_average(heatmaps, flipped, self.flip_permutation, self.hparams.flip_shift)
        return heatmaps, avg

    def predict_keypoints(
        self, images: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints ``(B, K, 3)`` in image pixels with their scores, and the plain heatmaps."""
        heatmaps, avg = self.predict_heatmaps(images)
        coords, maxvals = decode_heatmaps(avg)
        h, w = avg.shape[-2:]
        xy = heatmap_to_image(coords, centre.float(), scale.float(), (w, h))
        return torch.cat([xy, maxvals[..., None]], dim=-1), heatmaps

    def _eval_step(self, batch: dict[str, torch.Tensor], metric: CocoKeypointAP, prefix: str):
        keypoints, heatmaps = self.predict_keypoints(
            batch["image"], batch["centre"], batch["scale"]
        )
        metric.update(batch["image_id"], keypoints, batch["score"], batch["area"])
        if "heatmaps" in batch:
            self.log(
                f"{prefix}/loss",
                self.loss(heatmaps, batch),
                batch_size=batch["image"].shape[0],
                sync_dist=True,
            )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metric, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metric, "test")

    def on_validation_epoch_end(self) -> None:
        res = self.val_metric.compute()
        self.val_metric.reset()
        values = {f"val/{k}": float(res[k]) for k in LOGGED_STATS}
        self._log_synced({"val/AP": values["val/AP"]}, prog_bar=True)
        self._log_synced({k: v for k, v in values.items() if k != "val/AP"})
        self.record_validation(values["val/AP"])

    def on_test_epoch_end(self) -> None:
        res = self.test_metric.compute()
        self.test_metric.reset()
        self._log_synced({f"test/{k}": float(res[k]) for k in LOGGED_STATS})

"""COCO keypoint evaluation of top-down predictions: rescoring, OKS-NMS and ``COCOeval``.

Predictions are per person candidate (one crop each): keypoints ``(N, K, 3)`` in image pixels
with the heatmap peak values as third column, the score of the candidate's box and the area of
its crop. :func:`keypoint_results` turns them into COCO results (person score = box score x the
mean peak value of the keypoints whose peak exceeds 0.2; candidates of an image whose OKS with a
higher-scoring candidate exceeds 0.9 are dropped), :func:`evaluate_keypoints` runs ``COCOeval``
on them, and :class:`CocoKeypointAP` does both as a ``torchmetrics.Metric`` that gathers the
candidates of every process. Map heatmap coordinates to image pixels first with
:func:`liftpose.data.transforms2d.heatmap_to_image`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from liftpose.data.coco import PERSON_CATEGORY, load_coco
from liftpose.data.transforms2d import COCO_SIGMAS
from liftpose.utils.io import atomic_path

#: ``COCOeval.stats`` of the keypoint task, in order.
COCO_KEYPOINT_STATS: tuple[str, ...] = (
    "AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL",
)  # fmt: skip


def oks_matrix(
    a: np.ndarray,
    b: np.ndarray,
    area_a: np.ndarray,
    area_b: np.ndarray,
    sigmas: tuple[float, ...] | np.ndarray = COCO_SIGMAS,
    vis_threshold: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity of every pair of two sets of poses.

    ``OKS = mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` with ``s^2`` the mean of the two areas.
    With ``vis_threshold``, only joints scoring above it in both poses count (a pair with none
    has OKS 0).

    Args:
        a: ``(N, K, 2 | 3)``; b: ``(M, K, 2 | 3)`` (third column: joint scores).
        area_a: ``(N,)``; area_b: ``(M,)`` areas in squared pixels.

    Returns:
        ``(N, M)`` float64.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, K)
    s2 = (np.asarray(area_a, np.float64)[:, None] + np.asarray(area_b, np.float64)[None]) / 2
    e = np.exp(-d2 / var / (s2[..., None] + np.spacing(1)) / 2)
    if vis_threshold is None:
        return e.mean(-1)
    both = (a[:, None, :, 2] > vis_threshold) & (b[None, :, :, 2] > vis_threshold)
    n = both.sum(-1)
    return np.where(n > 0, (e * both).sum(-1) / np.maximum(n, 1), 0.0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = 0.9,
    vis_threshold: float | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression by OKS of one image's candidates.

    Args:
        keypoints: ``(N, K, 3)``; scores: ``(N,)``; areas: ``(N,)``.
        threshold: drop candidates whose OKS with a kept, higher-scoring one exceeds this.

    Returns:
        Indices of the kept candidates, highest score first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) <= 1:
        return order
    oks = oks_matrix(
        keypoints[order], keypoints[order], areas[order], areas[order], vis_threshold=vis_threshold
    )
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= oks[i] > threshold
    return np.asarray(keep, dtype=np.int64)


def rescore(
    keypoints: np.ndarray, box_scores: np.ndarray, vis_threshold: float = 0.2
) -> np.ndarray:
    """Person scores: ``box score x mean of the keypoint scores above vis_threshold`` (0 when
    none is), ``keypoints (N, K, 3)``, ``box_scores (N,)`` -> ``(N,)``."""
    s = np.asarray(keypoints[..., 2], dtype=np.float64)
    valid = s > vis_threshold
    mean = (s * valid).sum(-1) / np.maximum(valid.sum(-1), 1)
    return np.asarray(box_scores, dtype=np.float64) * mean


def keypoint_results(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    vis_threshold: float = 0.2,
    nms_threshold: float | None = 0.9,
    nms_vis_threshold: float | None = None,
) -> list[dict[str, Any]]:
    """COCO results (``image_id``, ``category_id``, ``keypoints``, ``score``) of person
    candidates, rescored and OKS-NMS'd per image.

    Args:
        image_ids: ``(N,)``; keypoints: ``(N, K, 3)`` image pixels and joint scores;
        box_scores: ``(N,)``; areas: ``(N,)`` candidate (crop) areas, for OKS-NMS.
        vis_threshold: keypoint scores above it count in the person score.
        nms_threshold: OKS-NMS threshold (None: no NMS).
        nms_vis_threshold: count only joints scoring above it in the OKS of the NMS (None: all).
    """
    image_ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    scores = rescore(keypoints, np.asarray(box_scores).reshape(-1), vis_threshold)
    order = np.argsort(image_ids, kind="stable")
    ids_sorted = image_ids[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    results = []
    for s, e in zip(starts, ends):
        idx = order[s:e]
        if nms_threshold is not None:
            idx = idx[
                oks_nms(keypoints[idx], scores[idx], areas[idx], nms_threshold, nms_vis_threshold)
            ]
        for i in idx:
            results.append(
                {
                    "image_id": int(image_ids[i]),
                    "category_id": PERSON_CATEGORY,
                    "keypoints": [round(float(v), 3) for v in keypoints[i].reshape(-1)],
                    "score": float(scores[i]),
                }
            )
    return results


def write_results(path: str | Path, results: list[dict[str, Any]]) -> Path:
    """Write COCO results json atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results))
    return Path(path)


def evaluate_keypoints(
    gt: Any, results: list[dict[str, Any]] | str | Path, results_file: str | Path | None = None
) -> dict[str, float]:
    """``COCOeval(gt, results, "keypoints")``: AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM,
    ARL (``-1`` where COCO defines none, e.g. no medium persons; all 0 without results).

    Args:
        gt: a ``pycocotools.coco.COCO`` or the path of a keypoint annotation file.
        results: COCO results (a list, or the path of a results json).
        results_file: also write the results here (when ``results`` is a list).
    """
    from pycocotools.cocoeval import COCOeval

    if isinstance(gt, (str, Path)):
        gt = load_coco(gt)
    if isinstance(results, (str, Path)):
        with open(results) as f:
            results = json.load(f)
    elif results_file is not None:
        write_results(results_file, results)
    if not results:
        return dict.fromkeys(COCO_KEYPOINT_STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(COCO_KEYPOINT_STATS, ev.stats)}


class CocoKeypointAP(Metric):
    """COCO keypoint AP of top-down predictions, exact under DDP (candidates of all processes
    are gathered; the duplicates of a padded distributed sampler fall to OKS-NMS).

    Args:
        ann_file: ground-truth keypoint annotation file.
        vis_threshold: keypoint scores above it count in the person score.
        nms_threshold: OKS-NMS threshold per image (None: off).
        results_file: write the COCO results json here at each :meth:`compute`.

    ``update(image_ids (B,), keypoints (B, K, 3), scores (B,), areas (B,))``: keypoints in image
    pixels with their heatmap peak values, box scores, crop areas. ``compute()`` returns
    ``{AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL}`` as 0-d tensors in percent (0-100,
    as the papers print them; :func:`evaluate_keypoints` keeps pycocotools' 0-1).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        ann_file: str | Path,
        vis_threshold: float = 0.2,
        nms_threshold: float | None = 0.9,
        results_file: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ann_file = Path(ann_file)
        self.vis_threshold = vis_threshold
        self.nms_threshold = nms_threshold
        self.results_file = results_file
        self._gt: Any = None
        for name in ("image_ids", "keypoints", "scores", "areas"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        image_ids: torch.Tensor,
        keypoints: torch.Tensor,
        scores: torch.Tensor,
        areas: torch.Tensor,
    ) -> None:
        self.image_ids.append(image_ids.detach().reshape(-1).long())
        self.keypoints.append(keypoints.detach().float())
        self.scores.append(scores.detach().reshape(-1).float())
        self.areas.append(areas.detach().reshape(-1).float())

    @property
    def gt(self) -> Any:
        """The ground truth (``pycocotools.coco.COCO``), loaded once."""
        if self._gt is None:
            self._gt = load_coco(self.ann_file)
        return self._gt

    def results(self) -> list[dict[str, Any]]:
        """The COCO results of the candidates seen so far."""
        if isinstance(self.image_ids, list) and not self.image_ids:
            return []
        arrays = [
            dim_zero_cat(s).cpu().numpy()
            for s in (self.image_ids, self.keypoints, self.scores, self.areas)
        ]
        return keypoint_results(
            *arrays, vis_threshold=self.vis_threshold, nms_threshold=self.nms_threshold
        )

    def compute(self) -> dict[str, torch.Tensor]:
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        write = self.results_file if not dist or torch.distributed.get_rank() == 0 else None
        res = evaluate_keypoints(self.gt, self.results(), write)
        # percent, as the papers print them (and as PCK and AUC are kept); NaN where COCO
        # defines none (its -1, e.g. APL without large persons), so no -100 reaches a table
        return {
            k: torch.tensor(100.0 * v if v >= 0 else float("nan"), dtype=torch.float32)
            for k, v in res.items()
        }

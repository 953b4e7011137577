"""3D pose metrics: functional torch code and DDP-exact torchmetrics classes.

* :mod:`liftpose.metrics.functional`: ``mpjpe``, ``p_mpjpe``, ``n_mpjpe``, ``mpjve``, ``pck``,
  ``auc`` (0-d means) and their ``*_per_sample`` variants, plus ``procrustes_align`` and
  ``scale_align``.
* :mod:`liftpose.metrics.pose`: ``MPJPE``, ``PMPJPE``, ``NMPJPE``, ``MPJVE``, ``PCK``, ``AUC``
  (all :class:`PoseMetric`) and :func:`pose_metrics`, a ``MetricCollection`` of the six.
"""

from liftpose.metrics import functional
from liftpose.metrics.functional import (
    DEFAULT_AUC_THRESHOLDS,
    auc,
    auc_per_sample,
    joint_errors,
    mpjpe,
    mpjpe_per_sample,
    mpjve,
    mpjve_per_sample,
    n_mpjpe,
    n_mpjpe_per_sample,
    p_mpjpe,
    p_mpjpe_per_sample,
    pck,
    pck_per_sample,
    procrustes_align,
    scale_align,
)
from liftpose.metrics.pose import AUC, MPJPE, MPJVE, NMPJPE, PCK, PMPJPE, PoseMetric, pose_metrics

__all__ = [
    "AUC",
    "DEFAULT_AUC_THRESHOLDS",
    "MPJPE",
    "MPJVE",
    "NMPJPE",
    "PCK",
    "PMPJPE",
    "PoseMetric",
    "auc",
    "auc_per_sample",
    "functional",
    "joint_errors",
    "mpjpe",
    "mpjpe_per_sample",
    "mpjve",
    "mpjve_per_sample",
    "n_mpjpe",
    "n_mpjpe_per_sample",
    "p_mpjpe",
    "p_mpjpe_per_sample",
    "pck",
    "pck_per_sample",
    "pose_metrics",
    "procrustes_align",
    "scale_align",
]

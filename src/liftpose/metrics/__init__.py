"""3D pose metrics: functional torch code and DDP-exact torchmetrics classes.

* :mod:`liftpose.metrics.functional`: ``mpjpe``, ``p_mpjpe``, ``n_mpjpe``, ``mpjve``, ``pck``,
  ``auc`` (0-d means) and their ``*_per_sample`` variants, plus ``procrustes_align`` and
  ``scale_align``.
* :mod:`liftpose.metrics.pose`: ``MPJPE``, ``PMPJPE``, ``NMPJPE``, ``MPJVE``, ``PCK``, ``AUC``
  (all :class:`PoseMetric`) and :func:`pose_metrics`, a ``MetricCollection`` of the six.
"""

from liftpose.metrics import functional
from liftpose.metrics.functional import *  # noqa: F403 (the public formulas, see its __all__)
from liftpose.metrics.pose import AUC, MPJPE, MPJVE, NMPJPE, PCK, PMPJPE, PoseMetric, pose_metrics

__all__ = [
    *functional.__all__,
    "functional",
    "AUC",
    "MPJPE",
    "MPJVE",
    "NMPJPE",
    "PCK",
    "PMPJPE",
    "PoseMetric",
    "pose_metrics",
]

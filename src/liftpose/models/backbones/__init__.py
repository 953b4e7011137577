"""Image backbones of the 2-D pose estimators (heatmap networks)."""

from liftpose.models.backbones.hrnet import HRNet, HRNetOfficial, hrnet_w32, hrnet_w48

__all__ = ["HRNet", "HRNetOfficial", "hrnet_w32", "hrnet_w48"]

"""``liftpose.models.hrnet``: :mod:`liftpose.models.backbones.hrnet` under the name that
:func:`liftpose.models.official.get_official` imports for ``"hrnet"`` (it registers the
official-weights converter)."""

from liftpose.models.backbones.hrnet import HRNet, HRNetOfficial, hrnet_w32, hrnet_w48

__all__ = ["HRNet", "HRNetOfficial", "hrnet_w32", "hrnet_w48"]

"""Lifting models, their shared blocks and official-weight loading."""

from liftpose.models.blocks import (
    SLOT_NAMES,
    Attention,
    Block,
    DropPath,
    Mlp,
    make_slots,
)
from liftpose.models.official import (
    OfficialConverter,
    available_official,
    from_official,
    register_official,
)
from liftpose.models.poseformer import PoseFormer

__all__ = [
    "SLOT_NAMES",
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "OfficialConverter",
    "PoseFormer",
    "available_official",
    "from_official",
    "make_slots",
    "register_official",
]

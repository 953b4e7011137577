"""LightningModules: one per training scheme."""

from liftpose.modules.image_lifting import ImageLiftingModule
from liftpose.modules.lifting import LiftingModule
from liftpose.modules.refine import RefineModule
from liftpose.modules.tmt import TMTModule

__all__ = ["ImageLiftingModule", "LiftingModule", "RefineModule", "TMTModule"]

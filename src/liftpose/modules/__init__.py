"""LightningModules: one per training scheme."""

from liftpose.modules.lifting import LiftingModule

__all__ = ["LiftingModule"]

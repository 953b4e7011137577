"""liftpose: 2D-to-3D human pose estimation research suite (Lightning + Hydra)."""

__version__ = "0.1.0"

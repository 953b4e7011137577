"""A lifter checkpoint, and the one function that lifts a 2-D sequence to 3-D.

:func:`lift_sequence` is the only place the system turns normalised 2-D into 3-D: windows of
the lifter's length over the sequence (centred on each frame with edge padding, or ending at
each frame for a causal lifter), the run's evaluation path (flip averaging, root zeroed), the
target frame of each window kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from liftpose.errors import DataError

#: The lifter ``liftpose-infer`` uses when none is given (built by ``make ready-lifter``).
READY_LIFTER = Path(__file__).resolve().parent / "assets" / "ready_lifter.ckpt"


@dataclass
class Lifter:
    """A lifting module in eval mode with what inference needs from its run config.

    Attributes:
        module: the :class:`~liftpose.modules.lifting.LiftingModule` (eval mode).
        cfg: the run config the checkpoint carries.
        path: the checkpoint file.
        frames: the window length ``T`` (receptive field).
        fps: the frame rate of its training data (``data.fps``; 50 when the run predates it).
        window: ``centred`` or ``causal`` (``data.window``).
        num_joints: joints per pose (17).
    """

    module: torch.nn.Module
    cfg: object
    path: Path
    frames: int
    fps: float
    window: str
    num_joints: int

    @property
    def name(self) -> str:
        model = str(self.cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]
        return f"{model} ({self.frames} frames, {self.window}, {self.fps:g} fps): {self.path}"


def load_lifter(path: str | Path, option: str = "--lifter") -> Lifter:
    """Load a lifter checkpoint written by ``liftpose-train``.

    Raises ``DataError`` for a missing or unreadable file (naming the command's ``option``),
    a file that is not a liftpose checkpoint, and a checkpoint that is not a lifter (e.g. a
    ``module=heatmap`` detector).
    """
    from liftpose.modules.build import build
    from liftpose.modules.lifting import LiftingModule
    from liftpose.utils.checkpoint import load_run_checkpoint

    p = Path(path)
    if not p.is_file():
        raise DataError(p, option, "checkpoint not found")
    try:
        ckpt, cfg = load_run_checkpoint(p)
    except DataError:
        raise
    except Exception as e:  # not a torch file, truncated
        raise DataError(p, option, f"unreadable checkpoint ({type(e).__name__})") from e
    target = str(cfg.get("module", {}).get("_target_", ""))
    if "data" not in cfg or "receptive_field" not in cfg.data:
        raise DataError(p, "liftpose_config.module", f"not a lifter ({target or 'no module'})")
    if cfg.get("module", {}).get("compile"):  # one sequence: compiling costs more than it saves
        cfg.module.compile = False
    try:
        _, module = build(cfg)
    except Exception as e:
        raise DataError(p, "liftpose_config", f"cannot rebuild the run ({e})") from e
    if not isinstance(module, LiftingModule):
        raise DataError(p, "liftpose_config.module", f"not a lifter ({target})")
    if target.endswith("RefineModule"):
        raise DataError(
            p, "liftpose_config.module", "a refinement stage needs each window's camera and "
            "ground-truth root depth, which photos and videos do not have: use its first stage"
        )  # fmt: skip
    module.load_state_dict(ckpt["state_dict"])
    module.window = str(cfg.data.get("window", "centred"))
    return Lifter(
        module=module.eval(),
        cfg=cfg,
        path=p,
        frames=int(cfg.data.receptive_field),
        fps=float(cfg.data.get("fps", 50.0)),
        window=str(cfg.data.get("window", "centred")),
        num_joints=int(getattr(module.model, "num_joints", 17)),
    )


@torch.no_grad()
def lift_sequence(lifter: Lifter, pose_2d: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Normalised 2-D ``(T, J, 2)`` (screen coordinates, the image width mapped to [-1, 1])
    -> 3-D ``(T, J, 3)``, camera frame, root-relative, metres (the training data's units).

    The test's own path, :meth:`~liftpose.modules.lifting.LiftingModule.predict_sequence`: the
    lifter's whole-sequence pass where it has one (VideoPose3D's dilated convolutions, MixSTE's
    chunks), else the window of each frame (the run's ``data.window`` alignment, edge padding
    at the ends); flip averaging and the zeroed root as the run's evaluation.
    """
    lifter.module.window = lifter.window
    pred = lifter.module.predict_sequence(np.asarray(pose_2d, np.float32), None, batch_size)
    return pred.float().cpu().numpy()

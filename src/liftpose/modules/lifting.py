"""The supervised lifting scheme: any lifter, a weighted list of losses, optimiser and schedule.

The lifter maps 2-D windows ``(B, T, J, C_in)`` to 3-D ``(B, T_out, J, 3)`` where ``T_out`` is 1
(centre frame) or ``T`` (the whole window). In training a lifter may instead return named
outputs ``{name: (B, T_out, J, 3)}`` (e.g. a per-frame auxiliary estimate beside the final
one); the loss is then ``sum_k output_weights[k] * loss(output_k, target)``, each output
compared with the centre frame or the whole window of the target, whichever it predicts.
Evaluation zeroes the predicted root joint (poses
are root-relative; the root is scored and contributes zero error) and, with ``test_flip``,
averages the prediction with the un-mirrored prediction of the mirrored input; with
``symmetric_bones`` it then gives each left bone and its right twin their mean length
(:func:`symmetrise_bones`, from the zeroed root outwards).

The test lifts whole sequences (:meth:`LiftingModule.predict_sequence`, also behind
``liftpose-infer``) the way each model is evaluated in its paper, without recomputing what
overlapping windows share: VideoPose3D's dilated convolutions run once over the edge-padded
sequence; seq2seq models (MixSTE) take consecutive non-overlapping chunks; the other lifters
take a centred window per frame, batched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from liftpose.data.windows import flip_pose, target_position, window_offsets
from liftpose.losses import CompositeLoss
from liftpose.metrics import pose_metrics
from liftpose.modules.base import RunModule
from liftpose.utils.report import format_results_table, split_results


def symmetrise_bones(pose: torch.Tensor, flip_permutation: list[int]) -> torch.Tensor:
    """Give each left bone and its right twin their mean length, directions kept.

    Args:
        pose: ``(..., J, 3)`` Human3.6M-17 or -16 joints (any units).
        flip_permutation: ``(J,)`` left/right joint permutation; a bone's twin is the bone of
            the mirrored child joint (central bones are their own twins and keep their length).

    Returns:
        ``(..., J, 3)``: from the root outwards, each joint at its bone's new length from its
        (already placed) parent, along the bone's direction; the root is unchanged.
    """
    from liftpose.data.skeleton import H36M16, H36M17

    num_joints = int(pose.shape[-2])  # a plain int also while tracing for export
    skel = {17: H36M17, 16: H36M16}.get(num_joints)
    if skel is None or len(flip_permutation) != num_joints:
        raise ValueError(
            f"symmetric_bones needs Human3.6M-17 or -16 joints and their flip permutation, "
            f"got {num_joints} joints and {len(flip_permutation)} entries"
        )
    edges = skel.edges()  # (child, parent), parents first
    index = {child: e for e, (child, _) in enumerate(edges)}
    twin = [index[flip_permutation[child]] for child, _ in edges]
    vec = torch.stack([pose[..., c, :] - pose[..., p, :] for c, p in edges], dim=-2)
    length = torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
    mean = (length + length[..., twin, :]) / 2
    unit = vec / length.clamp_min(1e-9)
    joints = [pose[..., 0, :]] + [None] * (num_joints - 1)
    for e, (c, p) in enumerate(edges):
        joints[c] = joints[p] + mean[..., e, :] * unit[..., e, :]
    return torch.stack(joints, dim=-2)


class LiftingModule(RunModule):
    """Supervised 2-D -> 3-D lifting.

    Args:
        model: the lifter (``nn.Module``), ``(B, T, J, C_in) -> (B, T_out, J, 3)``.
        loss: a :class:`~liftpose.losses.CompositeLoss` (or mapping of its terms).
        optimizer: partial constructor ``params -> Optimizer``.
        scheduler: partial constructor ``optimizer -> LRScheduler`` or None.
        scheduler_interval: ``epoch`` or ``step``.
        test_flip: test-time flip averaging.
        zero_root_eval: zero the root joint of predictions at evaluation.
        flip_permutation: left/right joint permutation (defaults to the data layout's).
        output_weights: weight of each named training output of the model (absent names
            weigh 1; a weight of 0 leaves that output unsupervised).
        compile: run the model through :func:`torch.compile` (``nn.Module.compile``: the
            state dict keeps its keys): ``False``, ``True`` or the keyword arguments of
            ``torch.compile`` (e.g. ``{mode: max-autotune, dynamic: false}``). Compilation
            happens at the first call of each input shape (seconds to minutes); the
            experiment configs enable it where ``make bench`` measured it faster.
        symmetric_bones: at evaluation (metrics, ``liftpose-infer``), give every left bone and
            its right twin their mean length, each bone keeping its direction
            (:func:`symmetrise_bones`; Human3.6M-17/-16 joints). People's left and right limbs
            are equally long; a lifter guessing depth from one photo need not make them so.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: CompositeLoss | dict,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        test_flip: bool = True,
        zero_root_eval: bool = True,
        flip_permutation: list[int] | None = None,
        output_weights: dict[str, float] | None = None,
        compile: bool | dict[str, Any] = False,
        symmetric_bones: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "loss"], logger=False)
        self.model = model
        if compile:
            model.compile(**(dict(compile) if isinstance(compile, Mapping) else {}))
        self.loss = loss if isinstance(loss, nn.Module) else CompositeLoss(**loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.register_buffer(
            "flip_perm",
            torch.as_tensor(
                flip_permutation if flip_permutation is not None else [], dtype=torch.long
            ),
            persistent=False,
        )
        self._flip_list: list[int] | None = None  # flip_perm as a list (symmetric_bones)
        self.val_metrics: nn.Module | None = None
        self.test_metrics: nn.Module | None = None
        #: ``[epoch, seconds of training so far, val/mpjpe]`` after each validation (for the
        #: time-to-convergence columns of the paper tables)
        self.action_names: list[str] = []
        #: window alignment of the data (``centred`` or ``causal``): which frame of a sequence
        #: output is the target of a one-frame target
        self.window = "centred"

    #: windows (or chunks) per forward call of :meth:`predict_sequence` in the test loop; the
    #: datamodule's ``test_batch_size`` when there is one
    sequence_batch_size: int = 1024

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            self.window = str(getattr(dm, "hparams", {}).get("window", "centred"))
            self.sequence_batch_size = int(
                getattr(dm.hparams, "test_batch_size", self.sequence_batch_size)
            )
            self.action_names = list(dm.action_names)
            if self.flip_perm.numel() == 0:
                self.flip_perm = torch.as_tensor(dm.skeleton.flip_permutation)
                self._flip_list = None
        if not self.action_names:
            raise RuntimeError("LiftingModule needs a datamodule with action_names")
        # PCK/AUC joint subset of the test set (e.g. the 14 joints of MPI-INF-3DHP)
        pck_joints = getattr(dm, "pck_joints", None) if dm is not None else None
        self.val_metrics = pose_metrics(self.action_names, pck_joints=pck_joints)
        self.test_metrics = pose_metrics(self.action_names, pck_joints=pck_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C_in) -> (B, T_out, J, 3)``."""
        return self.model(x)

    # ------------------------------------------------------------------ training
    def _match(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction and target over the same frames: the target frame (the centre; the last
        in a causal window) of whichever of the two is a sequence when the other is one frame.

        ``pred``: ``(B, 1 | T, J, 3)``; ``target``: ``(B, 1 | T, J, 3)``.
        """
        if pred.shape[1] != target.shape[1]:
            if target.shape[1] == 1:
                c = target_position(pred.shape[1], self.window)
                return pred[:, c : c + 1], target
            if pred.shape[1] == 1:
                c = target_position(target.shape[1], self.window)
                return pred, target[:, c : c + 1]
        return pred, target

    def training_loss(
        self, out: torch.Tensor | dict[str, torch.Tensor], y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted loss of the model output(s) against ``y: (B, 1 | T, J, 3)``, and its parts."""
        if isinstance(out, torch.Tensor):
            return self.loss(*self._match(out, y))
        weights = dict(self.hparams.output_weights or {})
        unknown = set(weights) - set(out)
        if unknown:
            raise ValueError(
                f"module.output_weights names {sorted(unknown)} but the model returns {sorted(out)}"
            )
        total = y.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for name, pred in out.items():
            w = float(weights.get(name, 1.0))
            if not w:
                continue
            value, terms = self.loss(*self._match(pred, y))
            total = total + w * value
            parts[f"{name}"] = value
            parts.update({f"{name}/{k}": v for k, v in terms.items()})
        return total, parts

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """``batch["pose_2d"]``: ``(B, T, J, 2)``; ``batch["pose_3d"]``: ``(B, 1 | T, J, 3)``."""
        x, y = batch["pose_2d"], batch["pose_3d"]
        total, parts = self.training_loss(self.model(x), y)
        bs = x.shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=bs)
        return total

    # ------------------------------------------------------------------ evaluation
    def predict_eval(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C_in)`` -> ``(B, T_out, J, 3)``, root zeroed, optionally flip-averaged."""
        pred = self(x)
        if self.hparams.test_flip:
            flipped = self(flip_pose(x, self.flip_perm))
            pred = (pred + flip_pose(flipped, self.flip_perm)) / 2
        return self.finish_eval(pred)

    def finish_eval(self, pred: torch.Tensor) -> torch.Tensor:
        """The evaluated pose ``(..., J, 3)`` after flip averaging: root zeroed
        (``zero_root_eval``), then, from that root, equal twin bones (``symmetric_bones``)."""
        if self.hparams.zero_root_eval:
            pred = torch.cat([torch.zeros_like(pred[..., :1, :]), pred[..., 1:, :]], dim=-2)
        if self.hparams.get("symmetric_bones", False):
            if self._flip_list is None:  # a Python list once, not a device sync per batch
                self._flip_list = self.flip_perm.tolist()
            pred = symmetrise_bones(pred, self._flip_list)
        return pred

    @property
    def sequence_path(self) -> str:
        """How :meth:`predict_sequence` lifts a sequence with this module's model: ``dilated``
        (a model with ``valid_convolutions``: one pass over any length), ``chunks`` (a
        seq2seq model, ``output_mode = "sequence"``, with centred windows: consecutive
        windows) or ``windows`` (a window per frame, centred or causal as :attr:`window`)."""
        if getattr(self.model, "valid_convolutions", False):
            return "dilated"
        if getattr(self.model, "output_mode", None) == "sequence" and self.window == "centred":
            return "chunks"
        return "windows"

    @torch.no_grad()
    def predict_sequence(
        self,
        pose_2d: torch.Tensor,
        frames: torch.Tensor | None = None,
        batch_size: int | None = None,
        max_frames: int = 16384,
    ) -> torch.Tensor:
        """Lift one whole sequence in eval mode, as the test does.

        Args:
            pose_2d: ``(T, J, 2)`` normalised 2-D keypoints of one sequence (any ``T >= 1``;
                a NumPy array is accepted).
            frames: ``(F,)`` local frames to return (default: all ``T``). The ``windows`` path
                lifts only these; the others lift the whole sequence and select.
            batch_size: windows (or chunks) per forward call (default
                :attr:`sequence_batch_size`).
            max_frames: output frames per pass of the ``dilated`` path (longer sequences run
                in segments that overlap by ``RF - 1`` input frames; results are unchanged).

        Returns:
            ``(F, J, 3)`` camera-frame, root-relative 3-D in the units of the training target
            (metres for the embedded and Human3.6M data), root zeroed and flip-averaged as
            :meth:`predict_eval` (``test_flip``, ``zero_root_eval``), on the module's device.

        By :attr:`sequence_path`:

        * ``dilated`` (VideoPose3D): the sequence, edge-padded by ``RF // 2`` frames on each
          side (``RF - 1`` on the left for :attr:`window` ``causal``), goes through
          ``forward_sequence`` once; output ``t`` is the window of frame ``t``, equal to the
          per-window path (``forward_1f``) within float rounding (the official
          ``UnchunkedGenerator`` evaluation).
        * ``chunks`` (MixSTE, centred windows): windows of ``T_w`` frames starting at ``0,
          T_w, 2 T_w, ...``; the last one ends at the last frame (its frames already predicted
          keep the earlier chunk's pose); a sequence shorter than ``T_w`` is padded with its
          last frame (the official ``eval_data_prepare``).
        * ``windows`` (every other lifter, and seq2seq lifters on causal windows): the window
          of each frame with edge padding (centred, or ending at the frame), its target-frame
          prediction (the :class:`~liftpose.data.datamodule.WindowDataset` windows).
        """
        was_training = self.training
        self.eval()
        try:
            x = torch.as_tensor(pose_2d, dtype=torch.float32, device=self.device)
            if x.ndim != 3:
                raise ValueError(
                    f"predict_sequence takes one sequence (T, J, C), got {tuple(x.shape)}"
                )
            idx = None if frames is None else torch.as_tensor(frames, device=x.device).long()
            bs = int(batch_size or self.sequence_batch_size)
            rf = int(getattr(self.model, "receptive_field", 1))
            path = self.sequence_path
            if path == "windows":
                return self._lift_windows(x, idx, rf, bs)
            out = (
                self._lift_dilated(x, rf, max_frames)
                if path == "dilated"
                else (self._lift_chunks(x, rf, bs))
            )
            return out if idx is None else out[idx]
        finally:
            self.train(was_training)

    def _lift_windows(
        self, x: torch.Tensor, idx: torch.Tensor | None, rf: int, bs: int
    ) -> torch.Tensor:
        """Edge-padded windows ``(B, RF, J, C)`` of the frames ``idx`` (centred, or ending at
        the frame for causal windows), batched; each window's target-frame prediction."""
        t = x.shape[0]
        centres = torch.arange(t, device=x.device) if idx is None else idx
        offsets = window_offsets(rf, allow_even=True, window=self.window).to(x.device)
        out = []
        for s in range(0, len(centres), bs):
            rows = (centres[s : s + bs, None] + offsets).clamp(0, t - 1)
            pred = self.predict_eval(x[rows])
            out.append(pred[:, target_position(pred.shape[1], self.window)])
        return torch.cat(out) if out else x.new_zeros(0, *self._out_shape(x))

    def _out_shape(self, x: torch.Tensor) -> tuple[int, int]:
        return (int(getattr(self.model, "out_joints", None) or x.shape[1]), 3)

    def _lift_dilated(self, x: torch.Tensor, rf: int, max_frames: int) -> torch.Tensor:
        """One pass of valid convolutions over the edge-padded sequence (``RF - 1`` frames in
        all: half on each side, or all on the left for causal windows)."""
        t = x.shape[0]
        left = rf - 1 if self.window == "causal" else rf // 2
        right = rf - 1 - left
        xp = torch.cat([x[:1].expand(left, -1, -1), x, x[-1:].expand(right, -1, -1)])
        seg = max(int(max_frames), 1)
        out = [
            self.predict_eval(xp[None, s : min(s + seg, t) + rf - 1])[0] for s in range(0, t, seg)
        ]
        return torch.cat(out)

    def _lift_chunks(self, x: torch.Tensor, rf: int, bs: int) -> torch.Tensor:
        """Consecutive ``RF``-frame chunks, the last one ending at the last frame."""
        t = x.shape[0]
        if t < rf:  # pad with the last frame (official eval_data_prepare)
            x = torch.cat([x, x[-1:].expand(rf - t, -1, -1)])
        n = x.shape[0]
        starts = list(range(0, n - rf + 1, rf))
        if starts[-1] + rf < n:
            starts.append(n - rf)
        rows = torch.tensor(starts, device=x.device)[:, None] + torch.arange(rf, device=x.device)
        preds = torch.cat(
            [self.predict_eval(x[rows[s : s + bs]]) for s in range(0, len(starts), bs)]
        )
        out = preds[: n // rf].reshape(-1, *preds.shape[2:])  # the non-overlapping chunks
        if len(out) < n:  # the frames only the last chunk covers
            out = torch.cat([out, preds[-1, len(out) - n :]])
        return out[:t]

    def _sequence_step(self, batch: dict[str, torch.Tensor], metrics: nn.Module) -> None:
        """Score one whole sequence of a :class:`~liftpose.data.datamodule.SequenceDataset`
        batch at its ``frames``."""
        frames = batch["frames"][0]
        pred = self.predict_sequence(batch["pose_2d"][0], frames).float()
        n = len(frames)
        metrics.update(
            pred,
            batch["pose_3d"][0][frames],
            batch["action"].expand(n),
            batch["seq"].expand(n),
            frames,
            torch.zeros_like(frames),
        )

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: nn.Module) -> None:
        """Score a batch (as in :meth:`training_step`); every output frame counts once, and
        frames that ``batch["valid"]`` ``(B, 1 | T)`` marks invalid never count."""
        if "sequence" in batch:
            return self._sequence_step(batch, metrics)
        x, y = batch["pose_2d"], batch["pose_3d"]
        pred, y = self._match(self.predict_eval(x), y)
        pred = pred.float()
        t = y.shape[1]
        centre = batch["frame"]
        frames = batch["frames"] if t > 1 else centre[:, None]
        # overlapping sequence outputs: keep, per frame, the window position nearest the
        # centre, then the window with the smallest centre (deterministic under DDP)
        offset = (torch.arange(t, device=y.device) - target_position(t, self.window)).abs()
        priority = offset[None, :] * (1 << 32) + centre[:, None]
        rows = [
            pred.reshape(-1, *pred.shape[2:]),
            y.reshape(-1, *y.shape[2:]),
            batch["action"].repeat_interleave(t),
            batch["seq"].repeat_interleave(t),
            frames.reshape(-1),
            priority.reshape(-1),
        ]
        valid = batch.get("valid")  # only where the split has invalid frames (no sync otherwise)
        if valid is not None:
            if valid.shape[1] != t:  # flags of a whole window, a centre-frame output
                c = target_position(valid.shape[1], self.window)
                valid = valid[:, c : c + 1]
            keep = valid.reshape(-1).bool()
            rows = [r[keep] for r in rows]
        metrics.update(*rows)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        with warnings.catch_warnings():  # MPJVE is undefined when val windows are strided
            warnings.simplefilter("ignore", UserWarning)
            res = {
                k: v
                for k, v in self.val_metrics.compute().items()
                if "/action/" not in k and torch.isfinite(v)
            }
        self.val_metrics.reset()
        values = {
            f"val/{k.replace('/avg', '')}": float(v) for k, v in res.items() if k.endswith("/avg")
        }
        self._log_synced(values, prog_bar=True)
        if "val/mpjpe" in values:
            self.record_validation(values["val/mpjpe"])

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        res = {k: float(v) for k, v in self.test_metrics.compute().items()}
        self.test_metrics.reset()
        self._log_synced({f"test/{k.replace('/avg', '')}": v for k, v in res.items()})
        if self.trainer.is_global_zero:
            from rich.console import Console

            Console().print(format_results_table(split_results(res), self.action_names))

"""torchmetrics classes for 3D pose evaluation, exact under DDP.

Every metric keeps the raw predictions and targets of the whole evaluation set as ``cat``
list states, together with the action, sequence and frame index of every sample. ``compute``
then

1. gathers the states of all processes (torchmetrics does this before ``compute``),
2. drops duplicate ``(seq, frame)`` samples, keeping the first occurrence (Lightning's
   ``DistributedSampler`` pads the last batch by repeating samples, so without this step the
   result would depend on the number of processes),
3. sorts by ``(seq, frame)``,
4. computes one error per frame (or per pair of consecutive frames for :class:`MPJVE`) with
   :mod:`liftpose.metrics.functional`, on poses multiplied by ``scale``,
5. reduces the errors in float64, in a fixed order, so the result is identical to a
   single-process run (and independent of batch order and batch splitting).

``compute`` returns a flat ``dict`` of 0-d float32 tensors whose keys carry the metric's
``name``, e.g. for :class:`MPJPE`::

    {"mpjpe/avg": ..., "mpjpe/frames": ..., "mpjpe/action/Walking": ..., ...}

* ``<name>/avg``: mean over the actions present of the per-action mean (the "Avg" column of the
  Human3.6M tables),
* ``<name>/frames``: mean over all (deduplicated) frames,
* ``<name>/action/<action name>``: per-action mean, for each action present.

Because the keys are unique and already prefixed, a :class:`~torchmetrics.MetricCollection`
(see :func:`pose_metrics`) returns the union of these dicts unchanged (plus the collection's own
``prefix``/``postfix``, e.g. ``prefix="val/"`` gives ``val/mpjpe/avg``). Log it with
``self.log_dict(metrics.compute())`` and call ``metrics.reset()`` afterwards.

Empty state: if ``compute`` is called before any ``update`` (or, for :class:`MPJVE`, when no two
consecutive frames of one sequence were seen), it does not raise; it returns
``{"<name>/avg": nan, "<name>/frames": nan}`` (no action keys) and emits a warning, so that a
validation loop with nothing to evaluate does not abort training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import rank_zero_warn

from liftpose.metrics import functional as F

__all__ = ["AUC", "MPJPE", "MPJVE", "NMPJPE", "PCK", "PMPJPE", "PoseMetric", "pose_metrics"]

#: Samples per chunk when computing per-frame errors in ``compute`` (bounds peak memory).
_CHUNK = 1 << 16


class _Frames(NamedTuple):
    """Deduplicated samples sorted by (seq, frame); poses already multiplied by ``scale``."""

    pred: Tensor  # (M, J, 3)
    target: Tensor  # (M, J, 3)
    action: Tensor  # (M,) long
    seq: Tensor  # (M,) long
    frame: Tensor  # (M,) long


def _cat(state: list[Tensor] | Tensor) -> Tensor | None:
    """A ``cat`` state is a list before synchronisation and a tensor after it."""
    if isinstance(state, Tensor):
        return state
    return torch.cat(state) if state else None


def _chunked(fn: Callable[[Tensor, Tensor], Tensor], pred: Tensor, target: Tensor) -> Tensor:
    """``fn`` over ``(M, J, 3)`` inputs in chunks of ``_CHUNK`` samples -> ``(M,)``."""
    if pred.shape[0] <= _CHUNK:
        return fn(pred, target)
    return torch.cat([fn(p, t) for p, t in zip(pred.split(_CHUNK), target.split(_CHUNK))])


class PoseMetric(Metric):
    """Base class: stores poses and sample ids, deduplicates, reduces per action.

    Subclasses set ``name`` and implement :meth:`_per_sample` (``(M, J, 3)`` x2 -> ``(M,)``),
    or override :meth:`_errors` for errors that are not per frame.

    Args:
        action_names: name of each action id; ``action`` values passed to ``update`` index it.
        scale: factor applied to the poses before computing the errors (default 1000: inputs in
            metres, results in millimetres). PCK/AUC thresholds are in the scaled unit.
        name: key prefix of the results (default: the class's ``name``, e.g. ``"mpjpe"``).
        kwargs: forwarded to :class:`torchmetrics.Metric` (``sync_on_compute``,
            ``process_group``, ``dist_sync_fn``, ...).
    """

    name: ClassVar[str] = "pose"  # overridden per class; an instance may shadow it
    is_differentiable: ClassVar[bool] = False
    higher_is_better: ClassVar[bool | None] = False
    full_state_update: ClassVar[bool] = False
    plot_lower_bound: ClassVar[float | None] = 0.0

    pred: list[Tensor] | Tensor
    target: list[Tensor] | Tensor
    action: list[Tensor] | Tensor
    seq: list[Tensor] | Tensor
    frame: list[Tensor] | Tensor
    priority: list[Tensor] | Tensor

    def __init__(
        self,
        action_names: Sequence[str],
        scale: float = 1000.0,
        *,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(action_names, str) or not all(isinstance(a, str) for a in action_names):
            raise ValueError(f"`action_names` must be a sequence of str, got {action_names!r}")
        if len(set(action_names)) != len(action_names):
            raise ValueError(f"`action_names` must be unique, got {list(action_names)}")
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0, got {scale}")
        self.action_names: tuple[str, ...] = tuple(action_names)
        self.scale = float(scale)
        if name is not None:
            self.name = name  # type: ignore[misc]
        for state in ("pred", "target", "action", "seq", "frame", "priority"):
            self.add_state(state, default=[], dist_reduce_fx="cat")

    # ------------------------------------------------------------------ update
    def update(
        self,
        pred: Tensor,
        target: Tensor,
        action: Tensor,
        seq: Tensor,
        frame: Tensor,
        priority: Tensor | None = None,
    ) -> None:
        """Store a batch.

        Args:
            pred: ``(N, J, 3)`` predicted poses (unscaled, e.g. metres).
            target: ``(N, J, 3)`` ground-truth poses, same unit.
            action: ``(N,)`` integer action id, index into ``action_names``.
            seq: ``(N,)`` integer sequence id.
            frame: ``(N,)`` integer frame index within the sequence; ``(seq, frame)`` must
                identify a sample uniquely (repeats are treated as duplicates and dropped).
            priority: optional ``(N,)`` integer; of several entries for one ``(seq, frame)`` the
                one with the lowest priority is kept (e.g. the window position closest to the
                centre, for overlapping sequence outputs). Ties keep the first one seen, so
                give every occurrence a distinct priority where the order of updates may vary
                (under DDP it does).
        """
        cls = type(self).__name__
        F._check_poses(pred, target, f"{cls}.update")
        n = pred.shape[0]
        if priority is None:
            priority = torch.zeros(n, dtype=torch.long, device=pred.device)
        for arg, x in (("action", action), ("seq", seq), ("frame", frame), ("priority", priority)):
            if not isinstance(x, Tensor) or x.shape != (n,):
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"{cls}.update: `{arg}` must have shape (N,) = ({n},), got {shape}"
                )
            if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"{cls}.update: `{arg}` must be an integer tensor, got {x.dtype}")
        if isinstance(self.pred, list) and self.pred and self.pred[0].shape[1] != pred.shape[1]:
            raise ValueError(
                f"{cls}.update: number of joints changed from {self.pred[0].shape[1]} "
                f"to {pred.shape[1]} (pred {tuple(pred.shape)})"
            )
        # Half/bfloat16 outputs (mixed precision) are widened so thresholds stay exact enough.
        dtype = torch.promote_types(pred.dtype, torch.float32)
        self.pred.append(pred.detach().to(dtype))
        self.target.append(target.detach().to(dtype))
        # Ids live with the poses (gathering under NCCL needs them on the GPU too).
        self.action.append(action.detach().to(pred.device, torch.long))
        self.seq.append(seq.detach().to(pred.device, torch.long))
        self.frame.append(frame.detach().to(pred.device, torch.long))
        self.priority.append(priority.detach().to(pred.device, torch.long))

    # ------------------------------------------------------------------ compute
    def _frames(self) -> _Frames | None:
        """Gathered states, deduplicated by (seq, frame) (lowest priority kept) and sorted."""
        pred = _cat(self.pred)
        if pred is None or pred.numel() == 0:
            return None
        target = _cat(self.target)
        action, seq, frame, prio = (
            _cat(s).long() for s in (self.action, self.seq, self.frame, self.priority)
        )
        # Lexicographic (seq, frame, priority) order from stable sorts; no overflow-prone key.
        order = torch.argsort(prio, stable=True)
        order = order[torch.argsort(frame[order], stable=True)]
        order = order[torch.argsort(seq[order], stable=True)]
        s, f = seq[order], frame[order]
        first = torch.ones_like(s, dtype=torch.bool)
        first[1:] = (s[1:] != s[:-1]) | (f[1:] != f[:-1])
        idx = order[first]
        action = action[idx]
        if bool(((action < 0) | (action >= len(self.action_names))).any()):
            bad = action[(action < 0) | (action >= len(self.action_names))].unique().tolist()
            raise ValueError(
                f"{type(self).__name__}: action ids {bad} outside [0, {len(self.action_names)}) "
                f"(action_names has {len(self.action_names)} entries)"
            )
        return _Frames(
            pred=pred[idx] * self.scale,
            target=target[idx] * self.scale,
            action=action,
            seq=seq[idx],
            frame=frame[idx],
        )

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred, target: (M, J, 3)`` (scaled) -> ``(M,)`` error per sample."""
        raise NotImplementedError

    def _errors(self, frames: _Frames) -> tuple[Tensor, Tensor]:
        """-> ``(errors (K,), action (K,))``: one error per evaluated unit and its action."""
        return _chunked(self._per_sample, frames.pred, frames.target), frames.action

    def _nan_result(self, why: str) -> dict[str, Tensor]:
        if self.update_called:  # otherwise torchmetrics has already warned
            rank_zero_warn(f"{type(self).__name__}: {why}; returning NaN.", UserWarning)
        nan = torch.tensor(float("nan"), device=self.device)
        return {f"{self.name}/avg": nan, f"{self.name}/frames": nan.clone()}

    def compute(self) -> dict[str, Tensor]:
        """-> ``{"<name>/avg", "<name>/frames", "<name>/action/<action>"...}``, 0-d float32."""
        frames = self._frames()
        if frames is None:
            return self._nan_result("no samples were given to update()")
        errors, action = self._errors(frames)
        if errors.numel() == 0:
            return self._nan_result("nothing to evaluate (no consecutive frames)")
        # Reduce on the CPU in float64: exact, deterministic, and cheap (K scalars).
        err = errors.detach().to("cpu", torch.float64)
        act = action.cpu()
        per_action = {a: err[act == a].mean() for a in act.unique().tolist()}  # sorted ids
        out = {
            f"{self.name}/avg": torch.stack(list(per_action.values())).mean(),
            f"{self.name}/frames": err.mean(),
        }
        for a, value in per_action.items():
            out[f"{self.name}/action/{self.action_names[a]}"] = value
        return {k: v.to(self.device, torch.float32) for k, v in out.items()}


class MPJPE(PoseMetric):
    """Mean per-joint position error (protocol #1), in the scaled unit (mm)."""

    name: ClassVar[str] = "mpjpe"

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mpjpe_per_sample(pred, target)


class PMPJPE(PoseMetric):
    """Procrustes-aligned MPJPE (protocol #2), in the scaled unit (mm)."""

    name: ClassVar[str] = "p_mpjpe"

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.p_mpjpe_per_sample(pred, target)


class NMPJPE(PoseMetric):
    """Scale-normalised MPJPE, in the scaled unit (mm)."""

    name: ClassVar[str] = "n_mpjpe"

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.n_mpjpe_per_sample(pred, target)


class MPJVE(PoseMetric):
    """Mean per-joint velocity error, in the scaled unit per frame (mm/frame).

    Only pairs of samples of the same ``seq`` whose ``frame`` indices differ by exactly 1 are
    used; each pair counts once, under the action of its later frame. "frames" is the mean over
    all such pairs.
    """

    name: ClassVar[str] = "mpjve"

    def _errors(self, frames: _Frames) -> tuple[Tensor, Tensor]:
        consecutive = (frames.seq[1:] == frames.seq[:-1]) & (frames.frame.diff() == 1)  # (M-1,)
        vel_pred = frames.pred.diff(dim=0)[consecutive]  # (K, J, 3)
        vel_target = frames.target.diff(dim=0)[consecutive]
        errors = _chunked(F.mpjpe_per_sample, vel_pred, vel_target)
        return errors, frames.action[1:][consecutive]


class _PercentMetric(PoseMetric):
    """Base of the percentage metrics: higher is better, 0-100, optional joint subset."""

    higher_is_better: ClassVar[bool | None] = True
    plot_upper_bound: ClassVar[float | None] = 100.0

    def __init__(
        self,
        action_names: Sequence[str],
        scale: float = 1000.0,
        *,
        joints: Sequence[int] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(action_names, scale, name=name, **kwargs)
        self.joints = None if joints is None else tuple(int(j) for j in joints)


class PCK(_PercentMetric):
    """Percentage (0-100) of joints with error strictly below ``threshold`` (scaled unit,
    default 150 mm; the MPI-INF-3DHP rule, :func:`~liftpose.metrics.functional.pck_per_sample`).

    Args:
        action_names, scale, name, kwargs: see :class:`PoseMetric`.
        threshold: in the scaled unit (mm by default).
        joints: optional subset of joint indices to evaluate (e.g. MPI-INF-3DHP's 14 joints).
    """

    name: ClassVar[str] = "pck"

    def __init__(self, *args: Any, threshold: float = 150.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = float(threshold)

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.pck_per_sample(pred, target, self.threshold, self.joints)


class AUC(_PercentMetric):
    """Area under the PCK curve (0-100), thresholds 0, 5, ..., 150 (scaled unit) by default;
    each PCK counts errors strictly below its threshold (a perfect prediction scores 30/31).

    Args:
        action_names, scale, name, kwargs: see :class:`PoseMetric`.
        thresholds: in the scaled unit (mm by default).
        joints: optional subset of joint indices to evaluate (e.g. MPI-INF-3DHP's 14 joints).
    """

    name: ClassVar[str] = "auc"

    def __init__(
        self, *args: Any, thresholds: Sequence[float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        thr = F.DEFAULT_AUC_THRESHOLDS if thresholds is None else thresholds
        self.thresholds = tuple(float(t) for t in thr)
        if not self.thresholds:
            raise ValueError("AUC: `thresholds` must be non-empty")

    def _per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.auc_per_sample(pred, target, self.thresholds, self.joints)


def pose_metrics(
    action_names: Sequence[str],
    scale: float = 1000.0,
    *,
    pck_threshold: float = 150.0,
    auc_thresholds: Sequence[float] | None = None,
    pck_joints: Sequence[int] | None = None,
    prefix: str | None = None,
    **kwargs: Any,
) -> MetricCollection:
    """All six pose metrics in one :class:`~torchmetrics.MetricCollection`.

    ``compute_groups=True``: after the first ``update`` the six metrics share one set of states
    (one copy of the poses). The collection's members are keyed by ``name`` (``"mpjpe"``,
    ``"p_mpjpe"``, ``"n_mpjpe"``, ``"mpjve"``, ``"pck"``, ``"auc"``), and ``compute()`` returns
    one flat dict: ``{prefix}<name>/avg``, ``{prefix}<name>/frames`` and
    ``{prefix}<name>/action/<action>`` for each metric.

    Args:
        action_names: see :class:`PoseMetric`.
        scale: see :class:`PoseMetric`.
        pck_threshold: PCK threshold, scaled unit.
        auc_thresholds: AUC thresholds, scaled unit (default 0, 5, ..., 150).
        pck_joints: joint subset for PCK and AUC (default all).
        prefix: optional prefix of every key, e.g. ``"val/"``.
        kwargs: forwarded to every metric (:class:`torchmetrics.Metric` options).
    """
    metrics: list[PoseMetric] = [
        MPJPE(action_names, scale, **kwargs),
        PMPJPE(action_names, scale, **kwargs),
        NMPJPE(action_names, scale, **kwargs),
        MPJVE(action_names, scale, **kwargs),
        PCK(action_names, scale, threshold=pck_threshold, joints=pck_joints, **kwargs),
        AUC(action_names, scale, thresholds=auc_thresholds, joints=pck_joints, **kwargs),
    ]
    return MetricCollection({m.name: m for m in metrics}, prefix=prefix, compute_groups=True)

"""VideoPose3D: residual temporal convolutions lifting a 2D pose sequence to 3D poses.

Pavllo et al., "3D human pose estimation in video with temporal convolutions and
semi-supervised training", CVPR 2019. Numerically equivalent to the official ``TemporalModel``
and ``TemporalModelOptimized1f`` (facebookresearch/VideoPose3D, ``common/model.py``), whose
weights load through :func:`liftpose.models.official.from_official` as ``"videopose3d"``.

Frames are the convolution axis and the ``J * C_in`` joint coordinates of a frame its input
channels. With filter widths ``(w_0, ..., w_n)`` the receptive field is ``RF = prod(w_i)``::

    (B, T, J, C_in) --flatten--> (B, J*C_in, T)
        --embed_conv (width w_0), embed_norm, ReLU, dropout--> (B, C, T - w_0 + 1)
        --blocks[i-1], i = 1..n: conv (width w_i, dilation w_0*...*w_{i-1}), norm1, ReLU, dropout,
                                 proj (1x1), norm2, ReLU, dropout, + cropped residual-->
        --head (1x1)--> (B, J_out*3, T - RF + 1) --> (B, T - RF + 1, J_out, 3)

All convolutions are unpadded ("valid"), so output ``t`` depends on input frames
``t .. t + RF - 1`` and a sequence of any length ``T >= RF`` is lifted in one pass, one pose per
window. When ``T == RF`` (training on single windows) the dilated convolutions compute many
intermediate frames that the single output never uses; :meth:`VideoPose3D.forward_1f` instead
runs the same weights as strided convolutions (stride = width), as the official
``TemporalModelOptimized1f`` that ``run.py`` trains with. The outputs agree (the official
fixtures differ by exactly 0.0); only train-mode BatchNorm statistics are taken over the frames
each path computes, so the strided path is also the one that matches official training.

Facts kept from the official code: BatchNorm ``momentum=0.1`` (``run.py`` decays it to 0.001
over training, see :meth:`VideoPose3D.set_bn_momentum`) and default ``eps=1e-5``; convolutions
without bias except the head; in-place ReLU; PyTorch default initialisation, modules created in
the official order (the same seed gives the same initial weights); odd filter widths only.

``causal=True`` changes no convolution: only the residual crop of each block moves from the
centre of its window to the end (``shift = w_i // 2 * dilation``), and the data pipeline must
pad the sequence so that output ``t`` is the pose of input frame ``t + RF - 1`` (official
``run.py`` shifts its windows by :attr:`VideoPose3D.causal_shift` ``= RF // 2`` frames).
``dense=True`` (ablation) replaces each dilated convolution by an undilated one of the same
span (width ``(w_i - 1) * dilation + 1``).

Names that differ from the official code (official -> ours):

* constructor: ``num_joints_in`` -> ``num_joints``, ``in_features`` -> ``in_chans``,
  ``num_joints_out`` -> ``out_joints``.
* modules: ``expand_conv`` -> ``embed_conv``, ``expand_bn`` -> ``embed_norm``,
  ``layers_conv.{2k}`` -> ``blocks.{k}.conv``, ``layers_bn.{2k}`` -> ``blocks.{k}.norm1``,
  ``layers_conv.{2k+1}`` -> ``blocks.{k}.proj``, ``layers_bn.{2k+1}`` -> ``blocks.{k}.norm2``,
  ``shrink`` -> ``head``.
* ``TemporalModel`` and ``TemporalModelOptimized1f`` are one class
  (:meth:`~VideoPose3D.forward_sequence` and :meth:`~VideoPose3D.forward_1f`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from liftpose.models.official import (
    OfficialConverter,
    StateDict,
    _translate_kwargs,
    register_official,
    rename_prefixes,
)

__all__ = ["TemporalBlock", "VideoPose3D", "VideoPose3DOfficial"]

#: BatchNorm momentum of the official model at the start of training.
BN_MOMENTUM = 0.1


class TemporalBlock(nn.Module):
    """Residual block: wide dilated conv and 1x1 conv, each followed by BN, ReLU and dropout.

    Args:
        channels: feature channels ``C``.
        width: filter width ``w`` (odd) of the temporal convolution.
        dilation: its dilation ``d`` (the receptive field of everything before this block).
        dropout: dropout probability after each activation.
        causal: crop the residual at the end of each window instead of its centre.
        dense: use an undilated convolution spanning the same ``(w - 1) * d + 1`` frames.

    ``forward(x: (B, C, T)) -> (B, C, T - 2 * pad)`` with ``pad = (w - 1) * d // 2``;
    ``forward_strided(x: (B, C, T)) -> (B, C, T // w)`` (not for ``dense``).
    """

    def __init__(
        self,
        channels: int,
        width: int,
        dilation: int,
        dropout: float = 0.25,
        causal: bool = False,
        dense: bool = False,
    ) -> None:
        super().__init__()
        self.width = width
        self.dilation = dilation
        self.dense = dense
        self.pad = (width - 1) * dilation // 2
        # Official: shift = w // 2 * d, i.e. the residual is the last frame of each window.
        self.shift = width // 2 * dilation if causal else 0
        self.strided_shift = width // 2 if causal else 0
        if dense:
            self.conv = nn.Conv1d(channels, channels, 2 * self.pad + 1, bias=False)
        else:
            self.conv = nn.Conv1d(channels, channels, width, dilation=dilation, bias=False)
        self.norm1 = nn.BatchNorm1d(channels, momentum=BN_MOMENTUM)
        self.proj = nn.Conv1d(channels, channels, 1, bias=False)
        self.norm2 = nn.BatchNorm1d(channels, momentum=BN_MOMENTUM)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def _tail(self, x: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        """After the temporal conv: ``(B, C, T'), (B, C, T') -> (B, C, T')``."""
        x = self.drop(self.act(self.norm1(x)))
        return res + self.drop(self.act(self.norm2(self.proj(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dilated (or dense) path: ``(B, C, T) -> (B, C, T - 2 * pad)``."""
        T = x.shape[-1]
        res = x[:, :, self.pad + self.shift : T - self.pad + self.shift]
        return self._tail(self.conv(x), res)

    def forward_strided(self, x: torch.Tensor) -> torch.Tensor:
        """Strided path, non-overlapping windows of ``w`` frames: ``(B, C, T) -> (B, C, T // w)``.

        Equals :meth:`forward` on the frames it keeps when the input is one receptive field.
        """
        if self.dense:
            raise ValueError("a dense TemporalBlock has no strided form")
        res = x[:, :, self.strided_shift + self.width // 2 :: self.width]
        return self._tail(F.conv1d(x, self.conv.weight, stride=self.width), res)


def widths_for(num_frames: int | None) -> list[int]:
    """Filter widths of the paper for a receptive field: all 3 (27: [3,3,3], 81: [3,3,3,3],
    243: [3,3,3,3,3]); other lengths need explicit ``filter_widths``."""
    k = round(math.log(num_frames, 3)) if num_frames and num_frames > 1 else 0
    if num_frames is None or k < 1 or 3**k != num_frames:
        raise ValueError(
            f"no default filter_widths for num_frames={num_frames}: give filter_widths "
            "(the paper uses powers of 3: 27, 81, 243)"
        )
    return [3] * k


class VideoPose3D(nn.Module):
    """VideoPose3D temporal convolution model (one 3D pose per window of ``RF`` input frames).

    Args:
        num_joints: input joints ``J``.
        in_chans: input channels per joint ``C_in`` (2 for x, y; any positive number works).
        out_joints: output joints ``J_out`` (default ``num_joints``).
        filter_widths: odd temporal filter widths (None: all 3 for ``num_frames``, see
            :func:`widths_for`); ``len - 1`` residual blocks and receptive
            field ``RF = prod(filter_widths)`` (27: ``(3, 3, 3)``, 81: ``(3, 3, 3, 3)``,
            243: ``(3, 3, 3, 3, 3)``).
        channels: convolution channels ``C``.
        dropout: dropout probability after every activation.
        causal: causal residual crops (the prediction belongs to the last frame of its window;
            see :attr:`causal_shift`).
        dense: undilated convolutions of the same span (ablation; no strided single-frame path).
        num_frames: optional check: must equal ``RF`` when given (lets configs pass ``frames``).
        optimized_1f: route inputs of exactly ``RF`` frames through :meth:`forward_1f`.

    Shapes: ``forward(x: (B, T, J, C_in)) -> (B, T - RF + 1, J_out, 3)`` for any ``T >= RF``.
    """

    output_mode: ClassVar[str] = "centre"
    #: ``forward`` on any ``T >= RF`` frames gives one pose per window: a sequence is lifted in
    #: one pass (:meth:`liftpose.modules.LiftingModule.predict_sequence` relies on it)
    valid_convolutions: ClassVar[bool] = True

    def __init__(
        self,
        num_joints: int = 17,
        in_chans: int = 2,
        out_joints: int | None = None,
        filter_widths: Sequence[int] | None = (3, 3, 3, 3, 3),
        channels: int = 1024,
        dropout: float = 0.25,
        causal: bool = False,
        dense: bool = False,
        num_frames: int | None = None,
        optimized_1f: bool = True,
    ) -> None:
        super().__init__()
        if filter_widths is None:
            filter_widths = widths_for(num_frames)
        widths = tuple(int(w) for w in filter_widths)
        if not widths or any(w < 1 or w % 2 == 0 for w in widths):
            raise ValueError(f"filter_widths must be positive odd numbers, got {filter_widths}")
        rf = math.prod(widths)
        if num_frames is not None and num_frames != rf:
            raise ValueError(
                f"num_frames={num_frames} does not match the receptive field {rf} of "
                f"filter_widths={list(widths)}"
            )
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.out_joints = num_joints if out_joints is None else out_joints
        self.filter_widths = widths
        self.num_frames = rf
        self.channels = channels
        self.causal = causal
        self.dense = dense
        self.optimized_1f = optimized_1f

        # Created in the official order (BN, head, embed conv, blocks): same seed, same weights.
        self.embed_norm = nn.BatchNorm1d(channels, momentum=BN_MOMENTUM)
        self.head = nn.Conv1d(channels, self.out_joints * 3, 1)
        self.embed_conv = nn.Conv1d(num_joints * in_chans, channels, widths[0], bias=False)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        dilations = [math.prod(widths[:i]) for i in range(1, len(widths))]
        self.blocks = nn.ModuleList(
            TemporalBlock(channels, w, d, dropout, causal=causal, dense=dense)
            for w, d in zip(widths[1:], dilations, strict=True)
        )

    @property
    def receptive_field(self) -> int:
        """Input frames needed for one prediction, ``prod(filter_widths)``."""
        return self.num_frames

    @property
    def causal_shift(self) -> int:
        """Frames between a window's centre and the frame its prediction belongs to.

        ``RF // 2`` for causal models (the last frame of the window), else 0; the official
        ``total_causal_shift()``.
        """
        return self.receptive_field // 2 if self.causal else 0

    def set_bn_momentum(self, momentum: float) -> None:
        """Set the momentum of every BatchNorm (the official schedule decays 0.1 -> 0.001)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = momentum

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, T, J, C_in)`` with ``T >= RF``."""
        j, c, rf = self.num_joints, self.in_channels, self.receptive_field
        if x.ndim != 4 or tuple(x.shape[2:]) != (j, c) or x.shape[1] < rf:
            raise ValueError(
                f"VideoPose3D expects input of shape (B, T, J, C_in) = (B, T >= {rf}, {j}, {c}), "
                f"got {tuple(x.shape)}"
            )

    def _to_frames(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, C_in) -> (B, J*C_in, T)`` (joint-major channels, as the official code)."""
        B, T, J, C = x.shape
        return x.reshape(B, T, J * C).transpose(1, 2)

    def _to_poses(self, x: torch.Tensor) -> torch.Tensor:
        """Head on features: ``(B, C, T') -> (B, T', J_out, 3)``."""
        x = self.head(x)  # (B, J_out*3, T')
        return x.transpose(1, 2).reshape(x.shape[0], -1, self.out_joints, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Dilated path features: ``(B, T, J, C_in) -> (B, C, T - RF + 1)``."""
        self.check_input(x)
        x = self.drop(self.act(self.embed_norm(self.embed_conv(self._to_frames(x)))))
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward_features_1f(self, x: torch.Tensor) -> torch.Tensor:
        """Strided path features of one window: ``(B, RF, J, C_in) -> (B, C, 1)``."""
        self.check_input(x)
        if x.shape[1] != self.receptive_field:
            raise ValueError(
                f"forward_1f takes exactly receptive_field={self.receptive_field} frames, "
                f"got {x.shape[1]}"
            )
        w = self.filter_widths[0]
        x = F.conv1d(self._to_frames(x), self.embed_conv.weight, stride=w)  # (B, C, RF // w)
        x = self.drop(self.act(self.embed_norm(x)))
        for blk in self.blocks:
            x = blk.forward_strided(x)
        return x

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Dilated convolutions over a whole sequence (official ``TemporalModel``).

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T >= RF``.

        Returns:
            ``(B, T - RF + 1, J_out, 3)``; output ``t`` lifts the window ``t .. t + RF - 1``.
        """
        return self._to_poses(self.forward_features(x))

    def forward_1f(self, x: torch.Tensor) -> torch.Tensor:
        """Strided convolutions over one window (official ``TemporalModelOptimized1f``).

        Same weights and output as :meth:`forward_sequence` on ``T = RF`` frames, without the
        intermediate frames the single output does not use. Dense models have no strided form
        and run :meth:`forward_sequence`.

        Args:
            x: ``(B, RF, J, C_in)`` normalised 2D keypoints.

        Returns:
            ``(B, 1, J_out, 3)``.
        """
        if self.dense:
            self.check_input(x)
            if x.shape[1] != self.receptive_field:
                raise ValueError(
                    f"forward_1f takes exactly receptive_field={self.receptive_field} frames, "
                    f"got {x.shape[1]}"
                )
            return self.forward_sequence(x)
        return self._to_poses(self.forward_features_1f(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift every window of ``RF`` frames of a 2D sequence to a 3D pose.

        Inputs of exactly ``RF`` frames take :meth:`forward_1f` when ``optimized_1f`` is set
        (and the model is not dense), longer ones :meth:`forward_sequence`.

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T >= RF``.

        Returns:
            ``(B, T - RF + 1, J_out, 3)`` root-relative 3D joints, one pose per window (the
            window's centre frame, or its last frame for causal models).
        """
        if self.optimized_1f and not self.dense and x.ndim == 4 and x.shape[1] == self.num_frames:
            return self.forward_1f(x)
        return self.forward_sequence(x)


# --------------------------------------------------------------------------------------------
# official weights (facebookresearch/VideoPose3D, common/model.py::TemporalModel)

_VIDEOPOSE3D_ARGS = (
    "num_joints",
    "in_chans",
    "out_joints",
    "filter_widths",
    "channels",
    "dropout",
    "causal",
    "dense",
)
_VIDEOPOSE3D_RENAMES = {
    "num_joints_in": "num_joints",
    "in_features": "in_chans",
    "num_joints_out": "out_joints",
}


@register_official("videopose3d")
class VideoPose3DOfficial(OfficialConverter):
    """Official ``TemporalModel`` / ``TemporalModelOptimized1f`` -> :class:`VideoPose3D`.

    Both official classes share one ``state_dict`` layout and their constructor arguments
    (``TemporalModelOptimized1f`` has no ``dense``); the forward layouts are ours too.
    """

    official_class = "facebookresearch/VideoPose3D: common/model.py::TemporalModel"

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = _translate_kwargs(
            official_args, _VIDEOPOSE3D_RENAMES, _VIDEOPOSE3D_ARGS, "TemporalModel"
        )
        if "filter_widths" in args:
            args["filter_widths"] = tuple(int(w) for w in args["filter_widths"])
        return args

    @staticmethod
    def key_rules(num_blocks: int) -> list[tuple[str, str]]:
        """``(official prefix, our prefix)`` pairs for a model with ``num_blocks`` blocks."""
        rules = [
            ("expand_conv.", "embed_conv."),
            ("expand_bn.", "embed_norm."),
            ("shrink.", "head."),
        ]
        for k in range(num_blocks):
            rules += [
                (f"layers_conv.{2 * k}.", f"blocks.{k}.conv."),
                (f"layers_bn.{2 * k}.", f"blocks.{k}.norm1."),
                (f"layers_conv.{2 * k + 1}.", f"blocks.{k}.proj."),
                (f"layers_bn.{2 * k + 1}.", f"blocks.{k}.norm2."),
            ]
        return rules

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return VideoPose3D(**model_args)

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        widths = official_args.get("filter_widths")
        if widths is None:  # a required official argument
            raise TypeError("TemporalModel constructor arguments lack filter_widths")
        return rename_prefixes(state_dict, self.key_rules(len(widths) - 1))

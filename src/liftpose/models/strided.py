"""Strided Transformer: a full-sequence encoder followed by a sequence-shrinking encoder.

Li et al., "Exploiting Temporal Contexts with Strided Transformer for 3D Human Pose
Estimation", IEEE TMM 2022. Numerically equivalent to the official ``Model`` (weights load
through :func:`liftpose.models.official.from_official`), built from the shared
:class:`~liftpose.models.blocks.Block`, :class:`~liftpose.models.blocks.Attention` and
:class:`~liftpose.models.blocks.Mlp`::

    (B, T, J, C_in) --flatten--> (B, T, J*C_in)
    embed        1x1 conv J*C_in -> C, BatchNorm, ReLU, dropout; + vte_pos_embed     (B, T, C)
    VTE          vte_blocks x layers: Blocks (MSA + MLP) over the T frames          (B, T, C)
    head_full    BatchNorm, 1x1 conv on every frame        -> "full"        (B, T, J_out, 3)
    STE          ste_blocks[i] for each stride s_i: + ste_pos_embed[i, :T_i], MSA over the
                 T_i frames, then a strided convolutional MLP (kernel k, stride s_i) beside
                 the residual subsampled by s_i (max pool, kernel 1)
                                                        (B, T_i, C) -> (B, T_i / s_i, C)
    head_single  BatchNorm, 1x1 conv on the last frame     -> "single"      (B, 1, J_out, 3)

``T_0 = T`` and ``T_{i+1} = ceil(T_i / s_i)``; the strides multiply to ``T`` so that the STE
ends on one frame. Training supervises both outputs (the paper's full-to-single scheme:
``"full"`` against every frame, ``"single"`` against the centre frame, weighted by the
LightningModule's ``output_weights``); the prediction is ``"single"``
(``output_mode = "seq2centre"``).

Names, ours <- official (``i`` counts layers from 0 in both; ``TR`` is
``Transformer_reduce.model``):

* ``embed.proj`` <- ``encoder.0`` (Conv1d, kernel 1); ``embed.norm`` <- ``encoder.1``
* ``vte_pos_embed`` <- ``Transformer.pos_embedding``
* ``vte_blocks.i`` <- ``Transformer.model.layers.i``; ``ste_blocks.i`` <- ``TR.layers.i``, in
  both with ``attn.qkv`` <- ``self_attn.linears.{0,1,2}`` (q, k, v concatenated),
  ``attn.proj`` <- ``self_attn.linears.3``, ``norm1`` / ``norm2`` <- ``sublayer.{0,1}.norm``
  (``weight`` / ``bias`` <- ``a_2`` / ``b_2``), ``mlp.fc1`` / ``mlp.fc2`` <-
  ``feed_forward.w_1`` / ``feed_forward.w_2``
* ``ste_pos_embed[i]`` <- ``TR.pos_embedding_{i + 1}`` (stacked to ``(len(strides), T, C)``)
* ``vte_norm`` <- ``Transformer.model.norm``; ``ste_norm`` <- ``TR.norm`` (both unused)
* ``head_full.{norm, proj}`` <- ``fcn_1.{0, 1}``; ``head_single.{norm, proj}`` <- ``fcn.{0, 1}``
  (BatchNorm1d, Conv1d kernel 1)

Details of the official code reproduced here:

* Every LayerNorm is the "Annotated Transformer" norm, ``a * (x - mean) / (std + eps) + b``
  with the unbiased standard deviation and ``eps = 1e-6`` added to the std
  (:class:`StdLayerNorm`), not :class:`torch.nn.LayerNorm`.
* Dropout 0.1 on the attention probabilities, inside both feed-forward networks and on every
  residual branch; 0.25 in the pose embedding. ReLU in both feed-forward networks. Attention
  has 8 heads with biased q/k/v/output projections and logit scale ``head_dim ** -0.5``.
* The VTE adds one position embedding before its first layer; the STE adds its own embedding
  before each layer, the first ``T_i`` rows of a ``(T, C)`` table (the rest is never used).
  The official code creates exactly three STE embeddings and adds none before a fourth or
  later layer; here there is one per STE layer (the converter pads with zeros beyond three).
* STE feed-forward: ``Conv1d(C, d_hid, 1) -> ReLU -> dropout -> Conv1d(d_hid, C, k, stride=s,
  padding=k // 2)``; the residual is ``MaxPool1d(kernel_size=1, stride=s)`` of the block's
  input, i.e. every ``s``-th frame ``x[:, ::s]`` (``stride = 1``: the plain residual). Both
  give ``ceil(T_i / s)`` frames.
* Both encoders own a final LayerNorm that their forward never applies. They are kept (frozen,
  ``requires_grad=False``) so that parameter counts and state dicts match the official model.
* The embedding and heads keep the official 1x1 :class:`~torch.nn.Conv1d` layers and
  BatchNorms on ``(B, C, T)``: an equivalent :class:`~torch.nn.Linear` sums in another order,
  and the last-bit differences, scaled up by BatchNorms with small running variances, use
  most of the fixture tolerance.
* The official embedding is sized for 2 channels per joint (``2 * n_joints``); here it takes
  ``num_joints * in_chans``. Its output reshape splits the ``3 * out_joints`` channels with the
  input joint count; here they are ``(out_joints, 3)``.
* Position embeddings are initialised from ``N(0, 1)`` (``torch.randn``), other layers with
  PyTorch's defaults, as in the official code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from liftpose.models.base import WindowLifter
from liftpose.models.blocks import Block, Mlp
from liftpose.models.official import (
    OfficialConverter,
    StateDict,
    _translate_kwargs,
    register_official,
    rename_prefixes,
)
from liftpose.models.refine import PoseRefinement

__all__ = [
    "DEFAULT_STRIDES",
    "PoseEmbed",
    "RegressionHead",
    "StdLayerNorm",
    "StridedBlock",
    "StridedConvMlp",
    "StridedTransformer",
    "default_strides",
]

#: Official STE strides per receptive field (``--stride_num`` of the released models).
DEFAULT_STRIDES: dict[int, tuple[int, ...]] = {
    27: (3, 3, 3),
    81: (9, 3, 3),
    243: (3, 9, 9),
    351: (3, 9, 13),
}


def default_strides(num_frames: int) -> list[int]:
    """The official STE strides for a ``num_frames`` window; ``ValueError`` for other lengths."""
    if num_frames not in DEFAULT_STRIDES:
        raise ValueError(
            f"StridedTransformer has no default strides for num_frames={num_frames} (known: "
            f"{sorted(DEFAULT_STRIDES)}); pass strides=[s_1, ..., s_n] with product {num_frames}"
        )
    return list(DEFAULT_STRIDES[num_frames])


class StdLayerNorm(nn.Module):
    """LayerNorm of the "Annotated Transformer": ``weight * (x - mean) / (std + eps) + bias``.

    Differs from :class:`torch.nn.LayerNorm` in two ways: ``std`` is the unbiased (``N - 1``)
    standard deviation over the last dimension, and ``eps`` is added to it, not to the variance.

    Args:
        dim: channels ``C`` of the last dimension.
        eps: added to the standard deviation (official 1e-6).

    Shapes: ``(*, C) -> (*, C)``.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (*, C) -> (*, C)``."""
        if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
            # mixed precision: the two-pass form, 4x faster on the CPU than torch.std's kernel
            # (float32 results differ in the last bits, which fp32 fidelity would notice)
            d = x - x.mean(-1, keepdim=True)
            std = (d.square().sum(-1, keepdim=True) / (x.shape[-1] - 1)).sqrt()
            return self.weight * d / (std + self.eps) + self.bias
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class PoseEmbed(nn.Module):
    """Per-frame pose embedding: ``proj`` (1x1 convolution) ``-> BatchNorm -> ReLU -> Dropout``.

    Args:
        in_features: ``N = J * C_in`` coordinates per frame.
        dim: embedding channels ``C``.
        drop: dropout probability after the ReLU.

    Shapes: ``(B, T, N) -> (B, T, C)``.
    """

    def __init__(self, in_features: int, dim: int, drop: float = 0.25) -> None:
        super().__init__()
        self.proj = nn.Conv1d(in_features, dim, kernel_size=1)
        self.norm = nn.BatchNorm1d(dim, momentum=0.1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, T, N) -> (B, T, C)``."""
        x = self.proj(x.transpose(1, 2).contiguous())  # (B, C, T)
        return self.drop(F.relu(self.norm(x))).transpose(1, 2)


class RegressionHead(nn.Module):
    """Per-frame 3D regression: ``BatchNorm -> proj`` (1x1 convolution) to ``J_out * 3``.

    Args:
        dim: token channels ``C``.
        out_joints: joints ``J_out`` to predict.

    Shapes: ``(B, T, C) -> (B, T, J_out, 3)``.
    """

    def __init__(self, dim: int, out_joints: int) -> None:
        super().__init__()
        self.out_joints = out_joints
        self.norm = nn.BatchNorm1d(dim, momentum=0.1)
        self.proj = nn.Conv1d(dim, out_joints * 3, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, T, C) -> (B, T, J_out, 3)``."""
        B, T, _ = x.shape
        x = self.proj(self.norm(x.transpose(1, 2).contiguous()))  # (B, J_out * 3, T)
        return x.transpose(1, 2).reshape(B, T, self.out_joints, 3)


class StridedConvMlp(nn.Module):
    """Convolutional feed-forward network of an STE layer (the paper's CFFN, eq. 7).

    ``fc1`` (1x1 convolution) ``-> act -> drop -> fc2`` (kernel ``k``, stride ``s``, padding
    ``k // 2``) ``-> drop`` along the frames; the output has ``ceil(N / s)`` frames.

    Args:
        in_features: channels ``C``.
        hidden_features: hidden channels ``d_hid``.
        kernel_size: odd temporal kernel ``k`` of ``fc2``.
        stride: temporal stride ``s`` of ``fc2``.
        act_layer: activation class, instantiated without arguments.
        drop: dropout after the activation and after ``fc2``.

    Shapes: ``(B, N, C) -> (B, ceil(N / s), C)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        kernel_size: int = 3,
        stride: int = 1,
        act_layer: type[nn.Module] = nn.ReLU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.fc1 = nn.Conv1d(in_features, hidden_features, kernel_size=1)
        self.act = act_layer()
        self.fc2 = nn.Conv1d(
            hidden_features, in_features, kernel_size, stride=stride, padding=kernel_size // 2
        )
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, act: nn.Module | None = None) -> torch.Tensor:
        """``x: (B, N, C) -> (B, ceil(N / s), C)``; ``act`` (on ``(B, N, d_hid)``) replaces the
        activation for this call (a block's ``in_mlp`` slot)."""
        x = self.fc1(x.transpose(1, 2))  # (B, d_hid, N)
        x = self.act(x) if act is None else act(x.transpose(1, 2)).transpose(1, 2)
        x = self.drop(self.fc2(self.drop(x)))  # (B, C, ceil(N / s))
        return x.transpose(1, 2)


class StridedBlock(Block):
    """STE layer: a :class:`~liftpose.models.blocks.Block` whose MLP shrinks the frames.

    ::

        x = x + attn(norm1(x))                      (B, N, C)
        x = x[:, ::s] + mlp(norm2(x))               (B, ceil(N / s), C)

    ``x[:, ::s]`` is the paper's max-pooled residual (a max pool of kernel 1 and stride ``s``).
    Slots, attention options and stochastic depth work as in :class:`Block`.

    Args:
        dim: token channels ``C``.
        num_heads: attention heads.
        hidden_features: hidden channels of the convolutional MLP.
        stride: temporal stride ``s``.
        kernel_size: temporal kernel of the strided convolution.
        drop: dropout after the attention projection and inside the MLP.
        act_layer: MLP activation class.
        **kwargs: further :class:`Block` arguments (``qkv_bias``, ``attn_drop``,
            ``norm_layer``, ``slots``, ...).

    Shapes: ``(B, N, C) -> (B, ceil(N / s), C)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden_features: int,
        stride: int = 1,
        kernel_size: int = 3,
        drop: float = 0.0,
        act_layer: type[nn.Module] = nn.ReLU,
        **kwargs: Any,
    ) -> None:
        super().__init__(dim, num_heads, drop=drop, act_layer=act_layer, **kwargs)
        self.stride = stride
        # replaces the Block's position-wise Mlp
        self.mlp = StridedConvMlp(dim, hidden_features, kernel_size, stride, act_layer, drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x: (B, N, C) -> (B, ceil(N / s), C)``; ``attn_mask`` as in :class:`Block`."""
        slots = self.slots
        if "before_msa" in slots:
            x = slots["before_msa"](x)
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask=attn_mask))
        if "after_msa" in slots:
            x = slots["after_msa"](x)
        h = self.norm2(x)
        if "after_norm2" in slots:
            h = slots["after_norm2"](h)
        h = self.mlp(h, act=slots["in_mlp"]) if "in_mlp" in slots else self.mlp(h)
        x = x[:, :: self.stride] + self.drop_path(h)
        if "after_mlp" in slots:
            x = slots["after_mlp"](x)
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def _mlp_block(dim: int, num_heads: int, hidden: int, drop: float, **kwargs: Any) -> Block:
    """A :class:`Block` with exactly ``hidden`` MLP channels (ReLU)."""
    blk = Block(dim, num_heads, mlp_ratio=hidden / dim, drop=drop, act_layer=nn.ReLU, **kwargs)
    if blk.mlp.fc1.out_features != hidden:  # int(dim * (hidden / dim)) can round down
        blk.mlp = Mlp(dim, hidden, act_layer=nn.ReLU, drop=drop)
    return blk


class StridedTransformer(WindowLifter):
    """Strided Transformer lifting model (see the module docstring).

    Args:
        num_frames: input window length ``T`` (the receptive field).
        num_joints: input joints ``J``.
        in_chans: input channels per joint ``C_in``.
        out_joints: output joints (default ``num_joints``).
        layers: VTE layers ``N_1`` (official ``--layers``).
        channel: token channels ``C = d_m`` (official ``--channel``).
        d_hid: feed-forward hidden channels ``d_f`` of VTE and STE (official ``--d_hid``).
        strides: STE strides ``s_i``, one STE layer each (official ``--stride_num``); their
            product must be ``num_frames``. ``None``: the official choice for 27, 81, 243 or
            351 frames (:data:`DEFAULT_STRIDES`).
        kernel_size: temporal kernel of the STE strided convolutions.
        num_heads: attention heads of both encoders.
        drop_rate: dropout on residual branches and inside the feed-forward networks.
        attn_drop_rate: attention-probability dropout.
        embed_drop: dropout of the pose embedding.
        attention: attention pattern, ``dense`` (the original) or ``strided`` (two-sided
            strided sparse attention, :mod:`liftpose.models.blocks.attention`; the modified
            method of strided-transformer.txt section 4.2.1).
        attention_in: where ``attention`` applies: ``ste`` (the paper: "the attention layer"
            of the STE layers), ``vte``, or ``both``; the other encoder stays dense.
        refine: add the official pose-refinement module as ``self.refine``
            (:class:`~liftpose.models.refine.PoseRefinement`), used by the refinement stage
            (``module=refine``, :class:`~liftpose.modules.refine.RefineModule`) that gives the
            official 351-frame result; ``forward`` does not use it.

    Shapes: ``forward(x: (B, T, J, C_in))`` returns ``{"full": (B, T, J_out, 3), "single":
    (B, 1, J_out, 3)}`` in training mode and ``(B, 1, J_out, 3)`` (the STE output) in eval
    mode; :meth:`forward_outputs` returns the dict in either mode.
    """

    output_mode: ClassVar[str] = "seq2centre"

    def __init__(
        self,
        num_frames: int = 27,
        num_joints: int = 17,
        in_chans: int = 2,
        out_joints: int | None = None,
        layers: int = 3,
        channel: int = 256,
        d_hid: int = 512,
        strides: Sequence[int] | None = None,
        kernel_size: int = 3,
        num_heads: int = 8,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        embed_drop: float = 0.25,
        attention: str = "dense",
        attention_in: str = "ste",
        refine: bool = False,
    ) -> None:
        super().__init__()
        if attention_in not in ("ste", "vte", "both"):
            raise ValueError(f"attention_in={attention_in!r}: 'ste', 'vte' or 'both'")
        vte_pattern = attention if attention_in in ("vte", "both") else "dense"
        ste_pattern = attention if attention_in in ("ste", "both") else "dense"
        strides = default_strides(num_frames) if strides is None else [int(s) for s in strides]
        if not strides or any(s < 1 for s in strides):
            raise ValueError(f"strides must be a non-empty list of positive ints, got {strides}")
        if math.prod(strides) != num_frames:
            raise ValueError(
                f"the product of strides {strides} is {math.prod(strides)}, not "
                f"num_frames={num_frames}: the STE must shrink the window to one frame"
            )
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.out_joints = out_joints = out_joints or num_joints
        self.channel = channel
        self.strides = tuple(strides)
        blk_args: dict[str, Any] = dict(
            num_heads=num_heads,
            qkv_bias=True,
            attn_drop=attn_drop_rate,
            norm_layer=StdLayerNorm,
        )

        self.embed = PoseEmbed(num_joints * in_chans, channel, drop=embed_drop)

        # VTE: full sequence
        self.vte_pos_embed = nn.Parameter(torch.randn(1, num_frames, channel))
        self.vte_blocks = nn.ModuleList(
            _mlp_block(channel, hidden=d_hid, drop=drop_rate, attention=vte_pattern, **blk_args)
            for _ in range(layers)
        )
        self.vte_norm = StdLayerNorm(channel).requires_grad_(False)  # official, never applied

        # STE: strided, T -> 1 frame
        self.ste_pos_embed = nn.Parameter(torch.randn(len(strides), num_frames, channel))
        self.ste_blocks = nn.ModuleList(
            StridedBlock(
                channel,
                hidden_features=d_hid,
                stride=s,
                kernel_size=kernel_size,
                drop=drop_rate,
                attention=ste_pattern,
                **blk_args,
            )
            for s in strides
        )
        self.ste_norm = StdLayerNorm(channel).requires_grad_(False)  # official, never applied

        self.head_full = RegressionHead(channel, out_joints)
        self.head_single = RegressionHead(channel, out_joints)
        self.refine = PoseRefinement(out_joints) if refine else None

    def forward_vte(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding and VTE: ``(B, T, J, C_in) -> (B, T, C)``."""
        self.check_input(x)
        B, T, J, C = x.shape
        x = self.embed(x.reshape(B, T, J * C)) + self.vte_pos_embed  # (B, T, C)
        for blk in self.vte_blocks:
            x = blk(x)
        return x

    def forward_ste(self, x: torch.Tensor) -> torch.Tensor:
        """STE: ``(B, T, C) -> (B, 1, C)``, each layer ``(B, T_i, C) -> (B, T_i / s_i, C)``."""
        for pos, blk in zip(self.ste_pos_embed, self.ste_blocks, strict=True):
            x = blk(x + pos[: x.shape[1]])
        return x

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both outputs: ``x (B, T, J, C_in)`` -> ``{"full": (B, T, J_out, 3)`` (VTE),
        ``"single": (B, 1, J_out, 3)}`` (STE, the centre frame)."""
        z = self.forward_vte(x)  # (B, T, C)
        return {"full": self.head_full(z), "single": self.head_single(self.forward_ste(z))}

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Lift a 2D window.

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T = num_frames``.

        Returns:
            In training mode the dict of :meth:`forward_outputs` (full-to-single supervision);
            in eval mode the centre-frame prediction ``(B, 1, J_out, 3)`` of the STE.
        """
        if self.training:
            return self.forward_outputs(x)
        return self.head_single(self.forward_ste(self.forward_vte(x)))


# --------------------------------------------------------------------------------------------
# official weights (Vegetebird/StridedTransformer-Pose3D, model/strided_transformer.py::Model)

_STRIDED_ARGS = ("num_frames", "num_joints", "out_joints", "layers", "channel", "d_hid", "strides")
_STRIDED_RENAMES = {"frames": "num_frames", "n_joints": "num_joints", "stride_num": "strides"}
#: Official arguments that do not change the network (``pad`` is derived from ``frames``).
_STRIDED_IGNORED = ("pad",)
#: STE position embeddings the official encoder always creates (and adds before layers 0-2).
_OFFICIAL_STE_EMBEDS = 3


@register_official("strided")
class StridedTransformerOfficial(OfficialConverter):
    """Official ``Model(args)`` -> :class:`StridedTransformer`.

    ``official_args`` holds the attributes of the official argparse namespace that the
    constructor reads: ``frames``, ``n_joints``, ``out_joints``, ``layers``, ``channel``,
    ``d_hid``, ``stride_num`` (``pad`` is accepted and ignored). The official forward returns
    ``(output, output_vte)`` in either mode: the STE centre frame and the VTE sequence, which
    are ``"single"`` and ``"full"`` of :meth:`~StridedTransformer.forward_outputs` (``model(x)``
    in eval mode gives ``"single"`` alone).
    """

    official_class = "Vegetebird/StridedTransformer-Pose3D: model/strided_transformer.py::Model"

    def official_forward(
        self, model: nn.Module, *inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The official ``(output, output_vte)``: ``(B, 1, J_out, 3)``, ``(B, T, J_out, 3)``."""
        out = model.forward_outputs(*inputs)
        return out["single"], out["full"]

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = {k: v for k, v in official_args.items() if k not in _STRIDED_IGNORED}
        return _translate_kwargs(args, _STRIDED_RENAMES, _STRIDED_ARGS, "StridedTransformer")

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return StridedTransformer(**model_args)

    @staticmethod
    def key_rules(vte_layers: int, ste_layers: int) -> list[tuple[str, str]]:
        """``(official prefix, our prefix)`` pairs for :func:`rename_prefixes`.

        The q/k/v projections map to temporary ``attn.{q,k,v}`` names that :meth:`convert`
        fuses into ``attn.qkv``.
        """
        vte, ste = "Transformer.model.", "Transformer_reduce.model."
        rules = [
            ("encoder.0.", "embed.proj."),
            ("encoder.1.", "embed.norm."),
            ("Transformer.pos_embedding", "vte_pos_embed"),
            (vte + "norm.", "vte_norm."),
            (ste + "norm.", "ste_norm."),
            ("fcn_1.0.", "head_full.norm."),
            ("fcn_1.1.", "head_full.proj."),
            ("fcn.0.", "head_single.norm."),
            ("fcn.1.", "head_single.proj."),
        ]
        layer_rules = [
            ("self_attn.linears.0.", "attn.q."),
            ("self_attn.linears.1.", "attn.k."),
            ("self_attn.linears.2.", "attn.v."),
            ("self_attn.linears.3.", "attn.proj."),
            ("feed_forward.w_1.", "mlp.fc1."),
            ("feed_forward.w_2.", "mlp.fc2."),
            ("sublayer.0.norm.", "norm1."),
            ("sublayer.1.norm.", "norm2."),
        ]
        for official, ours, n in ((vte, "vte_blocks", vte_layers), (ste, "ste_blocks", ste_layers)):
            for i in range(n):
                rules += [(f"{official}layers.{i}.{o}", f"{ours}.{i}.{w}") for o, w in layer_rules]
        return rules

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        args = self.model_args(official_args)
        frames = args.get("num_frames", 27)
        strides = args.get("strides") or default_strides(frames)
        n_ste = len(strides)
        sd = dict(state_dict)
        # per-layer STE embeddings (1, T, C): stack those of existing layers to (n, T, C); the
        # official code adds none before layer 3 and later (zeros here)
        names = [f"Transformer_reduce.model.pos_embedding_{n}" for n in range(1, 4)]
        pos = [sd.pop(k) for k in names if k in sd]  # a partial set is caught by the key check
        out = rename_prefixes(sd, self.key_rules(args.get("layers", 3), n_ste))
        if pos:
            pos = pos[:n_ste] + [torch.zeros_like(pos[0])] * (n_ste - _OFFICIAL_STE_EMBEDS)
            out["ste_pos_embed"] = torch.cat(pos, dim=0)
        for key in list(out):
            # LayerNorm a_2 / b_2 -> weight / bias
            for old, new in ((".a_2", ".weight"), (".b_2", ".bias")):
                if key.endswith(old):
                    out[key[: -len(old)] + new] = out.pop(key)
        for prefix in {k.rsplit(".attn.", 1)[0] for k in out if ".attn.q." in k}:
            # separate q, k, v projections -> one fused qkv (rows q, then k, then v)
            for p in ("weight", "bias"):
                keys = [f"{prefix}.attn.{n}.{p}" for n in "qkv"]
                if all(k in out for k in keys):  # else the key check names what is missing
                    out[f"{prefix}.attn.qkv.{p}"] = torch.cat([out.pop(k) for k in keys])
        return out

"""MixSTE: alternating spatial and temporal transformer blocks, one 3D pose per input frame.

Zhang et al., "MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose Estimation in
Video", CVPR 2022. Numerically equivalent to the official ``MixSTE2``
(JinluZhang1126/MixSTE, ``common/model_cross.py``); its weights load through
:func:`liftpose.models.official.from_official` under the name ``"mixste"``.

Every joint is a token of ``c = embed_dim_ratio`` channels throughout. Layer ``i`` of ``depth``
is a spatial block (tokens: the ``J`` joints of one frame) followed by a temporal block
(tokens: the ``T`` frames of one joint)::

    (B, T, J, C_in) --joint_embed + spatial_pos_embed--> (B*T, J, c)
    for i in range(depth):
        --spatial_blocks[i], spatial_norm--> (B*T, J, c) --regroup--> (B*J, T, c)
        [i == 0: + temporal_pos_embed]
        --temporal_blocks[i], temporal_norm--> (B*J, T, c) --regroup--> (B*T, J, c)
    --head_norm, head--> (B, T, J, 3)

As in the official code, ``spatial_norm`` and ``temporal_norm`` are single LayerNorms shared
by all layers (applied after every block), the position embeddings are added once (before the
first spatial / first temporal block), stochastic depth is ``linspace(0, drop_path_rate,
depth)`` for both stacks, the block and stage norms use ``eps=1e-6`` and the head norm
PyTorch's default ``eps=1e-5``. Linear layers keep PyTorch's default initialisation and the
position embeddings start at zero; modules are created in the official order, so the same
seed gives the same initial weights.

Names that differ from the official code (official -> ours):

* constructor: ``num_frame`` -> ``num_frames``; ``norm_layer`` is not supported (the official
  default, LayerNorm with eps=1e-6, is fixed).
* attributes: ``Spatial_patch_to_embedding`` -> ``joint_embed``, ``Spatial_pos_embed`` ->
  ``spatial_pos_embed``, ``Temporal_pos_embed`` -> ``temporal_pos_embed``, ``STEblocks`` ->
  ``spatial_blocks``, ``TTEblocks`` -> ``temporal_blocks``, ``Spatial_norm`` ->
  ``spatial_norm``, ``Temporal_norm`` -> ``temporal_norm``, ``head.0`` -> ``head_norm``,
  ``head.1`` -> ``head``; ``block_depth`` -> ``depth``.
* the official ``STE_forward`` / ``TTE_foward`` / ``ST_foward`` split (first layer apart from
  the rest) is one loop over layers here (:meth:`MixSTE.forward_features`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from liftpose.models.base import WindowLifter
from liftpose.models.blocks import Block, SlotSpec, build_block_slots
from liftpose.models.blocks.transformer import default_norm_layer
from liftpose.models.official import (
    OfficialConverter,
    StateDict,
    _translate_kwargs,
    register_official,
    rename_prefixes,
)

__all__ = ["MixSTE", "MixSTEOfficial"]


def joints_to_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Regroup spatial tokens into temporal ones: ``(B*T, J, c) -> (B*J, T, c)``."""
    BT, J, c = x.shape
    return x.reshape(batch, BT // batch, J, c).transpose(1, 2).reshape(batch * J, -1, c)


def frames_to_joints(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Regroup temporal tokens into spatial ones: ``(B*J, T, c) -> (B*T, J, c)``."""
    BJ, T, c = x.shape
    return x.reshape(batch, BJ // batch, T, c).transpose(1, 2).reshape(batch * T, -1, c)


class MixSTE(WindowLifter):
    """MixSTE lifting model (seq2seq: a 3D pose for every frame of a ``num_frames`` window).

    Args:
        num_frames: input window length ``T`` (fixed by the temporal position embedding).
        num_joints: joints ``J``.
        in_chans: input channels per joint ``C_in`` (2 for x, y; any positive number works).
        embed_dim_ratio: token channels ``c`` of both the spatial and the temporal blocks.
        depth: number of spatial-temporal layers (one spatial and one temporal block each).
        num_heads: attention heads in every block.
        mlp_ratio: MLP hidden width ratio.
        qkv_bias: bias in the ``qkv`` projections.
        qk_scale: attention logit scale override (``None`` = ``head_dim ** -0.5``).
        drop_rate: dropout after the position embeddings, attention projections and MLPs.
        attn_drop_rate: attention-probability dropout.
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, depth)`` per stack.
        spatial_slots: slot modules for the spatial blocks (a
            :data:`~liftpose.models.blocks.SlotSpec`; factories receive ``dim = c``; tokens are
            joints, ``(B*T, J, c)``).
        temporal_slots: slot modules for the temporal blocks (``dim = c``; tokens are frames,
            ``(B*J, T, c)``).

    Shapes: ``forward(x: (B, T, J, C_in)) -> (B, T, J, 3)``.

    The defaults are the paper's (``run.py``: 512 channels, 8 layers, stochastic depth 0.1;
    33.78 M parameters at 243 frames). The official class's own defaults differ (32 channels,
    4 layers, stochastic depth 0.2, 9 frames).
    """

    output_mode: ClassVar[str] = "sequence"

    def __init__(
        self,
        num_frames: int = 243,
        num_joints: int = 17,
        in_chans: int = 2,
        embed_dim_ratio: int = 512,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        spatial_slots: SlotSpec | None = None,
        temporal_slots: SlotSpec | None = None,
        attention: str = "dense",
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.embed_dim = embed_dim = embed_dim_ratio
        self.depth = depth
        norm_layer = default_norm_layer  # LayerNorm, eps=1e-6
        # On the CPU explicitly so that the model can be built under ``torch.device("meta")``.
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()

        # Creation order follows the official module so that one seed gives the same weights.
        self.joint_embed = nn.Linear(in_chans, embed_dim)
        self.spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)

        def stack(slots: SlotSpec | None, pattern: str = "dense") -> nn.ModuleList:
            return nn.ModuleList(
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                    slots=build_block_slots(
                        slots, index=i, dim=embed_dim, hidden=int(embed_dim * mlp_ratio)
                    ),
                    attention=pattern,
                )
                for i in range(depth)
            )

        self.spatial_blocks = stack(spatial_slots)
        self.temporal_blocks = stack(temporal_slots, attention)  # frames: dense or strided
        # One norm per stage, shared by all layers (as in the official code).
        self.spatial_norm = norm_layer(embed_dim)
        self.temporal_norm = norm_layer(embed_dim)

        # The official head LayerNorm uses PyTorch's default eps (1e-5), unlike the other norms.
        self.head_norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Joint tokens: ``(B, T, J, C_in) -> (B*T, J, c)``."""
        B, T, J, C = x.shape
        x = self.joint_embed(x.reshape(B * T, J, C)) + self.spatial_pos_embed
        return self.pos_drop(x)

    def forward_spatial(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Spatial block ``index`` and the shared spatial norm: ``(B*T, J, c) -> (B*T, J, c)``."""
        return self.spatial_norm(self.spatial_blocks[index](x))

    def forward_temporal(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Temporal block ``index`` and the shared norm: ``(B*J, T, c) -> (B*J, T, c)``.

        The temporal position embedding is added before the first temporal block only.
        """
        if index == 0:
            x = self.pos_drop(x + self.temporal_pos_embed)
        return self.temporal_norm(self.temporal_blocks[index](x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-joint, per-frame features: ``(B, T, J, C_in) -> (B, T, J, c)``."""
        self.check_input(x)
        B, T, J, _ = x.shape
        x = self.embed(x)  # (B*T, J, c)
        for i in range(self.depth):
            x = self.forward_spatial(x, i)
            x = self.forward_temporal(joints_to_frames(x, B), i)  # (B*J, T, c)
            x = frames_to_joints(x, B)  # (B*T, J, c)
        return x.reshape(B, T, J, self.embed_dim)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, c) -> (B, T, J, 3)``."""
        return self.head(self.head_norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift a 2D window to a 3D pose per frame.

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T = num_frames``.

        Returns:
            ``(B, T, J, 3)`` root-relative 3D joints of every input frame.
        """
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------
# official weights (JinluZhang1126/MixSTE, common/model_cross.py::MixSTE2)

_MIXSTE_ARGS = (
    "num_frames",
    "num_joints",
    "in_chans",
    "embed_dim_ratio",
    "depth",
    "num_heads",
    "mlp_ratio",
    "qkv_bias",
    "qk_scale",
    "drop_rate",
    "attn_drop_rate",
    "drop_path_rate",
)


@register_official("mixste")
class MixSTEOfficial(OfficialConverter):
    """Official ``MixSTE2`` -> :class:`MixSTE` (same forward, renamed keys)."""

    official_class = "JinluZhang1126/MixSTE: common/model_cross.py::MixSTE2"
    key_rules: tuple[tuple[str, str], ...] = (
        ("Spatial_patch_to_embedding.", "joint_embed."),
        ("Spatial_pos_embed", "spatial_pos_embed"),
        ("Temporal_pos_embed", "temporal_pos_embed"),
        ("STEblocks.", "spatial_blocks."),
        ("TTEblocks.", "temporal_blocks."),
        ("Spatial_norm.", "spatial_norm."),
        ("Temporal_norm.", "temporal_norm."),
        ("head.0.", "head_norm."),
        ("head.1.", "head."),
    )

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = dict(official_args)
        if args.pop("norm_layer", None) is not None:
            raise TypeError("MixSTE conversion supports only the default norm_layer")
        return _translate_kwargs(args, {"num_frame": "num_frames"}, _MIXSTE_ARGS, "MixSTE2")

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return MixSTE(**model_args)

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        return rename_prefixes(state_dict, self.key_rules)

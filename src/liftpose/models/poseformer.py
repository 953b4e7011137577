"""PoseFormer: spatial-temporal transformer lifting a 2D pose sequence to the centre-frame 3D pose.

Zheng et al., "3D Human Pose Estimation with Spatial and Temporal Transformers", ICCV 2021.
Numerically equivalent to the official ``PoseTransformer`` (weights load through
:func:`liftpose.models.official.from_official`), with clean names and a faster forward::

    (B, T, J, C_in) --joint_embed + spatial_pos_embed--> (B*T, J, c)
        --spatial_blocks x depth, spatial_norm--> (B, T, J*c)
        --+ temporal_pos_embed, temporal_blocks x depth, temporal_norm--> (B, T, J*c)
        --frame_pool (learned weighted mean over T)--> (B, J*c)
        --head_norm, head--> (B, 1, J, 3)
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import nn

from liftpose.models.base import WindowLifter
from liftpose.models.blocks import Block, SlotSpec, build_block_slots

__all__ = ["PoseFormer"]


class PoseFormer(WindowLifter):
    """PoseFormer lifting model (predicts the centre frame of a ``num_frames`` window).

    Args:
        num_frames: input window length ``T`` (the receptive field).
        num_joints: joints ``J``.
        in_chans: input channels per joint ``C_in`` (2 for x, y).
        embed_dim_ratio: spatial token channels ``c``; temporal tokens have ``J * c`` channels.
        depth: number of spatial blocks and of temporal blocks.
        num_heads: attention heads in both transformers.
        mlp_ratio: MLP hidden width ratio.
        qkv_bias: bias in the ``qkv`` projections.
        qk_scale: attention logit scale override.
        drop_rate: dropout after the position embeddings, attention projections and MLPs.
        attn_drop_rate: attention-probability dropout.
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, depth)`` per transformer.
        spatial_slots: slot modules for the spatial blocks (a
            :data:`~liftpose.models.blocks.SlotSpec`; factories receive ``dim = embed_dim_ratio``).
        temporal_slots: slot modules for the temporal blocks (factories receive ``dim = J * c``).
        attention: attention pattern of the temporal blocks (over frames), ``dense`` or
            ``strided`` (:mod:`liftpose.models.blocks.attention`); joints always attend densely.

    Shapes: ``forward(x: (B, T, J, C_in)) -> (B, 1, J, 3)``.

    Initialisation follows the official code: PyTorch defaults for linear layers, zero position
    embeddings.
    """

    output_mode: ClassVar[str] = "centre"

    def __init__(
        self,
        num_frames: int = 81,
        num_joints: int = 17,
        in_chans: int = 2,
        embed_dim_ratio: int = 32,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        spatial_slots: SlotSpec | None = None,
        temporal_slots: SlotSpec | None = None,
        attention: str = "dense",
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.embed_dim_ratio = embed_dim_ratio
        self.embed_dim = embed_dim = embed_dim_ratio * num_joints
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # meta-safe

        self.joint_embed = nn.Linear(in_chans, embed_dim_ratio)
        self.spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, embed_dim_ratio))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)

        def stack(dim: int, slots: SlotSpec | None, pattern: str = "dense") -> nn.ModuleList:
            return nn.ModuleList(
                Block(
                    dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                    slots=build_block_slots(slots, index=i, dim=dim, hidden=int(dim * mlp_ratio)),
                    attention=pattern,
                )
                for i in range(depth)
            )

        self.spatial_blocks = stack(embed_dim_ratio, spatial_slots)
        self.spatial_norm = norm_layer(embed_dim_ratio)
        self.temporal_blocks = stack(embed_dim, temporal_slots, attention)
        self.temporal_norm = norm_layer(embed_dim)

        # Learned weighted mean over frames: frames are the Conv1d channels.
        self.frame_pool = nn.Conv1d(num_frames, 1, kernel_size=1)
        # The official head LayerNorm uses PyTorch's default eps (1e-5), unlike the other norms.
        self.head_norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_joints * 3)

    def forward_spatial(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame joint transformer: ``(B, T, J, C_in) -> (B, T, J * c)``."""
        B, T, J, C = x.shape
        x = self.joint_embed(x.reshape(B * T, J, C)) + self.spatial_pos_embed  # (B*T, J, c)
        x = self.pos_drop(x)
        for blk in self.spatial_blocks:
            x = blk(x)
        x = self.spatial_norm(x)
        return x.reshape(B, T, J * self.embed_dim_ratio)

    def forward_temporal(self, x: torch.Tensor) -> torch.Tensor:
        """Frame transformer: ``(B, T, E) -> (B, T, E)`` with ``E = J * c``."""
        x = self.pos_drop(x + self.temporal_pos_embed)
        for blk in self.temporal_blocks:
            x = blk(x)
        return self.temporal_norm(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled sequence feature: ``(B, T, J, C_in) -> (B, E)``."""
        self.check_input(x)
        x = self.forward_temporal(self.forward_spatial(x))  # (B, T, E)
        return self.frame_pool(x).squeeze(1)  # (B, E)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, E) -> (B, 1, J, 3)``."""
        x = self.head(self.head_norm(x))
        return x.reshape(x.shape[0], 1, self.num_joints, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift a 2D window to the 3D pose of its centre frame.

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T = num_frames``.

        Returns:
            ``(B, 1, J, 3)`` root-relative 3D joints of the centre frame.
        """
        return self.forward_head(self.forward_features(x))

"""Depthwise-convolution attention modules over the token axis (attn-2d3d-system.txt, II-B).

The Spatial Attention (SA, eq. 8) and Temporal Attention (TA, eq. 11) modules share one form::

    P' = Conv(Norm(GELU(Conv(P)))) + P

where both ``Conv`` are depthwise 1-D convolutions along the token axis — joints for SA
(kernel 5, "a group of 5" neighbouring keypoints), frames for TA (kernel 3) — so every channel
is filtered on its own and mixing happens only along that axis. The module carries its own
skip connection, so it is inserted on a Transformer block's residual stream through a slot
(``before_msa``, ``after_msa``, ``after_mlp``).

Choices the paper leaves open (all arguments):

* ``Norm`` is group normalisation (the issue's and Fig. 4's reading of "the normalization used
  in [15]"). For SA the default is one group (statistics over all channels and joints of one
  pose); for TA the default is one group per joint, so a joint's channels are normalised over
  the frames together and never with another joint's: TA stays a purely temporal operator on
  each joint's features. ``norm_groups`` changes either.
* "Same" zero padding keeps the token count; the convolutions have biases.
* Kernel extents: the text's "1 x 5" (SA, "a group of 5" keypoints) and "1 x 3" (TA); the
  captions of Fig. 4 and Table VIII call the convolutions "1 x 1", which we read as their
  per-channel (depthwise) nature. ``kernel_size=1`` is the captions read literally.
* TA is eq. 11 alone: the correlation matrix ``C_ij = sum_F P_i P_j`` and the ``K, Q, V``
  projections of eq. 10 describe the temporal block's self-attention (its ``QK^T``, with
  linear projections, i.e. 1 x 1 convolutions), which the Transformer block already has.
* Where in a block the module sits (eqs. 9/12 vs sections II-B2 and III-E) is the lifter's
  choice: see :mod:`liftpose.models.attn_lifter`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DepthwiseConvAttention", "spatial_attention", "temporal_attention"]


class DepthwiseConvAttention(nn.Module):
    """``x + conv2(norm(gelu(conv1(x))))`` with depthwise convolutions along the tokens.

    Args:
        dim: token channels ``C``.
        kernel_size: odd kernel along the token axis.
        norm_groups: groups of the GroupNorm (must divide ``dim``).

    Shapes: ``(B, N, C) -> (B, N, C)``; ``N`` is joints (SA) or frames (TA).
    """

    def __init__(self, dim: int, kernel_size: int, norm_groups: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if dim % norm_groups:
            raise ValueError(f"norm_groups={norm_groups} does not divide dim={dim}")
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(dim, dim, kernel_size, padding=pad, groups=dim)
        self.act = nn.GELU()
        self.norm = nn.GroupNorm(norm_groups, dim)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size, padding=pad, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, N, C) -> (B, N, C)``."""
        y = x.transpose(1, 2)  # (B, C, N)
        y = self.conv2(self.norm(self.act(self.conv1(y))))
        return x + y.transpose(1, 2)


def spatial_attention(dim: int, kernel_size: int = 5, norm_groups: int = 1) -> nn.Module:
    """SA (eq. 8) for spatial blocks whose tokens are joints: ``(B*T, J, c) -> (B*T, J, c)``."""
    return DepthwiseConvAttention(dim, kernel_size, norm_groups)


def temporal_attention(dim: int, kernel_size: int = 3, norm_groups: int = 1) -> nn.Module:
    """TA (eq. 11) for temporal blocks whose tokens are frames: ``(B, T, J*c) -> (B, T, J*c)``."""
    return DepthwiseConvAttention(dim, kernel_size, norm_groups)

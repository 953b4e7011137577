"""Multi-head self-attention on top of ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention"]


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    The attention core is :func:`torch.nn.functional.scaled_dot_product_attention`, so PyTorch
    picks a fused (flash / memory-efficient / CPU flash) kernel when one applies.

    Args:
        dim: token channels ``C``; must be divisible by ``num_heads``.
        num_heads: number of heads ``H``; head dim ``D = C // H``.
        qkv_bias: bias in the ``qkv`` projection.
        qk_scale: logit scale; ``None`` (or 0, as in the reference ViT code) means ``D ** -0.5``.
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projection.

    Shapes: ``(B, N, C) -> (B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        # ``qk_scale or default`` keeps the semantics of the ViT code the baselines were built on.
        self.qk_scale: float | None = float(qk_scale) if qk_scale else None
        self.scale = self.qk_scale if self.qk_scale is not None else self.head_dim**-0.5

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over the ``N`` tokens of each sample.

        Args:
            x: ``(B, N, C)`` tokens.
            attn_mask: optional mask broadcastable to ``(B, H, N, N)`` (query x key). A bool mask
                marks the pairs that take part (True = attend); a float mask is added to the
                logits (use ``-inf`` to block a pair). Every query row needs at least one key.

        Returns:
            ``(B, N, C)`` tokens.
        """
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, D)
        if attn_mask is not None and attn_mask.dtype != torch.bool and attn_mask.dtype != q.dtype:
            attn_mask = attn_mask.to(q.dtype)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.0,
            scale=self.qk_scale,
        )  # (B, H, N, D)
        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}, scale={self.scale:.4g}"

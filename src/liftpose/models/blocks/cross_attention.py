"""Cross-attention of one token set (queries) over another (context), and the Transformer Layer
of lifting-by-image.txt that uses it.

:class:`CrossAttention` runs on :func:`~liftpose.models.blocks.attention.attend` (fused
``scaled_dot_product_attention``, or the faster plain path for bf16 on the CPU) unless
the caller asks for the attention weights (``need_weights=True``); then it takes the explicit
path ``softmax(Q K^T * scale) V`` and returns the weights ``A (B, H, N, M)`` beside the output.
Both paths give the same output (up to float rounding).

:class:`CrossTransformerLayer` is the "Transformer Layer" (TL) of lifting-by-image.txt (section
"Stage 1: Broad Query"): multi-head self-attention over the query tokens (MSA), multi-head
cross-attention from the query tokens to the context tokens (MCA, eq. 1) and a feed-forward
network (FFN), each pre-norm with a residual. Only the query tokens are updated; the context
passes through, so a TL and a Pose-guided Transformer Layer
(:class:`~liftpose.models.blocks.pose_guided.PoseGuidedTransformerLayer`) stack alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from liftpose.models.blocks.attention import Attention, attend
from liftpose.models.blocks.drop import DropPath
from liftpose.models.blocks.mlp import Mlp
from liftpose.models.blocks.transformer import default_norm_layer

__all__ = ["CrossAttention", "CrossTransformerLayer", "attention_weights", "split_heads"]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, C) -> (B, H, N, C // H)``."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, D) -> (B, N, H * D)``."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def attention_weights(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale)`` over the keys: ``(B, H, N, D), (B, H, M, D) -> (B, H, N, M)``,
    computed in float32 (the weights are kept for analysis and for token selection)."""
    logits = (q.float() @ k.float().transpose(-2, -1)) * scale
    return logits.softmax(dim=-1)


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens ``x (B, N, C)`` over context tokens ``(B, M, C_ctx)``.

    Args:
        dim: query channels ``C`` (also the output channels); divisible by ``num_heads``.
        num_heads: heads ``H``; head dim ``D = C // H``.
        qkv_bias: bias in the query and key/value projections.
        qk_scale: logit scale (``None``: ``D ** -0.5``, eq. 1 per head).
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        context_dim: channels of the context (default ``dim``).

    Shapes: ``forward(x (B, N, C), context (B, M, C_ctx)) -> (out (B, N, C), A)`` where ``A`` is
    ``(B, H, N, M)`` float32 with ``need_weights`` and ``None`` otherwise.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qk_scale: float | None = float(qk_scale) if qk_scale else None
        self.scale = self.qk_scale if self.qk_scale is not None else self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (B, N, C)`` attends over ``context (B, M, C_ctx)``; see the class docstring."""
        b, m, _ = context.shape
        q = split_heads(self.q(x), self.num_heads)  # (B, H, N, D)
        kv = self.kv(context).reshape(b, m, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, M, D)
        attn = None
        if need_weights:
            attn = attention_weights(q, k, self.scale)
            out = self.attn_drop(attn).to(v.dtype) @ v
        else:
            dropout_p = self.attn_drop.p if self.training else 0.0
            out = attend(q, k, v, dropout_p=dropout_p, scale=self.qk_scale)
        out = self.proj_drop(self.proj(merge_heads(out)))
        return out, attn

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}, scale={self.scale:.4g}"


class CrossTransformerLayer(nn.Module):
    """Transformer Layer (TL): MSA over the queries, MCA queries -> context, FFN (pre-norm).

    ::

        x = x + drop_path(MSA(norm1(x)))
        x = x + drop_path(MCA(norm2(x), norm_context(context)))
        x = x + drop_path(FFN(norm3(x)))

    Args:
        dim: token channels ``C`` (queries and context).
        num_heads: heads of both attentions.
        mlp_ratio: FFN hidden width as a multiple of ``dim``.
        qkv_bias, qk_scale, drop, attn_drop, drop_path, act_layer, norm_layer: as
            :class:`~liftpose.models.blocks.transformer.Block`.

    Shapes: ``forward(x (B, N, C), context (B, M, C), need_weights) -> (x (B, N, C), context
    (B, M, C) unchanged, A (B, H, N, M) float32 or None)``; ``A`` is the MCA's attention.
    """

    #: whether the layer updates the context tokens
    updates_context = False

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = default_norm_layer,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.self_attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop,
        )  # fmt: skip
        self.norm2 = norm_layer(dim)
        self.norm_context = norm_layer(dim)
        self.cross_attn = CrossAttention(
            dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop,
        )  # fmt: skip
        self.norm3 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x = x + self.drop_path(self.self_attn(self.norm1(x)))
        out, attn = self.cross_attn(self.norm2(x), self.norm_context(context), need_weights)
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm3(x)))
        return x, context, attn

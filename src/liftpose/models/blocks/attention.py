"""Multi-head self-attention on top of ``torch.nn.functional.scaled_dot_product_attention``.

Two connectivity patterns (``pattern``):

* ``dense``: every token attends to every token.
* ``strided``: the strided factorised attention of the Sparse Transformer (Child et al. 2019,
  strided-transformer.txt section 4.2.1). The first half of the heads attends to the nearby
  positions ``|i - j| <= l // 2``, the second half to every ``l``-th position ``(i - j) % l ==
  0``, with the stride ``l = round(sqrt(n))`` (or ``stride``). Child et al. define it causally
  (the previous ``l`` positions); a lifter sees its whole window, so liftpose makes both parts
  two-sided. Each head then sees about ``sqrt(n)`` keys and the union of the two patterns about
  ``2 / sqrt(n)`` of the dense pairs. The mask is built once per sequence length and device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ATTENTION_PATTERNS", "Attention", "strided_mask"]

ATTENTION_PATTERNS = ("dense", "strided")


def strided_mask(n: int, num_heads: int, stride: int | None = None, device=None) -> torch.Tensor:
    """Boolean ``(H, n, n)`` mask of two-sided strided attention (True = the pair attends).

    Heads ``0 .. H//2 - 1`` see ``|i - j| <= l // 2``; heads ``H//2 .. H - 1`` see
    ``(i - j) % l == 0``; ``l = stride or max(1, round(sqrt(n)))``. With one head, the head sees
    the union of both.
    """
    ell = stride or max(1, round(math.sqrt(n)))
    i = torch.arange(n, device=device)
    d = i[:, None] - i[None, :]
    local = d.abs() <= ell // 2
    strided = d.remainder(ell) == 0
    if num_heads == 1:
        return (local | strided)[None]
    half = num_heads // 2
    return torch.cat(
        [local.expand(half, n, n), strided.expand(num_heads - half, n, n)], dim=0
    ).contiguous()


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
        pattern: ``dense`` or ``strided`` (see the module docstring).
        stride: the stride ``l`` of the strided pattern (default ``round(sqrt(N))``).

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
        pattern: str = "dense",
        stride: int | None = None,
    ) -> None:
        super().__init__()
        if pattern not in ATTENTION_PATTERNS:
            raise ValueError(f"attention pattern {pattern!r}: one of {ATTENTION_PATTERNS}")
        self.pattern, self.stride = pattern, stride
        self._mask_cache: dict[tuple, torch.Tensor] = {}
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
        if self.pattern == "strided":
            pattern = self.pattern_mask(N, x.device)
            attn_mask = pattern if attn_mask is None else self._combine(attn_mask, pattern)
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

    def pattern_mask(self, n: int, device: torch.device) -> torch.Tensor:
        """The ``(H, n, n)`` boolean mask of this layer's pattern, cached per length/device."""
        key = (n, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = strided_mask(n, self.num_heads, self.stride, device)
        return self._mask_cache[key]

    @staticmethod
    def _combine(mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
        """A caller's mask restricted to the pattern's pairs (bool: and; float: -inf outside)."""
        if mask.dtype == torch.bool:
            return mask & pattern
        return mask.masked_fill(~pattern, float("-inf"))

    def extra_repr(self) -> str:
        extra = f", pattern={self.pattern}" if self.pattern != "dense" else ""
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, scale={self.scale:.4g}" + extra
        )

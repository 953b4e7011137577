"""Multi-head self-attention on top of ``torch.nn.functional.scaled_dot_product_attention``.

Two connectivity patterns (``pattern``):

* ``dense``: every token attends to every token.
* ``strided``: the strided factorised attention of the Sparse Transformer (Child et al. 2019,
  strided-transformer.txt section 4.2.1, eqs. 4-5). The first half of the heads attends to the
  nearby positions ``|i - j| <= l // 2``, the second half to every ``l``-th position ``(i - j) %
  l == 0``, with the stride ``l = round(sqrt(n))`` (or ``stride``). Child et al. define it
  causally (the previous ``l`` positions); a lifter sees its whole window, so liftpose makes
  both parts two-sided. Each head then sees about ``sqrt(n)`` keys.

The strided pattern is computed on its pairs only (:func:`strided_attention`), in
``O(n sqrt(n))`` time and memory:

* the nearby heads (:func:`local_attention`) cut the sequence into blocks of ``b = max(l // 2,
  1)`` queries; the keys of a block lie in it and its two neighbours, so each block attends to
  ``3 b`` keys through one batched ``scaled_dot_product_attention`` call with a fixed band mask
  (about ``1.5x`` the pairs of the band, never the ``n x n`` matrix);
* the strided heads (:func:`residue_attention`) reshape the sequence to ``(n / l, l)`` (the
  Sparse Transformer's factorisation): position ``a l + r`` is row ``a`` of column ``r``, and
  a column attends densely within itself, ``l`` independent sequences of ``n / l`` tokens, with
  no mask (a sequence that is not a multiple of ``l`` makes two calls, for the columns of
  ``ceil(n / l)`` and of ``floor(n / l)`` tokens).

With one head the head sees the union of both parts (:func:`union_strided_attention`, gathered
keys). :func:`strided_mask` gives the same pattern as a boolean ``(H, n, n)`` mask;
:func:`masked_strided_attention` (dense attention under that mask, every pair computed) is the
reference the sparse path is tested against (equal within 1e-5 in values and gradients).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTENTION_PATTERNS",
    "Attention",
    "attend",
    "local_attention",
    "masked_strided_attention",
    "residue_attention",
    "strided_attention",
    "strided_mask",
    "strided_stride",
    "union_strided_attention",
]

ATTENTION_PATTERNS = ("dense", "strided")


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v``: ``(B, ..., N, D), (B, ..., M, D) -> (B, ..., N, D)``.

    :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels), except for
    half-precision inputs (bf16 autocast) on the CPU: there its fused kernel is 1.5-5x slower
    than the plain ``matmul -> softmax -> matmul`` (backward most of all; ``make bench``
    measures both), so that path runs instead (softmax accumulated in float32). ``attn_mask`` as
    for ``scaled_dot_product_attention`` (bool: True attends; float: added to the logits).
    """
    if q.device.type != "cpu" or q.dtype not in (torch.bfloat16, torch.float16):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale
        )
    logits = (q * (scale if scale is not None else q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
    if logits.shape[-1] < 64:  # short rows: the float32 softmax kernel is the faster one
        logits = logits.float()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float("-inf"))
        else:
            logits = logits + attn_mask.to(logits.dtype)
    p = logits.softmax(-1).to(v.dtype)  # (the half-precision kernel accumulates in float32)
    if dropout_p > 0.0:
        p = F.dropout(p, dropout_p)
    return p @ v


def strided_stride(n: int, stride: int | None = None) -> int:
    """The stride ``l`` of the strided pattern over ``n`` tokens: ``stride`` or
    ``max(1, round(sqrt(n)))``."""
    return int(stride) if stride else max(1, round(math.sqrt(n)))


def strided_mask(n: int, num_heads: int, stride: int | None = None, device=None) -> torch.Tensor:
    """Boolean ``(H, n, n)`` mask of two-sided strided attention (True = the pair attends).

    Heads ``0 .. H//2 - 1`` see ``|i - j| <= l // 2``; heads ``H//2 .. H - 1`` see
    ``(i - j) % l == 0``; ``l = stride or max(1, round(sqrt(n)))``. With one head, the head sees
    the union of both.
    """
    ell = strided_stride(n, stride)
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


def masked_strided_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    stride: int | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Reference strided attention: dense attention under :func:`strided_mask` (every pair is
    computed, then masked). ``q, k, v: (B, H, n, D) -> (B, H, n, D)``."""
    mask = strided_mask(q.shape[-2], q.shape[1], stride, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)


def _band_mask(n: int, half_width: int, block: int, device: torch.device) -> torch.Tensor:
    """``(n_blocks, b, 3 b)`` mask of :func:`local_attention`: query ``u`` of block ``i`` (position
    ``i b + u``) and key ``s`` of the block's neighbourhood (position ``(i - 1) b + s``) attend
    when ``|key - query| <= half_width`` and the key is a real position. Padding queries past the
    end keep the band alone (their rows are dropped; no row is empty)."""
    nb = -(-n // block)
    u = torch.arange(block, device=device)[:, None]
    s = torch.arange(3 * block, device=device)[None, :]
    band = (s - block - u).abs() <= half_width  # (b, 3b)
    first = torch.arange(nb, device=device)[:, None, None] * block
    key = first - block + s  # (nb, 1, 3b)
    real_key = (key >= 0) & (key < n)
    pad_query = first + u >= n  # (nb, b, 1)
    return band & (real_key | pad_query)


def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    half_width: int,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Banded attention ``|i - j| <= half_width`` on the band's blocks only.

    ``q, k, v: (B, H, n, D) -> (B, H, n, D)``. Blocks of ``b = max(half_width, 1)`` queries
    attend to the ``3 b`` keys of their block and its two neighbours (zero padding at the ends,
    masked): ``O(n * half_width)`` time and memory.
    """
    B, H, n, D = q.shape
    b = max(int(half_width), 1)
    nb = -(-n // b)
    tail = nb * b - n
    qb = F.pad(q, (0, 0, 0, tail)).reshape(B * H, nb, b, D)

    def neighbourhoods(x: torch.Tensor) -> torch.Tensor:  # (B*H, nb, 3b, D)
        xb = F.pad(x, (0, 0, b, tail + b)).reshape(B * H, nb + 2, b, D)
        return torch.cat([xb[:, :-2], xb[:, 1:-1], xb[:, 2:]], dim=2)

    # a mask with the batch dimension (stride 0) keeps the fused CPU kernel
    mask = _band_mask(n, int(half_width), b, q.device).expand(B * H, nb, b, 3 * b)
    out = attend(qb, neighbourhoods(k), neighbourhoods(v), mask, dropout_p, scale)
    return out.reshape(B, H, nb * b, D)[:, :, :n]


def residue_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    stride: int,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention within residue classes, ``(i - j) % stride == 0``, without a mask.

    ``q, k, v: (B, H, n, D) -> (B, H, n, D)``. The sequence, padded to ``m l`` (``l = stride``,
    ``m = ceil(n / l)``), is viewed as ``(m, l)``; each of the ``l`` columns is a sequence of
    ``m`` (or ``m - 1``, past the end) tokens attending densely: ``O(n * m)`` time and memory.
    """
    B, H, n, D = q.shape
    ell = int(stride)
    m = -(-n // ell)
    full = n - (m - 1) * ell  # columns with m real tokens; the others have m - 1

    def columns(x: torch.Tensor) -> torch.Tensor:  # (B, H, l, m, D)
        return F.pad(x, (0, 0, 0, m * ell - n)).reshape(B, H, m, ell, D).transpose(2, 3)

    qc, kc, vc = columns(q), columns(k), columns(v)

    def columns_attend(sel: tuple[slice, slice], rows: int) -> torch.Tensor:
        cols = qc[(slice(None), slice(None), *sel)].shape[2]
        q_, k_, v_ = (
            x[(slice(None), slice(None), *sel)].reshape(B, H * cols, rows, D) for x in (qc, kc, vc)
        )
        o = attend(q_, k_, v_, None, dropout_p, scale)
        return o.reshape(B, H, cols, rows, D)

    out = columns_attend((slice(0, full), slice(None)), m)
    if full < ell:  # the last row is padding in these columns
        rest = columns_attend((slice(full, None), slice(0, m - 1)), m - 1)
        out = torch.cat([out, F.pad(rest, (0, 0, 0, 1))], dim=2)
    return out.transpose(2, 3).reshape(B, H, m * ell, D)[:, :, :n]


def union_strided_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    stride: int,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Every head sees both parts, ``|i - j| <= l // 2`` or ``(i - j) % l == 0`` (the one-head
    case of :func:`strided_attention`), through a gather of each query's ``2 (l // 2) + ceil(n /
    l)`` candidate keys: ``O(n sqrt(n))``. ``q, k, v: (B, H, n, D) -> (B, H, n, D)``."""
    B, H, n, D = q.shape
    ell, w = int(stride), int(stride) // 2
    m = -(-n // ell)
    i = torch.arange(n, device=q.device)[:, None]
    near = i + torch.arange(-w, w + 1, device=q.device)  # (n, 2w + 1)
    far = i % ell + ell * torch.arange(m, device=q.device)  # (n, m): the residue class of i
    keys = torch.cat([near, far], dim=1)
    ok = torch.cat([(near >= 0) & (near < n), (far < n) & (far != i)], dim=1)  # i counted once
    idx = keys.clamp(0, n - 1).reshape(-1)
    kg = k.index_select(2, idx).reshape(B, H, n, -1, D)
    vg = v.index_select(2, idx).reshape(B, H, n, -1, D)
    s = (q.unsqueeze(-2) @ kg.transpose(-1, -2)).squeeze(-2) * (scale or D**-0.5)  # (B,H,n,K)
    p = s.masked_fill(~ok, float("-inf")).softmax(-1)
    p = F.dropout(p, dropout_p) if dropout_p > 0 else p
    return (p.unsqueeze(-2) @ vg).squeeze(-2)


def strided_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    stride: int | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Two-sided strided sparse attention computed on its pairs only.

    Args:
        q, k, v: ``(B, H, n, D)``.
        stride: ``l`` (default ``round(sqrt(n))``).
        dropout_p: dropout on the attention probabilities.
        scale: logit scale (default ``D ** -0.5``).

    Returns:
        ``(B, H, n, D)``: heads ``0 .. H//2 - 1`` through :func:`local_attention` with half
        width ``l // 2``, the others through :func:`residue_attention`; one head through
        :func:`union_strided_attention`. Equal to :func:`masked_strided_attention`.
    """
    H, n = q.shape[1], q.shape[2]
    ell = strided_stride(n, stride)
    if H == 1:
        return union_strided_attention(q, k, v, ell, dropout_p, scale)
    h = H // 2
    near = local_attention(q[:, :h], k[:, :h], v[:, :h], ell // 2, dropout_p, scale)
    far = residue_attention(q[:, h:], k[:, h:], v[:, h:], ell, dropout_p, scale)
    return torch.cat([near, far], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    The attention core is :func:`attend`: :func:`torch.nn.functional.scaled_dot_product_attention`,
    so PyTorch picks a fused (flash / memory-efficient / CPU flash) kernel when one applies, or
    the plain path for bf16 on the CPU.

    Args:
        dim: token channels ``C``; must be divisible by ``num_heads``.
        num_heads: number of heads ``H``; head dim ``D = C // H``.
        qkv_bias: bias in the ``qkv`` projection.
        qk_scale: logit scale; ``None`` (or 0, as in the reference ViT code) means ``D ** -0.5``.
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projection.
        pattern: ``dense`` or ``strided`` (see the module docstring).
        stride: the stride ``l`` of the strided pattern (default ``round(sqrt(N))``).
        sparse: compute the strided pattern on its pairs only (:func:`strided_attention`);
            False runs the masked dense reference (:func:`masked_strided_attention`), as does a
            call with an ``attn_mask``. Both give the same outputs; an attribute, so a built
            model can be switched.

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
        sparse: bool = True,
    ) -> None:
        super().__init__()
        if pattern not in ATTENTION_PATTERNS:
            raise ValueError(f"attention pattern {pattern!r}: one of {ATTENTION_PATTERNS}")
        self.pattern, self.stride, self.sparse = pattern, stride, sparse
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
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, D)
        dropout_p = self.attn_drop.p if self.training else 0.0
        if self.pattern == "strided" and self.sparse and attn_mask is None:
            x = strided_attention(q, k, v, self.stride, dropout_p, self.qk_scale)
        else:
            if self.pattern == "strided":
                pattern = self.pattern_mask(N, x.device)
                attn_mask = pattern if attn_mask is None else self._combine(attn_mask, pattern)
            if attn_mask is not None and attn_mask.dtype not in (torch.bool, q.dtype):
                attn_mask = attn_mask.to(q.dtype)
            x = attend(q, k, v, attn_mask, dropout_p, self.qk_scale)  # (B, H, N, D)
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
        extra = ""
        if self.pattern != "dense":
            extra = f", pattern={self.pattern}" + ("" if self.sparse else " (masked)")
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, scale={self.scale:.4g}" + extra
        )

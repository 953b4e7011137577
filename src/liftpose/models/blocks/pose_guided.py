"""Pose-guided dual attention and the Pose-guided Transformer Layer (lifting-by-image.txt, eq. 2).

Keypoint tokens ``T_J (B, N, C)`` query image tokens ``T_I (B, M, C)``; one attention map

    A = softmax(Q K^T / sqrt(d))     (over the M image tokens; Q from T_J, K from T_I)

updates both token sets::

    T_J' = A V_I + T_J                      (each keypoint gathers image features)
    T_I' = A^T V_J + T_I                    (each image token gathers keypoint features)

Because ``A`` is normalised before it is transposed, an image token receives as much keypoint
information as the keypoints attend to it: the rows of ``A^T`` do not sum to one, and tokens the
keypoints ignore (the background) are barely updated. Per head, ``d`` is the head dim; the
heads are concatenated and each stream has an output projection (the paper writes eq. 2 for
one head without projections; the multi-head form with projections is liftpose's reading).

The paper's appendix (Table 11) compares three other ways to make the image update, available as
``normalization``:

* ``"before"``: eq. 2 (the paper's choice).
* ``"after"``: transpose the logits, then normalise over the keypoints: ``softmax((Q K^T)^T)``
  (every image token's weights sum to one).
* ``"double"``: normalise over the image tokens, transpose, normalise again over the keypoints.
* ``"independent"``: a second, independent cross-attention with image tokens as queries and
  keypoints as keys (its own query and key projections); ``A`` only updates the keypoints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from liftpose.models.blocks.attention import Attention
from liftpose.models.blocks.cross_attention import attention_weights, merge_heads, split_heads
from liftpose.models.blocks.drop import DropPath
from liftpose.models.blocks.mlp import Mlp
from liftpose.models.blocks.transformer import default_norm_layer

__all__ = ["PGA_NORMALIZATIONS", "PoseGuidedAttention", "PoseGuidedTransformerLayer"]

PGA_NORMALIZATIONS = ("before", "after", "double", "independent")


class PoseGuidedAttention(nn.Module):
    """Eq. 2: one keypoint -> image attention map updates keypoint and image tokens.

    Args:
        dim: token channels ``C`` of both sets; divisible by ``num_heads``.
        num_heads: heads ``H``.
        qkv_bias: bias in the query, key and value projections.
        qk_scale: logit scale (``None``: head dim ``** -0.5``).
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the two output projections.
        normalization: how the image tokens' weights are made (module docstring).

    Shapes: ``forward(joints (B, N, C), image (B, M, C)) -> (delta_joints (B, N, C),
    delta_image (B, M, C), A (B, H, N, M))``; the caller adds the residuals. ``A`` is float32,
    softmax over ``M``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        normalization: str = "before",
    ) -> None:
        super().__init__()
        if normalization not in PGA_NORMALIZATIONS:
            raise ValueError(f"normalization={normalization!r}: one of {PGA_NORMALIZATIONS}")
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = float(qk_scale) if qk_scale else self.head_dim**-0.5
        self.normalization = normalization
        self.q = nn.Linear(dim, dim, bias=qkv_bias)  # keypoints -> Q
        self.k = nn.Linear(dim, dim, bias=qkv_bias)  # image -> K
        self.v_image = nn.Linear(dim, dim, bias=qkv_bias)  # image -> V_I
        self.v_joints = nn.Linear(dim, dim, bias=qkv_bias)  # keypoints -> V_J
        if normalization == "independent":
            self.q_image = nn.Linear(dim, dim, bias=qkv_bias)
            self.k_joints = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_joints = nn.Linear(dim, dim)
        self.proj_image = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def image_weights(
        self, attn: torch.Tensor, logits: torch.Tensor, joints: torch.Tensor, image: torch.Tensor
    ) -> torch.Tensor:
        """The ``(B, H, M, N)`` weights with which image tokens gather keypoint values."""
        if self.normalization == "before":
            return attn.transpose(-2, -1)
        if self.normalization == "after":
            return logits.transpose(-2, -1).softmax(dim=-1)
        if self.normalization == "double":
            return attn.transpose(-2, -1).softmax(dim=-1)
        q = split_heads(self.q_image(image), self.num_heads)
        k = split_heads(self.k_joints(joints), self.num_heads)
        return attention_weights(q, k, self.scale)

    def forward(
        self, joints: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = split_heads(self.q(joints), self.num_heads)  # (B, H, N, D)
        k = split_heads(self.k(image), self.num_heads)  # (B, H, M, D)
        v_i = split_heads(self.v_image(image), self.num_heads)  # (B, H, M, D)
        v_j = split_heads(self.v_joints(joints), self.num_heads)  # (B, H, N, D)
        logits = (q.float() @ k.float().transpose(-2, -1)) * self.scale  # (B, H, N, M)
        attn = logits.softmax(dim=-1)
        attn_t = self.image_weights(attn, logits, joints, image)  # (B, H, M, N)
        d_joints = self.attn_drop(attn).to(v_i.dtype) @ v_i  # A V_I: (B, H, N, D)
        d_image = self.attn_drop(attn_t).to(v_j.dtype) @ v_j  # A^T V_J: (B, H, M, D)
        d_joints = self.proj_drop(self.proj_joints(merge_heads(d_joints)))
        d_image = self.proj_drop(self.proj_image(merge_heads(d_image)))
        return d_joints, d_image, attn

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"normalization={self.normalization}"
        )


class PoseGuidedTransformerLayer(nn.Module):
    """Pose-guided Transformer Layer (PGTL): a Transformer Layer whose cross-attention is the
    pose-guided dual attention, so it also updates the image tokens (eq. 2)::

        x = x + drop_path(MSA(norm1(x)))
        dx, dc, A = PGA(norm2(x), norm_context(context))
        x, context = x + drop_path(dx), context + drop_path(dc)
        x = x + drop_path(FFN(norm3(x)))
        [context = context + drop_path(FFN_context(norm_context2(context)))]   # image_mlp

    The paper describes the image update by eq. 2 alone; ``image_mlp=True`` adds an FFN on the
    image tokens as well (liftpose's option, off by default).

    Args:
        dim, num_heads, mlp_ratio, qkv_bias, qk_scale, drop, attn_drop, drop_path, act_layer,
            norm_layer: as :class:`~liftpose.models.blocks.cross_attention.CrossTransformerLayer`.
        normalization: see :class:`PoseGuidedAttention`.
        image_mlp: FFN on the updated image tokens.

    Shapes: ``forward(x (B, N, C), context (B, M, C), need_weights) -> (x (B, N, C), context
    (B, M, C), A (B, H, N, M))``; ``A`` is always returned (the layer computes it anyway).
    """

    updates_context = True

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
        normalization: str = "before",
        image_mlp: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.self_attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop,
        )  # fmt: skip
        self.norm2 = norm_layer(dim)
        self.norm_context = norm_layer(dim)
        self.dual_attn = PoseGuidedAttention(
            dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
            proj_drop=drop, normalization=normalization,
        )  # fmt: skip
        self.norm3 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.image_mlp = None
        if image_mlp:
            self.norm_context2 = norm_layer(dim)
            self.image_mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, need_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x + self.drop_path(self.self_attn(self.norm1(x)))
        dx, dc, attn = self.dual_attn(self.norm2(x), self.norm_context(context))
        x = x + self.drop_path(dx)
        context = context + self.drop_path(dc)
        x = x + self.drop_path(self.mlp(self.norm3(x)))
        if self.image_mlp is not None:
            context = context + self.drop_path(self.image_mlp(self.norm_context2(context)))
        return x, context, attn

"""The 3-D pose network of attn-2d3d-system.txt (section II-B): PoseFormer with SA and TA modules.

The lifter is PoseFormer (:class:`~liftpose.models.poseformer.PoseFormer`, whose blocks and
weights it shares) with

* a Spatial Attention module (SA, eq. 8: depthwise convolution over joints, kernel 5) in each of
  the ``depth`` spatial blocks and a Temporal Attention module (TA, eq. 11: depthwise
  convolution over frames, kernel 3) in each temporal block, at a position chosen
  independently for SA and TA (``sa_placement``, ``ta_placement``; see "Where SA and TA sit");
* a spatial regression head giving a per-frame 3-D estimate ``X'_3D`` from the spatial
  transformer (section II-B4), supervised by ``L_s`` (eq. 13);
* a sequence regression head on every frame of the temporal transformer, giving ``X~`` of
  shape ``(T, J, 3)`` supervised by ``L_t`` (eq. 14); the centre frame is the prediction.

The loss ``lambda_s * L_s + lambda_t * L_t`` (eq. 15) is the LiftingModule's
``output_weights: {spatial: lambda_s, temporal: lambda_t}`` over the named outputs this model
returns in training.

Where SA and TA sit. The paper gives three different positions (the slots of
:class:`~liftpose.models.blocks.Block`)::

    x = x + MSA(LN1(x))          "before_msa" acts on x before this line
    x = after_msa(x)              "after_msa": on the residual stream between MSA and MLP
    h = after_norm2(LN2(x))       "after_norm2": between LN2 and the MLP, on the MLP's input
    x = x + W2 in_mlp(W1 h)       "in_mlp": in place of the MLP's activation (hidden width)
    x = after_mlp(x)              "after_mlp": on the residual stream after the MLP

* Eqs. 9 and 12 write the block's MLP as ``MLP(x) = beta(x W1 + a1) W2 + a2`` "where beta
  denotes the P function in Eq. 8": eq. 7 (the plain MLP, ``alpha`` = GELU) with its
  activation replaced by the module, at the hidden width: ``in_mlp``.
* Section II-B2: SA "is inserted between the LN layer and MLP", and TA is the "same with the
  Spatial Transformer": ``after_norm2``.
* Section III-E and Table VIII: of before MSA / after MSA / after MLP, "after MSA" is best and
  the paper puts "SAM and TAM between the MSA and MLP": ``after_msa`` read on the residual
  stream, or ``after_norm2``, which is also after the MSA and before the MLP.

The default is ``after_norm2``, the one position that satisfies every sentence of the text
(II-B2's "between the LN layer and MLP" and III-E's "between the MSA and MLP", Table VIII's
"After MSA"); the equations' ``in_mlp`` is one config line away, as are the residual
``after_msa`` and Table VIII's other columns ``before_msa`` and ``after_mlp`` (read as
positions on the residual stream before the MSA and after the MLP). In ``in_mlp`` the module
works on the MLP's hidden channels (``mlp_ratio`` times the block's), which mix every joint:
TA's GroupNorm groups then split the hidden channels into ``num_joints`` equal parts.

Kernel sizes and the convolutions. The text gives SA "kernel 1 x 5" (section II-B2, "a group
of 5" keypoints) and TA "1 x 3" (eq. 11); the captions of Fig. 4 and Table VIII call them
"1 x 1 conv(olution)s with different channels". We read the captions' "1 x 1" as the
per-channel (depthwise) nature of the convolutions, one channel at a time, and keep the text's
extents along the tokens, 5 joints and 3 frames (``sa_kernel``, ``ta_kernel``; 1 gives the
captions read literally).

TA and eq. 10. Section II-B3 describes the temporal transformer with a correlation matrix
``C_ij = sum_F P_i P_j`` (dot products of frame features, sum-pooled) and ``K = PW_k,
Q = PW_q, V = PW_v`` obtained "using convolutions". We read this as the description of the
temporal block's multi-head self-attention (its ``QK^T`` is that correlation matrix, and
linear projections are 1 x 1 convolutions), which PoseFormer's linear ``qkv`` implements; the
TA module itself is eq. 11, the depthwise convolutions, with no attention matrix of its own.

Other places where the paper is ambiguous (each a constructor argument, so a config line):

* ``temporal_input``: the text says ``X'_3D`` "is also the input of Temporal Transformer".
  Read literally that squeezes every joint to 3 numbers between the two transformers. The
  paper builds on the PoseFormer code, whose temporal transformer reads the spatial features,
  and reports PoseFormer's parameter count plus 0.27 M, so the default is ``"features"`` (the
  spatial features, as PoseFormer; ``X'_3D`` is an auxiliary output) and ``"estimate"`` is
  the literal reading (``X'_3D`` embedded by a linear layer to the temporal width).
* ``head``: ``"sequence"`` (section II-B4, default) or ``"pool"`` (PoseFormer's learned
  weighted mean over frames and a single-frame head).
* SA and TA normalisation groups (see :mod:`liftpose.models.blocks.conv_attention`); default
  one group for SA, one group per joint for TA.
* ``lambda_s``/``lambda_t`` are not given in the paper: both default to 1.
* Section III-B's dropout 0.1 is ``drop_rate``; stochastic depth as PoseFormer (0.1).

With ``sa_placement = ta_placement = "none"``, ``head="pool"`` and ``spatial_head=False`` the
model is PoseFormer, parameter for parameter and output for output.

Shapes: ``forward(x: (B, T, J, C_in))`` returns ``(B, 1, J, 3)`` in eval mode; in training
mode, when it has auxiliary outputs, ``{"spatial": (B, T, J, 3), "temporal": (B, T | 1, J, 3)}``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from liftpose.models.blocks import make_slots, slot_width
from liftpose.models.blocks.conv_attention import spatial_attention, temporal_attention
from liftpose.models.poseformer import PoseFormer

__all__ = ["AttentionLifter"]

HEADS = ("sequence", "pool")
TEMPORAL_INPUTS = ("features", "estimate")


class AttentionLifter(PoseFormer):
    """PoseFormer with SA/TA modules and spatial + sequence supervision (see the module doc).

    Args (beyond :class:`PoseFormer`'s):
        sa_placement: slot of the SA module in every spatial block (``before_msa``,
            ``after_msa``, ``after_norm2`` (default), ``in_mlp``, ``after_mlp``), or ``"none"``.
        ta_placement: the same for the TA module in every temporal block.
        sa_kernel, ta_kernel: depthwise kernel sizes (paper: 5 and 3).
        sa_norm_groups: GroupNorm groups in SA (default 1).
        ta_norm_groups: GroupNorm groups in TA (default ``num_joints``).
        head: ``"sequence"`` or ``"pool"``.
        spatial_head: predict the per-frame estimate ``X'_3D`` (for ``L_s``).
        temporal_input: ``"features"`` or ``"estimate"`` (needs ``spatial_head``).
    """

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
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        sa_placement: str = "after_norm2",
        ta_placement: str = "after_norm2",
        sa_kernel: int = 5,
        ta_kernel: int = 3,
        sa_norm_groups: int = 1,
        ta_norm_groups: int | None = None,
        head: str = "sequence",
        spatial_head: bool = True,
        temporal_input: str = "features",
        attention: str = "dense",
    ) -> None:
        if head not in HEADS:
            raise ValueError(f"head={head!r}: one of {HEADS}")
        if temporal_input not in TEMPORAL_INPUTS:
            raise ValueError(f"temporal_input={temporal_input!r}: one of {TEMPORAL_INPUTS}")
        if temporal_input == "estimate" and not spatial_head:
            raise ValueError("temporal_input='estimate' needs spatial_head=True")
        ta_groups = num_joints if ta_norm_groups is None else ta_norm_groups

        def width(placement: str, dim: int) -> int:  # channels of the module at that slot
            return dim if placement == "none" else slot_width(placement, dim, int(dim * mlp_ratio))

        super().__init__(
            num_frames=num_frames,
            num_joints=num_joints,
            in_chans=in_chans,
            embed_dim_ratio=embed_dim_ratio,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            spatial_slots=lambda i, dim: make_slots(
                sa_placement,
                partial(spatial_attention, width(sa_placement, dim), sa_kernel, sa_norm_groups),
            ),
            temporal_slots=lambda i, dim: make_slots(
                ta_placement,
                partial(temporal_attention, width(ta_placement, dim), ta_kernel, ta_groups),
            ),
            attention=attention,
        )
        self.head_mode = head
        self.temporal_input = temporal_input
        # trained on whole windows (sequence head or per-frame X'_3D), evaluated on the centre
        self.output_mode = "seq2centre" if head == "sequence" or spatial_head else "centre"
        if head == "sequence":
            del self.frame_pool  # the centre frame of the sequence is the prediction
        self.spatial_head = nn.Linear(embed_dim_ratio, 3) if spatial_head else None
        self.estimate_embed = (
            nn.Linear(num_joints * 3, self.embed_dim) if temporal_input == "estimate" else None
        )

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output: ``x (B, T, J, C_in)`` -> ``{"spatial": (B, T, J, 3)`` when the spatial
        head exists, ``"temporal": (B, T, J, 3)`` (sequence head) or ``(B, 1, J, 3)`` (pool)}."""
        self.check_input(x)
        B, T, J, _ = x.shape
        feats = self.forward_spatial(x)  # (B, T, J*c)
        out: dict[str, torch.Tensor] = {}
        if self.spatial_head is not None:
            out["spatial"] = self.spatial_head(feats.reshape(B, T, J, -1))  # (B, T, J, 3)
        tokens = feats
        if self.estimate_embed is not None:
            tokens = self.estimate_embed(out["spatial"].reshape(B, T, J * 3))
        z = self.forward_temporal(tokens)  # (B, T, E)
        if self.head_mode == "pool":
            out["temporal"] = self.forward_head(self.frame_pool(z).squeeze(1))  # (B, 1, J, 3)
        else:
            out["temporal"] = self.head(self.head_norm(z)).reshape(B, T, J, 3)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """``(B, T, J, C_in)`` -> centre frame ``(B, 1, J, 3)``; in training, when there is
        more than the centre frame to supervise, the dict of :meth:`forward_outputs`."""
        out = self.forward_outputs(x)
        if self.training and (len(out) > 1 or self.head_mode == "sequence"):
            return out
        pred = out["temporal"]
        t = pred.shape[1]
        return pred[:, t // 2 : t // 2 + 1]

"""AMPose: alternately mixed Transformer encoders (global) and GCN blocks (local), single frame.

Lin, Chiu and Wu, "AMPose: Alternatively Mixed Global-Local Attention Model for 3D Human Pose
Estimation" (ampose.txt). No official code exists; this follows the paper's text::

    (B, 1, J, C_in) --joint_embed--> (B, J, c)
    for i in range(depth):
        [+ pos_embed]                                        (eq. 5, see ``pos_embed``)
        --encoders[i]: x + MSA(LN(x)); x + MLP(LN(x))-->     (eqs. 6-7, :class:`Block`)
        --gcn_blocks[i]: partitioned graph convs-->          (eq. 10, Fig. 3 / Table 4)
    --head_norm (LayerNorm), head (Linear c -> 3 per joint)--> (B, 1, J, 3)

Choices the paper leaves open (all constructor arguments, all in ``conf/model/ampose.yaml``):

* GCN block internals (the paper says only "a plain graph convolution followed by a graph
  convolution with the residual"; Fig. 3 is not in the text): a graph-conv unit is ``gconv ->
  norm -> act -> dropout`` with ``gcn_norm="layer"`` (LayerNorm, as the rest of the network)
  and ``gcn_act="gelu"`` (the activation of eq. 4). The other designs of Table 4 are
  described in :mod:`liftpose.models.blocks.graph`.
* Group normalisation of eq. 10 (``partition_normalisation``): ``joint`` splits the normalised
  neighbourhood ``D^-1/2 (A + I) D^-1/2`` into the three groups (ST-GCN's partitioning, which
  the paper says it adopts); ``group`` normalises each group by its own degrees as eq. 10 is
  written.
* Position embedding (``pos_embed``): eq. 5 adds ``W_pos`` to "the feature from the last layer"
  inside the encoder. ``shared`` (default, the literal reading): one learned ``(J, c)``
  embedding re-added at the input of every encoder; ``every``: a separate embedding per
  encoder; ``first``: added once after the joint embedding (ViT / PoseFormer style).
  Embeddings start at ``trunc_normal(std=0.02)``.
* Transformer sizes: ``num_heads=8``, ``mlp_ratio=2.0`` (as PoseFormer / MixSTE),
  ``qkv_bias=True``; no dropout or stochastic depth (none is mentioned).
* Regression head (``head``): ``joint`` (default) is one ``Linear(c, 3)`` shared by the joints;
  ``flat`` regresses all joints from the flattened ``(J * c)`` feature.
* Norm eps: 1e-6 for all LayerNorms (the project default of the transformer blocks).
* Linear layers keep PyTorch's default initialisation.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from liftpose.data.skeleton import get_layout
from liftpose.models.base import WindowLifter
from liftpose.models.blocks import GCN_BLOCKS, Block, build_gcn_block
from liftpose.models.blocks.transformer import default_norm_layer
from liftpose.models.refine import PoseRefinement

__all__ = ["AMPOSE_HEADS", "AMPOSE_POS_EMBEDS", "AMPose"]

AMPOSE_POS_EMBEDS: tuple[str, ...] = ("shared", "every", "first")
AMPOSE_HEADS: tuple[str, ...] = ("joint", "flat")


class AMPose(WindowLifter):
    """AMPose single-frame lifter: ``depth`` pairs of (Transformer encoder, GCN block).

    Args:
        num_frames: must be 1 (single-frame model; kept for the common lifter interface).
        num_joints: joints ``J``; must equal the joints of ``layout``.
        in_chans: input channels per joint ``C_in`` (2 for x, y).
        layout: skeleton layout giving the graph, ``h36m17`` or ``h36m16`` (no Neck/Nose; Head
            hangs on Thorax).
        embed_dim: token channels ``c`` (paper: 512).
        depth: number of (encoder, GCN block) pairs ``N`` (paper: 5).
        num_heads: attention heads of the encoders.
        mlp_ratio: MLP hidden width ratio of the encoders.
        qkv_bias: bias in the ``qkv`` projections.
        qk_scale: attention logit scale override (``None`` = ``head_dim ** -0.5``).
        drop_rate: dropout after the position embedding, in the attention projections, MLPs and
            graph-conv units.
        attn_drop_rate: attention-probability dropout.
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, depth)``; pair ``i`` uses
            rate ``i`` on the residual branches of its encoder and its GCN block.
        gcn_block: GCN block design, one of ``ours`` (paper), ``two_residual``, ``transformer``,
            ``convnext`` (Fig. 3 / Table 4; :func:`~liftpose.models.blocks.build_gcn_block`).
        gcn_norm: normalisation inside the GCN blocks, ``layer``, ``batch`` or ``none``.
        gcn_act: activation inside the GCN blocks, ``gelu`` or ``relu``.
        gcn_bias: bias of the graph convolutions.
        gcn_mlp_ratio: MLP hidden ratio of the ``transformer`` and ``convnext`` GCN blocks.
        layer_scale_init: initial layer scale of the ``convnext`` GCN block (0: none).
        partition_normalisation: ``joint`` or ``group`` (see the module docstring).
        pos_embed: ``shared``, ``every`` or ``first`` (see the module docstring).
        head: ``joint`` or ``flat`` regression head.
        refine: add a pose-refinement module as ``self.refine`` for Table 1's "Ours
            (refinement)" row (48.5 mm): the paper cites the module of Cai et al. [4] and does
            not describe it; liftpose uses that module as released with the Strided Transformer
            (:class:`~liftpose.models.refine.PoseRefinement`), trained by ``module=refine``.
            ``forward`` does not use it.

    Shapes: ``forward(x: (B, 1, J, C_in)) -> (B, 1, J, 3)``.
    """

    output_mode: ClassVar[str] = "centre"

    def __init__(
        self,
        num_frames: int = 1,
        num_joints: int = 17,
        in_chans: int = 2,
        layout: str = "h36m17",
        embed_dim: int = 512,
        depth: int = 5,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        gcn_block: str = "ours",
        gcn_norm: str = "layer",
        gcn_act: str = "gelu",
        gcn_bias: bool = True,
        gcn_mlp_ratio: float = 4.0,
        layer_scale_init: float | None = 1e-6,
        partition_normalisation: str = "joint",
        pos_embed: str = "shared",
        head: str = "joint",
        refine: bool = False,
    ) -> None:
        super().__init__()
        if num_frames != 1:
            raise ValueError(
                f"AMPose is a single-frame model: num_frames must be 1, got {num_frames}"
            )
        skeleton = get_layout(layout)
        if num_joints != skeleton.num_joints:
            raise ValueError(
                f"num_joints={num_joints} does not match layout {layout!r} "
                f"({skeleton.num_joints} joints)"
            )
        if gcn_block not in GCN_BLOCKS:
            raise ValueError(f"gcn_block {gcn_block!r}: one of {GCN_BLOCKS}")
        if pos_embed not in AMPOSE_POS_EMBEDS:
            raise ValueError(f"pos_embed {pos_embed!r}: one of {AMPOSE_POS_EMBEDS}")
        if head not in AMPOSE_HEADS:
            raise ValueError(f"head {head!r}: one of {AMPOSE_HEADS}")
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.layout = layout
        self.embed_dim = embed_dim
        self.depth = depth
        self.gcn_block = gcn_block
        self.pos_embed_mode = pos_embed
        self.head_mode = head
        norm_layer = default_norm_layer  # LayerNorm, eps=1e-6
        # On the CPU explicitly so that the model can be built under ``torch.device("meta")``.
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()

        self.joint_embed = nn.Linear(in_chans, embed_dim)
        n_pos = depth if pos_embed == "every" else 1
        self.pos_embed = nn.Parameter(torch.zeros(n_pos, num_joints, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)

        self.encoders = nn.ModuleList(
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
            )
            for i in range(depth)
        )
        self.gcn_blocks = nn.ModuleList(
            build_gcn_block(
                gcn_block,
                embed_dim,
                skeleton,
                norm=gcn_norm,
                act=gcn_act,
                drop=drop_rate,
                drop_path=dpr[i],
                bias=gcn_bias,
                normalisation=partition_normalisation,
                mlp_ratio=gcn_mlp_ratio,
                layer_scale_init=layer_scale_init,
            )
            for i in range(depth)
        )
        if head == "joint":
            self.head_norm = norm_layer(embed_dim)
            self.head = nn.Linear(embed_dim, 3)
        else:
            self.head_norm = norm_layer(num_joints * embed_dim)
            self.head = nn.Linear(num_joints * embed_dim, num_joints * 3)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        # the "(refinement)" row of Table 1: the module of [4] (Cai et al.) as released with
        # the Strided Transformer, used by the refinement stage (module=refine)
        self.refine = PoseRefinement(num_joints) if refine else None

    def add_pos_embed(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Eq. 5 before encoder ``index`` (per ``pos_embed``): ``(B, J, c) -> (B, J, c)``."""
        if self.pos_embed_mode == "first" and index > 0:
            return x
        pos = self.pos_embed[index if self.pos_embed_mode == "every" else 0]
        return self.pos_drop(x + pos)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Joint features: ``(B, 1, J, C_in) -> (B, J, c)``."""
        self.check_input(x)
        x = self.joint_embed(x[:, 0])  # (B, J, c)
        for i, (encoder, gcn) in enumerate(zip(self.encoders, self.gcn_blocks)):
            x = encoder(self.add_pos_embed(x, i))
            x = gcn(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, J, c) -> (B, 1, J, 3)``."""
        B, J, _ = x.shape
        if self.head_mode == "flat":
            x = x.reshape(B, J * self.embed_dim)
        return self.head(self.head_norm(x)).reshape(B, 1, J, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift one 2D pose to 3D.

        Args:
            x: ``(B, 1, J, C_in)`` normalised 2D keypoints.

        Returns:
            ``(B, 1, J, 3)`` root-relative 3D joints.
        """
        return self.forward_head(self.forward_features(x))

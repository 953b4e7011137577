"""Composable transformer building blocks shared by the lifting models."""

from liftpose.models.blocks.attention import Attention
from liftpose.models.blocks.cross_attention import CrossAttention, CrossTransformerLayer
from liftpose.models.blocks.drop import DropPath, drop_path
from liftpose.models.blocks.feature_selection import AdaptiveFeatureSelection, retained_count
from liftpose.models.blocks.graph import (
    GCN_BLOCKS,
    PARTITION_NAMES,
    ConvNeXtGCNBlock,
    GraphConvUnit,
    PartitionedGraphConv,
    PlainResidualGCNBlock,
    TransformerGCNBlock,
    TwoResidualGCNBlock,
    build_gcn_block,
    hop_distance,
    normalised_adjacency,
    partition_adjacency,
    skeleton_adjacency,
)
from liftpose.models.blocks.mlp import Mlp
from liftpose.models.blocks.pos_embed import sincos_pos_embed_2d
from liftpose.models.blocks.pose_guided import PoseGuidedAttention, PoseGuidedTransformerLayer
from liftpose.models.blocks.transformer import (
    SLOT_NAMES,
    Block,
    SlotSpec,
    build_block_slots,
    make_slots,
    slot_width,
)

__all__ = [
    "SLOT_NAMES",
    "AdaptiveFeatureSelection",
    "Attention",
    "CrossAttention",
    "CrossTransformerLayer",
    "PoseGuidedAttention",
    "PoseGuidedTransformerLayer",
    "retained_count",
    "sincos_pos_embed_2d",
    "Block",
    "DropPath",
    "Mlp",
    "SlotSpec",
    "build_block_slots",
    "drop_path",
    "make_slots",
    "slot_width",
    "GCN_BLOCKS",
    "PARTITION_NAMES",
    "ConvNeXtGCNBlock",
    "GraphConvUnit",
    "PartitionedGraphConv",
    "PlainResidualGCNBlock",
    "TransformerGCNBlock",
    "TwoResidualGCNBlock",
    "build_gcn_block",
    "hop_distance",
    "normalised_adjacency",
    "partition_adjacency",
    "skeleton_adjacency",
]

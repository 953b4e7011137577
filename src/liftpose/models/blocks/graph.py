"""Skeleton graphs, the partitioned (weight-unshared) graph convolution and GCN blocks.

The graph of a :class:`~liftpose.data.skeleton.Skeleton` has one node per joint and one edge per
bone; the adjacency ``A`` carries self loops (ampose.txt eq. 9). Every joint ``i`` splits its
neighbourhood into three groups (eq. 10, the spatial partitioning of ST-GCN):

* ``self``: the joint itself;
* ``closer``: neighbours closer to the root (the hip) than ``i``, i.e. its parent;
* ``farther``: neighbours farther from the root than ``i``, i.e. its children.

Distances are hop counts in the kinematic tree from the root joint (parent ``-1``). Each group
``g`` has its own normalised adjacency ``A_g`` and its own weights ``Theta_g``::

    Z = sum_g A_g X Theta_g                                       (eq. 10)

Two normalisations of the groups are available (``normalisation``):

* ``joint`` (default): ``A_g = mask_g * (D^-1/2 (A + I) D^-1/2)`` with ``D`` the degrees of the
  whole neighbourhood (eq. 9), so the three groups of a joint sum to its row of the normalised
  adjacency. This is how ST-GCN, whose kernel design the paper adopts, partitions a graph.
* ``group``: each group normalised by its own degrees, ``D_g^-1/2 A_g D_g^-1/2`` as eq. 10 writes
  it. ``closer`` and ``farther`` are directed (``A_g`` is not symmetric), and the root has no
  ``closer`` neighbour, so the left factor uses the row degrees of ``A_g`` and the right factor its
  column degrees (the same as eq. 10 for a symmetric ``A_g``); empty rows/columns stay zero.

GCN blocks (``(B, J, C) -> (B, J, C)``) built from the graph convolution, the designs of the
paper's Fig. 3 / Table 4 (:data:`GCN_BLOCKS`, :func:`build_gcn_block`):

* ``ours`` (:class:`PlainResidualGCNBlock`): a plain graph-conv unit, then a graph-conv unit with
  a residual connection: ``h = unit1(x); y = h + unit2(h)``;
* ``two_residual`` (:class:`TwoResidualGCNBlock`): both units residual (ResNet-style):
  ``h = x + unit1(x); y = h + unit2(h)``;
* ``transformer`` (:class:`TransformerGCNBlock`): a pre-norm transformer block with the graph
  convolution in place of self-attention: ``h = x + gconv(norm(x)); y = h + mlp(norm(h))``;
* ``convnext`` (:class:`ConvNeXtGCNBlock`): a ConvNeXt block with a depthwise graph convolution
  in place of the depthwise 7x7 convolution: ``y = x + gamma * mlp(norm(dwgconv(x)))``.

A graph-conv unit (:class:`GraphConvUnit`) is ``gconv -> norm -> act -> dropout``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from liftpose.data.skeleton import Skeleton
from liftpose.models.blocks.drop import DropPath
from liftpose.models.blocks.mlp import Mlp

__all__ = [
    "ACTIVATIONS",
    "GCN_BLOCKS",
    "GRAPH_NORMS",
    "PARTITION_NAMES",
    "PARTITION_NORMALISATIONS",
    "ConvNeXtGCNBlock",
    "GraphConvUnit",
    "PartitionedGraphConv",
    "PlainResidualGCNBlock",
    "TransformerGCNBlock",
    "TwoResidualGCNBlock",
    "build_gcn_block",
    "hop_distance",
    "make_graph_norm",
    "normalised_adjacency",
    "partition_adjacency",
    "skeleton_adjacency",
]

#: The neighbour groups of eq. 10, in the order of the first axis of :func:`partition_adjacency`.
PARTITION_NAMES: tuple[str, ...] = ("self", "closer", "farther")
PARTITION_NORMALISATIONS: tuple[str, ...] = ("joint", "group")
GCN_BLOCKS: tuple[str, ...] = ("ours", "two_residual", "transformer", "convnext")
GRAPH_NORMS: tuple[str, ...] = ("layer", "batch", "none")
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


# --------------------------------------------------------------------------------------------
# Graph matrices
# --------------------------------------------------------------------------------------------


def skeleton_adjacency(skeleton: Skeleton, self_loops: bool = True) -> torch.Tensor:
    """Symmetric 0/1 adjacency of the bones of ``skeleton``: ``(J, J)`` float32.

    ``A[i, k] = 1`` when ``i`` and ``k`` share a bone, and on the diagonal if ``self_loops``.
    """
    J = skeleton.num_joints
    adj = torch.zeros(J, J)
    for child, parent in skeleton.edges():
        adj[child, parent] = adj[parent, child] = 1.0
    if self_loops:
        adj += torch.eye(J)
    return adj


def hop_distance(skeleton: Skeleton) -> torch.Tensor:
    """Hops from the root joint (the one with parent ``-1``) along the tree: ``(J,)`` int64."""
    roots = [j for j, p in enumerate(skeleton.parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"a skeleton needs exactly one root joint (parent -1), got {roots}")
    depth: list[int | None] = [None] * skeleton.num_joints
    depth[roots[0]] = 0

    def resolve(j: int, seen: tuple[int, ...] = ()) -> int:
        if depth[j] is None:
            if j in seen:
                raise ValueError(f"the parents of the skeleton form a cycle through joint {j}")
            depth[j] = resolve(skeleton.parents[j], (*seen, j)) + 1
        return depth[j]  # type: ignore[return-value]

    return torch.tensor([resolve(j) for j in range(skeleton.num_joints)], dtype=torch.int64)


def _inv_sqrt(degree: torch.Tensor) -> torch.Tensor:
    """``degree ** -0.5`` with 0 where the degree is 0 (an isolated row or column)."""
    return torch.where(degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))


def normalised_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """Symmetric normalisation ``D^-1/2 A D^-1/2`` (eq. 9) with ``D_ii = sum_k A_ik``.

    Args:
        adjacency: ``(..., J, J)`` adjacency (self loops included by the caller).

    Returns:
        ``(..., J, J)``; rows and columns of zero degree stay zero.
    """
    d = _inv_sqrt(adjacency.sum(-1))  # (..., J)
    return d[..., :, None] * adjacency * d[..., None, :]


def partition_adjacency(skeleton: Skeleton, normalisation: str = "joint") -> torch.Tensor:
    """The three normalised group adjacencies of eq. 10: ``(3, J, J)`` float32.

    Group order :data:`PARTITION_NAMES` (``self``, ``closer``, ``farther``); entry ``[g, i, k]``
    weighs neighbour ``k`` of joint ``i`` in group ``g``.

    Args:
        skeleton: the kinematic tree; its root is the hip.
        normalisation: ``joint`` (split the normalised neighbourhood, groups sum to
            :func:`normalised_adjacency` of ``A + I``) or ``group`` (each group normalised by
            its own row/column degrees); see the module docstring.
    """
    if normalisation not in PARTITION_NORMALISATIONS:
        raise ValueError(
            f"partition normalisation {normalisation!r}: one of {PARTITION_NORMALISATIONS}"
        )
    adj = skeleton_adjacency(skeleton, self_loops=True)  # (J, J)
    hops = hop_distance(skeleton)  # (J,)
    rel = hops[None, :] - hops[:, None]  # [i, k] = hop(k) - hop(i)
    masks = torch.stack([rel == 0, rel < 0, rel > 0]).to(adj.dtype) * adj  # (3, J, J)
    if normalisation == "joint":
        return masks * normalised_adjacency(adj)
    row = _inv_sqrt(masks.sum(-1))  # (3, J)
    col = _inv_sqrt(masks.sum(-2))  # (3, J)
    return row[:, :, None] * masks * col[:, None, :]


# --------------------------------------------------------------------------------------------
# Graph convolution
# --------------------------------------------------------------------------------------------


class PartitionedGraphConv(nn.Module):
    """Graph convolution with one weight matrix per neighbour group (eq. 10).

    ``Z = sum_g A_g X Theta_g (+ b)``, computed as two contractions: every group's transform
    at once, ``XW = X [Theta_1 .. Theta_G]`` ``(B, J, G * C_out)`` viewed as
    ``(B, J * G, C_out)``, then the aggregation ``einsum('jm,bmd->bjd', A', XW)`` with
    ``A'[j, (k, g)] = A_g[j, k]`` ``(J, J * G)``.

    Args:
        in_dim: input channels ``C_in``.
        out_dim: output channels ``C_out``.
        graph: a :class:`Skeleton` (partitioned with :func:`partition_adjacency`), or an
            adjacency tensor used as given: ``(G, J, J)`` for ``G`` groups, or ``(J, J)`` for a
            single group (the weight-shared vanilla GCN of eq. 9 when it is the normalised
            adjacency).
        bias: add one learned bias ``(C_out,)`` after the aggregation.
        normalisation: group normalisation when ``graph`` is a skeleton (``joint``/``group``).
        depthwise: one weight per group and channel, ``Theta_g = diag(w_g)`` (needs
            ``in_dim == out_dim``), the graph analogue of a depthwise convolution.

    Initialisation: weights and bias ``U(-1/sqrt(G * C_in), 1/sqrt(G * C_in))`` (the
    :class:`torch.nn.Linear` default for a layer with ``G * C_in`` inputs); depthwise weights
    ``U(-1/sqrt(G), 1/sqrt(G))``.

    Shapes: ``(*, J, C_in) -> (*, J, C_out)``.
    """

    adjacency: torch.Tensor

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        graph: Skeleton | torch.Tensor,
        bias: bool = True,
        normalisation: str = "joint",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(graph, Skeleton):
            adj = partition_adjacency(graph, normalisation)
        else:
            adj = torch.as_tensor(graph, dtype=torch.float32)
            if adj.ndim == 2:
                adj = adj[None]
            if adj.ndim != 3 or adj.shape[-1] != adj.shape[-2]:
                raise ValueError(f"adjacency must be (J, J) or (G, J, J), got {tuple(adj.shape)}")
        if depthwise and in_dim != out_dim:
            raise ValueError(
                f"a depthwise graph conv needs in_dim == out_dim, got {in_dim}, {out_dim}"
            )
        self.in_dim, self.out_dim, self.depthwise = in_dim, out_dim, depthwise
        self.num_groups, self.num_joints = adj.shape[0], adj.shape[-1]
        # Derived from the skeleton (config), so not part of the state dict.
        self.register_buffer("adjacency", adj.clone(), persistent=False)
        shape = (self.num_groups, in_dim) if depthwise else (self.num_groups, in_dim, out_dim)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.num_groups * (1 if self.depthwise else self.in_dim)
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (*, J, C_in) -> (*, J, C_out)``."""
        lead, (J, C) = x.shape[:-2], x.shape[-2:]
        if J != self.num_joints or C != self.in_dim:
            raise ValueError(
                f"{type(self).__name__} expects (*, {self.num_joints}, {self.in_dim}), "
                f"got {tuple(x.shape)}"
            )
        G, D = self.num_groups, self.out_dim
        x = x.reshape(-1, J, C)  # (B, J, C_in)
        if self.depthwise:
            xw = x[:, :, None, :] * self.weight.to(x.dtype)  # (B, J, G, C)
        else:
            w = self.weight.permute(1, 0, 2).reshape(C, G * D)  # [Theta_1 .. Theta_G]
            xw = x @ w.to(x.dtype)  # (B, J, G * C_out)
        adj = self.adjacency.permute(1, 2, 0).reshape(J, J * G)  # [j, (k, g)] = A_g[j, k]
        out = torch.einsum("jm,bmd->bjd", adj.to(xw.dtype), xw.reshape(-1, J * G, D))
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*lead, J, self.out_dim)

    def extra_repr(self) -> str:
        return (
            f"{self.in_dim}, {self.out_dim}, groups={self.num_groups}, joints={self.num_joints}, "
            f"bias={self.bias is not None}, depthwise={self.depthwise}"
        )


# --------------------------------------------------------------------------------------------
# GCN blocks
# --------------------------------------------------------------------------------------------


class _ChannelBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of ``(B, J, C)`` tokens (statistics over batch and joints)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(-1, -2)).transpose(-1, -2)


def make_graph_norm(kind: str, dim: int, eps: float = 1e-6) -> nn.Module:
    """Normalisation of ``(B, J, C)`` tokens over ``C``: ``layer``, ``batch`` or ``none``."""
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "batch":
        return _ChannelBatchNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"graph norm {kind!r}: one of {GRAPH_NORMS}")


def _activation(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r}: one of {sorted(ACTIVATIONS)}") from None


class GraphConvUnit(nn.Module):
    """``gconv -> norm -> act -> dropout`` on ``(B, J, C)`` tokens.

    Args:
        dim: channels ``C`` (in and out).
        graph: skeleton or adjacency (:class:`PartitionedGraphConv`).
        norm: ``layer``, ``batch`` or ``none`` (:func:`make_graph_norm`).
        act: ``gelu`` or ``relu``.
        drop: dropout after the activation.
        bias: bias of the graph convolution.
        normalisation: partition normalisation (``joint``/``group``).

    Shapes: ``(B, J, C) -> (B, J, C)``.
    """

    def __init__(
        self,
        dim: int,
        graph: Skeleton | torch.Tensor,
        norm: str = "layer",
        act: str = "gelu",
        drop: float = 0.0,
        bias: bool = True,
        normalisation: str = "joint",
    ) -> None:
        super().__init__()
        self.gconv = PartitionedGraphConv(dim, dim, graph, bias=bias, normalisation=normalisation)
        self.norm = make_graph_norm(norm, dim)
        self.act = _activation(act)()
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.gconv(x))))


class PlainResidualGCNBlock(nn.Module):
    """The paper's GCN block (``ours``): a plain unit, then a residual unit.

    ``h = unit1(x); y = h + drop_path(unit2(h))`` with :class:`GraphConvUnit` units.

    Shapes: ``(B, J, C) -> (B, J, C)``.
    """

    def __init__(
        self,
        dim: int,
        graph: Skeleton | torch.Tensor,
        norm: str = "layer",
        act: str = "gelu",
        drop: float = 0.0,
        drop_path: float = 0.0,
        bias: bool = True,
        normalisation: str = "joint",
    ) -> None:
        super().__init__()
        kw = dict(norm=norm, act=act, drop=drop, bias=bias, normalisation=normalisation)
        self.unit1 = GraphConvUnit(dim, graph, **kw)
        self.unit2 = GraphConvUnit(dim, graph, **kw)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unit1(x)
        return x + self.drop_path(self.unit2(x))


class TwoResidualGCNBlock(PlainResidualGCNBlock):
    """ResNet-style GCN block (``two_residual``): both units residual.

    ``h = x + drop_path(unit1(x)); y = h + drop_path(unit2(h))``.

    Shapes: ``(B, J, C) -> (B, J, C)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.unit1(x))
        return x + self.drop_path(self.unit2(x))


class TransformerGCNBlock(nn.Module):
    """Transformer-style GCN block (``transformer``): graph conv in place of self-attention.

    ``h = x + drop_path(drop(gconv(norm1(x)))); y = h + drop_path(mlp(norm2(h)))`` with
    ``mlp = fc1 -> act -> drop -> fc2 -> drop`` of hidden width ``int(dim * mlp_ratio)``.

    Shapes: ``(B, J, C) -> (B, J, C)``.
    """

    def __init__(
        self,
        dim: int,
        graph: Skeleton | torch.Tensor,
        norm: str = "layer",
        act: str = "gelu",
        drop: float = 0.0,
        drop_path: float = 0.0,
        bias: bool = True,
        normalisation: str = "joint",
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.norm1 = make_graph_norm(norm, dim)
        self.gconv = PartitionedGraphConv(dim, dim, graph, bias=bias, normalisation=normalisation)
        self.drop = nn.Dropout(drop)
        self.norm2 = make_graph_norm(norm, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=_activation(act), drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.drop(self.gconv(self.norm1(x))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvNeXtGCNBlock(nn.Module):
    """ConvNeXt-style GCN block (``convnext``): depthwise graph conv, norm, inverted MLP.

    ``y = x + drop_path(gamma * mlp(norm(dwgconv(x))))``: the depthwise graph convolution
    (one weight per group and channel) mixes joints, ``mlp = fc1 (C -> mlp_ratio * C) -> act ->
    drop -> fc2 -> drop`` mixes channels, ``gamma`` is a learned per-channel layer scale
    initialised to ``layer_scale_init`` (``0`` or ``None``: no layer scale).

    Shapes: ``(B, J, C) -> (B, J, C)``.
    """

    def __init__(
        self,
        dim: int,
        graph: Skeleton | torch.Tensor,
        norm: str = "layer",
        act: str = "gelu",
        drop: float = 0.0,
        drop_path: float = 0.0,
        bias: bool = True,
        normalisation: str = "joint",
        mlp_ratio: float = 4.0,
        layer_scale_init: float | None = 1e-6,
    ) -> None:
        super().__init__()
        self.gconv = PartitionedGraphConv(
            dim, dim, graph, bias=bias, normalisation=normalisation, depthwise=True
        )
        self.norm = make_graph_norm(norm, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=_activation(act), drop=drop)
        self.gamma = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init))) if layer_scale_init else None
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.gconv(x)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y)


_BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "ours": PlainResidualGCNBlock,
    "two_residual": TwoResidualGCNBlock,
    "transformer": TransformerGCNBlock,
    "convnext": ConvNeXtGCNBlock,
}


def build_gcn_block(
    kind: str,
    dim: int,
    graph: Skeleton | torch.Tensor,
    *,
    norm: str = "layer",
    act: str = "gelu",
    drop: float = 0.0,
    drop_path: float = 0.0,
    bias: bool = True,
    normalisation: str = "joint",
    mlp_ratio: float = 4.0,
    layer_scale_init: float | None = 1e-6,
) -> nn.Module:
    """A GCN block of design ``kind`` (one of :data:`GCN_BLOCKS`), ``(B, J, C) -> (B, J, C)``.

    ``mlp_ratio`` applies to ``transformer`` and ``convnext`` only, ``layer_scale_init`` to
    ``convnext`` only.
    """
    if kind not in _BLOCKS:
        raise ValueError(f"gcn_block {kind!r}: one of {GCN_BLOCKS}")
    kw: dict = dict(
        norm=norm, act=act, drop=drop, drop_path=drop_path, bias=bias, normalisation=normalisation
    )
    if kind in ("transformer", "convnext"):
        kw["mlp_ratio"] = mlp_ratio
    if kind == "convnext":
        kw["layer_scale_init"] = layer_scale_init
    return _BLOCKS[kind](dim, graph, **kw)

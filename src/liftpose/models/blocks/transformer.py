"""Pre-norm transformer block with optional modules ("slots") in five positions.

A slot is any ``nn.Module`` mapping ``(B, N, C') -> (B, N, C')``. The positions::

    x = before_msa(x)                                   # residual stream, C' = C
    x = x + drop_path(attn(norm1(x)))
    x = after_msa(x)                                    # residual stream, C' = C
    h = after_norm2(norm2(x))                           # MLP branch input, C' = C
    x = x + drop_path(fc2(drop(in_mlp(fc1(h)))))        # replaces the MLP activation,
                                                        #   C' = the MLP hidden width
    x = after_mlp(x)                                    # residual stream, C' = C

(without ``in_mlp`` the MLP is ``fc2(drop(act(fc1(h))))``, with dropout after ``fc2`` in both).
Empty slots cost nothing and leave the block numerically identical to the plain block, so
official weights load unchanged. Slot modules are registered under ``<block>.slots.<name>``;
:func:`slot_width` gives the channels a slot sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

import torch
from torch import nn

from liftpose.models.blocks.attention import Attention
from liftpose.models.blocks.drop import DropPath
from liftpose.models.blocks.mlp import Mlp

__all__ = [
    "SLOT_NAMES",
    "Block",
    "SlotSpec",
    "build_block_slots",
    "default_norm_layer",
    "make_slots",
    "slot_width",
]

SLOT_NAMES: tuple[str, ...] = ("before_msa", "after_msa", "after_norm2", "in_mlp", "after_mlp")

#: Default block normalisation: LayerNorm with eps=1e-6 (as in ViT and the lifting baselines).
default_norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6)

#: How a model receives slot modules for a stack of blocks. Either
#: ``{slot_name: factory}`` where ``factory(width)`` is called once per block with the channels
#: of that slot (:func:`slot_width`; ``None`` = empty), or a callable
#: ``(block_index, dim) -> {slot_name: module | None}`` for per-block choices.
SlotSpec = (
    Mapping[str, Callable[[int], nn.Module] | None]
    | Callable[[int, int], Mapping[str, nn.Module | None]]
)


def _check_slot_names(names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in SLOT_NAMES]
    if unknown:
        raise ValueError(f"unknown slot name(s) {unknown}; valid slot names are {list(SLOT_NAMES)}")


def slot_width(name: str, dim: int, hidden: int) -> int:
    """Channels the module in slot ``name`` sees: ``hidden`` (the MLP hidden width) for
    ``in_mlp``, ``dim`` for every other slot."""
    _check_slot_names([name])
    return hidden if name == "in_mlp" else dim


def make_slots(placement: str | None, factory: Callable[[], nn.Module]) -> dict[str, nn.Module]:
    """Slot dict for one block from a placement string.

    Args:
        placement: ``None`` or ``"none"`` (no module) or one of :data:`SLOT_NAMES`.
        factory: called once (a fresh module per block) when ``placement`` names a slot.

    Returns:
        ``{}`` or ``{placement: factory()}``.
    """
    if placement is None or placement == "none":
        return {}
    _check_slot_names([placement])
    return {placement: factory()}


def build_block_slots(
    spec: SlotSpec | None, *, index: int, dim: int, hidden: int | None = None
) -> dict[str, nn.Module]:
    """Resolve a :data:`SlotSpec` into the slot dict of block ``index`` with ``dim`` channels
    and an MLP of ``hidden`` channels (default ``dim``)."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        _check_slot_names(spec)
        width = hidden or dim
        return {
            name: fac(slot_width(name, dim, width)) for name, fac in spec.items() if fac is not None
        }
    if callable(spec):
        slots = spec(index, dim)
        return {name: m for name, m in slots.items() if m is not None}
    raise TypeError(f"slot spec must be a mapping or a callable, got {type(spec).__name__}")


class Block(nn.Module):
    """Pre-norm transformer block (MSA + MLP) with optional slot modules.

    Args:
        dim: token channels ``C``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim`` (``int(dim * mlp_ratio)``).
        qkv_bias: bias in the ``qkv`` projection.
        qk_scale: attention logit scale override (``None`` = ``head_dim ** -0.5``).
        drop: dropout after the attention projection and inside the MLP.
        attn_drop: dropout on attention probabilities.
        drop_path: stochastic depth rate on both residual branches.
        act_layer: MLP activation class.
        norm_layer: normalisation class/factory called with ``dim``.
        slots: ``{slot_name: module | None}`` with names from :data:`SLOT_NAMES`; the module
            of ``in_mlp`` works on ``int(dim * mlp_ratio)`` channels, the others on ``dim``.
        attention: attention pattern, ``dense`` or ``strided`` (:class:`Attention`).

    Shapes: ``(B, N, C) -> (B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = default_norm_layer,
        slots: Mapping[str, nn.Module | None] | None = None,
        attention: str = "dense",
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
            pattern=attention,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

        slots = dict(slots or {})
        _check_slot_names(slots)
        for name, module in slots.items():
            if module is not None and not isinstance(module, nn.Module):
                raise TypeError(f"slot {name!r} must be an nn.Module, got {type(module).__name__}")
        self.slots = nn.ModuleDict({n: m for n, m in slots.items() if m is not None})

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x: (B, N, C)``, optional ``attn_mask`` broadcastable to ``(B, H, N, N)``."""
        slots = self.slots
        if "before_msa" in slots:
            x = slots["before_msa"](x)
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask=attn_mask))
        if "after_msa" in slots:
            x = slots["after_msa"](x)
        h = self.norm2(x)
        if "after_norm2" in slots:
            h = slots["after_norm2"](h)
        h = self.mlp(h, act=slots["in_mlp"]) if "in_mlp" in slots else self.mlp(h)
        x = x + self.drop_path(h)
        if "after_mlp" in slots:
            x = slots["after_mlp"](x)
        return x

"""Fixed 2-D sine-cosine positional embeddings of a grid of image tokens."""

from __future__ import annotations

import torch

__all__ = ["sincos_pos_embed_2d"]


def sincos_pos_embed_2d(
    height: int, width: int, dim: int, temperature: float = 10000.0, device=None
) -> torch.Tensor:
    """Sine-cosine embedding ``(height * width, dim)`` of the cells of a ``height x width`` grid
    in raster order (row-major, as ``x.flatten(2)`` of a ``(B, C, H, W)`` map).

    A quarter of the channels each holds ``sin`` and ``cos`` of the column and of the row at
    ``dim / 4`` geometric frequencies ``temperature ** (-k / (dim / 4))`` (the ViT/MAE form).

    Raises:
        ValueError: ``dim`` not divisible by 4.
    """
    if dim % 4 != 0:
        raise ValueError(f"2-D sine-cosine embeddings need dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = temperature ** (-torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64, device=device),
        torch.arange(width, dtype=torch.float64, device=device),
        indexing="ij",
    )
    ax = xs.reshape(-1, 1) * omega
    ay = ys.reshape(-1, 1) * omega
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1).float()

"""Adaptive Feature Selection Module (AFSM) of lifting-by-image.txt (Fig. 6).

Image tokens are ranked by the attention the keypoints pay them in the last Stage-1 layer,
summed over keypoints and heads; the top ``ceil(r * M)`` tokens are kept (``r``, the retention
rate, is 0.3 in the paper; Table 7 tries 0.01 and 1). The kept tokens are gathered in raster
order (ascending token index), which changes nothing for attention but keeps the output
deterministic. Selection is a hard top-k: no gradient reaches the scores.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AdaptiveFeatureSelection", "retained_count", "select_tokens", "token_scores"]


def retained_count(num_tokens: int, ratio: float) -> int:
    """``ceil(ratio * num_tokens)`` clipped to ``[1, num_tokens]`` (robust to float rounding:
    ``0.3 * 10`` keeps 3, not 4)."""
    return int(min(max(math.ceil(ratio * num_tokens - 1e-9), 1), num_tokens))


def token_scores(attn: torch.Tensor) -> torch.Tensor:
    """Importance of each image token: attention ``(B, H, N, M)`` summed over heads and
    keypoints -> ``(B, M)``."""
    return attn.sum(dim=(1, 2))


def select_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather tokens ``(B, M, C)`` at ``index (B, K)`` -> ``(B, K, C)``."""
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))


class AdaptiveFeatureSelection(nn.Module):
    """Keep the ``ceil(ratio * M)`` image tokens the keypoints attend to most.

    Args:
        ratio: retention rate ``r`` in ``(0, 1]``; ``1`` keeps every token (no gather).

    Shapes: ``forward(tokens (B, M, C), attn (B, H, N, M)) -> (kept (B, K, C), index (B, K))``
    with ``K = retained_count(M, ratio)`` and ``index`` ascending.

    Raises:
        ValueError: ``ratio`` outside ``(0, 1]``.
    """

    def __init__(self, ratio: float = 0.3) -> None:
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"retention ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)

    def forward(
        self, tokens: torch.Tensor, attn: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, _ = tokens.shape
        if attn.shape[0] != b or attn.shape[-1] != m:
            raise ValueError(
                f"attention {tuple(attn.shape)} does not match the tokens {tuple(tokens.shape)}"
            )
        k = retained_count(m, self.ratio)
        if k == m:
            index = torch.arange(m, device=tokens.device).expand(b, m)
            return tokens, index
        index = token_scores(attn).topk(k, dim=-1).indices.sort(dim=-1).values
        return select_tokens(tokens, index), index

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"

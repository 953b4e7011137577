"""MHFormer: multi-hypothesis transformer lifting a 2D pose sequence to a 3D pose sequence.

Li et al., "MHFormer: Multi-Hypothesis Transformer for 3D Human Pose Estimation", CVPR 2022.
Numerically equivalent to the official ``Model`` (weights load through
:func:`liftpose.models.official.from_official`), built from the shared
:class:`~liftpose.models.blocks.Block`, :class:`~liftpose.models.blocks.Attention` and
:class:`~liftpose.models.blocks.Mlp`::

    (B, T, J, C_in) --flatten, transpose--> (B, N, T)      N = J * C_in coordinate tokens,
                                                           each carrying its T-frame trajectory
    MHG   generators[0..2]: h_i = h_{i-1} + encoder_i(pre_norm_i(h_{i-1}))       (B, N, T) x 3
          (encoder: + pos_embed, 4 Blocks with T channels and 9 heads, norm)
    embed embeds[i]: per-frame N -> C projection (+ BN, ReLU, dropout when T <= 27)
          + pos_embed[i]                                                        (B, T, C) x 3
    SHR   shr_blocks x (layers - 1): own MSA per hypothesis over the T frame tokens, then one
          MLP on the concatenated hypotheses                                    (B, T, C) x 3
    CHI   chi_block: cross-attention between hypotheses, then the concatenated MLP
    head  norm, head_norm (BatchNorm), head                                  (B, T, J_out, 3)

Unlike PoseFormer, the sequence output covers every frame: the official code trains on all
frames and evaluates the centre one (``output_mode = "seq2centre"``).

Names, ours <- official (``i``/``h`` count from 0 here, from 1 there; ``TH`` is
``Transformer_hypothesis``, ``CHI`` is ``TH.CHI_blocks.0``):

* ``generators.i.pre_norm`` <- ``norm_{i}`` (LayerNorm over the frames, eps 1e-5)
* ``generators.i.{pos_embed, blocks, norm}`` <- ``Transformer_encoder_{i}.*``
* ``embeds.i.proj`` <- ``embedding_{i}`` (T > 27) or ``embedding_{i}.0`` (Conv1d, kernel 1)
* ``embeds.i.norm`` <- ``embedding_{i}.1`` (BatchNorm1d, T <= 27 only)
* ``pos_embed[h]`` <- ``TH.pos_embed_{h}`` (the three ``(1, T, C)`` stacked to ``(3, T, C)``)
* ``shr_blocks.k.{norm1, attn}.h`` <- ``TH.SHR_blocks.k.{norm1_h, attn_h}``
* ``shr_blocks.k.{norm2, mlp}`` <- ``TH.SHR_blocks.k.{norm2, mlp}``
* ``chi_block.{norm_q, norm_k, norm_v}.h`` <- ``CHI.{norm3_h1, norm3_h2, norm3_h3}``
* ``chi_block.attn.h.{q, k, v, proj}`` <- ``CHI.attn_h.{linear_q, linear_k, linear_v, proj}``
* ``chi_block.{norm2, mlp}`` <- ``CHI.{norm2, mlp}``
* ``norm`` <- ``TH.norm``; ``head_norm`` <- ``regression.0`` (BatchNorm1d);
  ``head`` <- ``regression.1`` (Conv1d, kernel 1)

Details of the official code reproduced here:

* Two code branches: for ``T <= 27`` frames each hypothesis embedding is
  ``Conv1d -> BatchNorm1d -> ReLU -> Dropout(0.25)``, for ``T > 27`` a bare ``Conv1d``
  (``embed_norm`` selects either explicitly). The 1x1 convolutions are :class:`~torch.nn.Linear`
  here (the converter squeezes their weights), BatchNorms run on ``(B*T, C)``.
* The three MHG pre-norms are LayerNorms with PyTorch's default eps 1e-5; every other LayerNorm
  has eps 1e-6.
* MHG attends over the ``J * C_in`` coordinate tokens with 9 heads of width ``T / 9`` (``T``
  must be divisible by 9), SHR/CHI over the ``T`` frames with 8 heads.
* CHI updates the hypotheses in turn and later updates see earlier ones: hypothesis 1 attends
  with query = norm(h2), key = norm(h3), value = norm(h1); then hypothesis 2 with
  query = norm(h1 updated), key = norm(h3), value = norm(h2); then hypothesis 3 with
  query = norm(h1 updated), key = norm(h2 updated), value = norm(h3).
* Dropout 0.1 and stochastic depth ``linspace(0, 0.2, depth)`` in both transformers; the SHR
  blocks take the first ``layers - 1`` rates, the CHI block the last one.
* The official code sizes the inputs for 2 channels per joint (``2 * n_joints``); here the
  width is ``num_joints * in_chans``. Its ``T <= 27`` branch builds the third embedding from
  ``2 * out_joints`` inputs, which only runs when ``out_joints == n_joints``; all three use
  ``num_joints * in_chans`` here. Its output reshape splits the ``3 * out_joints`` channels
  with the input joint count; here they are ``(out_joints, 3)``.
* Evaluation takes frame ``T // 2`` (the official ``pad = (T - 1) // 2`` for odd ``T``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from liftpose.models.base import WindowLifter
from liftpose.models.blocks import Attention, Block, DropPath, Mlp
from liftpose.models.blocks.attention import attend
from liftpose.models.blocks.transformer import default_norm_layer
from liftpose.models.official import (
    OfficialConverter,
    StateDict,
    _translate_kwargs,
    register_official,
    rename_prefixes,
)

__all__ = [
    "CHIBlock",
    "CrossAttention",
    "HypothesisEmbed",
    "HypothesisGenerator",
    "MHFormer",
    "SHRBlock",
]

#: Number of hypotheses; the CHI wiring of the official code is defined for three.
NUM_HYPOTHESES = 3


def _linspace(stop: float, num: int) -> list[float]:
    """``num`` evenly spaced rates from 0 to ``stop`` (plain floats: works on the meta device)."""
    return [stop * i / (num - 1) for i in range(num)] if num > 1 else [0.0] * num


def _drop_path(p: float) -> nn.Module:
    return DropPath(p) if p > 0.0 else nn.Identity()


class HypothesisGenerator(nn.Module):
    """One MHG stage: ``x + encoder(pre_norm(x))`` over coordinate-trajectory tokens.

    Tokens are the ``N = J * C_in`` input coordinates, their channels the ``T`` frames, so the
    attention mixes coordinates (joints and axes) and the MLP mixes frames.

    Args:
        num_tokens: ``N`` (length of the position embedding).
        num_frames: ``T`` (token channels).
        depth: transformer blocks.
        num_heads: attention heads (must divide ``T``).
        mlp_ratio: MLP hidden width as a multiple of ``T``.
        qkv_bias: bias in the ``qkv`` projections.
        drop_rate: dropout after the position embedding, attention projection and MLP.
        attn_drop_rate: attention-probability dropout.
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, depth)``.

    Shapes: ``(B, N, T) -> (B, N, T)``.
    """

    def __init__(
        self,
        num_tokens: int,
        num_frames: int,
        depth: int = 4,
        num_heads: int = 9,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        dpr = _linspace(drop_path_rate, depth)
        # The stage input norm keeps PyTorch's default eps (1e-5), unlike the encoder's norms.
        self.pre_norm = nn.LayerNorm(num_frames)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, num_frames))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(
            Block(
                num_frames,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[i],
                norm_layer=default_norm_layer,
            )
            for i in range(depth)
        )
        self.norm = default_norm_layer(num_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, N, T) -> (B, N, T)``, the next hypothesis."""
        y = self.pos_drop(self.pre_norm(x) + self.pos_embed)
        for blk in self.blocks:
            y = blk(y)
        return x + self.norm(y)


class HypothesisEmbed(nn.Module):
    """Per-frame embedding of one hypothesis: ``proj`` (+ ``BatchNorm -> ReLU -> Dropout``).

    Args:
        in_features: ``N`` coordinates per frame.
        dim: embedding channels ``C``.
        norm: add the BatchNorm, ReLU and dropout (the official ``T <= 27`` branch).
        drop: dropout probability after the ReLU.

    Shapes: ``(B, T, N) -> (B, T, C)``.
    """

    def __init__(self, in_features: int, dim: int, norm: bool = True, drop: float = 0.25) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, dim)
        self.norm = nn.BatchNorm1d(dim, momentum=0.1) if norm else None
        self.drop = nn.Dropout(drop) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, T, N) -> (B, T, C)``."""
        x = self.proj(x)
        if self.norm is not None:
            B, T, C = x.shape
            x = self.drop(F.relu(self.norm(x.reshape(B * T, C)))).reshape(B, T, C)
        return x


class CrossAttention(nn.Module):
    """Multi-head attention with queries, keys and values from three different inputs.

    Args:
        dim: channels ``C``; must be divisible by ``num_heads``.
        num_heads: heads ``H``; head dim ``D = C // H``, logit scale ``D ** -0.5``.
        qkv_bias: bias in the ``q``, ``k``, ``v`` projections.
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projection.

    Shapes: ``(B, N, C) x 3 -> (B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, C) -> (B, H, N, D)``."""
        B, N, _ = x.shape
        return x.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend from ``q`` to ``k``, gathering ``v``.

        Args:
            q: ``(B, N, C)`` query tokens.
            k: ``(B, N, C)`` key tokens.
            v: ``(B, N, C)`` value tokens.

        Returns:
            ``(B, N, C)`` tokens.
        """
        B, N, C = q.shape
        x = attend(
            self._heads(self.q(q)),
            self._heads(self.k(k)),
            self._heads(self.v(v)),
            dropout_p=self.attn_drop.p if self.training else 0.0,
        )  # (B, H, N, D)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}"


class _HypothesisBlock(nn.Module):
    """Shared second half of SHR and CHI: an MLP over the concatenated hypotheses.

    Shapes: ``(B, N, C) x 3 -> (B, N, C) x 3``.
    """

    def __init__(
        self,
        dim: int,
        mlp_hidden_dim: int,
        drop: float,
        drop_path: float,
        norm_layer: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        self.drop_path = _drop_path(drop_path)
        self.norm2 = norm_layer(NUM_HYPOTHESES * dim)
        self.mlp = Mlp(NUM_HYPOTHESES * dim, mlp_hidden_dim, drop=drop)

    def forward_mlp(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``(B, N, C) x 3 -> (B, N, C) x 3`` through ``x + mlp(norm2(x))`` on ``(B, N, 3C)``."""
        x = torch.cat(list(xs), dim=-1)  # (B, N, 3C)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return list(x.chunk(NUM_HYPOTHESES, dim=-1))


class SHRBlock(_HypothesisBlock):
    """Self-hypothesis refinement: per-hypothesis MSA, then the MLP on the concatenation.

    Args:
        dim: channels ``C`` of one hypothesis.
        num_heads: attention heads.
        mlp_hidden_dim: hidden width of the MLP on ``3C`` channels.
        qkv_bias: bias in the ``qkv`` projections.
        drop: dropout after the attention projections and inside the MLP.
        attn_drop: attention-probability dropout.
        drop_path: stochastic depth rate of every residual branch.
        norm_layer: normalisation factory called with the channel count.

    Shapes: ``(B, N, C) x 3 -> (B, N, C) x 3``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = default_norm_layer,
    ) -> None:
        super().__init__(dim, mlp_hidden_dim, drop, drop_path, norm_layer)
        self.norm1 = nn.ModuleList(norm_layer(dim) for _ in range(NUM_HYPOTHESES))
        self.attn = nn.ModuleList(
            Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
            for _ in range(NUM_HYPOTHESES)
        )

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``xs``: three ``(B, N, C)`` hypotheses -> three ``(B, N, C)``."""
        xs = [
            x + self.drop_path(attn(norm(x)))
            for x, norm, attn in zip(xs, self.norm1, self.attn, strict=True)
        ]
        return self.forward_mlp(xs)


class CHIBlock(_HypothesisBlock):
    """Cross-hypothesis interaction: each hypothesis gathers its own values with queries and
    keys from the other two, then the MLP on the concatenation.

    Hypothesis ``h`` takes its query from the first and its key from the second of the other
    two hypotheses (in index order); the hypotheses are updated one after the other and later
    ones see the updated earlier ones, as in the official code.

    Args: as :class:`SHRBlock`.

    Shapes: ``(B, N, C) x 3 -> (B, N, C) x 3``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = default_norm_layer,
    ) -> None:
        super().__init__(dim, mlp_hidden_dim, drop, drop_path, norm_layer)
        self.norm_q = nn.ModuleList(norm_layer(dim) for _ in range(NUM_HYPOTHESES))
        self.norm_k = nn.ModuleList(norm_layer(dim) for _ in range(NUM_HYPOTHESES))
        self.norm_v = nn.ModuleList(norm_layer(dim) for _ in range(NUM_HYPOTHESES))
        self.attn = nn.ModuleList(
            CrossAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
            for _ in range(NUM_HYPOTHESES)
        )

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``xs``: three ``(B, N, C)`` hypotheses -> three ``(B, N, C)``."""
        xs = list(xs)
        for h in range(NUM_HYPOTHESES):
            q_src, k_src = (xs[i] for i in range(NUM_HYPOTHESES) if i != h)
            a = self.attn[h](self.norm_q[h](q_src), self.norm_k[h](k_src), self.norm_v[h](xs[h]))
            xs[h] = xs[h] + self.drop_path(a)
        return self.forward_mlp(xs)


class MHFormer(WindowLifter):
    """MHFormer lifting model (predicts every frame of a ``num_frames`` window).

    Args:
        num_frames: input window length ``T`` (the receptive field); divisible by
            ``mhg_heads``.
        num_joints: input joints ``J``.
        in_chans: input channels per joint ``C_in`` (the MHG tokens are the ``J * C_in``
            coordinates).
        out_joints: output joints (default ``num_joints``).
        layers: SHR blocks + 1 CHI block (official ``--layers``, default 3).
        channel: channels ``C`` of one hypothesis (official ``--channel``).
        d_hid: MLP hidden width of the SHR/CHI blocks (official ``--d_hid``).
        num_heads: SHR/CHI attention heads.
        mhg_depth: transformer blocks per MHG stage.
        mhg_heads: MHG attention heads (each of width ``T / mhg_heads``).
        mhg_mlp_ratio: MHG MLP hidden width as a multiple of ``T``.
        qkv_bias: bias in all query/key/value projections.
        drop_rate: dropout after position embeddings, attention projections and MLPs.
        attn_drop_rate: attention-probability dropout.
        drop_path_rate: stochastic depth, ``linspace(0, drop_path_rate, depth)`` per transformer.
        embed_norm: BatchNorm/ReLU/dropout in the hypothesis embeddings; ``None`` = the
            official rule ``num_frames <= 27``.
        embed_drop: dropout of those embeddings.

    Shapes: ``forward_sequence(x: (B, T, J, C_in)) -> (B, T, J_out, 3)``; ``forward`` returns
    that in training mode and its centre frame ``(B, 1, J_out, 3)`` in eval mode.

    Initialisation follows the official code: PyTorch defaults, zero position embeddings.
    """

    output_mode: ClassVar[str] = "seq2centre"

    def __init__(
        self,
        num_frames: int = 351,
        num_joints: int = 17,
        in_chans: int = 2,
        out_joints: int | None = None,
        layers: int = 3,
        channel: int = 512,
        d_hid: int = 1024,
        num_heads: int = 8,
        mhg_depth: int = 4,
        mhg_heads: int = 9,
        mhg_mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        embed_norm: bool | None = None,
        embed_drop: float = 0.25,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1 (SHR blocks + one CHI block), got {layers}")
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.out_joints = out_joints = out_joints or num_joints
        self.channel = channel
        self.num_tokens = num_tokens = num_joints * in_chans
        self.embed_norm = embed_norm = num_frames <= 27 if embed_norm is None else embed_norm
        H = NUM_HYPOTHESES

        # MHG: multi-hypothesis generation over coordinate trajectories
        self.generators = nn.ModuleList(
            HypothesisGenerator(
                num_tokens,
                num_frames,
                depth=mhg_depth,
                num_heads=mhg_heads,
                mlp_ratio=mhg_mlp_ratio,
                qkv_bias=qkv_bias,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=drop_path_rate,
            )
            for _ in range(H)
        )
        self.embeds = nn.ModuleList(
            HypothesisEmbed(num_tokens, channel, norm=embed_norm, drop=embed_drop) for _ in range(H)
        )

        # SHR & CHI over frame tokens
        self.pos_embed = nn.Parameter(torch.zeros(H, num_frames, channel))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = _linspace(drop_path_rate, layers)
        blk_args: dict[str, Any] = dict(
            dim=channel,
            num_heads=num_heads,
            mlp_hidden_dim=d_hid,
            qkv_bias=qkv_bias,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
            norm_layer=default_norm_layer,
        )
        self.shr_blocks = nn.ModuleList(
            SHRBlock(**blk_args, drop_path=dpr[i]) for i in range(layers - 1)
        )
        self.chi_block = CHIBlock(**blk_args, drop_path=dpr[layers - 1])
        self.norm = default_norm_layer(H * channel)

        # regression head on every frame
        self.head_norm = nn.BatchNorm1d(H * channel, momentum=0.1)
        self.head = nn.Linear(H * channel, out_joints * 3)

    def forward_hypotheses(self, x: torch.Tensor) -> list[torch.Tensor]:
        """MHG and embedding: ``(B, T, J, C_in) -> (B, T, C) x 3`` (with position embeddings)."""
        B, T, J, C = x.shape
        h = x.reshape(B, T, J * C).transpose(1, 2)  # (B, N, T); token n = j * C_in + c
        hyps = []
        for gen, embed, pos in zip(self.generators, self.embeds, self.pos_embed, strict=True):
            h = gen(h)  # (B, N, T)
            hyps.append(self.pos_drop(embed(h.transpose(1, 2)) + pos))  # (B, T, C)
        return hyps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Frame features: ``(B, T, J, C_in) -> (B, T, 3C)``."""
        self.check_input(x)
        hyps = self.forward_hypotheses(x)
        for blk in self.shr_blocks:
            hyps = blk(hyps)
        hyps = self.chi_block(hyps)
        return self.norm(torch.cat(hyps, dim=-1))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3C) -> (B, T, J_out, 3)``."""
        B, T, C = x.shape
        x = self.head(self.head_norm(x.reshape(B * T, C)))
        return x.reshape(B, T, self.out_joints, 3)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """3D pose of every frame: ``(B, T, J, C_in) -> (B, T, J_out, 3)``."""
        return self.forward_head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Lift a 2D window.

        Args:
            x: ``(B, T, J, C_in)`` normalised 2D keypoints, ``T = num_frames``.

        Returns:
            ``(B, T, J_out, 3)`` in training mode (every frame is supervised), the centre frame
            ``(B, 1, J_out, 3)`` in eval mode.
        """
        out = self.forward_sequence(x)
        if self.training:
            return out
        t = out.shape[1]
        return out[:, t // 2 : t // 2 + 1]


# --------------------------------------------------------------------------------------------
# official weights (Vegetebird/MHFormer, model/mhformer.py::Model)

_MHFORMER_ARGS = ("num_frames", "num_joints", "out_joints", "layers", "channel", "d_hid")
_MHFORMER_RENAMES = {"frames": "num_frames", "n_joints": "num_joints"}
#: Official arguments that do not change the network (``pad`` is derived from ``frames``).
_MHFORMER_IGNORED = ("pad",)


@register_official("mhformer")
class MHFormerOfficial(OfficialConverter):
    """Official ``Model(args)`` -> :class:`MHFormer`.

    ``official_args`` holds the attributes of the official argparse namespace that the
    constructor reads: ``frames``, ``n_joints``, ``out_joints``, ``layers``, ``channel``,
    ``d_hid`` (``pad`` is accepted and ignored). The official forward returns every frame,
    ``(B, T, J_out, 3)``, in either mode: that is :meth:`MHFormer.forward_sequence` (``model(x)``
    in eval mode gives its centre frame).
    """

    official_class = "Vegetebird/MHFormer: model/mhformer.py::Model"

    def official_forward(self, model: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        """The official forward returns every frame: :meth:`MHFormer.forward_sequence`."""
        return model.forward_sequence(*inputs)

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        args = {k: v for k, v in official_args.items() if k not in _MHFORMER_IGNORED}
        return _translate_kwargs(args, _MHFORMER_RENAMES, _MHFORMER_ARGS, "MHFormer")

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return MHFormer(**model_args)

    @staticmethod
    def key_rules(layers: int, embed_norm: bool) -> list[tuple[str, str]]:
        """``(official prefix, our prefix)`` pairs for :func:`rename_prefixes`.

        Args:
            layers: official ``layers`` (``layers - 1`` SHR blocks).
            embed_norm: the embeddings are ``Sequential`` (official ``frames <= 27`` branch).
        """
        hyp, chi = "Transformer_hypothesis.", "Transformer_hypothesis.CHI_blocks.0."
        rules = [
            (hyp + "norm.", "norm."),
            (chi + "norm2.", "chi_block.norm2."),
            (chi + "mlp.", "chi_block.mlp."),
            ("regression.0.", "head_norm."),
            ("regression.1.", "head."),
        ]
        for k in range(layers - 1):
            shr, ours = f"{hyp}SHR_blocks.{k}.", f"shr_blocks.{k}."
            rules += [(shr + "norm2.", ours + "norm2."), (shr + "mlp.", ours + "mlp.")]
            for i in range(NUM_HYPOTHESES):
                rules += [
                    (f"{shr}norm1_{i + 1}.", f"{ours}norm1.{i}."),
                    (f"{shr}attn_{i + 1}.", f"{ours}attn.{i}."),
                ]
        for i in range(NUM_HYPOTHESES):
            n = i + 1
            rules += [
                (f"norm_{n}.", f"generators.{i}.pre_norm."),
                (f"Transformer_encoder_{n}.", f"generators.{i}."),
                (f"{chi}norm3_{n}1.", f"chi_block.norm_q.{i}."),
                (f"{chi}norm3_{n}2.", f"chi_block.norm_k.{i}."),
                (f"{chi}norm3_{n}3.", f"chi_block.norm_v.{i}."),
                (f"{chi}attn_{n}.linear_q.", f"chi_block.attn.{i}.q."),
                (f"{chi}attn_{n}.linear_k.", f"chi_block.attn.{i}.k."),
                (f"{chi}attn_{n}.linear_v.", f"chi_block.attn.{i}.v."),
                (f"{chi}attn_{n}.proj.", f"chi_block.attn.{i}.proj."),
            ]
            if embed_norm:
                rules += [
                    (f"embedding_{n}.0.", f"embeds.{i}.proj."),
                    (f"embedding_{n}.1.", f"embeds.{i}.norm."),
                ]
            else:
                rules.append((f"embedding_{n}.", f"embeds.{i}.proj."))
        return rules

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        args = self.model_args(official_args)
        layers = args.get("layers", 3)
        embed_norm = args.get("num_frames", 351) <= 27
        sd = dict(state_dict)
        # the three hypothesis position embeddings (1, T, C) stack into one (3, T, C)
        names = [f"Transformer_hypothesis.pos_embed_{n}" for n in range(1, NUM_HYPOTHESES + 1)]
        pos = [sd.pop(k) for k in names if k in sd]  # a partial set is caught by the key check
        out = rename_prefixes(sd, self.key_rules(layers, embed_norm))
        if pos:
            out["pos_embed"] = torch.cat(pos, dim=0)
        # 1x1 convolutions (out, in, 1) -> linear weights (out, in)
        for key in ("head.weight", *(f"embeds.{i}.proj.weight" for i in range(NUM_HYPOTHESES))):
            if key in out and out[key].ndim == 3:
                out[key] = out[key].squeeze(-1)
        return out

"""Lifting by Image (lifting-by-image.txt, Zhou, Yin and Li, AAAI 2024): a 2-D pose lifted to 3-D
by querying the image it was detected in, in two stages.

Composition (every block is shared, see :mod:`liftpose.models.blocks`)::

    image (B, 3, H, W) --HRNet features--> (B, w, H/4, W/4) --1x1 conv, + 2-D pos. emb.-->
        image tokens T_I (B, M, d), M = H/4 * W/4
    2-D pose (B, N, 2) --per-joint linear + joint embedding--> keypoint tokens T_J (B, N, d)

    Stage 1, "broad query" (default [TL, PGTL, TL]):
        T_J, T_I --layers--> T_J1, T_I1 ; last layer's keypoint -> image attention A (B, h, N, M)
        T_J1 --norm, linear--> coarse 3-D (B, N, 3)
    AFSM: keep the ceil(r M) image tokens of T_I1 with the largest attention summed over
        keypoints and heads (r = 0.3)                                     -> (B, K, d)
    Stage 2, "focused exploration": 3 TLs over T_J1 and the kept tokens
        --norm, linear--> refined 3-D (B, N, 3)

TL = :class:`~liftpose.models.blocks.cross_attention.CrossTransformerLayer` (MSA, MCA, FFN);
PGTL = :class:`~liftpose.models.blocks.pose_guided.PoseGuidedTransformerLayer` (eq. 2);
AFSM = :class:`~liftpose.models.blocks.feature_selection.AdaptiveFeatureSelection`.

Choices the paper leaves open (each an argument, so a config key; defaults in brackets):

* ``embed_dim`` [256], ``num_heads`` [8], ``mlp_ratio`` [2.0], dropout and stochastic depth [0]:
  the paper gives no widths; these are GraFormer/PoseFormer-sized.
* ``pos_embed`` ["sine"]: the image tokens' 2-D positional embedding, fixed sine-cosine (any
  crop size) or ``"learned"`` (one per token of ``image_size / 4``).
* Keypoint tokens: one linear map of each joint's 2-D shared by the joints plus a learned
  per-joint embedding (the paper: "transformed to pose tokens by linear projection").
* ``head_norm`` [True]: a LayerNorm before each 3-D head's linear projection.
* ``pgtl_normalization`` ["before", eq. 2] and ``pgtl_image_mlp`` [False]: see
  :mod:`liftpose.models.blocks.pose_guided` (Table 11's variants are the other values).
* Stage 2 reads the Stage-1 keypoint tokens (before the coarse head) and the kept Stage-1 image
  tokens (after the PGTL's update); AFSM ranks with the attention of the last Stage-1 layer
  (section "Adaptive Feature Selection Module"); the kept tokens keep the positional embedding
  they were given at the input.
* ``stage2_init`` ["coarse"]: Stage 2 starts as the identity on the coarse pose: the output
  projections of its layers' residual branches are zero at construction, and the refined head
  is copied from the trained coarse head when Stage 2 starts (:meth:`LiftingByImage.start_stage2`,
  called by the training module), so the refined pose begins at the coarse one and Stage 2 only
  refines it. ``"random"``: the default initialisation, Stage 2 learns the lifting afresh.
* ``encoder`` [HRNet-W32, plain]: arguments of :class:`~liftpose.models.backbones.HRNet`; its
  heatmap layer is dropped. ``encoder_weights``: an official HRNet state dict (the COCO
  ``pose_hrnet_w32_256x192.pth``, same key names as :func:`liftpose.models.official.from_official`
  ``("hrnet", ...)`` loads) or a liftpose ``module=heatmap`` checkpoint, loaded by the training
  module at the start of fitting (:meth:`LiftingByImage.load_encoder`).

The attention of the last Stage-1 layer is what the paper analyses ("background attention",
Tables 1 and 5; Figs. 3-4) and what AFSM ranks with; :meth:`LiftingByImage.forward` returns it
on request.

Shapes: ``forward(image (B, 3, H, W), keypoints (B, N, 2))`` -> :class:`LiftingByImageOutput`
with ``coarse (B, N, 3)`` and ``fine (B, N, 3)`` (metres, root-relative camera frame, as the
targets); ``H`` and ``W`` divisible by 32 (HRNet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from liftpose.errors import DataError
from liftpose.models.backbones.hrnet import HRNet
from liftpose.models.blocks import (
    AdaptiveFeatureSelection,
    CrossTransformerLayer,
    PoseGuidedTransformerLayer,
    sincos_pos_embed_2d,
)
from liftpose.models.blocks.transformer import default_norm_layer

__all__ = [
    "LAYER_KINDS",
    "ImageTokens",
    "KeypointTokens",
    "LiftingByImage",
    "LiftingByImageOutput",
    "load_encoder_state",
]

#: Stage-1 layer names: ``tl`` (Transformer Layer) and ``pgtl`` (Pose-guided Transformer Layer)
LAYER_KINDS = ("tl", "pgtl")


@dataclass
class LiftingByImageOutput:
    """What one forward pass gives.

    ``coarse (B, N, 3)``: the Stage-1 pose; ``fine (B, N, 3)`` or None: the Stage-2 pose;
    ``attention (B, H, N, M)`` float32 or None: the last Stage-1 layer's keypoint -> image
    attention; ``kept (B, K)`` or None: the image tokens AFSM kept (raster indices into the
    ``grid``); ``grid``: ``(h, w)`` of the image tokens.
    """

    coarse: torch.Tensor
    fine: torch.Tensor | None
    attention: torch.Tensor | None
    kept: torch.Tensor | None
    grid: tuple[int, int]

    def poses(self) -> dict[str, torch.Tensor]:
        """``{"coarse": ..., "fine": ...}`` (the outputs present)."""
        out = {"coarse": self.coarse}
        if self.fine is not None:
            out["fine"] = self.fine
        return out

    @property
    def final(self) -> torch.Tensor:
        """The refined pose when Stage 2 ran, else the coarse one: ``(B, N, 3)``."""
        return self.fine if self.fine is not None else self.coarse


def load_encoder_state(path: str | Path) -> dict[str, torch.Tensor]:
    """HRNet weights from an official state dict file (``.pth``; optionally under
    ``state_dict`` and with a ``module.`` prefix) or a liftpose ``module=heatmap`` checkpoint,
    without the heatmap layer (``final_layer.*``).

    Raises:
        DataError: the file is missing, unreadable or truncated, a liftpose checkpoint whose
            weights differ from their saved hash, or it holds no HRNet state dict.
    """
    from liftpose.utils.checkpoint import load_run_checkpoint, read_checkpoint_file

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "model.encoder_weights", "file not found")
    obj = read_checkpoint_file(path)  # a truncated or unreadable file: one line
    if "liftpose_config" in obj:
        obj, _ = load_run_checkpoint(path)  # a liftpose checkpoint: its weight hash checked
    if isinstance(obj, Mapping) and "liftpose_config" in obj:
        sd = {k[6:]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        sd = dict(obj["state_dict"])
    elif isinstance(obj, Mapping):
        sd = dict(obj)
    else:
        raise DataError(path, "model.encoder_weights", "not a state dict or checkpoint")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "liftpose_config" not in obj:  # official key names: the registered converter
        from liftpose.models.official import get_official

        sd = get_official("hrnet").convert(sd, {})
    return {k: v for k, v in sd.items() if not k.startswith("final_layer.")}


class ImageTokens(nn.Module):
    """Image -> tokens: HRNet features, a 1x1 projection to ``dim``, a 2-D positional embedding.

    Args:
        encoder: keyword arguments of :class:`~liftpose.models.backbones.HRNet` (the heatmap
            layer is dropped).
        dim: token width ``d``.
        pos_embed: ``"sine"`` (fixed, any grid) or ``"learned"`` (needs ``grid``).
        grid: ``(h, w)`` of the feature map for a learned embedding.

    Shapes: ``(B, 3, H, W) -> ((B, h * w, d), (h, w))``, ``h, w = H / 4, W / 4``.
    """

    def __init__(
        self,
        encoder: Mapping[str, Any] | None,
        dim: int,
        pos_embed: str = "sine",
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if pos_embed not in ("sine", "learned"):
            raise ValueError(f"pos_embed={pos_embed!r}: 'sine' or 'learned'")
        self.encoder = HRNet(**{**dict(encoder or {}), "num_joints": 1})
        self.encoder.final_layer = nn.Identity()  # features only
        channels = self.encoder.stage_channels[-1][0]
        self.proj = nn.Conv2d(channels, dim, 1)
        self.dim, self.pos_kind = dim, pos_embed
        self.pos_embed = None
        if pos_embed == "learned":
            if grid is None:
                raise ValueError("a learned positional embedding needs the token grid (h, w)")
            self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self._sine: dict[tuple, torch.Tensor] = {}

    def position(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """``(1, h * w, d)`` positional embedding of an ``h x w`` grid."""
        if self.pos_embed is not None:
            if self.pos_embed.shape[1] != h * w:
                raise ValueError(
                    f"the learned positional embedding has {self.pos_embed.shape[1]} tokens, "
                    f"the image gives {h}x{w}: set model.image_size to the crop size"
                )
            return self.pos_embed
        key = (h, w, str(device))
        if key not in self._sine:
            self._sine[key] = sincos_pos_embed_2d(h, w, self.dim, device=device)[None]
        return self._sine[key]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        feats = self.proj(self.encoder.forward_features(image))  # (B, d, h, w)
        h, w = feats.shape[-2:]
        tokens = feats.flatten(2).transpose(1, 2)  # (B, h*w, d)
        return tokens + self.position(h, w, tokens.device).to(tokens.dtype), (h, w)


class KeypointTokens(nn.Module):
    """2-D keypoints -> tokens: a linear map shared by the joints plus a learned joint embedding.

    Shapes: ``(B, N, C_in) -> (B, N, d)``.
    """

    def __init__(self, num_joints: int, dim: int, in_chans: int = 2) -> None:
        super().__init__()
        self.proj = nn.Linear(in_chans, dim)
        self.joint_embed = nn.Parameter(torch.zeros(1, num_joints, dim))
        nn.init.trunc_normal_(self.joint_embed, std=0.02)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.proj(keypoints) + self.joint_embed


def _head(dim: int, norm: bool) -> nn.Module:
    """Token -> 3-D: ``[LayerNorm ->] Linear(dim, 3)``."""
    return nn.Sequential(default_norm_layer(dim), nn.Linear(dim, 3)) if norm else nn.Linear(dim, 3)


class LiftingByImage(nn.Module):
    """Image-conditioned lifter with PGTL, AFSM and two stages (module docstring).

    Args:
        num_joints: keypoints ``N``.
        image_size: ``(H, W)`` of the crops (for a learned positional embedding; any size
            divisible by 32 runs with the sine embedding).
        encoder: HRNet arguments (``width``, ``stage_modules``, ``cam``, ...).
        encoder_weights: path of pretrained HRNet weights (see :func:`load_encoder_state`),
            loaded by :meth:`load_encoder`; None: trained from scratch.
        embed_dim, num_heads, mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate,
            drop_path_rate: the transformer layers (stochastic depth grows linearly over the
            Stage-1 then Stage-2 layers).
        stage1_layers: Stage-1 layer kinds in order, each ``"tl"`` or ``"pgtl"`` (paper:
            ``[tl, pgtl, tl]``; Table 6 varies it). The last one's attention feeds AFSM.
        stage2_depth: Transformer Layers of Stage 2 (paper: 3).
        retention: AFSM retention rate ``r`` in ``(0, 1]`` (paper: 0.3).
        pos_embed: ``"sine"`` or ``"learned"``.
        head_norm: LayerNorm before the 3-D heads.
        pgtl_normalization, pgtl_image_mlp: see
            :class:`~liftpose.models.blocks.pose_guided.PoseGuidedTransformerLayer`.
        stage2_init: ``"coarse"`` (Stage 2 starts as the identity on the coarse pose) or
            ``"random"`` (module docstring).

    Raises:
        ValueError: unknown layer kinds, an empty Stage 1, or a bad retention rate.
    """

    #: what the model reads: image crops (with their 2-D keypoints)
    input_kind: ClassVar[str] = "image"
    in_channels: ClassVar[int] = 3

    def __init__(
        self,
        num_joints: int = 17,
        image_size: Sequence[int] = (256, 192),
        encoder: Mapping[str, Any] | None = None,
        encoder_weights: str | None = None,
        embed_dim: int = 256,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        stage1_layers: Sequence[str] = ("tl", "pgtl", "tl"),
        stage2_depth: int = 3,
        retention: float = 0.3,
        pos_embed: str = "sine",
        head_norm: bool = True,
        pgtl_normalization: str = "before",
        pgtl_image_mlp: bool = False,
        stage2_init: str = "coarse",
    ) -> None:
        super().__init__()
        if stage2_init not in ("coarse", "random"):
            raise ValueError(f"stage2_init={stage2_init!r}: 'coarse' or 'random'")
        kinds = [str(k).lower() for k in stage1_layers]
        bad = [k for k in kinds if k not in LAYER_KINDS]
        if bad or not kinds:
            raise ValueError(
                f"stage1_layers={list(stage1_layers)}: a non-empty list of {LAYER_KINDS}"
            )
        if stage2_depth < 0:
            raise ValueError(f"stage2_depth must be >= 0, got {stage2_depth}")
        self.num_joints = num_joints
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.encoder_weights = encoder_weights
        self.stage1_kinds = tuple(kinds)
        grid = (self.image_size[0] // 4, self.image_size[1] // 4)
        self.image_tokens = ImageTokens(encoder, embed_dim, pos_embed, grid)
        self.keypoint_tokens = KeypointTokens(num_joints, embed_dim)
        n_layers = len(kinds) + stage2_depth
        dpr = [drop_path_rate * i / max(n_layers - 1, 1) for i in range(n_layers)]
        common = dict(
            dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
        )  # fmt: skip
        self.stage1 = nn.ModuleList(
            PoseGuidedTransformerLayer(
                **common,
                drop_path=dpr[i],
                normalization=pgtl_normalization,
                image_mlp=pgtl_image_mlp,
            )
            if kind == "pgtl"
            else CrossTransformerLayer(**common, drop_path=dpr[i])
            for i, kind in enumerate(kinds)
        )
        self.coarse_head = _head(embed_dim, head_norm)
        self.selection = AdaptiveFeatureSelection(retention)
        self.stage2 = nn.ModuleList(
            CrossTransformerLayer(**common, drop_path=dpr[len(kinds) + i])
            for i in range(stage2_depth)
        )
        self.fine_head = _head(embed_dim, head_norm)
        self.stage1_frozen = False
        self.stage2_init = stage2_init
        if stage2_init == "coarse":
            for layer in self.stage2:  # every residual branch starts at zero
                for proj in (layer.self_attn.proj, layer.cross_attn.proj, layer.mlp.fc2):
                    nn.init.zeros_(proj.weight)
                    nn.init.zeros_(proj.bias)

    # ------------------------------------------------------------------ stages and weights
    def stage1_modules(self) -> list[nn.Module]:
        """The Stage-1 part (encoder, token embeddings, Stage-1 layers, coarse head)."""
        return [self.image_tokens, self.keypoint_tokens, self.stage1, self.coarse_head]

    def stage2_modules(self) -> list[nn.Module]:
        """The Stage-2 part (its layers and the refined head; AFSM has no weights)."""
        return [self.stage2, self.fine_head]

    @torch.no_grad()
    def start_stage2(self) -> None:
        """Called when Stage 2 starts training: with ``stage2_init="coarse"`` the refined head
        becomes a copy of the (trained) coarse head."""
        if self.stage2_init == "coarse":
            self.fine_head.load_state_dict(self.coarse_head.state_dict())

    def freeze_stage1(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) Stage 1: no gradients, eval mode (BatchNorm statistics and
        dropout fixed), and its forward runs without autograd."""
        self.stage1_frozen = frozen
        for m in self.stage1_modules():
            m.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> LiftingByImage:
        super().train(mode)
        if self.stage1_frozen:
            for m in self.stage1_modules():
                m.eval()
        return self

    def load_encoder(self, path: str | Path | None = None) -> None:
        """Load pretrained HRNet weights (``path`` or ``encoder_weights``) into the encoder.

        Raises:
            DataError: the file is unusable, or its keys or shapes do not fit ``encoder``.
        """
        path = path or self.encoder_weights
        if path is None:
            return
        sd = load_encoder_state(path)
        encoder = self.image_tokens.encoder
        own = {k: v for k, v in encoder.state_dict().items() if not k.startswith("final_layer")}
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        shapes = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            raise DataError(
                path,
                "model.encoder",
                f"weights do not fit the configured HRNet (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, other shapes {shapes[:3]}); set model.encoder to its "
                "architecture",
            )
        encoder.load_state_dict(sd, strict=False)

    # ------------------------------------------------------------------ forward
    def forward_stage1(
        self, image: torch.Tensor, keypoints: torch.Tensor, need_attention: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """Stage 1: ``(T_J1 (B, N, d), T_I1 (B, M, d), A (B, H, N, M) or None, grid)``."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if keypoints.ndim != 3 or keypoints.shape[1:] != (self.num_joints, 2):
            raise ValueError(
                f"keypoints must be (B, {self.num_joints}, 2), got {tuple(keypoints.shape)}"
            )
        if keypoints.shape[0] != image.shape[0]:
            raise ValueError(f"{image.shape[0]} images but {keypoints.shape[0]} poses")
        tokens_i, grid = self.image_tokens(image)
        tokens_j = self.keypoint_tokens(keypoints.to(tokens_i.dtype))
        attn = None
        last = len(self.stage1) - 1
        for i, layer in enumerate(self.stage1):
            tokens_j, tokens_i, attn = layer(
                tokens_j, tokens_i, need_weights=need_attention and i == last
            )
        return tokens_j, tokens_i, attn, grid

    def forward(
        self,
        image: torch.Tensor,
        keypoints: torch.Tensor,
        stages: int = 2,
        need_attention: bool = False,
    ) -> LiftingByImageOutput:
        """Run Stage 1, and Stage 2 when ``stages == 2``.

        Args:
            image: ``(B, 3, H, W)`` normalised crops.
            keypoints: ``(B, N, 2)`` normalised 2-D keypoints.
            stages: 1 (coarse pose only) or 2 (both).
            need_attention: return the last Stage-1 attention (AFSM computes it anyway).

        Returns:
            :class:`LiftingByImageOutput`.
        """
        if stages not in (1, 2):
            raise ValueError(f"stages must be 1 or 2, got {stages}")
        need = need_attention or (stages == 2 and self.selection.ratio < 1.0)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.stage1_frozen):
            tokens_j, tokens_i, attn, grid = self.forward_stage1(image, keypoints, need)
            coarse = self.coarse_head(tokens_j)
        fine = kept = None
        if stages == 2:
            if attn is None:  # r = 1: every token is kept, no ranking needed
                selected = tokens_i
                kept = torch.arange(tokens_i.shape[1], device=image.device).expand(len(image), -1)
            else:
                selected, kept = self.selection(tokens_i, attn)
            for layer in self.stage2:
                tokens_j, selected, _ = layer(tokens_j, selected)
            fine = self.fine_head(tokens_j)
        return LiftingByImageOutput(coarse, fine, attn if need_attention else None, kept, grid)

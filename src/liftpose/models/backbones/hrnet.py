"""HRNet for top-down 2-D pose estimation, optionally with channel attention modules (CAM).

Sun et al., "Deep High-Resolution Representation Learning for Human Pose Estimation", CVPR 2019.
Numerically equivalent to the official ``PoseHighResolutionNet``
(leoxiaobin/deep-high-resolution-net.pytorch, ``lib/models/pose_hrnet.py``), whose weights load
through :func:`liftpose.models.official.from_official` as ``"hrnet"``; submodules carry the
official names, so the conversion is the identity.

Layout (``w`` the width, 32 or 48; stage ``s`` has ``s`` parallel branches of
``w, 2w, 4w, 8w`` channels at ``1/4, 1/8, 1/16, 1/32`` of the input resolution)::

    (B, 3, H, W) --conv1 (3x3, /2), bn1, ReLU, conv2 (3x3, /2), bn2, ReLU--> (B, 64, H/4, W/4)
        --layer1: 4 Bottlenecks--> (B, 256, H/4, W/4)
        --transition1--> [(B, w, H/4, W/4), (B, 2w, H/8, W/8)]      --stage2: 1 module-->
        --transition2--> [..., (B, 4w, H/16, W/16)]                --stage3: 4 modules-->
        --transition3--> [..., (B, 8w, H/32, W/32)]                --stage4: 3 modules-->
        (B, w, H/4, W/4) --final_layer (1x1)--> (B, K, H/4, W/4) heatmaps

A module (:class:`HRModule`) runs 4 ``BasicBlock``s per branch, then fuses: every output branch
``i`` is the ReLU of the sum over input branches ``j`` of ``x_j`` brought to branch ``i``
(identity; 1x1 conv + BN + nearest upsampling for ``j > i``; ``i - j`` strided 3x3 convs + BN
for ``j < i``). The last module of the last stage outputs only the full-resolution branch.
``H`` and ``W`` must be divisible by 32. Official facts kept: BatchNorm ``momentum=0.1``,
convolutions without bias except ``final_layer``, nearest upsampling (the paper says bilinear;
``upsample_mode`` changes it), initial weights ``N(0, 0.001)``.

Channel attention (section II-A.2): ``cam`` selects residual blocks of stages 2-4 that become
:class:`~liftpose.models.blocks.cam.ChannelAttentionModule` (the block's own 3x3 path plus the
attention branch; same ``conv1/bn1/conv2/bn2`` names, so plain HRNet weights load into them
with only ``attn.*`` new). Placement reading of the paper (HRNet-W32): the network has "three
sub-networks or three stages" -- sub-network ``k`` is branch ``k`` (``2^k w`` channels),
introduced by stage ``k + 1``. Sec. II-A.2 puts the CAMs "only [in] the last two blocks of the
final sub-network", "only six" (Fig. 2: "inside the third sub-network"): branch 3 exists in the
3 modules of stage 4, 2 blocks each = 6. The text after Table VII calls the same six "the first
sub-network and stage" and the all-stages variant "16 Attention modules"; so Table VII numbers
sub-networks and stages from the end ("1" = the final one, "2+1" adds the one before it) and
its stage rows attend the newest (lowest-resolution) branch of each stage: stages 2-4 have
1 + 4 + 3 = 8 modules, 2 blocks each = 16. Rows as ``cam`` settings (parameters of W32, 17
joints, reduction 4):

=============  =========================================  ====  ==========  ======
Table VII row  ``cam`` (with ``blocks: [-2, -1]``)        CAMs  paper (M)   ours (M)
=============  =========================================  ====  ==========  ======
Sub-Net 1      ``branches: [3]`` (the paper's default)    6     28.7        28.76
Sub-Net 2+1    ``branches: [2, 3]``                       20    28.9        28.90
Sub-Net 3+2+1  ``branches: [1, 2, 3]``                    36    29.3        28.94
Stage 1        ``stages: [4], branches: newest``          6     28.9        28.76
Stage 2+1      ``stages: [3, 4], branches: newest``       14    29.1        28.84
Stage 3+2+1    ``stages: [2, 3, 4], branches: newest``    16    29.3        28.84
=============  =========================================  ====  ==========  ======

Plain HRNet-W32 has 28.54 M parameters (paper 28.5 M) and HRNet-W48 63.60 M (63.6 M); with the
default CAMs 28.76 M and 64.10 M (Table I: 29.3 M and 65.9 M, the count of Table VII's
"3+2+1" rows rather than of its six-module row). A CAM replacing a ``BasicBlock`` adds only its
attention branch (``9 C^2 / 16`` weights + BatchNorm), +0.23 to +0.40 M here against the
paper's +0.2 to +0.8 M; the paper's counts are reported, not reproduced, and the placement
follows the module counts of its text.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from liftpose.models.blocks.cam import ChannelAttentionModule
from liftpose.models.official import OfficialConverter, StateDict, register_official

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "HRModule",
    "HRNet",
    "HRNetOfficial",
    "cam_positions",
    "hrnet_w32",
    "hrnet_w48",
]

#: BatchNorm momentum of the official model.
BN_MOMENTUM = 0.1
#: Keys of the ``cam`` mapping that place the modules; the others go to the module.
CAM_PLACEMENT_KEYS = ("stages", "modules", "branches", "blocks")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias: ``(B, C_in, H, W) -> (B, C_out, H/s, W/s)``."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, act: bool = True
) -> nn.Sequential:
    """``conv (no bias) -> BN [-> ReLU]`` as submodules ``0``, ``1`` [, ``2``]."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)``.

    The skip is ``downsample`` (1x1 conv + BN) when the channels or the stride change.

    Shapes: ``(B, C_in, H, W) -> (B, C, H/stride, W/stride)``.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.downsample = (
            conv_bn(in_channels, channels, 1, stride, act=False)
            if stride != 1 or in_channels != channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C, H/stride, W/stride)``."""
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """Residual bottleneck ``1x1 (C) -> 3x3 (C, stride) -> 1x1 (4C)``, each with BN.

    The skip is ``downsample`` (1x1 conv + BN) when the channels or the stride change.

    Shapes: ``(B, C_in, H, W) -> (B, 4C, H/stride, W/stride)``.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            conv_bn(in_channels, out_channels, 1, stride, act=False)
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, 4C, H/stride, W/stride)``."""
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + skip)


def fuse_path(
    in_channels: int, out_channels: int, steps: int, upsample_mode: str = "nearest"
) -> nn.Module:
    """Brings branch ``j`` to branch ``i`` (``steps = j - i``): resolution ``2^steps`` times up.

    * ``steps > 0``: ``conv1x1 -> BN -> upsample`` (submodules ``0, 1, 2``).
    * ``steps == 0``: identity.
    * ``steps < 0``: ``-steps`` blocks ``conv3x3 (stride 2) -> BN [-> ReLU]`` (submodules
      ``k.0, k.1``); the channels change in the last one, which has no ReLU.

    Shapes: ``(B, C_j, H_j, W_j) -> (B, C_i, H_j * 2^steps, W_j * 2^steps)``.
    """
    if steps == 0:
        return nn.Identity()
    if steps > 0:
        up = nn.Upsample(scale_factor=2**steps, mode=upsample_mode)
        return nn.Sequential(*conv_bn(in_channels, out_channels, 1, act=False), up)
    n = -steps
    return nn.Sequential(
        *(
            conv_bn(in_channels, out_channels if k == n - 1 else in_channels, 3, 2, act=k < n - 1)
            for k in range(n)
        )
    )


class HRModule(nn.Module):
    """Parallel branches of residual blocks followed by multi-resolution fusion.

    Args:
        in_channels: input channels of each branch (branch ``b`` at ``1/2^b`` resolution).
        channels: output channels of each branch.
        num_blocks: residual blocks of each branch.
        multi_scale_output: output every branch; ``False``: only branch 0.
        cam_blocks: ``(branch, block)`` positions that are channel attention modules instead
            of ``BasicBlock``s.
        cam_kwargs: keyword arguments of :class:`ChannelAttentionModule` (``channels`` aside).
        upsample_mode: interpolation of the upsampling fuse paths.

    Submodules: ``branches[b][k]`` (blocks), ``fuse_layers[i][j]`` (:func:`fuse_path`).

    Shapes: list of ``(B, C_in[b], H/2^b, W/2^b)`` -> list of ``(B, C[i], H/2^i, W/2^i)``
    (one entry without ``multi_scale_output``).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: Sequence[int],
        num_blocks: Sequence[int],
        multi_scale_output: bool = True,
        cam_blocks: Collection[tuple[int, int]] = (),
        cam_kwargs: Mapping[str, Any] | None = None,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        if not len(in_channels) == len(channels) == len(num_blocks) >= 1:
            raise ValueError(
                f"branch counts differ: in_channels {list(in_channels)}, channels "
                f"{list(channels)}, num_blocks {list(num_blocks)}"
            )
        self.num_branches = len(channels)
        self.multi_scale_output = multi_scale_output
        cam_kwargs = dict(cam_kwargs or {})
        branches = []
        for b, (c_in, c, n) in enumerate(zip(in_channels, channels, num_blocks, strict=True)):
            blocks: list[nn.Module] = []
            for k in range(n):
                c_block_in = c_in if k == 0 else c
                if (b, k) in cam_blocks:
                    if c_block_in != c:
                        raise ValueError(
                            f"a channel attention module keeps the channels, but block {k} of "
                            f"branch {b} maps {c_block_in} -> {c}"
                        )
                    blocks.append(ChannelAttentionModule(c, **cam_kwargs))
                else:
                    blocks.append(BasicBlock(c_block_in, c))
            branches.append(nn.Sequential(*blocks))
        self.branches = nn.ModuleList(branches)
        n_out = self.num_branches if multi_scale_output else 1
        if self.num_branches == 1:
            self.fuse_layers = nn.ModuleList()
        else:
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(
                    fuse_path(channels[j], channels[i], j - i, upsample_mode)
                    for j in range(self.num_branches)
                )
                for i in range(n_out)
            )
        self.relu = nn.ReLU(inplace=False)
        self.out_channels = list(channels[:n_out])

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """List of ``(B, C_in[b], H_b, W_b)`` -> list of ``(B, C[i], H_i, W_i)``."""
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.num_branches == 1:
            return xs
        out = []
        for fuse in self.fuse_layers:
            y = fuse[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + fuse[j](xs[j])
            out.append(self.relu(y))
        return out


def transition(in_channels: Sequence[int], channels: Sequence[int]) -> nn.ModuleList:
    """Maps the branches of one stage to those of the next (one more branch).

    Existing branch ``b``: identity, or ``conv3x3 -> BN -> ReLU`` when its channels change.
    New branch ``b``: ``b + 1 - len(in_channels)`` blocks ``conv3x3 (stride 2) -> BN -> ReLU``
    (submodules ``k.0, k.1``) from the last existing branch.

    Shapes: branch ``b`` of the output is ``(B, C[b], H/2^b, W/2^b)``.
    """
    n_in = len(in_channels)
    layers: list[nn.Module] = []
    for b, c in enumerate(channels):
        if b < n_in:
            layers.append(nn.Identity() if c == in_channels[b] else conv_bn(in_channels[b], c, 3))
        else:
            n = b + 1 - n_in
            c_last = in_channels[-1]
            layers.append(
                nn.Sequential(
                    *(conv_bn(c_last, c if k == n - 1 else c_last, 3, 2) for k in range(n))
                )
            )
    return nn.ModuleList(layers)


def _as_index_set(
    values: int | Sequence[int] | None, size: int, what: str, strict: bool = True
) -> set[int] | None:
    """Indices in ``range(size)`` (negative counted from the end), or ``None`` for all.

    Out-of-range indices raise with ``strict``, else they are skipped.
    """
    if values is None:
        return None
    if isinstance(values, int):
        values = [values]
    out = set()
    for v in values:
        v = int(v)
        if -size <= v < size:
            out.add(v % size)
        elif strict:
            raise ValueError(f"cam {what} index {v} is out of range for {size} {what}")
    return out


def cam_positions(
    stage_modules: Sequence[int],
    stage_blocks: Sequence[Sequence[int]],
    stages: int | Sequence[int] | None = None,
    modules: int | Sequence[int] | None = None,
    branches: int | str | Sequence[int] | None = None,
    blocks: int | Sequence[int] | None = None,
) -> set[tuple[int, int, int, int]]:
    """Positions ``(stage, module, branch, block)`` that carry a channel attention module.

    Args:
        stage_modules: modules of stages ``2, 3, ...``.
        stage_blocks: residual blocks of each branch, per stage.
        stages: HRNet stage numbers (``2, 3, 4``); ``None``: all.
        modules: module indices within each selected stage (negative from the stage's end;
            indices a stage does not have are skipped); ``None``: all.
        branches: branch (sub-network) indices, 0 = full resolution, negative counted from the
            network's lowest-resolution branch (``-1`` = branch 3 of HRNet), each taken in the
            stages that have it; ``"newest"``: the lowest-resolution branch of each stage (the
            one the stage introduces); ``None``: all.
        blocks: block indices within each branch (negative from the branch's end; indices a
            branch does not have are skipped, so ``[-2, -1]`` is every block of a branch of
            one); ``None``: all.
    """
    first_stage = 2
    all_stages = range(first_stage, first_stage + len(stage_modules))
    n_branches = len(stage_blocks[-1]) if stage_blocks else 0
    if stages is not None:
        stage_list = [stages] if isinstance(stages, int) else list(stages)
        bad = [s for s in stage_list if int(s) not in all_stages]
        if bad:
            raise ValueError(f"cam stages {bad} not in {list(all_stages)}")
        stage_set = {int(s) for s in stage_list}
    else:
        stage_set = set(all_stages)
    newest = isinstance(branches, str)
    if newest and branches != "newest":
        raise ValueError(f"cam branches must be indices, null or 'newest', got {branches!r}")
    branch_set = None if newest else _as_index_set(branches, n_branches, "branches")
    out: set[tuple[int, int, int, int]] = set()
    for s in sorted(stage_set):
        num_modules, num_blocks = stage_modules[s - first_stage], stage_blocks[s - first_stage]
        module_set = _as_index_set(modules, num_modules, "modules", strict=False)
        for m in range(num_modules):
            if module_set is not None and m not in module_set:
                continue
            for b, n in enumerate(num_blocks):
                if newest and b != len(num_blocks) - 1:
                    continue
                if branch_set is not None and b not in branch_set:
                    continue
                block_set = _as_index_set(blocks, n, "blocks", strict=False)
                out.update((s, m, b, k) for k in range(n) if block_set is None or k in block_set)
    return out


def _per_branch(value: int | Sequence[int], n: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    value = [int(v) for v in value]
    if len(value) != n:
        raise ValueError(f"{what}: expected {n} values (one per branch), got {value}")
    return value


class HRNet(nn.Module):
    """HRNet heatmap estimator, optionally with channel attention modules.

    Args:
        width: channels ``w`` of the full-resolution branch (32: HRNet-W32, 48: HRNet-W48).
        num_joints: heatmaps ``K``.
        in_chans: image channels.
        stem_channels: channels of the two stride-2 stem convolutions.
        layer1_blocks: ``Bottleneck`` blocks of layer1 (output ``4 * stem_channels``).
        stage_modules: modules of stages 2, 3, 4 (one more branch per stage).
        stage_blocks: residual blocks per branch, per stage: an int for every branch of every
            stage, or one int or list per stage.
        stage_channels: channels per branch, per stage; ``None``: ``w * 2^b`` for branch ``b``.
        final_kernel: kernel size of ``final_layer`` (1 or 3).
        cam: channel attention placement, ``None`` for plain HRNet. Keys ``stages``,
            ``modules``, ``branches``, ``blocks`` (see :func:`cam_positions`; each missing key
            means all) place the modules; the others (``reduction``, ...) are arguments of
            :class:`~liftpose.models.blocks.cam.ChannelAttentionModule`. The paper's default
            is ``{reduction: 4, branches: [3], blocks: [-2, -1]}`` (module docstring).
        upsample_mode: interpolation of the fuse layers (official: ``"nearest"``).

    Shapes: ``(B, in_chans, H, W) -> (B, K, H/4, W/4)``; ``H``, ``W`` divisible by
    ``2^(number of stages + 1)`` (32).
    """

    #: what the model reads: images (the lifters read 2-D keypoint windows)
    input_kind: ClassVar[str] = "image"
    #: ``(H, W)`` of :meth:`example_input` (the paper's 256x192 crops)
    example_size: ClassVar[tuple[int, int]] = (256, 192)

    def __init__(
        self,
        width: int = 32,
        num_joints: int = 17,
        in_chans: int = 3,
        stem_channels: int = 64,
        layer1_blocks: int = 4,
        stage_modules: Sequence[int] = (1, 4, 3),
        stage_blocks: int | Sequence[int | Sequence[int]] = 4,
        stage_channels: Sequence[Sequence[int]] | None = None,
        final_kernel: int = 1,
        cam: Mapping[str, Any] | None = None,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        stage_modules = [int(m) for m in stage_modules]
        n_stages = len(stage_modules)
        if stage_channels is None:
            stage_channels = [[width * 2**b for b in range(s + 2)] for s in range(n_stages)]
        stage_channels = [[int(c) for c in cs] for cs in stage_channels]
        if len(stage_channels) != n_stages:
            raise ValueError(f"stage_channels: expected {n_stages} stages, got {stage_channels}")
        for s, cs in enumerate(stage_channels):
            if len(cs) != s + 2:
                raise ValueError(f"stage {s + 2} has {s + 2} branches, got channels {cs}")
        if isinstance(stage_blocks, int):
            stage_blocks = [stage_blocks] * n_stages
        if len(stage_blocks) != n_stages:
            raise ValueError(f"stage_blocks: expected {n_stages} stages, got {stage_blocks}")
        stage_blocks = [
            _per_branch(nb, len(cs), f"stage {s + 2} blocks")
            for s, (nb, cs) in enumerate(zip(stage_blocks, stage_channels, strict=True))
        ]
        if final_kernel not in (1, 3):
            raise ValueError(f"final_kernel must be 1 or 3, got {final_kernel}")
        self.width = width
        self.num_joints = num_joints
        self.in_channels = in_chans
        self.stage_modules = stage_modules
        self.stage_blocks = stage_blocks
        self.stage_channels = stage_channels

        cam = dict(cam) if cam is not None else None
        cam_kwargs: dict[str, Any] = {}
        positions: set[tuple[int, int, int, int]] = set()
        if cam is not None:
            placement = {k: cam.pop(k) for k in CAM_PLACEMENT_KEYS if k in cam}
            cam_kwargs = cam
            if not cam_kwargs.get("conv_path", True):
                raise ValueError("HRNet channel attention modules replace blocks: conv_path=True")
            positions = cam_positions(stage_modules, stage_blocks, **placement)
        self.cam_kwargs = cam_kwargs
        self.cam_positions = sorted(positions)

        # stem: (B, 3, H, W) -> (B, 64, H/4, W/4)
        self.conv1 = nn.Conv2d(in_chans, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            *(
                Bottleneck(stem_channels if k == 0 else stem_channels * 4, stem_channels)
                for k in range(layer1_blocks)
            )
        )

        prev = [stem_channels * Bottleneck.expansion]
        for s in range(n_stages):
            number = s + 2
            channels = stage_channels[s]
            self.add_module(f"transition{s + 1}", transition(prev, channels))
            modules = []
            in_channels = channels
            for m in range(stage_modules[s]):
                last = s == n_stages - 1 and m == stage_modules[s] - 1
                module = HRModule(
                    in_channels,
                    channels,
                    stage_blocks[s],
                    multi_scale_output=not last,
                    cam_blocks={(b, k) for (st, mm, b, k) in positions if (st, mm) == (number, m)},
                    cam_kwargs=cam_kwargs,
                    upsample_mode=upsample_mode,
                )
                modules.append(module)
                in_channels = module.out_channels
            self.add_module(f"stage{number}", nn.Sequential(*modules))
            prev = channels
        self.num_stages = n_stages
        self.final_layer = nn.Conv2d(
            stage_channels[-1][0], num_joints, final_kernel, padding=final_kernel // 2
        )
        self.init_weights()

    @property
    def num_cam(self) -> int:
        """Number of channel attention modules."""
        return len(self.cam_positions)

    def init_weights(self) -> None:
        """Official initialisation: convolutions ``N(0, 0.001)``, zero biases; BN ``1, 0``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C_0, H/4, W/4)``: the full-resolution branch after the stages."""
        k = 2 ** (self.num_stages + 2)  # the lowest branch is at 1/k after the strided stem
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % k or x.shape[3] % k:
            raise ValueError(
                f"HRNet expects (B, {self.in_channels}, H, W) with H and W divisible by {k} "
                f"(data.image_size), got {tuple(x.shape)}"
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(self.num_stages):
            trans = getattr(self, f"transition{s + 1}")
            xs = [t(xs[b] if b < len(xs) else xs[-1]) for b, t in enumerate(trans)]
            xs = getattr(self, f"stage{s + 2}")(xs)
        return xs[0]

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """Zeros of one forward's input, ``(batch, in_chans, 256, 192)`` (FLOP counts)."""
        return torch.zeros(batch, self.in_channels, *self.example_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, K, H/4, W/4)`` heatmaps (raw, no activation)."""
        return self.final_layer(self.forward_features(x))


def hrnet_w32(**kwargs: Any) -> HRNet:
    """HRNet-W32 (28.54 M parameters with 17 joints)."""
    return HRNet(width=32, **kwargs)


def hrnet_w48(**kwargs: Any) -> HRNet:
    """HRNet-W48 (63.60 M parameters with 17 joints)."""
    return HRNet(width=48, **kwargs)


# --------------------------------------------------------------------------------------------
# official weights


@register_official("hrnet")
class HRNetOfficial(OfficialConverter):
    """Official ``PoseHighResolutionNet(cfg)`` -> :class:`HRNet`; the key names are the same.

    The constructor arguments are the (nested) ``cfg``, of which ``cfg["MODEL"]`` is read
    (``NUM_JOINTS``, ``EXTRA.FINAL_CONV_KERNEL``, ``EXTRA.STAGE{2,3,4}``); a mapping without
    ``MODEL`` is taken as ``cfg["MODEL"]`` itself.
    """

    official_class = (
        "leoxiaobin/deep-high-resolution-net.pytorch: lib/models/pose_hrnet.py::"
        "PoseHighResolutionNet"
    )

    def model_args(self, official_args: Mapping[str, Any]) -> dict[str, Any]:
        model = official_args.get("MODEL", official_args)
        extra = model["EXTRA"]
        stage_modules, stage_blocks, stage_channels = [], [], []
        for s in (2, 3, 4):
            st = extra[f"STAGE{s}"]
            if str(st.get("BLOCK", "BASIC")).upper() != "BASIC":
                raise TypeError(f"HRNet conversion supports BASIC blocks, STAGE{s}: {st['BLOCK']}")
            if str(st.get("FUSE_METHOD", "SUM")).upper() != "SUM":
                raise TypeError(f"HRNet conversion supports FUSE_METHOD SUM, STAGE{s}")
            channels = [int(c) for c in st["NUM_CHANNELS"]]
            if int(st.get("NUM_BRANCHES", len(channels))) != len(channels) or len(channels) != s:
                raise TypeError(f"STAGE{s}: {s} branches expected, got {st}")
            stage_modules.append(int(st["NUM_MODULES"]))
            stage_blocks.append([int(n) for n in st["NUM_BLOCKS"]])
            stage_channels.append(channels)
        return {
            "width": stage_channels[0][0],
            "num_joints": int(model["NUM_JOINTS"]),
            "stage_modules": stage_modules,
            "stage_blocks": stage_blocks,
            "stage_channels": stage_channels,
            "final_kernel": int(extra.get("FINAL_CONV_KERNEL", 1)),
        }

    def build(self, model_args: Mapping[str, Any]) -> nn.Module:
        return HRNet(**model_args)

    def convert(self, state_dict: StateDict, official_args: Mapping[str, Any]) -> StateDict:
        return dict(state_dict)

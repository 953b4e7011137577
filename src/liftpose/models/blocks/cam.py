"""Channel Attention Module (CAM) of the attention-augmented HRNet 2-D pose estimator.

Section II-A.2 of the paper, eqs. (1)-(3)::

    X' = sigmoid(Conv1x1(Conv1x1(Conv1x1(GAP(X)))))     (1)   attention map, (B, C, 1, 1)
    Y  = X * X'                                         (2)   attention feature, (B, C, H, W)
    Z  = Conv3x3(Conv3x3(X)) + X + Y                    (3)   output, (B, C, H, W)

Each ``Conv1x1`` is a 1x1 convolution, BatchNorm and ReLU; the three of them take the channels
``C -> C/s -> C/s -> C`` (``s`` the shrinking ratio, 4 in the paper; the last one must return
to ``C`` because ``X'`` multiplies ``X`` channel-wise). ``Conv3x3`` is "the same with
``Conv1x1``" with 3x3 kernels, and the first ``+`` of eq. (3) is the skip connection *inside*
the residual block: the module is a residual block (two 3x3 convolutions and a skip) with the
channel-attention branch of eqs. (1)-(2) added to its output, which is how
:class:`~liftpose.models.backbones.hrnet.HRNet` uses it (it takes the place of a
``BasicBlock``; the submodule names ``conv1``/``bn1``/``conv2``/``bn2`` are those of a
``BasicBlock``, so plain HRNet weights load into the convolution path).

What the paper leaves open is a constructor argument; the defaults read the text literally:

* ``gate_norm``/``gate_act_last``: BatchNorm in each ``Conv1x1`` (yes), and ReLU also after
  the last one, right before the sigmoid (yes: the paper defines every ``Conv1x1`` with
  ReLU, which bounds ``X'`` to ``[0.5, 1)``; ``False`` gives the usual ``(0, 1)`` gate).
  With ``gate_norm`` the gate's BatchNorm sees ``B`` values per channel (``GAP`` leaves
  ``1 x 1``), so training needs a batch of more than one sample.
* ``conv_act_last``: ReLU after the second 3x3 convolution's BatchNorm (yes, literal eq. (3));
  ``False`` is the ``BasicBlock`` layout (BatchNorm only before the sum).
* ``out_act``: ReLU on ``Z`` (no: eq. (3) has none); ``True`` is the ``BasicBlock`` layout.
* ``bias``: bias in the convolutions (no: each is followed by BatchNorm).
* ``conv_path``: the 3x3 residual path; ``False`` leaves ``Z = X + Y`` (attention only).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelAttentionModule", "ChannelGate", "ConvNormAct"]


class ConvNormAct(nn.Sequential):
    """``conv -> BatchNorm (optional) -> ReLU (optional)``, padding ``kernel_size // 2``.

    Submodules ``0`` (conv), then ``1`` (norm) and the activation when present.

    Shapes: ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        norm: bool = True,
        act: bool = True,
        bias: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels, momentum=bn_momentum))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ChannelGate(nn.Module):
    """Channel attention map of eq. (1): ``GAP``, three ``Conv1x1`` layers, sigmoid.

    Args:
        channels: input and output channels ``C``.
        reduction: shrinking ratio ``s``; the hidden width is ``max(1, C // s)``.
        norm: BatchNorm in each ``Conv1x1``.
        act_last: ReLU also in the last ``Conv1x1`` (before the sigmoid).
        bias: bias in the 1x1 convolutions.
        bn_momentum: BatchNorm momentum.

    Shapes: ``(B, C, H, W) -> (B, C, 1, 1)``, values in ``(0, 1)`` (``[0.5, 1)`` with
    ``act_last``).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        norm: bool = True,
        act_last: bool = True,
        bias: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        kw = dict(kernel_size=1, norm=norm, bias=bias, bn_momentum=bn_momentum)
        self.fc1 = ConvNormAct(channels, hidden, **kw)
        self.fc2 = ConvNormAct(hidden, hidden, **kw)
        self.fc3 = ConvNormAct(hidden, channels, act=act_last, **kw)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, 1, 1)`` attention map ``X'``."""
        return self.gate(self.fc3(self.fc2(self.fc1(self.pool(x)))))


class ChannelAttentionModule(nn.Module):
    """Residual block with channel attention, eqs. (1)-(3): ``Z = conv_path(X) + X + X * X'``.

    Args:
        channels: feature channels ``C`` (input and output).
        reduction: shrinking ratio ``s`` of the attention branch (paper: 4).
        conv_path: include the two 3x3 ``conv -> BN -> ReLU`` layers of eq. (3).
        conv_act_last: ReLU after the second 3x3 layer's BatchNorm (literal eq. (3)); ``False``
            gives the ``BasicBlock`` layout.
        out_act: ReLU on the sum ``Z`` (``BasicBlock`` layout); eq. (3) has none.
        gate_norm: BatchNorm in the 1x1 layers of the attention branch.
        gate_act_last: ReLU after the last 1x1 layer, before the sigmoid (literal eq. (1)).
        bias: bias in all convolutions.
        bn_momentum: BatchNorm momentum.

    Submodules: ``conv1``, ``bn1``, ``conv2``, ``bn2`` (the 3x3 path, absent without
    ``conv_path``) and ``attn`` (:class:`ChannelGate`).

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        conv_path: bool = True,
        conv_act_last: bool = True,
        out_act: bool = False,
        gate_norm: bool = True,
        gate_act_last: bool = True,
        bias: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.conv_path = conv_path
        self.conv_act_last = conv_act_last
        if conv_path:
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
            self.bn1 = nn.BatchNorm2d(channels, momentum=bn_momentum)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
            self.bn2 = nn.BatchNorm2d(channels, momentum=bn_momentum)
            self.relu = nn.ReLU(inplace=True)
        self.attn = ChannelGate(
            channels,
            reduction,
            norm=gate_norm,
            act_last=gate_act_last,
            bias=bias,
            bn_momentum=bn_momentum,
        )
        self.out_act = nn.ReLU(inplace=True) if out_act else nn.Identity()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention feature ``Y = X * X'`` of eq. (2): ``(B, C, H, W) -> (B, C, H, W)``."""
        return x * self.attn(x)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``Conv3x3(Conv3x3(X))`` of eq. (3) (zeros without ``conv_path``), shape kept."""
        if not self.conv_path:
            return torch.zeros_like(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out) if self.conv_act_last else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``: ``Z = Conv3x3(Conv3x3(X)) + X + X * X'``."""
        y = self.attention(x)
        z = x + y if not self.conv_path else self.residual(x) + x + y
        return self.out_act(z)

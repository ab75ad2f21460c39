"""The parts FCN needs beyond ``torch.nn``: Caffe's Crop, Scale, Eltwise sum, bilinear upsampling,
zero-initialised scoring, and ``Skip``, the skip fusion a new FCN reuses.

The Caffe layers are the generic converter's own modules (``convert.modules``), given the
constructors a model definition wants: one computation of each Caffe layer in the project, and the
same parameter layout (a block's ``state_dict`` holds exactly the blobs of its Caffe layer).
Each block that moves pixels knows its coordinate map, so crops are computed, never written down.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convert import modules, trainpath
from convert.coord_map import CoordMap, WindowGeometry, crop_offset_from_maps, deconv_map
from convert.modules.pointwise import relu_
from convert.training_layers import train_dropout


def upsample_filt(size: int) -> np.ndarray:
    """A ``size`` x ``size`` bilinear interpolation kernel, as FCN's ``surgery.upsample_filt``.

    Odd sizes centre on a pixel, even sizes between two. Every value is a product of two multiples
    of ``1/factor`` with small numerators, so the float32 weights are the exact kernel.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(ramp, ramp)


def bilinear_weight(channels: int, size: int) -> torch.Tensor:
    """Deconvolution weight (C, C, k, k) that upsamples every channel on its own.

    Like ``surgery.interp``, only the diagonal holds the kernel: channel c reads channel c alone.
    """
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = torch.from_numpy(upsample_filt(size)).to(weight.dtype)
    return weight


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, state dict and printout) whose calls that need a gradient
    take the measured training paths of ``convert.trainpath`` on the CPU (channels_last, fc6 and
    the 1x1 layers as GEMMs, Winograd), each accuracy-gated against float64; inference and every
    other case are ``nn.Conv2d``'s. ``training_paths = False`` (``convert.fastpath.set_exact``)
    keeps it plain ``F.conv2d`` throughout. (Its flag is not ``fast_paths``: it has no inference
    fast paths.)"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.training_paths = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "zeros" and trainpath.applies(self, x):
            return trainpath.convolution(self, x)
        return super().forward(x)


class ReLU(nn.ReLU):
    """``nn.ReLU`` (same printout, same numbers) whose in-place training calls on the CPU use
    ``convert.modules.pointwise.relu_``: the backward then masks the gradient in place instead of
    writing a new activation-sized tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_(x) if self.inplace else super().forward(x)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same printout and settings) computing Caffe's train-time dropout, the
    converter's own (``convert.training_layers.train_dropout``: Caffe's float32 scale, the mask
    from torch's global RNG)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return train_dropout(x, self.p) if self.training else x


def score_conv(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 scoring convolution starting at zero: the reference nets give score layers no filler,
    so a new skip adds exact zeros until training moves it."""
    conv = Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class Crop(modules.Crop):
    """Caffe's Crop from axis 2 with one offset: a top-left window of the reference's size.

    The offset comes from the coordinate maps of the two inputs (``convert.coord_map``), never from
    the sizes at run time: it is a property of the net's geometry, the same for every input size.
    """

    def __init__(self, offset: int) -> None:
        super().__init__(axis=2, offsets=[offset])

    @classmethod
    def aligning(cls, big: CoordMap, reference: CoordMap) -> "Crop":
        """The crop that aligns a blob at ``big`` with one at ``reference`` (maps from one ancestor)."""
        return cls(crop_offset_from_maps(big, reference))

    @property
    def offset(self) -> int:
        return self.offsets[0]

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


class ChannelScale(modules.Scale):
    """Caffe's Scale on axis 1 without bias: ``y[:, c] = weight[c] * x[:, c]``.

    FCN-8s at-once scales pool4 and pool3 down (0.01 and 0.0001) before scoring them. The factors
    are blobs of the caffemodel (shape (C,)), loaded like any weight, and fixed (``lr_mult: 0``).
    """

    def __init__(self, channels: int, value: float = 1.0, learnable: bool = False) -> None:
        super().__init__(axis=1, bias_blob=None)
        self.weight = nn.Parameter(torch.full((channels,), float(value)), requires_grad=learnable)
        self.value = float(value)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, initial={self.value:g}"


class Upsample(modules.Deconvolution):
    """A Caffe Deconvolution (C -> C channels, kernel k, stride s, pad 0) initialised bilinear.

    The heavy FCNs keep it fixed (``lr_mult: 0``), so by default its weight does not require grad;
    ``learnable=True`` gives the CVPR-era learned upsampling. Whatever the weights, the result is the
    full deconvolution; the converter's module takes the depthwise path (C times less work) when
    every off-diagonal kernel is exactly zero, as for bilinear weights.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, bias: bool = False,
                 learnable: bool = False) -> None:
        super().__init__(WindowGeometry((kernel_size, kernel_size), (stride, stride)), groups=1)
        self.weight = nn.Parameter(bilinear_weight(channels, kernel_size), requires_grad=learnable)
        if bias:
            self.bias = nn.Parameter(torch.zeros(channels), requires_grad=learnable)

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    def reset_parameters(self) -> None:
        """Bilinear weight and zero bias, as FCN's solvers initialise every ``up`` layer."""
        with torch.no_grad():
            self.weight.copy_(bilinear_weight(self.channels, self.kernel_size))
            if self.bias is not None:
                self.bias.zero_()

    @property
    def coord_map(self) -> CoordMap:
        return deconv_map(self.kernel_size, self.stride[0])

    def extra_repr(self) -> str:
        learned = ", learnable" if self.weight.requires_grad else ""
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride[0]}{learned}"


class Sum(modules.Eltwise):
    """Caffe's Eltwise SUM, optionally weighted (NYUD color-HHA averages two scores 0.5 / 0.5)."""

    def __init__(self, coeffs: tuple[float, ...] = ()) -> None:
        super().__init__(operation=1, coeffs=coeffs)

    def extra_repr(self) -> str:
        return f"coeffs={self.coeffs}" if self.coeffs else ""


class Skip(nn.Module):
    """One skip of FCN: [scale] -> 1x1 score (zero init) -> crop to the upsampled blob -> add.

    ``pool`` and ``upsampled`` are the coordinate maps of the tapped blob and of the blob it is
    fused into; the crop offset follows from them. ``scale`` (FCN-8s at-once) multiplies the pool
    by a fixed per-channel factor first. Zero scores make a new skip add exact zeros.
    """

    def __init__(self, channels: int, num_classes: int, pool: CoordMap, upsampled: CoordMap,
                 scale: float | None = None) -> None:
        super().__init__()
        self.scale = ChannelScale(channels, scale) if scale is not None else None
        self.score = score_conv(channels, num_classes)
        self.crop = Crop.aligning(pool, upsampled)  # a 1x1 score keeps the pool's coordinates
        self.fuse = Sum()

    def forward(self, upsampled: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            pool = self.scale(pool)
        return self.fuse(upsampled, self.crop(self.score(pool), upsampled))

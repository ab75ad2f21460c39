"""Caffe layers that summarize: Reduction, MVN and SPP."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


class Reduction(nn.Module):
    """SUM, ASUM (sum of |x|), SUMSQ or MEAN over all axes from ``axis`` on, times ``coeff``;
    the top keeps the axes before ``axis`` (a scalar for axis 0)."""

    def __init__(self, operation: int, axis: int, coeff: float) -> None:
        super().__init__()
        self.operation, self.axis, self.coeff = operation, axis, coeff

    def forward(self, x: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        flat = x.reshape(*x.shape[:axis], -1)
        if self.operation == ASUM:
            out = flat.abs().sum(-1)
        elif self.operation == SUMSQ:
            out = (flat * flat).sum(-1)
        else:
            out = flat.sum(-1)
        coeff = self.coeff / flat.shape[-1] if self.operation == MEAN else self.coeff
        return out * coeff if coeff != 1 else out


class MVN(nn.Module):
    """x minus its mean over (C,) H, W per item (and channel), divided by the standard deviation
    plus eps (Caffe adds eps after the square root). The top is 4-D like Caffe's."""

    def __init__(self, normalize_variance: bool, across_channels: bool, eps: float) -> None:
        super().__init__()
        self.normalize_variance, self.across_channels, self.eps = normalize_variance, across_channels, eps

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() > 4:
            raise ValueError("MVN takes blobs of at most 4 axes")
        x = x.reshape(*x.shape, *[1] * (4 - x.dim()))
        dims = (1, 2, 3) if self.across_channels else (2, 3)
        centred = x - x.mean(dim=dims, keepdim=True)
        if not self.normalize_variance:
            return centred
        std = torch.sqrt((centred * centred).mean(dim=dims, keepdim=True))
        return centred / (std + self.eps)


class SPP(nn.Module):
    """Spatial pyramid pooling: at level l, 2^l x 2^l bins of Caffe pooling (kernel
    ceil(size / bins), stride = kernel, pad (kernel bins - size + 1) // 2), each flattened, all
    concatenated; a one-level pyramid keeps the pooled blob's 4 axes. ``make_pooling(kernel,
    stride, pad)`` builds Caffe's pooling for one level."""

    def __init__(self, pyramid_height: int, make_pooling: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.pyramid_height, self.make_pooling = pyramid_height, make_pooling

    @staticmethod
    def level_geometry(level: int, size: int) -> tuple[int, int]:
        bins = 2 ** level
        kernel = -(-size // bins)
        return kernel, (kernel * bins - size + 1) // 2

    def forward(self, x: Tensor) -> Tensor:
        pooled = []
        for level in range(self.pyramid_height):
            (kh, ph), (kw, pw) = (self.level_geometry(level, size) for size in x.shape[2:])
            pooled.append(self.make_pooling((kh, kw), (kh, kw), (ph, pw))(x))
        if self.pyramid_height == 1:
            return pooled[0]
        return torch.cat([p.flatten(1) for p in pooled], dim=1)

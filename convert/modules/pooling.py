"""Caffe's pooling: its output-size rule, clipped windows and AVE divisor, on PyTorch's kernels.

Caffe and PyTorch pool the same windows with the same AVE divisor and differ only in how many
windows they take at some sizes (Caffe drops a last window that starts in the padding only when the
layer is padded). So PyTorch's kernels run directly whenever the two sizes agree, and otherwise the
input is padded or cropped to exactly Caffe's windows first.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert.coord_map import WindowGeometry


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool, padded: bool) -> int:
    """Caffe's output size: ceil (or floor) of the window count, then, only when the layer has any
    padding, one window fewer if the last one would start in the bottom/right padding."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int | None:
    """What ``F.max_pool2d``/``avg_pool2d`` would produce, or None where they refuse the sizes."""
    if 2 * pad > kernel:
        return None
    span = size + 2 * pad - kernel
    if span < 0:
        return None
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:  # PyTorch applies this rule with or without pad
        out -= 1
    return out


class Pooling(nn.Module):
    """MAX or AVE pooling with Caffe's output sizes, clipped windows and AVE divisor.

    Caffe's AVE divides by the window clipped to the padded image (``min(start + k, H + pad) -
    start``), which is exactly PyTorch's ``count_include_pad=True`` divisor; the two differ only in
    the output-size rule. So when the sizes agree PyTorch's kernels are used directly, and otherwise
    the input is padded (or cropped) to the extent Caffe's windows cover and pooled without padding.
    """

    def __init__(self, average: bool, geometry: WindowGeometry, ceil: bool) -> None:
        super().__init__()
        self.average = average
        self.kernel, self.stride, self.pad = geometry.kernel, geometry.stride, geometry.pad
        self.ceil = ceil
        self.padded = any(geometry.pad)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return tuple(caffe_pooled_size(n, k, s, p, self.ceil, self.padded)
                     for n, k, s, p in zip((height, width), self.kernel, self.stride, self.pad))

    def forward(self, x: Tensor) -> Tensor:
        sizes = x.shape[-2:]
        out = self.output_size(*sizes)
        if min(out) < 1:
            raise ValueError(f"input {tuple(sizes)} is too small for a {self.kernel} pooling window")
        native = tuple(_torch_pooled_size(n, k, s, p, self.ceil)
                       for n, k, s, p in zip(sizes, self.kernel, self.stride, self.pad))
        if native == out:
            if self.average:
                return F.avg_pool2d(x, self.kernel, self.stride, self.pad, self.ceil, True)
            return F.max_pool2d(x, self.kernel, self.stride, self.pad, 1, self.ceil)
        return self._explicit(x, sizes, out)

    def _explicit(self, x: Tensor, sizes: Sequence[int], out: Sequence[int]) -> Tensor:
        """Pool over exactly Caffe's windows: pad left/top by ``pad``, pad or crop right/bottom to
        the last window's end; empty windows give -FLT_MAX (MAX) as in Caffe."""
        axes = list(zip(sizes, out, self.kernel, self.stride, self.pad))
        extra = [(o - 1) * s + k - p - n for n, o, k, s, p in axes]
        borders = (self.pad[1], extra[1], self.pad[0], extra[0])
        if not self.average:
            fill = torch.finfo(x.dtype).min
            return F.max_pool2d(F.pad(x, borders, value=fill), self.kernel, self.stride)
        summed = F.avg_pool2d(F.pad(x, borders), self.kernel, self.stride, divisor_override=1)
        divisors = [self._divisors(n, o, k, s, p, x.device, x.dtype) for n, o, k, s, p in axes]
        return summed / (divisors[0][:, None] * divisors[1][None, :])

    @staticmethod
    def _divisors(size: int, out: int, kernel: int, stride: int, pad: int,
                  device: torch.device, dtype: torch.dtype) -> Tensor:
        """Caffe's per-axis AVE divisor: window end clipped to ``size + pad`` before any clipping
        to the image."""
        starts = torch.arange(out, device=device) * stride - pad
        ends = torch.clamp(starts + kernel, max=size + pad)
        return (ends - starts).to(dtype)


class GlobalPooling(nn.Module):
    """Pooling over the whole image: one output pixel."""

    def __init__(self, average: bool) -> None:
        super().__init__()
        self.average = average

    def forward(self, x: Tensor) -> Tensor:
        if self.average:
            return x.mean(dim=(-2, -1), keepdim=True)
        return x.amax(dim=(-2, -1), keepdim=True)

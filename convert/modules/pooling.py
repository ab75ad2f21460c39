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
from convert.modules.pointwise import relu_, trains_in_place


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


def unhooked(*modules: nn.Module) -> bool:
    """Whether no hook watches these modules: only then may two layers run as one call."""
    return not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
                   for m in modules)


class _ReLUMaxPool(torch.autograd.Function):
    """``F.max_pool2d(x.relu_(), ...)`` whose backward writes its gradient into the activation.

    Why: run apart, the pool's backward scatters into a new zero-filled tensor the size of the
    activation (125 MB for FCN's pool1 at 500x500; on the CPU mostly page faults of that fresh
    memory) and the ReLU's backward then reads it and the activation again. Only a window's
    maximum gets a gradient, and there the ReLU's mask ``y > 0`` is ``pooled > 0``; so the masked
    gradient needs the pooled output and the indices only, and the activation, read by nothing
    else, takes it in its own storage. The numbers are the two backwards'. The rewritten
    activation bumps its version, so a second backward through the graph fails loudly."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: list[int], stride: list[int], padding: list[int],
                dilation: list[int], ceil_mode: bool) -> tuple[Tensor, Tensor]:
        x.relu_()
        ctx.mark_dirty(x)
        ctx.set_materialize_grads(False)
        pooled, indices = torch.ops.aten.max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil_mode)
        ctx.save_for_backward(x, pooled, indices)
        ctx.geometry = (kernel, stride, padding, dilation, ceil_mode)
        return pooled, x

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_activation: Tensor | None):
        if grad_activation is not None:  # ``relu_max_pool`` hands only the pooled output on
            raise RuntimeError("relu_max_pool: the activation it overwrites got a gradient of its own")
        y, pooled, indices = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None, None
        masked = torch.ops.aten.threshold_backward(grad, pooled, 0)
        # the kernel reads only the gradient and the indices; ``y`` gives the shape and layout
        torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
            masked, y, *ctx.geometry, indices, grad_input=y)
        return y, None, None, None, None, None


def relu_max_pool(x: Tensor, geometry: WindowGeometry, ceil_mode: bool = False) -> Tensor:
    """``F.max_pool2d(relu_(x), ...)`` over ``geometry``'s windows, for an in-place ReLU whose
    output nothing but this pool reads (the caller's promise); in training on the CPU by
    ``_ReLUMaxPool``: the same numbers, and the backward writes no new activation-sized tensor."""
    kernel, stride, pad, dilation = (list(v) for v in (geometry.kernel, geometry.stride, geometry.pad,
                                                       geometry.dilation))
    if trains_in_place(x):
        pooled, _ = _ReLUMaxPool.apply(x, kernel, stride, pad, dilation, ceil_mode)
        return pooled
    return F.max_pool2d(relu_(x), kernel, stride, pad, dilation, ceil_mode)


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

    def _native(self, sizes: Sequence[int], out: Sequence[int]) -> bool:
        """Whether PyTorch's kernels take exactly Caffe's windows (``out`` of them) at ``sizes``."""
        return tuple(out) == tuple(_torch_pooled_size(n, k, s, p, self.ceil)
                                   for n, k, s, p in zip(sizes, self.kernel, self.stride, self.pad))

    def after_relu(self, x: Tensor) -> Tensor | None:
        """``self(relu_(x))`` as one ``relu_max_pool``, for an in-place ReLU's output that only this
        layer reads; None where that does not apply (AVE, Caffe's windows differ from PyTorch's, an
        input too small, no in-place training), and the caller runs the two layers."""
        sizes = x.shape[-2:]
        out = self.output_size(*sizes)
        if self.average or min(out) < 1 or not trains_in_place(x) or not self._native(sizes, out):
            return None
        return relu_max_pool(x, WindowGeometry(self.kernel, self.stride, self.pad), self.ceil)

    def forward(self, x: Tensor) -> Tensor:
        sizes = x.shape[-2:]
        out = self.output_size(*sizes)
        if min(out) < 1:
            raise ValueError(f"input {tuple(sizes)} is too small for a {self.kernel} pooling window")
        if self._native(sizes, out):
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

"""Caffe's pointwise layers: each output value depends on one input value (and fixed settings).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert import fastpath


class _InPlaceReLU(torch.autograd.Function):
    """``x.relu_()`` whose backward masks the incoming gradient in place when nothing else holds it.

    Why: autograd's ReLU backward writes a new tensor the size of the activation (125 MB for
    FCN's conv1 at 500x500); on the CPU most of its time is the page faults of that fresh memory,
    not the arithmetic. The values are ``threshold_backward``'s either way.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x.relu_()
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        y, = ctx.saved_tensors
        # the gradient goes on in y's layout (the layer before reads it in that layout); one in
        # the other layout (a next layer that switched layouts) is first copied into y's
        if y.is_contiguous() and fastpath.is_channels_last(grad):
            grad = _channels_last_to_nchw(grad)
        if grad.stride() == y.stride() and _owned(grad):
            return torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=grad)
        return torch.ops.aten.threshold_backward(grad, y, 0)


TRANSPOSE_BLOCK_BYTES = 256 << 10  # a block of positions x channels that stays in any L2 cache


def _channels_last_to_nchw(x: Tensor) -> Tensor:
    """``x.contiguous()`` for a channels_last ``x``, a block of positions at a time.

    Why: ``contiguous`` walks the whole (positions x channels) transpose at once and runs at a
    third of memory speed on FCN's big early layers (190 ms for conv1's 125 MB gradient on a
    Xeon); block by block each transpose stays in cache (70 ms)."""
    n, c, h, w = x.shape
    source = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: channels_last is NHWC in memory
    out = torch.empty(n, c, h, w, dtype=x.dtype, device=x.device)
    target = out.view(n, c, h * w)
    rows = max(1, TRANSPOSE_BLOCK_BYTES // (c * x.element_size()))
    for i in range(n):
        for start in range(0, h * w, rows):
            target[i, :, start:start + rows].copy_(source[i, start:start + rows].t())
    return out


def _owned(grad: Tensor) -> bool:
    """Whether a gradient handed to a backward is this node's alone, dense and not a view, so it
    may be overwritten (the engine holds no other reference: a gradient passed on to several
    nodes, e.g. by a sum's backward, or kept by a hook, has a use count above 1)."""
    use_count = getattr(grad, "_use_count", None)  # private API: without it, never in place
    return (use_count is not None and not torch.is_grad_enabled() and grad._base is None
            and (grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last))
            and use_count() == 1)


def trains_in_place(x: Tensor) -> bool:
    """Whether ``x`` is a CPU activation with a gradient (a non-leaf, grad mode on, no export
    trace): where the in-place training functions (``relu_``, ``pooling.relu_max_pool``) apply."""
    return (torch.is_grad_enabled() and x.requires_grad and x.grad_fn is not None and x.device.type == "cpu"
            and not fastpath.exporting())


def relu_(x: Tensor) -> Tensor:
    """``F.relu(x, inplace=True)``; on a CPU activation with a gradient (a non-leaf), by
    ``_InPlaceReLU``: the same numbers, and its backward writes no new tensor."""
    if trains_in_place(x):
        return _InPlaceReLU.apply(x)
    return F.relu(x, inplace=True)


class ReLU(nn.Module):
    """max(x, 0) + negative_slope * min(x, 0). ``inplace`` is set by the runtime only where the
    input tensor is provably not visible under another blob name."""

    def __init__(self, negative_slope: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = False

    def forward(self, x: Tensor) -> Tensor:
        if self.negative_slope:
            return F.leaky_relu(x, self.negative_slope, self.inplace)
        return relu_(x) if self.inplace else F.relu(x)


class PReLU(nn.Module):
    """Learned negative slope per channel (or one shared)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)


class Elementwise(nn.Module):
    """A parameterless pointwise function (sigmoid, tanh, abs)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


def bnll(x: Tensor) -> Tensor:
    """log(1 + e^x), computed on the side Caffe computes it so large |x| never overflows."""
    return torch.where(x > 0, x + torch.log1p(torch.exp(-x)), torch.log1p(torch.exp(x)))


class Power(nn.Module):
    """(shift + scale * x) ** power."""

    def __init__(self, power: float, scale: float, shift: float) -> None:
        super().__init__()
        self.power, self.scale, self.shift = power, scale, shift

    def forward(self, x: Tensor) -> Tensor:
        y = x * self.scale if self.scale != 1 else x
        y = y + self.shift if self.shift != 0 else y
        return torch.pow(y, self.power) if self.power != 1 else y


class Exp(nn.Module):
    """base ** (shift + scale * x), computed as Caffe does: base**shift * exp(ln(base) * scale * x)."""

    def __init__(self, base: float, scale: float, shift: float) -> None:
        super().__init__()
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner = log_base * scale
        self.outer = 1.0 if shift == 0 else (math.exp(shift) if base == -1 else base ** shift)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.exp(x * self.inner)
        return y * self.outer if self.outer != 1 else y


class Threshold(nn.Module):
    """1 where x > threshold, else 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        return (x > self.threshold).to(x.dtype)

class ELU(nn.Module):
    """max(x, 0) + alpha (exp(min(x, 0)) - 1)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, min=0) + self.alpha * (torch.exp(torch.clamp(x, max=0)) - 1)


class Clip(nn.Module):
    """max(min, min(x, max))."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(torch.clamp(x, max=self.high), min=self.low)


class Swish(nn.Module):
    """x sigmoid(beta x)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x * self.beta if self.beta != 1 else x)


class Log(nn.Module):
    """log_base(shift + scale x), computed as Caffe does: ln(shift + scale x) / ln(base)
    (base -1 means e)."""

    def __init__(self, base: float, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift
        self.base_scale = 1.0 if base == -1 else 1.0 / math.log(base)

    def forward(self, x: Tensor) -> Tensor:
        y = x * self.scale if self.scale != 1 else x
        y = torch.log(y + self.shift if self.shift != 0 else y)
        return y * self.base_scale if self.base_scale != 1 else y

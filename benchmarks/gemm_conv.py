"""Benchmark-only: stride-1, unpadded convolutions (FCN's fc6 7x7, 1x1 scores) as one oneDNN GEMM.

Why: on the AMD AVX-512 machine these benchmarks run on, oneDNN's fp32 GEMM reaches ~450 GFLOP/s,
MKL's (torch.mm) ~220, and F.conv2d on fc6 (7x7x512 -> 4096 at 22x22) only ~220 with NCHW input and
~90 with a channels_last input and NCHW weight (it reorders the 411 MB weight every call). An
im2col in (pixel, channel*ky*kx) order is a single 25 MB copy, and the product is a clean GEMM.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def linear(x2d: Tensor, w2d: Tensor, bias: Tensor | None) -> Tensor:
    """x2d (M, K) @ w2d (N, K).T + bias, through oneDNN when torch has it (fp32), else F.linear."""
    if _LINEAR is not None and x2d.dtype == torch.float32:
        return _LINEAR(x2d, w2d, bias, "none", [], "")
    return F.linear(x2d, w2d, bias)


def conv_gemm(x: Tensor, w2d: Tensor, bias: Tensor | None, kh: int, kw: int) -> Tensor:
    """Unpadded stride-1 conv of x (N, C, H, W) with w2d = weight.reshape(Cout, C*kh*kw).

    Returns a channels_last tensor (a free view of the GEMM output)."""
    n, c, h, w = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    if kh == kw == 1:
        cols = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view when x is channels_last
    else:
        cols = x.unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    y = linear(cols, w2d, bias)
    return y.view(n, oh, ow, -1).permute(0, 3, 1, 2)


class GemmConv2d(nn.Module):
    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.kh, self.kw = weight.shape[2:]
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.w2d = weight.detach().reshape(weight.shape[0], -1).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        return conv_gemm(x, self.w2d, self.bias, self.kh, self.kw)


def eligible(module: nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (type(module).__name__ == "Convolution" and w is not None and w.dim() == 4 and module.groups == 1
            and tuple(module.stride) == (1, 1) and tuple(module.padding) == (0, 0)
            and tuple(module.dilation) == (1, 1))


def use_gemm(net: nn.Module, layers: set[str]) -> list[str]:
    """Swap the named (eligible) Convolution layers of a CaffeModule for GemmConv2d, in place."""
    done = []
    for i, step in enumerate(net._steps):
        if step.name in layers and eligible(step.module):
            new = GemmConv2d(step.module.weight, step.module.bias)
            net._modules[step.name] = new
            net._steps[i] = dataclasses.replace(step, module=new)
            done.append(step.name)
    return done

"""Unpadded stride-1 convolutions (FCN's fc6 7x7, the 1x1 fc7/score layers) as one fp32 GEMM.

Why: on the CPUs we measured (AMD EPYC, AVX-512; benchmarks/README.md) oneDNN's fp32 GEMM runs at
~460 GFLOP/s, MKL's (``torch.mm``/``F.linear``) at ~230, and ``F.conv2d`` on fc6 (7x7x512 -> 4096)
at ~210 with an NCHW input and ~90 with a channels_last one (it reorders the 411 MB weight on every
call). A convolution without padding and stride is exactly ``im2col(x) @ weight.reshape(Cout, -1).T``;
the im2col in (pixel, channel*ky*kx) order is one copy (25 MB for fc6; none for a channels_last
1x1), and the weight reshape is a free view, so nothing needs caching.

oneDNN's GEMM is reached through the private op ``torch.ops.mkldnn._linear_pointwise``. Builds of
torch without it (or without oneDNN) use ``F.linear``: the same numbers up to fp32 summation order.
The op has no autograd formula, so callers use it only when no gradient is needed; it is CPU-only.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear", "im2col", "conv2d_gemm", "onednn_linear", "probe_onednn_linear"]

LinearOp = Callable[..., Tensor]
_UNPROBED: Any = object()
_linear_op: LinearOp | None = _UNPROBED  # resolved on first use; tests set it to None


def probe_onednn_linear(namespace: Any = None) -> LinearOp | None:
    """The oneDNN linear op if this torch has it and it computes a tiny product right, else None.

    A missing op, a torch without oneDNN, or an op whose signature changed all give None (and so
    the ``F.linear`` fallback) instead of an error at the first forward.
    """
    try:
        if namespace is None:
            if not torch.backends.mkldnn.is_available():
                return None
            namespace = torch.ops.mkldnn
        op = getattr(namespace, "_linear_pointwise")
        a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        w = torch.tensor([[1.0, 0.0, 2.0]])
        out = op(a, w, torch.tensor([0.5]), "none", [], "")
        if not torch.equal(out, torch.tensor([[4.5], [13.5]])):
            return None
        return op
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return None


def onednn_linear() -> LinearOp | None:
    """The probed op, cached for the process (None where the fallback is used)."""
    global _linear_op
    if _linear_op is _UNPROBED:
        _linear_op = probe_onednn_linear()
    return _linear_op


def linear(x2d: Tensor, w2d: Tensor, bias: Tensor | None) -> Tensor:
    """``x2d (M, K) @ w2d (N, K).T + bias``: oneDNN for CPU fp32 when available, else ``F.linear``.

    No autograd through the oneDNN op: call it only where no gradient is required.
    """
    op = onednn_linear()
    if (op is not None and x2d.device.type == "cpu" and x2d.dtype == torch.float32
            and w2d.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)):
        return op(x2d.contiguous(), w2d.contiguous(), bias, "none", [], "")
    return F.linear(x2d, w2d, bias)


def im2col(x: Tensor, kh: int, kw: int) -> Tensor:
    """The patches of an unpadded stride-1 convolution as (N*oh*ow, C*kh*kw), pixel-major (a view
    of a channels_last x for 1x1 kernels)."""
    n, c, h, w = x.shape
    if kh == kw == 1:
        return x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    patches = x.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C, oh, ow, kh, kw), a view
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw)


def conv2d_gemm(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.conv2d(x, weight, bias)`` (stride 1, no padding, dilation 1, one group) as one GEMM.

    x (N, C, H, W) with H, W >= the kernel; weight (Cout, C, kh, kw). The result is channels_last
    (a free view of the GEMM's (pixels, Cout) output), whatever the input's layout.
    """
    n, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    if cin != c or h < kh or w < kw:
        raise ValueError(f"conv2d_gemm: input {tuple(x.shape)} does not fit weight {tuple(weight.shape)}")
    oh, ow = h - kh + 1, w - kw + 1
    y = linear(im2col(x, kh, kw), weight.reshape(cout, cin * kh * kw), bias)
    return y.view(n, oh, ow, cout).permute(0, 3, 1, 2)

"""The CPU fast paths of the runtime, and the one place that decides when each is taken.

Caffe's numbers come from ``F.conv2d`` / ``F.conv_transpose2d`` on NCHW data. For CPU fp32
inference some layers have faster equivalents with the same numbers up to fp32 summation order:

- **channels_last**: ``CaffeModule`` runs the whole net in channels_last (``runs_channels_last``)
  and hands back NCHW blobs. oneDNN's convolutions were ~1.4x faster on channels_last data, and
  the one layer kind that suffered from it (fc6-like unpadded convs, which reorder their weight
  per call) runs as a GEMM in exactly that case. FCN-8s 500x500: 1.3 s -> 0.8 s (benchmarks/).
- **"gemm"** (``convert.gemm``): stride 1, no padding, dilation 1, one group (FCN's fc6 7x7, fc7
  and the 1x1 score layers). One oneDNN GEMM over an im2col runs fc6 2.2x faster than
  ``F.conv2d`` and, unlike it, does not reorder the 411 MB weight for channels_last input.
- **"winograd"** (``convert.winograd``, F(4x4, 3x3), transformed weight cached until the weight
  changes): 3x3, stride 1, dilation 1, one group, Cin and Cout >= ``WINOGRAD_MIN_CHANNELS``
  (VGG's conv4_2 .. conv5_3): 1.3-1.5x faster than oneDNN there, slower for fewer channels or
  bigger images (transform traffic). Error ~5e-6 of the layer's max, inside the 1e-5 parity budget.
- **depthwise deconvolution**: a deconvolution whose weight is zero off the channel diagonal
  (FCN's bilinear upsampling) as a depthwise one: the same numbers, K times less work.

None of them runs while the net is traced or exported (TorchScript, ``torch.export``, ONNX):
graphs get the plain operators, which every backend has, and the policy's weight checks (storage
pointers, version counters, the diagonal test) would otherwise be baked in or fail on fake tensors.
None of them runs for CUDA tensors (cuDNN; callers wanting Caffe's numbers there disable TF32),
other dtypes, or when a gradient may be needed: the oneDNN GEMM has no backward, Winograd would give
a different gradient path, and the depthwise form drops the off-diagonal gradients.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from convert.gemm import conv2d_gemm
from convert.winograd import TransformCache, winograd_conv3x3

if TYPE_CHECKING:  # the modules call this policy; it only reads their attributes
    from convert.modules.convolution import Convolution, Deconvolution

# Winograd F(4x4, 3x3) only from these channel counts on (both Cin and Cout): measured faster than
# oneDNN's direct convolution only for FCN's 512 -> 512 layers (benchmarks/README.md).
WINOGRAD_MIN_CHANNELS = 512


def inference_only(*tensors: Tensor | None) -> bool:
    """True when no gradient can flow through an op on these tensors: grad mode is off, or none of
    them requires grad. The fast paths have no (or a different) backward, so they need this."""
    return not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors)


def exporting() -> bool:
    """Whether this call is being traced (``torch.jit.trace``, the TorchScript ONNX exporter) or
    exported / compiled (``torch.export``, ``torch.compile``)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _direct(conv: Convolution, x: Tensor) -> Tensor:
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _gemm(conv: Convolution, x: Tensor) -> Tensor:
    return conv2d_gemm(x, conv.weight, conv.bias)


def _winograd(conv: Convolution, x: Tensor) -> Tensor:
    return winograd_conv3x3(x, conv.winograd_transform(conv.weight), conv.bias, conv.padding)


# How a Convolution module can compute its output, by the name ``convolution_path`` returns.
CONVOLUTION_PATHS: dict[str, Callable[[Convolution, Tensor], Tensor]] = {
    "conv2d": _direct,
    "gemm": _gemm,
    "winograd": _winograd,
}


def convolution_path(conv: Convolution, x: Tensor) -> str:
    """The key of ``CONVOLUTION_PATHS`` that ``conv`` takes for ``x`` (see the module docstring).

    Sizes that ``F.conv2d`` would reject also take "conv2d", so the errors are PyTorch's.
    """
    w = conv.weight
    if exporting() or not (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and x.dim() == 4 and w.dim() == 4 and x.shape[1] == w.shape[1] and x.numel() > 0
            and conv.groups == 1 and tuple(conv.stride) == (1, 1)
            and tuple(conv.dilation) == (1, 1) and inference_only(x, w, conv.bias)):
        return "conv2d"
    cout, cin, kh, kw = w.shape
    ph, pw = conv.padding
    if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
        return "conv2d"
    if (ph, pw) == (0, 0):
        return "gemm"
    if ((kh, kw) == (3, 3) and min(cin, cout) >= WINOGRAD_MIN_CHANNELS
            and TransformCache.trackable(w)):
        return "winograd"
    return "conv2d"


def depthwise_deconvolution(deconv: Deconvolution) -> bool:
    """Whether ``deconv`` runs depthwise: its weight is diagonal and no weight gradient is needed
    (the depthwise form would drop the off-diagonal gradients, so training takes the full form)."""
    if exporting():
        return False
    return not (torch.is_grad_enabled() and deconv.weight.requires_grad) and deconv.is_diagonal()


def runs_channels_last(inputs: Iterable[object], parameters: Iterable[Tensor]) -> bool:
    """Whether a whole-net call runs in channels_last: CPU fp32 4-D inputs and no gradient needed
    (the condition under which the convolutions' GEMM path makes the layout pay)."""
    if exporting():
        return False
    inputs = list(inputs)
    images = [x for x in inputs if isinstance(x, Tensor) and x.dim() == 4]
    return (bool(images) and all(x.device.type == "cpu" and x.dtype == torch.float32 for x in images)
            and inference_only(*inputs, *parameters))

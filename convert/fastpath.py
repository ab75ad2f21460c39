"""The CPU fast paths of the runtime, and the one place that decides when each is taken.

Caffe's numbers come from ``F.conv2d`` / ``F.conv_transpose2d`` on NCHW data. For CPU fp32
inference a layer may have faster equivalents, the same computation up to fp32 summation order:

- **"conv2d_channels_last"** / **"conv2d_nchw"**: ``F.conv2d`` after moving the input to the other
  memory layout (oneDNN's kernels differ per layout); the output keeps the new layout, and the next
  layers see it. Only inside a ``CaffeModule`` (``allow_layout_change``), which returns NCHW blobs.
- **"gemm"** (``convert.gemm``): stride 1, no padding, dilation 1, one group (FCN's fc6 7x7, fc7
  and the 1x1 score layers): one oneDNN GEMM over an im2col; unlike ``F.conv2d`` on channels_last
  data it does not reorder a large weight on every call. Its output is channels_last.
- **"winograd"** / **"winograd_f2"** (``convert.winograd``, F(4x4, 3x3) / F(2x2, 3x3), the
  transformed weight cached until the weight changes): 3x3, stride 1, dilation 1, one group.
  4x / 2.25x fewer multiplications than direct convolution, at some cost in accuracy (F(4x4) on
  512-channel layers: about 3x the error of direct convolution against float64).
- **"depthwise"** deconvolution: a deconvolution whose weight is zero off the channel diagonal
  (FCN's bilinear upsampling) as a depthwise one: the same numbers, K times less work.

Which one a layer takes is **measured, not assumed** (``convert.tuning.choose``): per layer, a
candidate must keep its error against float64 within 2x that of plain ``F.conv2d`` on the layer's
real weights, and must beat plain ``F.conv2d`` on the layer's real input shape on this machine by a
margin; the result is cached on disk per machine. Shapes are grouped (``size_bucket``) so that a
data set of varied image sizes is measured a few times, not once per image.

None of them runs while the net is traced or exported (TorchScript, ``torch.export``, ONNX):
graphs get the plain operators, which every backend has, and the policy's weight checks (storage
pointers, version counters, the diagonal test, timings) would otherwise be baked in or fail on fake
tensors. None of them runs for CUDA tensors (cuDNN; callers wanting Caffe's numbers there disable TF32),
other dtypes, when a gradient may be needed (the oneDNN GEMM has no backward, Winograd would give a
different gradient path, the depthwise form drops the off-diagonal gradients), or on a module with
``fast_paths = False`` (``set_exact``; ``convert.load(..., exact=True)``): then every layer computes
exactly what ``F.conv2d`` / ``F.conv_transpose2d`` compute.
"""
from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert import tuning
from convert.gemm import conv2d_gemm
from convert.winograd import TransformCache, winograd_conv3x3

if TYPE_CHECKING:  # the modules call this policy; it only reads their attributes
    from convert.modules.convolution import Convolution, Deconvolution

DIRECT = "conv2d"  # every convolution's baseline: what Caffe's numbers are measured against
TRANSPOSED = "conv_transpose2d"  # every deconvolution's baseline
ACCURACY_OUTPUT_SIDE = 16  # the accuracy check's output side at most (real channels and weights)
# Layers with less work than this take their baseline (convolution) or depthwise form (diagonal
# deconvolution, the same sums) unmeasured: they cost well under a millisecond on any CPU, so there
# is nothing to win, and measuring them would cost more than a run could ever save.
MIN_MEASURED_FLOPS = 1e8


def _direct(conv: Convolution, x: Tensor) -> Tensor:
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _channels_last(conv: Convolution, x: Tensor) -> Tensor:
    return _direct(conv, x.contiguous(memory_format=torch.channels_last))


def _nchw(conv: Convolution, x: Tensor) -> Tensor:
    return _direct(conv, x.contiguous())


def _gemm(conv: Convolution, x: Tensor) -> Tensor:
    return conv2d_gemm(x, conv.weight, conv.bias)


def _winograd(m: int) -> Callable[[Convolution, Tensor], Tensor]:
    def run(conv: Convolution, x: Tensor) -> Tensor:
        return winograd_conv3x3(x, conv.winograd_transforms[m](conv.weight), conv.bias, conv.padding)
    return run


# How a Convolution module can compute its output, by the name ``convolution_path`` returns.
CONVOLUTION_PATHS: dict[str, Callable[[Convolution, Tensor], Tensor]] = {
    DIRECT: _direct,
    "conv2d_channels_last": _channels_last,
    "conv2d_nchw": _nchw,
    "gemm": _gemm,
    "winograd": _winograd(4),
    "winograd_f2": _winograd(2),
}
WINOGRAD_TILES = {"winograd": 4, "winograd_f2": 2}  # output tile side of each Winograd path


def exporting() -> bool:
    """Whether this call is being traced (``torch.jit.trace``, the TorchScript ONNX exporter) or
    exported / compiled (``torch.export``, ``torch.compile``)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def inference_only(*tensors: Tensor | None) -> bool:
    """True when no gradient can flow through an op on these tensors: grad mode is off, or none of
    them requires grad. The fast paths have no (or a different) backward, so they need this."""
    return not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors)


def set_exact(model: nn.Module, exact: bool = True) -> nn.Module:
    """Turn every fast path of ``model`` off (``exact=True``) or back on; returns ``model``.

    Works on any module tree: the runtime's ``CaffeModule`` and the layer modules ``fcn_ref``
    builds on all carry a ``fast_paths`` flag; convolutions that have only training paths
    (``convert.trainpath``; the zoo's ``fcn_ref.blocks.Conv2d``) carry a ``training_paths`` flag.
    """
    for module in model.modules():
        for flag in ("fast_paths", "training_paths"):
            if hasattr(module, flag):
                setattr(module, flag, not exact)
    return model


def fast_call(inputs: Iterable[object], parameters: Iterable[Tensor]) -> bool:
    """Whether a whole-net call may take fast paths: CPU fp32 4-D inputs and no gradient needed.
    (Layers may then change the memory layout; the net hands back NCHW blobs.)"""
    if exporting():
        return False
    inputs = list(inputs)
    images = [x for x in inputs if isinstance(x, Tensor) and x.dim() == 4]
    return (bool(images) and all(x.device.type == "cpu" and x.dtype == torch.float32 for x in images)
            and inference_only(*inputs, *parameters))


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` is dense in channels_last and not also plain contiguous (one channel or pixel)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def layout_of(x: Tensor) -> str:
    """"channels_last" or "nchw": the layout part of the choosers' keys (and hand-off records)."""
    return "channels_last" if is_channels_last(x) else "nchw"


def output_size(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """A convolution's output height and width (PyTorch's floor rule)."""
    oh, ow = ((n + 2 * p - (k - 1) * d - 1) // s + 1 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    return oh, ow


def size_bucket(height: int, width: int) -> int:
    """Input areas within about 9% of each other share one timing (a quarter octave of area)."""
    return round(4 * math.log2(max(1, height * width)))


def _weight_state(module: nn.Module) -> tuple:
    """Changes whenever the weight or bias tensor does (new storage or an in-place write)."""
    state = []
    for t in (module.weight, module.bias):
        if t is None:
            state.append(None)
            continue
        try:
            version = t._version
        except RuntimeError:  # inference tensors carry no version counter
            version = None
        state.append((t.data_ptr(), version, tuple(t.shape)))
    return tuple(state)


def fingerprint(*tensors: Tensor | None) -> str:
    """A short digest of the tensors' shapes, a strided sample of their values and their sums:
    enough to tell one layer's weights from another's, at a fraction of hashing every byte."""
    digest = hashlib.sha1()
    for t in tensors:
        if t is None:
            digest.update(b"none")
            continue
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        digest.update(repr((tuple(t.shape), str(t.dtype), float(flat.double().sum()))).encode())
        digest.update(flat[::step].contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _accuracy_side(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """The input side that gives at most ACCURACY_OUTPUT_SIDE outputs (at least one)."""
    extent = (kernel - 1) * dilation + 1
    return min(size, max(1, extent - 2 * pad, (ACCURACY_OUTPUT_SIDE - 1) * stride + extent - 2 * pad))


def _memo(module: nn.Module) -> dict:
    """The module's remembered choices, emptied whenever its weights change."""
    state = _weight_state(module)
    memo = module.__dict__.get("_fastpath_memo")
    if memo is None or memo["state"] != state:
        memo = {"state": state, "fingerprint": None, "choices": {}}
        module.__dict__["_fastpath_memo"] = memo
    return memo


def convolution_candidates(conv: Convolution, x: Tensor) -> list[str]:
    """The paths that compute ``conv`` on ``x`` with its numbers (before any measurement)."""
    w = conv.weight
    if exporting() or not (getattr(conv, "fast_paths", True) and x.device.type == "cpu" and x.dtype == torch.float32
            and w.dtype == torch.float32 and x.dim() == 4 and w.dim() == 4 and x.numel() > 0
            and x.shape[1] == w.shape[1] * conv.groups and inference_only(x, w, conv.bias)):
        return [DIRECT]
    cout, cin, kh, kw = w.shape
    (ph, pw), (dh, dw) = conv.padding, conv.dilation
    if x.shape[2] + 2 * ph < (kh - 1) * dh + 1 or x.shape[3] + 2 * pw < (kw - 1) * dw + 1:
        return [DIRECT]  # PyTorch's own error
    names = [DIRECT]
    if getattr(conv, "allow_layout_change", False):
        names.append("conv2d_nchw" if is_channels_last(x) else "conv2d_channels_last")
    if conv.groups == 1 and tuple(conv.stride) == (1, 1) and (dh, dw) == (1, 1):
        if (ph, pw) == (0, 0):
            names.append("gemm")
        if (kh, kw) == (3, 3) and TransformCache.trackable(w):
            names += list(WINOGRAD_TILES)
    return names


def convolution_path(conv: Convolution, x: Tensor) -> str:
    """The key of ``CONVOLUTION_PATHS`` that ``conv`` takes for ``x``: measured once per layer,
    input size bucket and layout (see the module docstring), then remembered."""
    names = convolution_candidates(conv, x)
    if len(names) == 1:
        return names[0]
    n, c, h, w = x.shape
    cout, cin, kh, kw = conv.weight.shape
    outputs = math.prod(output_size((h, w), (kh, kw), conv.stride, conv.padding, conv.dilation))
    if 2 * n * cout * cin * kh * kw * outputs < MIN_MEASURED_FLOPS:
        return DIRECT
    layout = layout_of(x)
    geometry = (f"conv w{tuple(conv.weight.shape)} bias{conv.bias is not None} s{tuple(conv.stride)} "
                f"p{tuple(conv.padding)} d{tuple(conv.dilation)} g{conv.groups}")
    timing_key = f"{geometry} x{n}x{c}@{size_bucket(h, w)} {layout}"
    memo = _memo(conv)
    choice = memo["choices"].get((timing_key, tuple(names)))
    if choice is None:
        if memo["fingerprint"] is None:
            memo["fingerprint"] = fingerprint(conv.weight, conv.bias)
        sides = [_accuracy_side(size, k, s, p, d) for size, k, s, p, d in
                 zip((h, w), (kh, kw), conv.stride, conv.padding, conv.dilation)]
        accuracy_key = f"{geometry} weights {memo['fingerprint']} x1x{c}x{sides[0]}x{sides[1]} {layout}"
        accuracy_input = tuning.probe_input((1, c, *sides), accuracy_key, like=x)
        timing_input = tuning.probe_input(tuple(x.shape), timing_key, like=x)
        runs = {name: (lambda y, run=CONVOLUTION_PATHS[name]: run(conv, y)) for name in names}
        choice = tuning.choose(runs, DIRECT, accuracy_key=accuracy_key, accuracy_input=accuracy_input,
                               reference=lambda y: _reference_conv(conv, y), timing_key=timing_key,
                               timing_input=timing_input)
        for name, tile in WINOGRAD_TILES.items():
            if name != choice:  # a transformed weight is up to 4x the weight: keep only the one used
                conv.winograd_transforms[tile].clear()
        memo["choices"][(timing_key, tuple(names))] = choice
    return choice


def _reference_conv(conv: Convolution, x64: Tensor) -> Tensor:
    """The layer in float64, a block of output channels at a time (fc6's weight is 411 MB)."""
    w, b = conv.weight.detach(), conv.bias
    if conv.groups != 1:
        return F.conv2d(x64, w.double(), None if b is None else b.detach().double(), conv.stride,
                        conv.padding, conv.dilation, conv.groups)
    block = max(1, (64 << 20) // max(1, w[0].numel() * 8))
    return torch.cat([F.conv2d(x64, w[i:i + block].double(),
                               None if b is None else b.detach()[i:i + block].double(),
                               conv.stride, conv.padding, conv.dilation)
                      for i in range(0, w.shape[0], block)], dim=1)


def _depthwise(deconv: Deconvolution, x: Tensor) -> Tensor:
    w = deconv.weight
    depthwise = w.diagonal(dim1=0, dim2=1).permute(2, 0, 1).unsqueeze(1).contiguous()
    return F.conv_transpose2d(x, depthwise, deconv.bias, deconv.stride, deconv.padding, 0,
                              w.shape[0], deconv.dilation)


def _transposed(deconv: Deconvolution, x: Tensor) -> Tensor:
    return F.conv_transpose2d(x, deconv.weight, deconv.bias, deconv.stride, deconv.padding, 0,
                              deconv.groups, deconv.dilation)


# How a Deconvolution module can compute its output, by the name ``deconvolution_path`` returns.
DECONVOLUTION_PATHS: dict[str, Callable[[Deconvolution, Tensor], Tensor]] = {
    TRANSPOSED: _transposed,
    "depthwise": _depthwise,
}


def deconvolution_path(deconv: Deconvolution, x: Tensor) -> str:
    """The key of ``DECONVOLUTION_PATHS`` that ``deconv`` takes for ``x``.

    "depthwise" needs a diagonal weight and no weight gradient. It computes the same sums (the
    full form only adds exact zeros), so off the CPU-fp32 case it is taken as before; on CPU fp32
    it is measured like the convolution paths.
    """
    w = deconv.weight
    if (exporting() or not getattr(deconv, "fast_paths", True) or (torch.is_grad_enabled() and w.requires_grad)
            or not deconv.is_diagonal()):
        return TRANSPOSED
    if not (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and x.dim() == 4 and x.numel() > 0 and inference_only(x, deconv.bias)):
        return "depthwise"
    n, c, h, width = x.shape
    if 2 * n * w[0].numel() * w.shape[0] * h * width < MIN_MEASURED_FLOPS:
        return "depthwise"
    layout = layout_of(x)
    geometry = (f"deconv w{tuple(w.shape)} bias{deconv.bias is not None} s{tuple(deconv.stride)} "
                f"p{tuple(deconv.padding)} d{tuple(deconv.dilation)}")
    timing_key = f"{geometry} x{n}x{c}@{size_bucket(h, width)} {layout}"
    memo = _memo(deconv)
    choice = memo["choices"].get(timing_key)
    if choice is None:
        if memo["fingerprint"] is None:
            memo["fingerprint"] = fingerprint(w, deconv.bias)
        sides = (min(h, ACCURACY_OUTPUT_SIDE), min(width, ACCURACY_OUTPUT_SIDE))
        accuracy_key = f"{geometry} weights {memo['fingerprint']} x1x{c}x{sides[0]}x{sides[1]} {layout}"
        runs = {name: (lambda y, run=run: run(deconv, y)) for name, run in DECONVOLUTION_PATHS.items()}
        reference = lambda y: F.conv_transpose2d(  # noqa: E731
            y, w.detach().double(), None if deconv.bias is None else deconv.bias.detach().double(),
            deconv.stride, deconv.padding, 0, deconv.groups, deconv.dilation)
        choice = tuning.choose(runs, TRANSPOSED, accuracy_key=accuracy_key,
                               accuracy_input=tuning.probe_input((1, c, *sides), accuracy_key, like=x),
                               reference=reference, timing_key=timing_key,
                               timing_input=tuning.probe_input(tuple(x.shape), timing_key, like=x))
        memo["choices"][timing_key] = choice
    return choice

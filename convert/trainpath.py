"""Fast CPU paths for convolutions whose gradient is needed (training), and where each is chosen.

Why: a training step is a forward, an input gradient and a weight gradient per layer, and plain
autograd over ``F.conv2d`` on NCHW data spends most of it in oneDNN's NCHW backward kernels, which
run at a third of the forward's rate on FCN's big early layers, and in fc6, a 7x7x512x4096
convolution that oneDNN runs as a convolution at half the rate of a GEMM. The candidates:

- **"autograd"**: ``F.conv2d`` with autograd, input as given (the baseline: Caffe's numbers are
  compared with it);
- **"autograd_channels_last"** / **"autograd_nchw"**: the same in the other memory layout; the
  output keeps that layout and the next layers see it (oneDNN's kernels differ per layout, in
  forward and backward: on the Xeon we measured, channels_last wins on the big early layers and
  loses on the 512-channel ones, so a net may switch there and back);
- **"gemm"** (stride 1, no padding, dilation 1, one group: fc6, fc7, the 1x1 score layers): an
  autograd Function of three GEMMs (``convert.gemm``): ``y = cols @ W.T``, ``dW = dY.T @ cols``,
  ``dcols = dY @ W`` folded back (``F.fold``; a view for 1x1). When the weight carries a
  ``RowUpdate`` (``set_row_update``: a solver that updates each weight as soon as its gradient is
  known), ``dW`` is computed a block of output channels at a time into one reused buffer and
  handed to it block by block, after the input gradient: fc6's 411 MB gradient never exists;
- **"winograd"** (3x3, stride 1, dilation 1, one group, pad <= 2): the forward and the input
  gradient as Winograd F(4x4, 3x3) convolutions (``convert.winograd``; the input gradient is the
  convolution of dY with the flipped, transposed kernel), the weight gradient as F(2x2, 3x3)
  (``winograd_weight_gradient``: 16 GEMMs over the 2x2-output tiles where the direct gradient has 9
  over the pixels, four times as long; on FCN-8s's 3x3 layers oneDNN's weight gradient measured
  160-270 GFLOP/s on the Xeon, its forward 240-310). The weight changes every iteration, so its
  transform is computed per call, in float32, and not kept;
- **"winograd_weight_gradient"** (the same layers): oneDNN's forward and input gradient, input as
  given, with that F(2x2) weight gradient;
- **"channels_last_output"** (one group, patches no wider than the output, ``C*kh*kw <= Cout``: a
  layer on the image, FCN's conv1_1): oneDNN's forward with the weight in channels_last, which
  reads the NCHW image as it is and writes channels_last, so the net after it needs no copy of its
  125 MB output and no transpose of that gradient; the weight and bias gradients as im2col GEMMs
  over bands of output rows (``_weight_gradient_by_bands``; oneDNN's channels_last weight gradient
  for 3 input channels is 2x slower), the input gradient (when wanted) from oneDNN.

Which one a layer takes is **measured, not assumed**, by ``convert.tuning.choose`` as for the
inference paths: a candidate's output, input gradient, weight gradient and bias gradient on a
small probe (the layer's real weights and input channels, at most ``ACCURACY_MAX_OUTPUTS`` output
channels) must each stay within 2x the error of plain ``F.conv2d`` against float64 (the worse of
its two memory layouts, see ``OTHER_LAYOUT``), and its forward plus backward on the layer's real
input shape must take at most ``SPEED_MARGIN`` of the baseline's time, timed as the net runs it:
the output gradient in the candidate's output layout (``_OutputGrads``), no input gradient where
the input needs none (the first layer's), and the output handed on converted where the layer after
it was recorded converting such an output (see "layout hand-offs" below). Results are cached per
machine with the inference choices; a module remembers its choice per input-size bucket for the
whole run (its weights change every step, so unlike ``convert.fastpath`` the memo is not tied to
them). Layers under ``convert.fastpath.MIN_MEASURED_FLOPS`` take the baseline unmeasured; so do
CUDA tensors, other dtypes, traced or exported calls, and modules with ``fast_paths`` or
``training_paths`` False (``convert.fastpath.set_exact``). The first step of a run checks accuracy (small probes);
the first run on a machine also times the candidates at full size (seconds to minutes for
FCN-8s, and transient memory for fc6's gradients). Measuring runs on a stand-in module that
shares the layer's memory (``_stand_in``), never on its parameters.
"""
from __future__ import annotations

import math
import zlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert import fastpath, tuning
from convert.gemm import conv2d_gemm, im2col
from convert.winograd import transform_weight, winograd_conv3x3, winograd_weight_gradient

BASELINE = "autograd"
WINOGRAD_TILE = 4  # F(4x4, 3x3); F(2x2) never won a layer in the inference measurements
WEIGHT_GRADIENT_TILE = 2  # F(2x2, 3x3) for weight gradients: F(4x4)'s error measured 1.3-1.8x plain
                          # NCHW's on FCN-8s's layers (the gate allows 2x), at the same step time;
                          # F(2x2)'s is that of oneDNN's channels_last kernel
ACCURACY_MAX_OUTPUTS = 256  # output channels of the accuracy probe at most (``_accuracy_probe``)
REFERENCE_BLOCK_BYTES = 64 << 20  # float64 weight per block of output channels in the reference
SPEED_MARGIN = 0.95  # a candidate must take at most this fraction of the baseline's time (the
                     # inference paths ask 0.9): a layer is timed forward and backward together,
                     # where a faster weight gradient alone is a third of the work
REVISION = 5  # part of the timing and accuracy keys: raised when the timed runs or a candidate's
              # arithmetic change, so that what was measured the old way (cached per machine) is
              # measured again

Geometry = tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]  # stride, padding, dilation, groups


def _geometry(conv: nn.Module) -> Geometry:
    pair = lambda v: (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))  # noqa: E731
    return pair(conv.stride), pair(conv.padding), pair(conv.dilation), int(conv.groups)


# ----------------------------------------------------------------------------- GEMM convolution

ROW_UPDATE_ATTRIBUTE = "_row_update"
ROW_BLOCK_BYTES = 64 << 20  # the reused weight-gradient block of a RowUpdate (fc6: 640 of 4096 rows)


class RowUpdate:
    """Takes a weight's gradient block of output channels by block, in place of ``weight.grad``.

    Why: a solver that updates each parameter the moment its gradient is complete (Caffe's rule is
    elementwise) needs no full gradient at all; for fc6 that is 411 MB of memory and of page
    faults per step. ``apply(rows, grad_rows, last)`` must consume ``grad_rows`` at once (the
    buffer is reused and may be modified in place). The layer computing the gradient calls it only
    when it is the weight's one use in the forward (``uses``, counted by that layer since
    ``set_row_update``): with a second use, the weight would change before that use's backward.
    """

    def __init__(self, apply: Callable[[slice, Tensor, bool], None]) -> None:
        self.apply = apply
        self.uses = 0


def set_row_update(weight: Tensor, update: RowUpdate | None) -> None:
    """Attach ``update`` to ``weight`` (None detaches): the "gemm" path then gives the weight's
    gradient to it block by block instead of returning it."""
    if update is None:
        weight.__dict__.pop(ROW_UPDATE_ATTRIBUTE, None)
    else:
        setattr(weight, ROW_UPDATE_ATTRIBUTE, update)


def _row_update_of(weight: Tensor) -> RowUpdate | None:
    update = getattr(weight, ROW_UPDATE_ATTRIBUTE, None)
    if update is not None:
        update.uses += 1
    return update


def _apply_weight_gradient_by_rows(g2d: Tensor, cols: Tensor, weight: Tensor, update: RowUpdate) -> None:
    """``dW = g2d.T @ cols`` a block of output channels at a time, each block given to ``update``."""
    cout = weight.shape[0]
    per_row = cols.shape[1]
    rows = max(1, min(cout, ROW_BLOCK_BYTES // (per_row * cols.element_size())))
    block = cols.new_empty((rows, per_row))
    for start in range(0, cout, rows):
        end = min(cout, start + rows)
        out = block[: end - start]
        torch.mm(g2d[:, start:end].t(), cols, out=out)
        update.apply(slice(start, end), out.view(end - start, *weight.shape[1:]), end == cout)


class _GemmConvolution(torch.autograd.Function):
    """``F.conv2d(x, weight, bias)`` (stride 1, no padding) with its gradients, all as GEMMs."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.row_update = _row_update_of(weight) if weight.requires_grad else None
        return conv2d_gemm(x, weight, bias).detach()  # not a view: in-place ReLUs may follow

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        oh, ow = grad.shape[2:]
        g2d = grad.permute(0, 2, 3, 1).reshape(n * oh * ow, cout)  # a view when grad is channels_last
        w2d = weight.reshape(cout, -1)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # before any row update: it reads the weight
            dcols = torch.mm(g2d, w2d)  # (P, C*kh*kw); MKL reads the transposes in place
            if kh == kw == 1:
                grad_x = dcols.view(n, h, w, c).permute(0, 3, 1, 2)
            else:
                grad_x = F.fold(dcols.view(n, oh * ow, c * kh * kw).transpose(1, 2), (h, w), (kh, kw))
        if ctx.needs_input_grad[1]:
            update = ctx.row_update
            if update is not None and update.uses == 1 and getattr(weight, ROW_UPDATE_ATTRIBUTE, None) is update:
                _apply_weight_gradient_by_rows(g2d, im2col(x, kh, kw), weight, update)
            else:
                grad_w = torch.mm(g2d.t(), im2col(x, kh, kw)).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2d.sum(0)
        return grad_x, grad_w, grad_b


# ----------------------------------------------------------------------------- Winograd convolution

def _transform(weight: Tensor) -> Tensor:
    """The weight in the Winograd domain, transformed in float32: a training weight changes every
    step, so the float64 transform would cost more than it saves; the gate measures the result."""
    return transform_weight(weight, WINOGRAD_TILE, precision=torch.float32)


class _WinogradConvolution(torch.autograd.Function):
    """3x3 stride-1 convolution with its gradients as Winograd convolutions: the forward and the
    input gradient (the convolution of dY with the flipped, transposed kernel) as F(4x4, 3x3), the
    weight gradient as F(2x2, 3x3) (``WEIGHT_GRADIENT_TILE``)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return winograd_conv3x3(x, _transform(weight.detach()), bias, padding).detach()  # not a view

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = None
        if ctx.needs_input_grad[0]:
            flipped = weight.flip(2, 3).transpose(0, 1)
            grad_x = winograd_conv3x3(grad, _transform(flipped), None, tuple(2 - p for p in ctx.padding))
        return (grad_x, *_winograd_parameter_gradients(ctx, x, grad), None)


class _WinogradWeightGradientConvolution(torch.autograd.Function):
    """3x3 stride-1 convolution: oneDNN's forward and input gradient, the weight gradient as
    Winograd F(2x2, 3x3) (for layers where oneDNN's forward beats Winograd's, or Winograd's fails
    the accuracy gate, but oneDNN's weight gradient, the slowest of its three kernels, is beaten)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        weight_in_layout = _in_layout_of(x, weight)
        ctx.save_for_backward(x, weight_in_layout)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight_in_layout, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=LAYOUTS[fastpath.layout_of(x)])
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(ctx.padding), [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        return (grad_x, *_winograd_parameter_gradients(ctx, x, grad), None)


def _winograd_parameter_gradients(ctx, x: Tensor, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(dW, db) as wanted by a 3x3 convolution's backward: dW as Winograd F(2x2, 3x3)."""
    wants_weight = ctx.needs_input_grad[1]
    grad_w = winograd_weight_gradient(x, grad, ctx.padding, WEIGHT_GRADIENT_TILE) if wants_weight else None
    grad_b = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_w, grad_b


# ----------------------------------------------------------------------------- im2col weight gradient

IM2COL_BAND_BYTES = 4 << 20  # the patches of one band of output rows (``_weight_gradient_by_bands``)


def _weight_gradient_by_bands(x: Tensor, grad: Tensor, weight_shape: torch.Size, geometry: Geometry,
                              bias: bool) -> tuple[Tensor, Tensor | None]:
    """(dW, db) of a one-group convolution as ``dW += dY_band.T @ patches_band`` over bands of
    output rows: each band's patches (``F.unfold``) are a few MB, so nothing of the size of the
    whole im2col matrix exists, and the band's gradient is summed for db while it is in cache."""
    (sh, sw), (ph, pw), (dh, dw), _ = geometry
    cout, cin, kh, kw = weight_shape
    n, _, oh, ow = grad.shape
    padded = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    per_row = n * ow * cin * kh * kw * x.element_size()
    rows = max(1, min(oh, IM2COL_BAND_BYTES // max(per_row, 1)))
    pixels = grad.permute(0, 2, 3, 1)  # (N, oh, ow, Cout): contiguous for a channels_last grad
    grad_w = x.new_zeros((cout, cin * kh * kw))
    grad_b = x.new_zeros((cout,)) if bias else None
    for r0 in range(0, oh, rows):
        r1 = min(oh, r0 + rows)
        band = padded[:, :, r0 * sh:(r1 - 1) * sh + dh * (kh - 1) + 1]
        patches = F.unfold(band, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (N, C*kh*kw, rows*ow)
        band_grad = pixels[:, r0:r1].reshape(n, (r1 - r0) * ow, cout)
        for i in range(n):
            grad_w.addmm_(band_grad[i].t(), patches[i].t())
        if grad_b is not None:
            grad_b.add_(band_grad.sum((0, 1)))
    return grad_w.view(weight_shape), grad_b


class _ChannelsLastOutputConvolution(torch.autograd.Function):
    """oneDNN's convolution into channels_last with the input read as it is (the weight in
    channels_last decides the layout: an NCHW image is not copied), oneDNN's input gradient, and
    the weight and bias gradients by bands of im2col GEMMs (``_weight_gradient_by_bands``)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, geometry: Geometry) -> Tensor:
        stride, padding, dilation, _ = geometry
        weight_cl = weight.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight_cl)
        ctx.geometry, ctx.has_bias = geometry, bias is not None
        y = F.conv2d(x, weight_cl, bias, stride, padding, dilation)
        return y.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight_cl = ctx.saved_tensors
        stride, padding, dilation, _ = ctx.geometry
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight_cl, None, list(stride), list(padding), list(dilation), False, [0, 0], 1,
                [True, False, False])[0]
        wants_bias = ctx.has_bias and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[1]:
            grad_w, grad_b = _weight_gradient_by_bands(x, grad, weight_cl.shape, ctx.geometry, wants_bias)
        elif wants_bias:  # a frozen weight with a learned bias: no weight gradient to compute
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


# ----------------------------------------------------------------------------- the candidates

def _in_layout_of(x: Tensor, weight: Tensor) -> Tensor:
    """The weight in the input's layout: oneDNN would otherwise convert it once in the forward and
    twice in the backward (the same numbers: the kernels reorder either into their own format)."""
    return weight.contiguous(memory_format=torch.channels_last) if fastpath.is_channels_last(x) else weight


def _autograd(conv: nn.Module, x: Tensor) -> Tensor:
    return F.conv2d(x, _in_layout_of(x, conv.weight), conv.bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups)


def _channels_last(conv: nn.Module, x: Tensor) -> Tensor:
    return _autograd(conv, x.contiguous(memory_format=torch.channels_last))


def _nchw(conv: nn.Module, x: Tensor) -> Tensor:
    return _autograd(conv, x.contiguous())


def _gemm(conv: nn.Module, x: Tensor) -> Tensor:
    return _GemmConvolution.apply(x, conv.weight, conv.bias)


def _winograd(conv: nn.Module, x: Tensor) -> Tensor:
    return _WinogradConvolution.apply(x, conv.weight, conv.bias, _geometry(conv)[1])


def _winograd_weight_gradient(conv: nn.Module, x: Tensor) -> Tensor:
    return _WinogradWeightGradientConvolution.apply(x, conv.weight, conv.bias, _geometry(conv)[1])


def _channels_last_output(conv: nn.Module, x: Tensor) -> Tensor:
    return _ChannelsLastOutputConvolution.apply(x, conv.weight, conv.bias, _geometry(conv))


# How a convolution with a gradient can be computed, by the name ``path`` returns.
PATHS: dict[str, Callable[[nn.Module, Tensor], Tensor]] = {
    BASELINE: _autograd,
    "autograd_channels_last": _channels_last,
    "autograd_nchw": _nchw,
    "gemm": _gemm,
    "winograd": _winograd,
    "winograd_weight_gradient": _winograd_weight_gradient,
    "channels_last_output": _channels_last_output,
}


# Plain F.conv2d in either memory layout is as exact as the baseline, so the accuracy gate allows
# 2x the worse of the two per tensor (they differ by up to 10x on FCN-8s's layers: oneDNN's
# channels_last forward and NCHW weight gradient sum in other orders). The other layout's run is
# both a candidate and such a reference (``tuning.choose``'s ``references``).
OTHER_LAYOUT = {"nchw": "autograd_channels_last", "channels_last": "autograd_nchw"}


def applies(conv: nn.Module, x: Tensor) -> bool:
    """Whether a call may take a training path: gradients wanted, CPU fp32, fast paths on."""
    w = conv.weight
    return (getattr(conv, "fast_paths", True) and getattr(conv, "training_paths", True)
            and not fastpath.exporting() and torch.is_grad_enabled()
            and not fastpath.inference_only(x, w, conv.bias) and x.device.type == "cpu"
            and x.dtype == torch.float32 and w.dtype == torch.float32 and x.dim() == 4 and w.dim() == 4
            and x.numel() > 0 and x.shape[1] == w.shape[1] * conv.groups)


def candidates(conv: nn.Module, x: Tensor) -> list[str]:
    """The paths that compute ``conv`` on ``x`` with its gradients (before any measurement)."""
    if not applies(conv, x):
        return [BASELINE]
    cout, cin, kh, kw = conv.weight.shape
    stride, (ph, pw), dilation, groups = _geometry(conv)
    if x.shape[2] + 2 * ph < (kh - 1) * dilation[0] + 1 or x.shape[3] + 2 * pw < (kw - 1) * dilation[1] + 1:
        return [BASELINE]  # PyTorch's own error
    names = [BASELINE, OTHER_LAYOUT[fastpath.layout_of(x)]]
    if groups == 1 and cin * kh * kw <= cout:  # patches no wider than the output: an image's layer
        names.append("channels_last_output")
    if groups == 1 and stride == (1, 1) and dilation == (1, 1):
        if (ph, pw) == (0, 0):
            names.append("gemm")
        if (kh, kw) == (3, 3) and ph <= 2 and pw <= 2:
            names += ["winograd", "winograd_weight_gradient"]
    return names


def _output_size(conv: nn.Module, x: Tensor) -> tuple[int, int]:
    stride, padding, dilation, _ = _geometry(conv)
    return fastpath.output_size(tuple(x.shape[2:]), tuple(conv.weight.shape[2:]), stride, padding, dilation)


def _flops(conv: nn.Module, x: Tensor) -> float:
    cout, cin, kh, kw = conv.weight.shape
    return 2.0 * x.shape[0] * cout * cin * kh * kw * math.prod(_output_size(conv, x))


# ----------------------------------------------------------------------------- layout hand-offs
#
# Each layer is chosen on its own, and a layer that takes the other memory layout than its input's
# pays for converting it (a copy in the forward, a transpose of the gradient in the backward).
# When a layer converts, that is recorded (``tuning.record_handoff``) for the activation's shape and
# layout; a layer producing such an activation is then timed handing its output on converted, as
# the net runs it, so a candidate that writes the wanted layout itself can win (FCN's conv1_1 on
# the NCHW image, before conv1_2 and the rest of the net in channels_last).

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _activation(n: int, c: int, h: int, w: int, layout: str) -> str:
    """How the hand-off records name an activation: batch, channels, size bucket and layout."""
    return f"train {n}x{c}@{fastpath.size_bucket(h, w)} {layout}"


def _described(t: Tensor) -> str:
    return _activation(*t.shape, fastpath.layout_of(t))


def _handoffs(conv: nn.Module, x: Tensor) -> str:
    """The recorded conversions of ``conv``'s output (in either layout), for its keys: '' if none."""
    (oh, ow), n, cout = _output_size(conv, x), x.shape[0], conv.weight.shape[0]
    return " ".join(f"{layout}->{to}" for layout in LAYOUTS
                    if (to := tuning.handoff(_activation(n, cout, oh, ow, layout))) is not None)


def _handed_on(y: Tensor) -> Tensor:
    """``y`` as the next layer takes it: converted where one was recorded converting such an output."""
    to = tuning.handoff(_described(y)) if y.dim() == 4 else None
    return y if to is None or to == fastpath.layout_of(y) else y.contiguous(memory_format=LAYOUTS[to])


def path(conv: nn.Module, x: Tensor) -> str:
    """The key of ``PATHS`` that ``conv`` takes for ``x``: measured once per layer, input size
    bucket and layout (see the module docstring), then remembered by the module."""
    names = candidates(conv, x)
    if len(names) == 1 or _flops(conv, x) < fastpath.MIN_MEASURED_FLOPS:
        return BASELINE
    n, c, h, w = x.shape
    layout = fastpath.layout_of(x)
    geometry = (f"train conv w{tuple(conv.weight.shape)} bias{conv.bias is not None} {_geometry(conv)}")
    handoffs = _handoffs(conv, x)
    timing_key = (f"{geometry} x{n}x{c}@{fastpath.size_bucket(h, w)} {layout}"
                  f"{'' if x.requires_grad else ' no dx'}{f' handed {handoffs}' if handoffs else ''}"
                  f" r{REVISION}")
    memo = conv.__dict__.setdefault("_trainpath_memo", {})
    choice = memo.get((timing_key, tuple(names)))
    if choice is None:
        stride, padding, dilation, _ = _geometry(conv)
        kh, kw = conv.weight.shape[2:]
        sides = [fastpath._accuracy_side(size, k, s, p, d) for size, k, s, p, d in
                 zip((h, w), (kh, kw), stride, padding, dilation)]
        probe, whole = _accuracy_probe(conv), _stand_in(conv)
        weights = fastpath.fingerprint(probe.weight, probe.bias)
        accuracy_key = (f"{geometry} weights {weights} out{probe.weight.shape[0]} "
                        f"x1x{c}x{sides[0]}x{sides[1]} {layout} r{REVISION}")
        accuracy_input = tuning.probe_input((1, c, *sides), accuracy_key, like=x)
        timing_input = tuning.probe_input(tuple(x.shape), timing_key, like=x)

        output_grads = _OutputGrads()

        def runs_for(name: str) -> Callable[[Tensor], tuple[Tensor, ...]]:
            # tuning.choose calls a run on its accuracy input (here: the probe layer) and on its
            # timing input (the layer itself at its real size, through a stand-in: see _stand_in;
            # without the input gradient where the net needs none, the output handed on as the
            # next layer takes it)
            return lambda y: (_forward_backward(probe, PATHS[name], y, output_grads) if y is accuracy_input
                              else _forward_backward(whole, PATHS[name], y, output_grads, x.requires_grad,
                                                     _handed_on))

        runs = {name: runs_for(name) for name in names}
        choice = tuning.choose(runs, BASELINE, accuracy_key=accuracy_key, accuracy_input=accuracy_input,
                               reference=lambda y64: _reference(probe, y64),
                               timing_key=timing_key, timing_input=timing_input,
                               references={OTHER_LAYOUT[layout]: runs_for(OTHER_LAYOUT[layout])},
                               margin=SPEED_MARGIN)
        memo[(timing_key, tuple(names))] = choice
    return choice


def _stand_in(conv: nn.Module, outputs: int | None = None) -> nn.Module:
    """A module with ``conv``'s geometry and its first ``outputs`` output channels (all by default)
    as new leaf parameters sharing its memory: measuring runs on it, so nothing attached to the
    real parameters (a solver's hooks and ``RowUpdate``) sees those runs."""
    keep = conv.weight.shape[0] if outputs is None else outputs
    stand_in = nn.Module()
    stand_in.weight = nn.Parameter(conv.weight.detach()[:keep])
    stand_in.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach()[:keep])
    stand_in.stride, stand_in.padding = conv.stride, conv.padding
    stand_in.dilation, stand_in.groups = conv.dilation, conv.groups
    return stand_in


def _accuracy_probe(conv: nn.Module) -> nn.Module:
    """The layer cut to its first ``ACCURACY_MAX_OUTPUTS`` output channels (real weights, geometry
    and input channels), for the accuracy check: every output and weight-gradient element is the
    same sum as in the full layer (the input gradient sums over fewer channels), and fc6's 411 MB
    weight would otherwise need gigabytes of float64 gradients in the first step. Grouped layers
    are kept whole."""
    return _stand_in(conv, None if conv.groups != 1 else min(conv.weight.shape[0], ACCURACY_MAX_OUTPUTS))


def convolution(conv: nn.Module, x: Tensor) -> Tensor:
    """``conv`` on ``x`` by its chosen path (``F.conv2d`` when no training path applies); a path
    that changes the layout is recorded for the layers producing ``x`` (see the hand-offs above)."""
    y = PATHS[path(conv, x)](conv, x)
    if fastpath.layout_of(y) != fastpath.layout_of(x):
        tuning.record_handoff(_described(x), fastpath.layout_of(y))
    return y


# ----------------------------------------------------------------------------- measuring

def _output_grad(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """A deterministic N(0, 1) output gradient of ``shape`` (the same for every candidate)."""
    g = torch.Generator().manual_seed(zlib.crc32(repr(tuple(shape)).encode()))
    return torch.randn(tuple(shape), generator=g).to(dtype)


class _OutputGrads:
    """The output gradient a candidate's backward gets: drawn once per shape and layout, so that
    drawing it (as long as a small layer's backward at 700x700) stays out of the timed runs, and
    handed in the memory layout of the candidate's output, as the next layer of a net hands it back
    (oneDNN's backward is slower on a gradient in the other layout)."""

    def __init__(self) -> None:
        self._drawn: dict[tuple, Tensor] = {}

    def __call__(self, y: Tensor) -> Tensor:
        key = (tuple(y.shape), y.dtype, fastpath.layout_of(y))
        if key not in self._drawn:
            self._drawn[key] = _output_grad(tuple(y.shape), y.dtype).contiguous(memory_format=LAYOUTS[key[2]])
        return self._drawn[key]


def _forward_backward(conv: nn.Module, run: Callable, x: Tensor, output_grads: _OutputGrads,
                      input_grad: bool = True, hand_on: Callable[[Tensor], Tensor] | None = None
                      ) -> tuple[Tensor, ...]:
    """A training step's outputs of one candidate: (y, dx, dW[, db]) for the probe's output
    gradient ((y, dW[, db]) without ``input_grad``); ``hand_on`` converts y as the next layer
    would (the gradient then comes back through that conversion)."""
    params = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(input_grad)
        y = run(conv, leaf)
        handed = y if hand_on is None else hand_on(y)
        found = torch.autograd.grad(handed, [leaf, *params] if input_grad else params, output_grads(handed))
    return (y.detach(), *found)


def _reference(conv: nn.Module, x64: Tensor) -> tuple[Tensor, ...]:
    """(y, dx, dW[, db]) in float64, a block of output channels at a time (fc6's weight is 411 MB)."""
    w, b = conv.weight.detach(), conv.bias
    stride, padding, dilation, groups = _geometry(conv)
    block = w.shape[0] if groups != 1 else max(1, REFERENCE_BLOCK_BYTES // max(1, w[0].numel() * 8))
    ys, dws, dbs, dx = [], [], [], None
    probe_y = None
    for i in range(0, w.shape[0], block):
        with torch.enable_grad():
            leaf = x64.detach().requires_grad_(True)
            wb = w[i:i + block].double().requires_grad_(True)
            bb = None if b is None else b.detach()[i:i + block].double().requires_grad_(True)
            y = F.conv2d(leaf, wb, bb, stride, padding, dilation, groups)
            if probe_y is None:  # the output gradient is drawn for the whole output's shape
                full = (y.shape[0], w.shape[0], *y.shape[2:])
                probe_y = _output_grad(full, torch.float64)
            found = torch.autograd.grad(y, [leaf, wb] + ([bb] if bb is not None else []), probe_y[:, i:i + block])
        ys.append(y.detach())
        dx = found[0] if dx is None else dx + found[0]
        dws.append(found[1])
        if bb is not None:
            dbs.append(found[2])
    out = (torch.cat(ys, 1), dx, torch.cat(dws, 0))
    return out + ((torch.cat(dbs, 0),) if dbs else ())

"""One table from Caffe layer type to the PyTorch module that computes it, with Caffe's semantics.

``LAYER_BUILDERS`` at the top is the whole mapping: a Caffe type string -> a builder
``(layer, net) -> nn.Module``. Each module's ``forward`` takes the layer's bottoms in order and
returns its top (or a tuple of tops when ``multi_output`` is set). Weights stay in Caffe's layout as
``nn.Parameter``s named by ``convert.net.blob_names``, so state-dict keys are ``<layer>.<blob>``.

Where PyTorch's operator and Caffe's differ at some sizes (pooling's output-size rule), the module
checks the sizes on each call and takes PyTorch's fast path only when it provably computes the same
numbers; otherwise it pads explicitly so that the arithmetic is Caffe's.

Faster equivalents for CPU fp32 inference (one GEMM, Winograd) are chosen per layer and call in one
place, ``Convolution.path``, whose docstring says when and why; CUDA tensors never take them.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convert import coord_map
from convert.coord_map import WindowGeometry, conv_geometry
from convert.errors import CaffeFormatError
from convert.gemm import conv2d_gemm
from convert.net import CaffeNet, Layer, blob_names
from convert.pooling import build_pooling
from convert.training_layers import TRAINING_LAYER_BUILDERS
from convert.winograd import TransformCache, winograd_conv3x3

Builder = Callable[[Layer, CaffeNet], nn.Module]


def _table() -> dict[str, Builder]:
    # The whole mapping, first in the file; a function only so that it can name the builders below.
    return {
        "Convolution": build_convolution,
        "Deconvolution": build_deconvolution,
        "Pooling": build_pooling,
        "Crop": build_crop,
        "InnerProduct": build_inner_product,
        "ReLU": build_relu,
        "PReLU": build_prelu,
        "LRN": build_lrn,
        "BatchNorm": build_batch_norm,
        "Scale": build_scale,
        "Bias": build_bias,
        "Eltwise": build_eltwise,
        "Concat": build_concat,
        "Slice": build_slice,
        "Split": lambda layer, net: Split(len(layer.tops)),
        "Silence": lambda layer, net: Silence(),
        "Softmax": build_softmax,
        "Flatten": build_flatten,
        "Reshape": build_reshape,
        "Sigmoid": lambda layer, net: Elementwise(torch.sigmoid),
        "TanH": lambda layer, net: Elementwise(torch.tanh),
        "AbsVal": lambda layer, net: Elementwise(torch.abs),
        "BNLL": lambda layer, net: Elementwise(bnll),
        "Power": build_power,
        "Exp": build_exp,
        "Threshold": build_threshold,
        **TRAINING_LAYER_BUILDERS,  # SoftmaxWithLoss, Accuracy, Dropout (convert/training_layers.py)
    }


# ----------------------------------------------------------------------------- weights


def _parameters(module: nn.Module, layer: Layer, shapes: Sequence[tuple[int, ...] | None]) -> None:
    """Register the layer's blobs on ``module`` under their state-dict names, checking their sizes.

    ``shapes`` gives the shape each blob must have (None: any). A blob stored in the legacy 4-D form
    with the right number of elements is reshaped to the real shape, as Caffe itself accepts it.
    """
    if len(layer.blobs) != len(shapes):
        raise CaffeFormatError(f"{layer.type} layer expects {len(shapes)} weight blobs, the model "
                               f"has {len(layer.blobs)}", layer=layer.name)
    names = blob_names(layer.type, len(layer.blobs), len(layer.bottoms))
    for name, blob, shape in zip(names, layer.blobs, shapes):
        array = np.asarray(blob, dtype=np.float32)
        if shape is not None and array.shape != tuple(shape):
            if array.size != math.prod(shape):
                raise CaffeFormatError(f"blob '{name}' has shape {array.shape}, expected {tuple(shape)}",
                                       layer=layer.name)
            array = array.reshape(shape)
        module.register_parameter(name, nn.Parameter(torch.tensor(array)))


def _need_weights(layer: Layer) -> None:
    if not layer.blobs:
        raise CaffeFormatError(f"{layer.type} layer has no weights; give a .caffemodel with them",
                               layer=layer.name)


# ----------------------------------------------------------------------------- convolutions


class _Windowed(nn.Module):
    """What convolution and deconvolution share: geometry, groups, and weight-then-bias blobs."""

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = geometry.stride, geometry.pad, geometry.dilation
        self.groups = groups
        self.register_parameter("weight", None)  # placeholders fix the state-dict order; the
        self.register_parameter("bias", None)  # blobs replace them (bias only with bias_term)


def inference_only(*tensors: Tensor | None) -> bool:
    """True when no gradient can flow through an op on these tensors: grad mode is off, or none of
    them requires grad. The fast paths below have no (or a different) backward, so they need this."""
    return not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors)


# Winograd F(4x4, 3x3) only from these channel counts on (both Cin and Cout): measured faster than
# oneDNN's direct convolution only for FCN's 512 -> 512 layers (benchmarks/README.md).
WINOGRAD_MIN_CHANNELS = 512


class Convolution(_Windowed):
    """Caffe's convolution is ``F.conv2d`` exactly: cross-correlation, floor output size, grouped
    channel blocks, weight (out, in/group, kh, kw). ``path`` picks a faster equivalent per call."""

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__(geometry, groups)
        self.winograd_transform = TransformCache(m=4)  # not in the state dict; see ``path``

    def path(self, x: Tensor) -> str:
        """How this layer computes ``x``: "gemm", "winograd" or "conv2d". The one place where the
        fast paths are chosen; all of them are CPU, fp32 and inference only.

        - "gemm" (``convert.gemm``): stride 1, no padding, dilation 1, one group (FCN's fc6 7x7,
          fc7 and the 1x1 score layers). One oneDNN GEMM over an im2col runs fc6 2.2x faster than
          ``F.conv2d`` and, unlike it, does not reorder the 411 MB weight for channels_last input.
        - "winograd" (``convert.winograd``, F(4x4, 3x3), transformed weight cached until the weight
          changes): 3x3, stride 1, dilation 1, one group, Cin and Cout >= 512 (VGG's conv4_2 ..
          conv5_3): 1.3-1.5x faster than oneDNN there, slower for fewer channels or bigger images
          (transform traffic). Error ~5e-6 of the layer's max, inside the 1e-5 parity budget.
        - "conv2d" everywhere else, and always for CUDA tensors (cuDNN; callers wanting Caffe's
          numbers there disable TF32), other dtypes, or when a gradient may be needed (the oneDNN
          GEMM has no backward; Winograd would give a different gradient path).
        Sizes that ``F.conv2d`` would reject also take "conv2d", so the errors are PyTorch's.
        """
        w = self.weight
        if not (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
                and x.dim() == 4 and w.dim() == 4 and x.shape[1] == w.shape[1] and x.numel() > 0
                and self.groups == 1 and tuple(self.stride) == (1, 1)
                and tuple(self.dilation) == (1, 1) and inference_only(x, w, self.bias)):
            return "conv2d"
        cout, cin, kh, kw = w.shape
        ph, pw = self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            return "conv2d"
        if (ph, pw) == (0, 0):
            return "gemm"
        if ((kh, kw) == (3, 3) and min(cin, cout) >= WINOGRAD_MIN_CHANNELS
                and TransformCache.trackable(w)):
            return "winograd"
        return "conv2d"

    def forward(self, x: Tensor) -> Tensor:
        path = self.path(x)
        if path == "gemm":
            return conv2d_gemm(x, self.weight, self.bias)
        if path == "winograd":
            return winograd_conv3x3(x, self.winograd_transform(self.weight), self.bias, self.padding)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Deconvolution(_Windowed):
    """Caffe's deconvolution is ``F.conv_transpose2d``: weight (in, out/group, kh, kw).

    FCN's upsampling layers hold one bilinear kernel per class on the diagonal of a (K, K, k, k)
    weight and zeros elsewhere. Such a weight is a depthwise transposed convolution: the same numbers
    with K times less work. The state dict keeps Caffe's full weight; the diagonal test runs again
    whenever the weight tensor changes (new storage or an in-place write bumps its version).
    """

    def __init__(self, geometry: WindowGeometry, groups: int) -> None:
        super().__init__(geometry, groups)
        self._diagonal_key: tuple | None = None
        self._diagonal = False

    def is_diagonal(self) -> bool:
        """Whether weight[i, j] is exactly zero for every i != j (with one group, C_in == C_out)."""
        w = self.weight
        try:
            key = (w.data_ptr(), w._version, w.device)
        except RuntimeError:  # inference tensors carry no version counter: check every time
            key = None
        if key is None or key != self._diagonal_key:
            square = self.groups == 1 and w.shape[0] == w.shape[1]
            if square:
                nonzero = (w != 0).flatten(2).any(dim=2)
                off_diagonal = ~torch.eye(w.shape[0], dtype=torch.bool, device=w.device)
                square = not bool((nonzero & off_diagonal).any())
            self._diagonal_key, self._diagonal = key, square
        return self._diagonal

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        # The depthwise form drops the off-diagonal gradients, so training takes the full form.
        if not (torch.is_grad_enabled() and w.requires_grad) and self.is_diagonal():
            depthwise = w.diagonal(dim1=0, dim2=1).permute(2, 0, 1).unsqueeze(1).contiguous()
            return F.conv_transpose2d(x, depthwise, self.bias, self.stride, self.padding, 0,
                                      w.shape[0], self.dilation)
        return F.conv_transpose2d(x, w, self.bias, self.stride, self.padding, 0, self.groups,
                                  self.dilation)


def _conv_common(layer: Layer, cls: type, transposed: bool) -> nn.Module:
    p = layer.param.convolution_param
    if p.axis not in (1, -3):
        raise CaffeFormatError(f"{layer.type} axis {p.axis} is not supported (only 1)", layer=layer.name)
    _need_weights(layer)
    geometry = conv_geometry(layer)
    groups = p.group
    num_output = p.num_output
    if groups < 1 or num_output % groups:
        raise CaffeFormatError(f"num_output {num_output} is not a multiple of group {groups}",
                               layer=layer.name)
    per_kernel = geometry.kernel[0] * geometry.kernel[1]
    if transposed:  # (C_in, num_output/group, kh, kw); C_in is known only from the blob
        outputs = num_output // groups
        weight_shape = (layer.blobs[0].size // max(1, outputs * per_kernel), outputs, *geometry.kernel)
    else:  # (num_output, C_in/group, kh, kw)
        weight_shape = (num_output, layer.blobs[0].size // max(1, num_output * per_kernel), *geometry.kernel)
    module = cls(geometry, groups)
    _parameters(module, layer, [weight_shape, (num_output,)] if p.bias_term else [weight_shape])
    return module


def build_convolution(layer: Layer, net: CaffeNet) -> nn.Module:
    return _conv_common(layer, Convolution, transposed=False)


def build_deconvolution(layer: Layer, net: CaffeNet) -> nn.Module:
    return _conv_common(layer, Deconvolution, transposed=True)


# ----------------------------------------------------------------------------- crop


class Crop(nn.Module):
    """Caffe's Crop: axes from ``axis`` on take the reference's size, starting at ``offsets``
    (top-left, never centred). The result is a view, like a slice."""

    def __init__(self, axis: int, offsets: Sequence[int]) -> None:
        super().__init__()
        self.axis = axis
        self.offsets = tuple(offsets)

    def forward(self, x: Tensor, reference: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        count = x.dim() - axis
        offsets = self.offsets * count if len(self.offsets) == 1 else self.offsets
        if len(offsets) != count:
            raise ValueError(f"Crop has {len(self.offsets)} offsets for {count} cropped axes")
        index: list[slice] = [slice(None)] * axis
        for dim, offset in enumerate(offsets, start=axis):
            size = reference.shape[dim]
            if offset + size > x.shape[dim]:
                raise ValueError(f"Crop of axis {dim}: offset {offset} + size {size} exceeds {x.shape[dim]}")
            index.append(slice(offset, offset + size))
        return x[tuple(index)]


def crop_offsets_for_layer(layer: Layer, net: CaffeNet) -> list[int]:
    """The offsets a Crop layer uses: its own if it has them, otherwise (the CVPR-era layers) the
    ones the coordinate maps give, or Caffe's default 0 where the geometry gives none. Own offsets
    that disagree with the geometry draw a warning but are kept, as Caffe keeps them."""
    param = layer.param.crop_param
    try:
        spatial = coord_map.crop_offset(net, layer)  # (H, W); only for 4-D image blobs
    except (coord_map.CropOffsetError, coord_map.UndefinedMapError):
        spatial = None
    count = 4 - param.axis % 4  # cropped axes of a 4-D blob
    if param.offset:
        given = list(param.offset)
        per_axis = given * count if len(given) == 1 else given
        if spatial is not None and len(per_axis) == count:
            shown = min(count, 2)  # H and W, or W alone for axis 3
            if per_axis[-shown:] != spatial[-shown:]:
                warnings.warn(f"Crop layer '{layer.name}': offset {given} differs from the "
                              f"{spatial[-shown:]} its geometry gives; using {given} as Caffe does",
                              stacklevel=2)
        return given
    if spatial is None:  # e.g. two independent inputs: Caffe's own default, offset 0
        return [0]
    return [0] * max(0, count - 2) + spatial[-min(count, 2):]


def build_crop(layer: Layer, net: CaffeNet) -> nn.Module:
    if len(layer.bottoms) != 2:
        raise CaffeFormatError("Crop needs two bottoms", layer=layer.name)
    return Crop(layer.param.crop_param.axis, crop_offsets_for_layer(layer, net))


# ----------------------------------------------------------------------------- dense layers


class InnerProduct(nn.Module):
    """Flattens the axes from ``axis`` on and applies the (out, in) weight; ``transpose`` stores it
    as (in, out)."""

    def __init__(self, axis: int, transpose: bool) -> None:
        super().__init__()
        self.axis = axis
        self.transpose = transpose
        self.register_parameter("weight", None)  # placeholders fix the state-dict order; the
        self.register_parameter("bias", None)  # blobs replace them (bias only with bias_term)

    def forward(self, x: Tensor) -> Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        x = x.flatten(axis) if x.dim() > axis + 1 else x
        weight = self.weight.t() if self.transpose else self.weight
        return F.linear(x, weight, self.bias)


def build_inner_product(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.inner_product_param
    _need_weights(layer)
    n = p.num_output
    k = layer.blobs[0].size // n if n else 0
    shape = (k, n) if p.transpose else (n, k)
    module = InnerProduct(p.axis, p.transpose)
    _parameters(module, layer, [shape, (n,)] if p.bias_term else [shape])
    return module


# ----------------------------------------------------------------------------- activations


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
        return F.relu(x, self.inplace)


def build_relu(layer: Layer, net: CaffeNet) -> nn.Module:
    return ReLU(layer.param.relu_param.negative_slope)


class PReLU(nn.Module):
    """Learned negative slope per channel (or one shared)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)


def build_prelu(layer: Layer, net: CaffeNet) -> nn.Module:
    _need_weights(layer)
    module = PReLU()
    _parameters(module, layer, [(layer.blobs[0].size,)])
    return module


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


def build_power(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.power_param
    return Power(p.power, p.scale, p.shift)


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


def build_exp(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.exp_param
    if p.base != -1 and p.base <= 0:
        raise CaffeFormatError(f"Exp base must be positive (or -1 for e), got {p.base}", layer=layer.name)
    return Exp(p.base, p.scale, p.shift)


class Threshold(nn.Module):
    """1 where x > threshold, else 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        return (x > self.threshold).to(x.dtype)


def build_threshold(layer: Layer, net: CaffeNet) -> nn.Module:
    return Threshold(layer.param.threshold_param.threshold)


# ----------------------------------------------------------------------------- normalisation


class LRN(nn.Module):
    """Local response normalisation. ACROSS_CHANNELS: x / (k + alpha/n * sum of x^2 over n channels)
    ** beta (``F.local_response_norm``, same centred window for Caffe's odd sizes). WITHIN_CHANNEL:
    x / (1 + alpha * mean of x^2 over an n x n zero-padded window) ** beta; Caffe ignores k there."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, within: bool) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.within = size, alpha, beta, k, within

    def forward(self, x: Tensor) -> Tensor:
        if not self.within:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        pad = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, 1, pad, False, True)
        return x * torch.pow(1 + self.alpha * mean, -self.beta)


def build_lrn(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.lrn_param
    if p.local_size % 2 == 0:
        raise CaffeFormatError("LRN local_size must be odd (as Caffe requires)", layer=layer.name)
    return LRN(p.local_size, p.alpha, p.beta, p.k, within=p.norm_region == 1)


class BatchNorm(nn.Module):
    """Caffe's BatchNorm keeps running sums: mean and variance are divided by the scale_factor blob
    (0 gives 0). No affine part; Caffe pairs it with a Scale layer."""

    def __init__(self, eps: float, use_global_stats: bool) -> None:
        super().__init__()
        self.eps = eps
        self.use_global_stats = use_global_stats

    def forward(self, x: Tensor) -> Tensor:
        if not self.use_global_stats:  # normalise by this batch's statistics (biased variance)
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        factor = self.scale_factor.reshape(())
        scale = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        std = torch.sqrt(self.variance * scale + self.eps)  # Caffe: var + eps, sqrt, then divide
        return (x - (self.mean * scale).view(shape)) / std.view(shape)


def build_batch_norm(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.batch_norm_param
    _need_weights(layer)
    channels = layer.blobs[0].size
    use_global = p.use_global_stats if p.HasField("use_global_stats") else True  # TEST phase
    module = BatchNorm(p.eps, use_global)
    _parameters(module, layer, [(channels,), (channels,), (1,)])
    return module


# ----------------------------------------------------------------------------- broadcasting


def _broadcast(param: Tensor, x: Tensor, axis: int) -> Tensor:
    """View ``param`` so it lines up with ``x`` from ``axis`` on (Caffe's Scale/Bias broadcasting).
    A one-element operand (Caffe's scalar, ``num_axes: 0``) applies everywhere."""
    if param.numel() == 1:
        return param.reshape(())
    axis = axis if axis >= 0 else axis + x.dim()
    trailing = x.dim() - axis - param.dim()
    if trailing < 0 or tuple(x.shape[axis:axis + param.dim()]) != tuple(param.shape):
        raise ValueError(f"cannot apply a {tuple(param.shape)} operand to {tuple(x.shape)} at axis {axis}")
    return param.reshape(param.shape + (1,) * trailing)


class Scale(nn.Module):
    """x * scale (+ bias), scale from the ``weight`` blob or the second bottom, aligned at ``axis``.

    Blobs are named by ``blob_names`` like everywhere else (with a second bottom the lone blob is
    the ``bias``); ``bias_blob`` records which name holds the bias, None without one.
    """

    def __init__(self, axis: int, bias_blob: str | None) -> None:
        super().__init__()
        self.axis = axis
        self.bias_blob = bias_blob

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        if scale is None:
            scale = self.weight
        y = x * _broadcast(scale, x, self.axis)
        if self.bias_blob is None:
            return y
        return y + _broadcast(self._parameters[self.bias_blob], x, self.axis)


class Bias(nn.Module):
    """x + bias, bias from the ``bias`` blob or the second bottom, aligned at ``axis``."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        return x + _broadcast(self.bias if bias is None else bias, x, self.axis)


def build_scale(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.scale_param
    scale_from_bottom = len(layer.bottoms) == 2
    expected = int(not scale_from_bottom) + int(p.bias_term)
    if expected:
        _need_weights(layer)
    names = blob_names(layer.type, expected, len(layer.bottoms))
    module = Scale(p.axis, names[-1] if p.bias_term else None)
    _parameters(module, layer, [None] * expected)
    return module


def build_bias(layer: Layer, net: CaffeNet) -> nn.Module:
    module = Bias(layer.param.bias_param.axis)
    if len(layer.bottoms) == 1:
        _need_weights(layer)
        _parameters(module, layer, [None])
    return module


# ----------------------------------------------------------------------------- joining and splitting


class Eltwise(nn.Module):
    """SUM (with coefficients), PROD or MAX of all bottoms."""

    def __init__(self, operation: int, coeffs: Sequence[float]) -> None:
        super().__init__()
        self.operation = operation
        self.coeffs = tuple(coeffs)

    def forward(self, *xs: Tensor) -> Tensor:
        if self.operation == 1:  # SUM: 0 + c0*x0 + c1*x1 + ..., Caffe's order
            coeffs = self.coeffs or (1.0,) * len(xs)
            out = xs[0] * coeffs[0] if coeffs[0] != 1 else xs[0]
            for x, c in zip(xs[1:], coeffs[1:]):
                out = torch.add(out, x, alpha=c) if c != 1 else out + x
            return out
        out = xs[0]
        combine = torch.mul if self.operation == 0 else torch.maximum
        for x in xs[1:]:
            out = combine(out, x)
        return out


def build_eltwise(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.eltwise_param
    if len(layer.bottoms) < 2:
        raise CaffeFormatError("Eltwise needs at least two bottoms", layer=layer.name)
    if p.coeff and (p.operation != 1 or len(p.coeff) != len(layer.bottoms)):
        raise CaffeFormatError("Eltwise coeff needs SUM and one coefficient per bottom", layer=layer.name)
    return Eltwise(p.operation, p.coeff)


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.axis)


def build_concat(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.concat_param
    return Concat(p.concat_dim if p.HasField("concat_dim") else p.axis)


class Split(nn.Module):
    """The same blob under several names (Caffe shares the data, and so do we)."""

    multi_output = True

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,) * self.count


class Slice(nn.Module):
    """Cut along ``axis`` at ``points`` (or into equal parts when none are given)."""

    multi_output = True

    def __init__(self, axis: int, points: Sequence[int], count: int) -> None:
        super().__init__()
        self.axis, self.points, self.count = axis, tuple(points), count

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        size = x.shape[self.axis]
        if self.points:
            bounds = (0, *self.points, size)
            return tuple(x.narrow(self.axis, a, b - a) for a, b in zip(bounds, bounds[1:]))
        if size % self.count:
            raise ValueError(f"Slice: axis size {size} does not split into {self.count} equal parts")
        return tuple(torch.split(x, size // self.count, dim=self.axis))


def build_slice(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.slice_param
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    if p.slice_point and len(p.slice_point) != len(layer.tops) - 1:
        raise CaffeFormatError("Slice needs one slice_point fewer than tops", layer=layer.name)
    return Slice(axis, p.slice_point, len(layer.tops))


class Silence(nn.Module):
    """Consumes blobs, produces nothing."""

    multi_output = True

    def forward(self, *xs: Tensor) -> tuple[()]:
        return ()


# ----------------------------------------------------------------------------- shapes


class Softmax(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, dim=self.axis)


def build_softmax(layer: Layer, net: CaffeNet) -> nn.Module:
    return Softmax(layer.param.softmax_param.axis)


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int) -> None:
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(x, self.axis, self.end_axis)


def build_flatten(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.flatten_param
    return Flatten(p.axis, p.end_axis)


class Reshape(nn.Module):
    """Replace axes [axis, axis + num_axes) by ``dims``: 0 copies the input's size there, -1 is
    inferred. Negative ``axis`` counts from the end as Caffe does (-1 is after the last axis)."""

    def __init__(self, dims: Sequence[int], axis: int, num_axes: int) -> None:
        super().__init__()
        self.dims, self.axis, self.num_axes = tuple(dims), axis, num_axes

    def output_shape(self, shape: Sequence[int]) -> list[int]:
        start = self.axis if self.axis >= 0 else len(shape) + self.axis + 1
        end = len(shape) if self.num_axes == -1 else start + self.num_axes
        if not 0 <= start <= end <= len(shape):
            raise ValueError(f"Reshape axes [{start}, {end}) do not fit a {len(shape)}-D blob")
        middle = [shape[start + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return [*shape[:start], *middle, *shape[end:]]

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(self.output_shape(x.shape))


def build_reshape(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.reshape_param
    dims = list(p.shape.dim)
    if dims.count(-1) > 1:
        raise CaffeFormatError("Reshape allows at most one -1", layer=layer.name)
    return Reshape(dims, p.axis, p.num_axes)


# ----------------------------------------------------------------------------- entry point

LAYER_BUILDERS: dict[str, Builder] = _table()


def build_layer(layer: Layer, net: CaffeNet) -> nn.Module:
    """The module for one layer, or ``CaffeFormatError`` naming an unsupported type."""
    builder = LAYER_BUILDERS.get(layer.type)
    if builder is None:
        supported = ", ".join(sorted(LAYER_BUILDERS))
        raise CaffeFormatError(f"layer type '{layer.type}' is not supported (supported: {supported})",
                               layer=layer.name)
    return builder(layer, net)

"""Builders: read one Caffe layer's settings and weights and construct its module.

A builder ``(layer, net) -> nn.Module`` checks what Caffe would check when it sets the layer up
(blob counts and shapes, parameter ranges), raising ``CaffeFormatError`` naming the layer, and
hands the numbers to a pure-torch module of ``convert.modules``. ``convert.layers.LAYER_BUILDERS``
says which builder serves which Caffe type.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from convert.coord_map import WindowGeometry, conv_geometry, pool_geometry
from convert.errors import CaffeFormatError
from convert.modules import (ELU, LRN, LSTM, MVN, LSTMUnit, RNN, SPP, ArgMax, BatchNorm, Bias, Clip, Concat,
                             Constant, Convolution, Crop, Deconvolution, Eltwise, Embed, Exp, Filter,
                             Flatten, GlobalPooling, Im2col, InnerProduct, Log, Pooling, Power, PReLU,
                             Reduction, ReLU, Reshape, Scale, Slice, Softmax, Swish, Threshold, Tile)
from convert.net import BLOB_NAMES, CaffeNet, Layer, blob_names


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


def build_inner_product(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.inner_product_param
    _need_weights(layer)
    n = p.num_output
    k = layer.blobs[0].size // n if n else 0
    shape = (k, n) if p.transpose else (n, k)
    module = InnerProduct(p.axis, p.transpose)
    _parameters(module, layer, [shape, (n,)] if p.bias_term else [shape])
    return module


# ----------------------------------------------------------------------------- pooling


def build_pooling(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.pooling_param
    methods = {0: False, 1: True}  # MAX, AVE
    if p.pool not in methods:
        raise CaffeFormatError("STOCHASTIC pooling has no deterministic inference form in Caffe's CPU "
                               "code; it is not supported", layer=layer.name)
    if p.global_pooling:
        if p.pad or p.pad_h or p.pad_w or p.stride != 1 or p.stride_h > 1 or p.stride_w > 1:
            raise CaffeFormatError("global pooling needs pad 0 and stride 1", layer=layer.name)
        return GlobalPooling(methods[p.pool])
    geometry = pool_geometry(layer)
    if min(geometry.kernel) < 1 or min(geometry.stride) < 1:
        raise CaffeFormatError(f"pooling kernel {geometry.kernel} / stride {geometry.stride} invalid",
                               layer=layer.name)
    if any(pad >= kernel for pad, kernel in zip(geometry.pad, geometry.kernel)):
        raise CaffeFormatError("pooling pad must be smaller than the kernel", layer=layer.name)
    return Pooling(methods[p.pool], geometry, ceil=p.round_mode == 0)


# ----------------------------------------------------------------------------- crop


def crop_offsets_for_layer(layer: Layer, net: CaffeNet) -> list[int]:
    """The offsets a Crop layer uses: its own, or BVLC Caffe's default 0. Coordinate-map offsets
    (legacy CROP layers, ``crop_offsets="coord-map"``) are written in by ``convert.crop_offsets``
    before the net is built."""
    return list(layer.param.crop_param.offset) or [0]


def build_crop(layer: Layer, net: CaffeNet) -> nn.Module:
    if len(layer.bottoms) != 2:
        raise CaffeFormatError("Crop needs two bottoms", layer=layer.name)
    return Crop(layer.param.crop_param.axis, crop_offsets_for_layer(layer, net))


# ----------------------------------------------------------------------------- pointwise


def build_relu(layer: Layer, net: CaffeNet) -> nn.Module:
    return ReLU(layer.param.relu_param.negative_slope)


def build_prelu(layer: Layer, net: CaffeNet) -> nn.Module:
    _need_weights(layer)
    module = PReLU()
    _parameters(module, layer, [(layer.blobs[0].size,)])
    return module


def build_power(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.power_param
    return Power(p.power, p.scale, p.shift)


def build_exp(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.exp_param
    if p.base != -1 and p.base <= 0:
        raise CaffeFormatError(f"Exp base must be positive (or -1 for e), got {p.base}", layer=layer.name)
    return Exp(p.base, p.scale, p.shift)


def build_threshold(layer: Layer, net: CaffeNet) -> nn.Module:
    return Threshold(layer.param.threshold_param.threshold)


# ----------------------------------------------------------------------------- normalisation


def build_lrn(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.lrn_param
    if p.local_size % 2 == 0:
        raise CaffeFormatError("LRN local_size must be odd (as Caffe requires)", layer=layer.name)
    return LRN(p.local_size, p.alpha, p.beta, p.k, within=p.norm_region == 1)


def build_batch_norm(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.batch_norm_param
    _need_weights(layer)
    channels = layer.blobs[0].size
    use_global = p.use_global_stats if p.HasField("use_global_stats") else True  # TEST phase
    module = BatchNorm(p.eps, use_global)
    _parameters(module, layer, [(channels,), (channels,), (1,)])
    return module


def build_softmax(layer: Layer, net: CaffeNet) -> nn.Module:
    return Softmax(layer.param.softmax_param.axis)


# ----------------------------------------------------------------------------- arithmetic


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


def build_eltwise(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.eltwise_param
    if len(layer.bottoms) < 2:
        raise CaffeFormatError("Eltwise needs at least two bottoms", layer=layer.name)
    if p.coeff and (p.operation != 1 or len(p.coeff) != len(layer.bottoms)):
        raise CaffeFormatError("Eltwise coeff needs SUM and one coefficient per bottom", layer=layer.name)
    return Eltwise(p.operation, p.coeff)


# ----------------------------------------------------------------------------- shapes


def build_concat(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.concat_param
    return Concat(p.concat_dim if p.HasField("concat_dim") else p.axis)


def build_slice(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.slice_param
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    if p.slice_point and len(p.slice_point) != len(layer.tops) - 1:
        raise CaffeFormatError("Slice needs one slice_point fewer than tops", layer=layer.name)
    return Slice(axis, p.slice_point, len(layer.tops))


def build_flatten(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.flatten_param
    return Flatten(p.axis, p.end_axis)


def build_reshape(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.reshape_param
    dims = list(p.shape.dim)
    if dims.count(-1) > 1:
        raise CaffeFormatError("Reshape allows at most one -1", layer=layer.name)
    return Reshape(dims, p.axis, p.num_axes)


# ----------------------------------------------------------------------------- BVLC's other inference layers


def build_elu(layer: Layer, net: CaffeNet) -> nn.Module:
    return ELU(layer.param.elu_param.alpha)


def build_clip(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.clip_param
    if not (p.HasField("min") and p.HasField("max")):
        raise CaffeFormatError("Clip needs min and max (both required by caffe.proto)", layer=layer.name)
    return Clip(p.min, p.max)


def build_swish(layer: Layer, net: CaffeNet) -> nn.Module:
    return Swish(layer.param.swish_param.beta)


def build_log(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.log_param
    if p.base != -1 and p.base <= 0 or p.base == 1:
        raise CaffeFormatError(f"Log base must be positive and not 1 (or -1 for e), got {p.base}",
                               layer=layer.name)
    return Log(p.base, p.scale, p.shift)


def build_argmax(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.argmax_param
    if p.top_k < 1:
        raise CaffeFormatError("ArgMax top_k must be at least 1", layer=layer.name)
    return ArgMax(p.top_k, p.out_max_val, p.axis if p.HasField("axis") else None)


def build_embed(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.embed_param
    if not p.num_output or not p.input_dim:
        raise CaffeFormatError("Embed needs num_output and input_dim", layer=layer.name)
    _need_weights(layer)
    module = Embed(p.bias_term)
    shapes = [(p.input_dim, p.num_output)] + ([(p.num_output,)] if p.bias_term else [])
    _parameters(module, layer, shapes)
    return module


def build_filter(layer: Layer, net: CaffeNet) -> nn.Module:
    if len(layer.bottoms) < 2 or len(layer.tops) != len(layer.bottoms) - 1:
        raise CaffeFormatError("Filter needs one top per bottom, plus a last selector bottom",
                               layer=layer.name)
    return Filter()


def build_tile(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.tile_param
    if not p.HasField("tiles") or p.tiles < 1:
        raise CaffeFormatError("Tile needs a positive number of tiles", layer=layer.name)
    return Tile(p.axis, p.tiles)


def build_im2col(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.convolution_param
    if p.axis not in (1, -3) or p.force_nd_im2col:
        raise CaffeFormatError("Im2col is supported on 4-D blobs at axis 1 only", layer=layer.name)
    g = conv_geometry(layer)
    return Im2col(g.kernel, g.stride, g.pad, g.dilation)


def build_reduction(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.reduction_param
    return Reduction(p.operation, p.axis, p.coeff)


def build_mvn(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.mvn_param
    return MVN(p.normalize_variance, p.across_channels, p.eps)


def build_spp(layer: Layer, net: CaffeNet) -> nn.Module:
    p = layer.param.spp_param
    if p.pool not in (0, 1):
        raise CaffeFormatError("STOCHASTIC pooling has no deterministic inference form in Caffe's CPU "
                               "code; it is not supported", layer=layer.name)
    if p.pyramid_height < 1:
        raise CaffeFormatError("SPP needs pyramid_height >= 1", layer=layer.name)
    average = p.pool == 1

    def level(kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> nn.Module:
        if any(q >= k for q, k in zip(pad, kernel)):
            raise ValueError(f"SPP: input too small for {p.pyramid_height} levels (pad {pad} >= kernel "
                             f"{kernel}, which Caffe refuses too)")
        return Pooling(average, WindowGeometry(kernel, stride, pad), ceil=True)
    return SPP(p.pyramid_height, level)


def build_parameter(layer: Layer, net: CaffeNet) -> nn.Module:
    _need_weights(layer)
    module = Constant()
    _parameters(module, layer, [tuple(layer.param.parameter_param.shape.dim)])
    return module


def build_dummy_data(layer: Layer, net: CaffeNet) -> nn.Module:
    """DummyData with constant fillers (the only ones kept as layers, see convert.upgrade): its tops
    are fixed tensors of the declared shapes."""
    p = layer.param.dummy_data_param
    count = len(layer.tops)
    if p.shape:
        shapes = [tuple(s.dim) for s in p.shape]
    else:
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        if any(len(values) not in (1, count) for values in legacy):
            raise CaffeFormatError("DummyData needs num, channels, height and width for every top "
                                   "(or one for all)", layer=layer.name)
        shapes = [tuple(v[0] if len(v) == 1 else v[i] for v in legacy) for i in range(count)]
    shapes = shapes * count if len(shapes) == 1 else shapes
    fillers = list(p.data_filler) or [None]
    fillers = fillers * count if len(fillers) == 1 else fillers
    if len(shapes) != count or len(fillers) != count:
        raise CaffeFormatError("DummyData needs one shape and filler per top, or one for all",
                               layer=layer.name)
    # A constant is one value broadcast to the shape: no memory however large the declared shape.
    values = [torch.tensor(float(f.value) if f is not None else 0.0).expand(shape) for shape, f in zip(shapes, fillers)]
    return Constant(values)


def _recurrent(layer: Layer, cls: type, states: int) -> nn.Module:
    """RNN (one state, h) or LSTM (two, h and c): bottoms x, cont, [static], [initial states]."""
    p = layer.param.recurrent_param
    hidden = p.num_output
    if hidden < 1:
        raise CaffeFormatError(f"{layer.type} num_output must be positive", layer=layer.name)
    exposed = states if p.expose_hidden else 0
    static = len(layer.bottoms) - 2 - exposed
    if static not in (0, 1):
        raise CaffeFormatError(f"{layer.type} takes x, cont, an optional static input"
                               + (f" and {exposed} initial states" if exposed else ""), layer=layer.name)
    if len(layer.tops) != 1 + exposed:
        raise CaffeFormatError(f"{layer.type} has {1 + exposed} tops here", layer=layer.name)
    _need_weights(layer)
    expected = len(BLOB_NAMES[layer.type]) + static
    if len(layer.blobs) != expected:
        raise CaffeFormatError(f"{layer.type} expects {expected} weight blobs, the model has "
                               f"{len(layer.blobs)}", layer=layer.name)
    gates = hidden * (4 if cls is LSTM else 1)
    shapes: list[tuple[int, ...] | None] = []
    for name, blob in zip(blob_names(layer.type, expected), layer.blobs):
        rows = hidden if name in ("W_ho", "b_o") else gates
        shapes.append((rows,) if name.startswith("b_") else (rows, blob.size // rows))
    module = cls(hidden, bool(static), bool(p.expose_hidden))
    _parameters(module, layer, shapes)
    return module


def build_lstm(layer: Layer, net: CaffeNet) -> nn.Module:
    return _recurrent(layer, LSTM, 2)


def build_rnn(layer: Layer, net: CaffeNet) -> nn.Module:
    return _recurrent(layer, RNN, 1)


def build_lstm_unit(layer: Layer, net: CaffeNet) -> nn.Module:
    if len(layer.bottoms) != 3 or len(layer.tops) != 2:
        raise CaffeFormatError("LSTMUnit takes c_prev, gates and cont, and gives c and h", layer=layer.name)
    return LSTMUnit()

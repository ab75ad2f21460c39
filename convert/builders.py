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

from convert.coord_map import conv_geometry, pool_geometry
from convert.errors import CaffeFormatError
from convert.modules import (LRN, BatchNorm, Bias, Concat, Convolution, Crop, Deconvolution, Eltwise,
                             Exp, Flatten, GlobalPooling, InnerProduct, Pooling, Power, PReLU, ReLU,
                             Reshape, Scale, Slice, Softmax, Threshold)
from convert.net import CaffeNet, Layer, blob_names


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

"""Check layer parameters before any shape is computed or anything is built from them.

Caffe's ``LayerSetUp`` checks (``CHECK_GT(stride, 0)`` and the like) happen in C++ at net
construction; without them a ``group: 0`` or ``stride: 0`` surfaces later as a ZeroDivisionError in
shape or coordinate arithmetic. Every value used as a divisor, a size or a count is checked here,
naming the file and layer. Upper bounds are Caffe's: its geometry is ``int``.
"""
from __future__ import annotations

import math

from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer

INT_MAX = 2**31 - 1
CONV_TYPES = ("Convolution", "Deconvolution")


def _in_range(values, low: int, what: str, layer: Layer, path: str | None) -> None:
    for value in values:
        if not low <= value <= INT_MAX:
            raise CaffeFormatError(f"{what} {value} is out of range ({low} .. {INT_MAX})", path=path, layer=layer.name)


def _check_window(layer: Layer, path: str | None) -> None:
    """Kernel, stride, pad and dilation of a convolution-shaped window (Convolution, Deconvolution, Im2col)."""
    p = layer.param.convolution_param
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        kernels = [p.kernel_h, p.kernel_w]
    else:
        kernels = list(p.kernel_size)
        if len(kernels) not in (1, 2):
            raise CaffeFormatError(f"kernel_size must give 1 or 2 values for a 2-D convolution, got {kernels}",
                                   path=path, layer=layer.name)
    _in_range(kernels, 1, "kernel size", layer, path)
    _in_range([p.stride_h, p.stride_w] if p.HasField("stride_h") or p.HasField("stride_w") else p.stride,
              1, "stride", layer, path)
    _in_range([p.pad_h, p.pad_w, *p.pad], 0, "pad", layer, path)
    _in_range(p.dilation, 1, "dilation", layer, path)


def _check_convolution(layer: Layer, path: str | None) -> None:
    _check_window(layer, path)
    p = layer.param.convolution_param
    _in_range([p.num_output], 1, "num_output", layer, path)
    _in_range([p.group], 1, "group", layer, path)
    if p.num_output % p.group:
        raise CaffeFormatError(f"num_output {p.num_output} is not divisible by group {p.group}",
                               path=path, layer=layer.name)


def _check_pooling(layer: Layer, path: str | None) -> None:
    p = layer.param.pooling_param
    if p.global_pooling:
        return
    kernels = [p.kernel_size] if p.HasField("kernel_size") else [p.kernel_h, p.kernel_w]
    _in_range(kernels, 1, "pooling kernel size", layer, path)
    _in_range([p.stride] if not p.HasField("stride_h") else [p.stride_h, p.stride_w], 1, "pooling stride",
              layer, path)
    _in_range([p.pad, p.pad_h, p.pad_w], 0, "pooling pad", layer, path)


def _check_lrn(layer: Layer, path: str | None) -> None:
    _in_range([layer.param.lrn_param.local_size], 1, "LRN local_size", layer, path)


def _check_inner_product(layer: Layer, path: str | None) -> None:
    _in_range([layer.param.inner_product_param.num_output], 1, "num_output", layer, path)


def _check_dummy_data(layer: Layer, path: str | None) -> None:
    """Every declared shape: positive dims whose count fits Caffe's int blob count."""
    p = layer.param.dummy_data_param
    shapes = [list(shape.dim) for shape in p.shape] or [list(p.num), list(p.channels), list(p.height), list(p.width)]
    for dims in shapes:
        _in_range(dims, 1, "DummyData dimension", layer, path)
    for shape in p.shape:
        if math.prod(shape.dim) > INT_MAX:
            raise CaffeFormatError(f"DummyData shape {list(shape.dim)} exceeds Caffe's blob size limit",
                                   path=path, layer=layer.name)
    legacy = [max(v, default=1) for v in (p.num, p.channels, p.height, p.width)]
    if not p.shape and math.prod(legacy) > INT_MAX:
        raise CaffeFormatError(f"DummyData shape {legacy} exceeds Caffe's blob size limit", path=path,
                               layer=layer.name)


CHECKS = {
    "DummyData": _check_dummy_data,
    "Convolution": _check_convolution,
    "Deconvolution": _check_convolution,
    "Im2col": _check_window,
    "Pooling": _check_pooling,
    "LRN": _check_lrn,
    "InnerProduct": _check_inner_product,
}


def check_params(layer: Layer, path: str | None = None) -> None:
    """Raise CaffeFormatError if a parameter used as a size, divisor or count is out of range."""
    if not layer.name:
        raise CaffeFormatError(f"a {layer.type or 'typeless'} layer has no name", path=path)
    if not layer.type:
        raise CaffeFormatError("layer has no type", path=path, layer=layer.name)
    check = CHECKS.get(layer.type)
    if check is not None:
        check(layer, path)


def check_unique_weighted_names(net: CaffeNet, path: str | None = None) -> None:
    """A layer with weights must be the only layer of its name: its weights are stored and loaded by
    that name (layers without weights may share one, as the CVPR nets' "crop" layers do)."""
    counts: dict[str, int] = {}
    for layer in net.layers:
        counts[layer.name] = counts.get(layer.name, 0) + 1
    for layer in net.layers:
        if layer.blobs and counts[layer.name] > 1:
            raise CaffeFormatError(f"{counts[layer.name]} layers share this name and one has weights; "
                                   "weights are matched by layer name, so the name must be unique",
                                   path=path, layer=layer.name)

"""Check every layer's blobs against what its parameters say they must be.

Caffe refuses to copy a blob of the wrong shape (``Blob::ShapeEquals``); we do the same before
anything is converted, so a prototxt that does not match the weights fails with the layer's name and
both shapes instead of a broken model or a PyTorch traceback.
"""
from __future__ import annotations

import numpy as np

from convert.errors import CaffeFormatError
from convert.net import Layer
from convert.param_check import check_params

WEIGHTED_LAYERS = {"Convolution", "Deconvolution", "InnerProduct", "Scale", "Bias", "BatchNorm", "PReLU",
                   "Embed", "Parameter", "RNN", "LSTM"}


def kernel_hw(conv) -> tuple[int, int]:
    """(kh, kw) of a ConvolutionParameter in any of its spellings."""
    if conv.HasField("kernel_h") or conv.HasField("kernel_w"):
        return conv.kernel_h, conv.kernel_w
    sizes = list(conv.kernel_size)
    if len(sizes) == 1:
        return sizes[0], sizes[0]
    if len(sizes) == 2:
        return sizes[0], sizes[1]
    raise ValueError(f"kernel_size must give 1 or 2 values for a 2-D convolution, got {sizes}")


def expected_shapes(layer: Layer) -> list[tuple[int | None, ...]] | None:
    """Expected blob shapes (None marks a size only the bottom blob fixes); None: not checked."""
    p = layer.param
    if layer.type in ("Convolution", "Deconvolution"):
        conv = p.convolution_param
        kh, kw = kernel_hw(conv)
        n, g = conv.num_output, conv.group
        if n % g:
            raise ValueError(f"num_output {n} is not divisible by group {g}")
        weight = (n, None, kh, kw) if layer.type == "Convolution" else (None, n // g, kh, kw)
        return [weight, (n,)] if conv.bias_term else [weight]
    if layer.type == "InnerProduct":
        ip = p.inner_product_param
        n = ip.num_output
        weight = (None, n) if ip.transpose else (n, None)
        return [weight, (n,)] if ip.bias_term else [weight]
    if layer.type == "BatchNorm":
        return [(None,), (None,), (1,)]
    if layer.type == "Embed":
        e = p.embed_param
        return [(e.input_dim, e.num_output), (e.num_output,)] if e.bias_term else [(e.input_dim, e.num_output)]
    if layer.type == "Parameter":
        return [tuple(p.parameter_param.shape.dim)]
    return None  # RNN / LSTM: their builder checks against num_output and the static input


def _matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))


def _show(expected: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"


def check_blobs(layer: Layer, path: str | None = None) -> None:
    """Raise CaffeFormatError if the layer's parameters are out of range or its blobs are missing,
    extra, or mis-shaped."""
    check_params(layer, path)
    try:
        expected = expected_shapes(layer)
    except ValueError as e:
        raise CaffeFormatError(str(e), path=path, layer=layer.name) from None
    if not layer.blobs:
        needs_weights = layer.type in WEIGHTED_LAYERS and not (
            layer.type in ("Scale", "Bias") and len(layer.bottoms) > 1 and not _scale_bias(layer))
        if needs_weights:
            raise CaffeFormatError(f"{layer.type} layer has no weights in the file", path=path, layer=layer.name)
        return
    if layer.type not in WEIGHTED_LAYERS:
        raise CaffeFormatError(f"{layer.type} layer should have no blobs but has {len(layer.blobs)}",
                               path=path, layer=layer.name)
    if expected is None:
        return
    if len(layer.blobs) != len(expected):
        raise CaffeFormatError(f"expected {len(expected)} blobs, found {len(layer.blobs)}", path=path,
                               layer=layer.name)
    for i, (blob, want) in enumerate(zip(layer.blobs, expected)):
        if not _matches(tuple(np.shape(blob)), want):
            raise CaffeFormatError(f"blob {i} has shape {tuple(np.shape(blob))}, the layer expects {_show(want)}",
                                   path=path, layer=layer.name)


def _scale_bias(layer: Layer) -> bool:
    return layer.type == "Scale" and layer.param.scale_param.bias_term

"""One table from Caffe layer type to the PyTorch module that computes it, with Caffe's semantics.

``LAYER_BUILDERS`` is the whole mapping: a Caffe type string -> a builder ``(layer, net) ->
nn.Module``. The builders (``convert.builders``) read a layer's settings and weights; the modules
they make (``convert.modules``) are pure torch. Each module's ``forward`` takes the layer's bottoms
in order and returns its top (or a tuple of tops when ``multi_output`` is set). Weights stay in
Caffe's layout as ``nn.Parameter``s named by ``convert.net.blob_names``, so state-dict keys are
``<layer>.<blob>``. Faster CPU equivalents are chosen in one place, ``convert.fastpath``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from convert import builders
from convert.errors import CaffeFormatError
from convert.modules import Elementwise, Silence, Split, bnll
from convert.net import CaffeNet, Layer
from convert.training_layers import TRAINING_LAYER_BUILDERS

Builder = Callable[[Layer, CaffeNet], nn.Module]

LAYER_BUILDERS: dict[str, Builder] = {
    "Convolution": builders.build_convolution,
    "Deconvolution": builders.build_deconvolution,
    "Pooling": builders.build_pooling,
    "Crop": builders.build_crop,
    "InnerProduct": builders.build_inner_product,
    "ReLU": builders.build_relu,
    "PReLU": builders.build_prelu,
    "LRN": builders.build_lrn,
    "BatchNorm": builders.build_batch_norm,
    "Scale": builders.build_scale,
    "Bias": builders.build_bias,
    "Eltwise": builders.build_eltwise,
    "Concat": builders.build_concat,
    "Slice": builders.build_slice,
    "Split": lambda layer, net: Split(len(layer.tops)),
    "Silence": lambda layer, net: Silence(),
    "Softmax": builders.build_softmax,
    "Flatten": builders.build_flatten,
    "Reshape": builders.build_reshape,
    "Sigmoid": lambda layer, net: Elementwise(torch.sigmoid),
    "TanH": lambda layer, net: Elementwise(torch.tanh),
    "AbsVal": lambda layer, net: Elementwise(torch.abs),
    "BNLL": lambda layer, net: Elementwise(bnll),
    "Power": builders.build_power,
    "Exp": builders.build_exp,
    "Threshold": builders.build_threshold,
    **TRAINING_LAYER_BUILDERS,  # SoftmaxWithLoss, Accuracy, Dropout (convert/training_layers.py)
}


def build_layer(layer: Layer, net: CaffeNet) -> nn.Module:
    """The module for one layer, or ``CaffeFormatError`` naming an unsupported type."""
    builder = LAYER_BUILDERS.get(layer.type)
    if builder is None:
        supported = ", ".join(sorted(LAYER_BUILDERS))
        raise CaffeFormatError(f"layer type '{layer.type}' is not supported (supported: {supported})",
                               layer=layer.name)
    return builder(layer, net)

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
from convert.modules import BatchReindex, Elementwise, Silence, Split, bnll
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
    "ELU": builders.build_elu,
    "Clip": builders.build_clip,
    "Swish": builders.build_swish,
    "Log": builders.build_log,
    "ArgMax": builders.build_argmax,
    "BatchReindex": lambda layer, net: BatchReindex(),
    "Embed": builders.build_embed,
    "Filter": builders.build_filter,
    "Tile": builders.build_tile,
    "Im2col": builders.build_im2col,
    "Reduction": builders.build_reduction,
    "MVN": builders.build_mvn,
    "SPP": builders.build_spp,
    "Parameter": builders.build_parameter,
    "DummyData": builders.build_dummy_data,  # constant fillers only; others feed the net (convert.upgrade)
    "RNN": builders.build_rnn,
    "LSTM": builders.build_lstm,
    "LSTMUnit": builders.build_lstm_unit,
    **TRAINING_LAYER_BUILDERS,  # SoftmaxWithLoss, Accuracy, Dropout (convert/training_layers.py)
}


# Layer types of Caffe forks, not of BVLC Caffe (whose files are the contract): where they come from.
FORK_LAYER_TYPES: dict[str, str] = {
    "Interp": "DeepLab / PSPNet", "Normalize": "SSD (weiliu89/caffe)", "PriorBox": "SSD",
    "DetectionOutput": "SSD", "Permute": "SSD", "MultiBoxLoss": "SSD", "AnnotatedData": "SSD",
    "Upsample": "SegNet (alexgkendall/caffe-segnet) and YOLO ports", "BN": "SegNet and other forks",
    "ShuffleChannel": "ShuffleNet forks", "ConvolutionDepthwise": "MobileNet forks",
    "DepthwiseConvolution": "MobileNet forks", "ReLU6": "MobileNet forks", "Axpy": "SENet forks",
    "ROIPooling": "Fast / Faster R-CNN (rbgirshick/caffe-fast-rcnn)", "PSROIPooling": "R-FCN",
    "Proposal": "Faster R-CNN C++ forks", "Resize": "several forks", "Reorg": "YOLO ports",
    "Region": "YOLO ports", "Yolo": "YOLO ports", "HardSigmoid": "several forks",
    "HardSwish": "several forks", "PixelShuffle": "several forks", "Pad": "several forks",
    "BilinearInterpolate": "several forks", "MaxUnpool": "several forks",
}


def unsupported(layer_type: str) -> str:
    """Why a layer type has no builder: it comes from a fork, or it is not a layer we know."""
    if layer_type == "Python":
        return ("a Python layer runs user code (python_param module and layer), which a converted "
                "net cannot carry; it is not supported")
    if layer_type in FORK_LAYER_TYPES:
        return (f"layer type '{layer_type}' comes from a Caffe fork ({FORK_LAYER_TYPES[layer_type]}), "
                "not BVLC Caffe, and is not supported")
    supported = ", ".join(sorted(LAYER_BUILDERS))
    return f"layer type '{layer_type}' is not supported (supported: {supported})"


def build_layer(layer: Layer, net: CaffeNet) -> nn.Module:
    """The module for one layer, or ``CaffeFormatError`` naming an unsupported type."""
    builder = LAYER_BUILDERS.get(layer.type)
    if builder is None:
        raise CaffeFormatError(unsupported(layer.type), layer=layer.name)
    return builder(layer, net)

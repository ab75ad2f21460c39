"""Caffe's layers as plain PyTorch modules: the numbers Caffe computes, nothing about Caffe's files.

Each class here is pure torch (no protobuf schema, no ``CaffeNet``), so ``fcn_ref`` builds its
models from the same modules the generic runtime runs (``convert.layers`` maps Caffe types to
them, ``convert.builders`` reads their settings and weights from a Caffe layer). Weights keep
Caffe's layout and the blob names of ``convert.net.BLOB_NAMES``, so a module's ``state_dict`` holds
exactly its Caffe layer's blobs.

The submodules group the layers by what they compute; everything is re-exported here, the one
place to import them from.
"""
from convert.modules.arithmetic import Bias, Eltwise, Scale
from convert.modules.convolution import Convolution, Deconvolution, InnerProduct
from convert.modules.normalization import LRN, BatchNorm, Softmax
from convert.modules.indexing import ArgMax, BatchReindex, Constant, Embed, Filter, Im2col, Tile
from convert.modules.pointwise import ELU, Clip, Elementwise, Exp, Log, Power, PReLU, ReLU, Swish, Threshold, bnll
from convert.modules.pooling import GlobalPooling, Pooling, caffe_pooled_size
from convert.modules.recurrent import LSTM, RNN, LSTMUnit
from convert.modules.reductions import MVN, SPP, Reduction
from convert.modules.shapes import Concat, Crop, Flatten, Reshape, Silence, Slice, Split

__all__ = [
    "ArgMax", "BatchReindex", "Clip", "Constant", "ELU", "Embed", "Filter", "Im2col", "Log", "LSTM", "LSTMUnit",
    "MVN", "Reduction", "RNN", "SPP", "Swish", "Tile",
    "BatchNorm", "Bias", "Concat", "Convolution", "Crop", "Deconvolution", "Elementwise", "Eltwise",
    "Exp", "Flatten", "GlobalPooling", "InnerProduct", "LRN", "Pooling", "Power", "PReLU",
    "ReLU", "Reshape", "Scale", "Silence", "Slice", "Softmax", "Split", "Threshold", "bnll",
    "caffe_pooled_size",
]

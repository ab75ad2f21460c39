"""Building a net for training as Caffe's Net does: phase rules, data tops as inputs, blobs from
fillers at the shapes the inputs imply, param specs, and copying weights by layer name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from convert.errors import CaffeFormatError
from convert.runtime import CaffeModule
from convert.schema import NetParameter
from convert.train_net import ParamSpec, copy_blobs, initialize, param_specs, phase_net

NET = """
name: "mini"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 1 } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 1 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 group: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 6 } }
layer { name: "scale" type: "Scale" bottom: "pool1" top: "scaled" scale_param { bias_term: true } }
layer { name: "score" type: "Convolution" bottom: "scaled" top: "score" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up" param { lr_mult: 0 }
        convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false weight_filler { type: "bilinear" } } }
layer { name: "silence" type: "Silence" bottom: "fc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "up" bottom: "label" top: "loss" loss_weight: 2
        loss_param { ignore_label: 255 } }
layer { name: "accuracy" type: "Accuracy" bottom: "up" bottom: "label" top: "accuracy" include { phase: TEST } }
"""


def _net(phase="TRAIN"):
    return phase_net(text_format.Parse(NET, NetParameter()), phase)


def test_phase_rules_and_data_layers():
    train, test = _net("TRAIN"), _net("TEST")
    assert [l.param.hdf5_data_param.source for l in train.data_layers] == ["train.txt"]
    assert [l.param.hdf5_data_param.source for l in test.data_layers] == ["test.txt"]
    assert list(train.net.inputs) == ["data", "label"]
    assert "accuracy" not in [l.name for l in train.net.layers]
    assert [l.name for l in test.net.layers][-2:] == ["loss", "accuracy"]


def test_initialize_shapes_and_fillers():
    phase = _net()
    filled = initialize(phase.net, {"data": (1, 2, 11, 13), "label": (1, 1, 12, 14)},
                        torch.Generator().manual_seed(0))
    assert filled == ["conv1", "fc", "scale", "score", "up"]
    shapes = {l.name: [b.shape for b in l.blobs] for l in phase.net.layers if l.blobs}
    assert shapes == {"conv1": [(4, 2, 3, 3), (4,)], "fc": [(6, 4 * 5 * 6), (6,)],
                      "scale": [(4,), (4,)], "score": [(3, 4, 1, 1), (3,)], "up": [(3, 1, 4, 4)]}
    net = phase.net
    assert not net.layer("score").blobs[0].any()  # no filler: Caffe's constant 0
    assert (net.layer("scale").blobs[0] == 1).all() and not net.layer("scale").blobs[1].any()
    assert net.layer("conv1").blobs[0].std() > 0.05
    specs = param_specs(net)
    assert specs["conv1.bias"] == ParamSpec(2.0, 0.0) and specs["fc.weight"] == ParamSpec(1.0, 1.0)
    assert specs["up.weight"] == ParamSpec(0.0, 1.0)
    module = CaffeModule(net).train()
    assert module.loss_weights == {"loss": 2.0}
    out = module(torch.randn(1, 2, 11, 13), torch.zeros(1, 1, 12, 14))
    assert out["loss"].requires_grad


def test_copy_blobs_by_layer_name():
    phase = _net()
    initialize(phase.net, {"data": (1, 2, 11, 13), "label": (1, 1, 12, 14)}, torch.Generator().manual_seed(0))
    before = phase.net.layer("conv1").blobs[0].copy()
    weights = {"score": [np.full((3, 4, 1, 1), 0.5, np.float32), np.ones(3, np.float32)], "other": [np.ones(2)]}
    assert copy_blobs(phase.net, weights) == ["score"]
    assert (phase.net.layer("score").blobs[0] == 0.5).all()
    assert (phase.net.layer("conv1").blobs[0] == before).all()  # absent from the file: kept
    with pytest.raises(CaffeFormatError, match="layer 'score'"):
        copy_blobs(phase.net, {"score": [np.ones((3, 5, 1, 1), np.float32), np.ones(3, np.float32)]})


def test_unknown_bottom_in_phase_is_an_error():
    text = NET.replace('bottom: "pool1" top: "fc"', 'bottom: "nowhere" top: "fc"')
    with pytest.raises(CaffeFormatError, match="'nowhere'"):
        phase_net(text_format.Parse(text, NetParameter()), "TRAIN")

"""fcn_ref.recognize refuses nets that only look like a zoo architecture."""
from __future__ import annotations

import pytest

from fcn_ref.recognize import mismatch, recognize
from convert.reader import read_net
from conftest import FIXTURES


def _net(case: str = "voc-fcn8s"):
    path = FIXTURES / case / "net.caffemodel"
    assert path.exists(), f"fixture {case} is missing"
    return read_net(path)


def test_the_unmodified_net_is_recognized():
    assert recognize(_net())["name"] == "fcn8s"


@pytest.mark.parametrize("change", ["pool stride", "crop offset", "conv pad", "avg pool", "eltwise coeff"])
def test_changed_geometry_is_not_recognized(change):
    net = _net()
    if change == "pool stride":
        net.layer("pool2").param.pooling_param.stride = 1
    elif change == "crop offset":
        net.layer("score_pool3c").param.crop_param.offset[0] = 8
    elif change == "conv pad":
        net.layer("conv1_1").param.convolution_param.pad[0] = 1
    elif change == "avg pool":
        net.layer("pool5").param.pooling_param.pool = 1
    else:
        net.layer("fuse_pool4").param.eltwise_param.coeff.extend([1.0, 2.0])
    assert recognize(net) is None


def test_missing_or_extra_layers_are_named():
    net = _net()
    guess = recognize(net)
    net.layers = [layer for layer in net.layers if layer.name != "score_pool3"]
    assert "score_pool3" in mismatch(net, guess)


def test_wrong_class_count_in_one_layer_is_a_shape_mismatch():
    net = _net()
    guess = recognize(net)
    layer = net.layer("score_pool4")
    layer.blobs = [layer.blobs[0][:5], layer.blobs[1][:5]]
    assert recognize(net) is None
    assert "score_pool4" in mismatch(net, guess)

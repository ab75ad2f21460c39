"""Crop offsets from coordinate maps, checked against the offsets in the reference FCN prototxts.

The nets are written out in full (VGG16 / AlexNet trunks with their FCN heads, no weights): the
offsets depend on every layer's geometry, so a shortened net would prove nothing.
"""
from __future__ import annotations

from fractions import Fraction

import pytest
from google.protobuf import text_format

from convert import coord_map
from convert.coord_map import (CoordMap, compose, compose_all, conv_map, crop_offset,
                               crop_offset_from_maps, deconv_map, inverse)
from convert.net import CaffeNet, Layer
from convert.schema import NetParameter


def net_from_text(text: str, inputs: dict[str, tuple[int, ...]]) -> CaffeNet:
    """A weightless CaffeNet from prototxt layers (what the reader gives for a deploy file)."""
    param = text_format.Parse(text, NetParameter())
    return CaffeNet(param.name, inputs, [Layer(layer) for layer in param.layer])


# ----------------------------------------------------------------------------- prototxt text

def conv(name: str, bottom: str, n: int, k: int, pad: int = 0, stride: int = 1, group: int = 1) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} stride: {stride} '
            f'group: {group} }} }}\n')


def relu(blob: str) -> str:
    return f'layer {{ name: "relu_{blob}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def pool(name: str, bottom: str, k: int, s: int) -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f'pooling_param {{ pool: MAX kernel_size: {k} stride: {s} }} }}\n')


def deconv(name: str, bottom: str, n: int, k: int, s: int) -> str:
    return (f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {n} kernel_size: {k} stride: {s} bias_term: false }} }}\n')


def crop(name: str, bottom: str, reference: str, offset: int | None = None) -> str:
    param = f"crop_param {{ axis: 2 offset: {offset} }}" if offset is not None else ""
    return (f'layer {{ name: "{name}" type: "Crop" bottom: "{bottom}" bottom: "{reference}" '
            f'top: "{name}" {param} }}\n')


def fuse(name: str, a: str, b: str) -> str:
    return f'layer {{ name: "{name}" type: "Eltwise" bottom: "{a}" bottom: "{b}" top: "{name}" }}\n'


def vgg_fcn_trunk(classes: int = 21) -> str:
    text, bottom = "", "data"
    for stage, (width, count) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        for i in range(1, count + 1):
            name = f"conv{stage}_{i}"
            text += conv(name, bottom, width, 3, pad=100 if name == "conv1_1" else 1) + relu(name)
            bottom = name
        text += pool(f"pool{stage}", bottom, 2, 2)
        bottom = f"pool{stage}"
    text += conv("fc6", "pool5", 4096, 7) + relu("fc6")
    text += 'layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" }\n'
    text += conv("fc7", "fc6", 4096, 1) + relu("fc7")
    text += 'layer { name: "drop7" type: "Dropout" bottom: "fc7" top: "fc7" }\n'
    return text + conv("score_fr", "fc7", classes, 1)


def fcn32s(offsets: bool = True) -> str:
    return (vgg_fcn_trunk() + deconv("upscore", "score_fr", 21, 64, 32)
            + crop("score", "upscore", "data", 19 if offsets else None))


def fcn16s(offsets: bool = True) -> str:
    o = (lambda v: v) if offsets else (lambda v: None)
    return (vgg_fcn_trunk() + deconv("upscore2", "score_fr", 21, 4, 2)
            + conv("score_pool4", "pool4", 21, 1) + crop("score_pool4c", "score_pool4", "upscore2", o(5))
            + fuse("fuse_pool4", "upscore2", "score_pool4c") + deconv("upscore16", "fuse_pool4", 21, 32, 16)
            + crop("score", "upscore16", "data", o(27)))


def fcn8s(offsets: bool = True) -> str:
    o = (lambda v: v) if offsets else (lambda v: None)
    return (vgg_fcn_trunk() + deconv("upscore2", "score_fr", 21, 4, 2)
            + conv("score_pool4", "pool4", 21, 1) + crop("score_pool4c", "score_pool4", "upscore2", o(5))
            + fuse("fuse_pool4", "upscore2", "score_pool4c")
            + deconv("upscore_pool4", "fuse_pool4", 21, 4, 2)
            + conv("score_pool3", "pool3", 21, 1) + crop("score_pool3c", "score_pool3", "upscore_pool4", o(9))
            + fuse("fuse_pool3", "upscore_pool4", "score_pool3c")
            + deconv("upscore8", "fuse_pool3", 21, 16, 8) + crop("score", "upscore8", "data", o(31)))


def fcn_alexnet(offsets: bool = True) -> str:
    lrn = 'layer {{ name: "{0}" type: "LRN" bottom: "{1}" top: "{0}" lrn_param {{ local_size: 5 alpha: 0.0001 beta: 0.75 }} }}\n'
    return (conv("conv1", "data", 96, 11, pad=100, stride=4) + relu("conv1") + pool("pool1", "conv1", 3, 2)
            + lrn.format("norm1", "pool1") + conv("conv2", "norm1", 256, 5, pad=2, group=2) + relu("conv2")
            + pool("pool2", "conv2", 3, 2) + lrn.format("norm2", "pool2")
            + conv("conv3", "norm2", 384, 3, pad=1) + relu("conv3")
            + conv("conv4", "conv3", 384, 3, pad=1, group=2) + relu("conv4")
            + conv("conv5", "conv4", 256, 3, pad=1, group=2) + relu("conv5") + pool("pool5", "conv5", 3, 2)
            + conv("fc6", "pool5", 4096, 6) + relu("fc6") + conv("fc7", "fc6", 4096, 1) + relu("fc7")
            + conv("score_fr", "fc7", 21, 1) + deconv("upscore", "score_fr", 21, 63, 32)
            + crop("score", "upscore", "data", 18 if offsets else None))


REFERENCE_NETS = {
    "fcn32s": (fcn32s, {"score": 19}),
    "fcn16s": (fcn16s, {"score_pool4c": 5, "score": 27}),
    "fcn8s": (fcn8s, {"score_pool4c": 5, "score_pool3c": 9, "score": 31}),
    "fcn-alexnet": (fcn_alexnet, {"score": 18}),
}
DATA = {"data": (1, 3, 500, 500)}


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", sorted(REFERENCE_NETS))
def test_reference_offsets(name):
    make, expected = REFERENCE_NETS[name]
    net = net_from_text(make(offsets=True), DATA)
    for layer, offset in expected.items():
        assert crop_offset(net, layer) == [offset, offset]


@pytest.mark.parametrize("name", sorted(REFERENCE_NETS))
def test_offsets_derived_without_any_given(name):
    """CVPR-era Crop layers carry no offset: each one, and every crop after it, is derived."""
    make, expected = REFERENCE_NETS[name]
    net = net_from_text(make(offsets=False), DATA)
    assert coord_map.computed_crop_offsets(net) == {k: [v, v] for k, v in expected.items()}


def test_helpers_reproduce_fcn32s_offset_without_a_net():
    """fcn_ref computes offsets from its own layer list: the chain data -> upscore vs data."""
    chain = [conv_map(3, 1, 100)] + [conv_map(3, 1, 1)] + [conv_map(2, 2)]
    for count in (2, 3, 3, 3):
        chain += [conv_map(3, 1, 1)] * count + [conv_map(2, 2)]
    chain += [conv_map(7), conv_map(1), conv_map(1), deconv_map(64, 32)]
    assert crop_offset_from_maps(compose_all(chain), CoordMap()) == 19


def test_map_arithmetic():
    m = conv_map(3, 2, 1)  # y = x/2 + (1 - 1)/2
    assert (m.scale, m.shift) == (Fraction(1, 2), Fraction(0))
    d = deconv_map(4, 2)  # y = 2x + 1.5
    assert (d.scale, d.shift) == (Fraction(2), Fraction(3, 2))
    assert conv_map(3, 1, 0, dilation=2).shift == -2  # extent 5
    both = compose(conv_map(2, 2), deconv_map(4, 2))
    assert both(Fraction(10)) == deconv_map(4, 2)(conv_map(2, 2)(Fraction(10)))
    assert compose(m, inverse(m)) == CoordMap()


def test_invalid_crops_are_reported():
    with pytest.raises(coord_map.CropOffsetError, match="scale"):
        crop_offset_from_maps(conv_map(2, 2), CoordMap())
    with pytest.raises(coord_map.CropOffsetError, match="fractional"):
        crop_offset_from_maps(CoordMap(Fraction(1), Fraction(1, 2)), CoordMap())
    with pytest.raises(coord_map.CropOffsetError, match="before"):
        crop_offset_from_maps(CoordMap(Fraction(1), Fraction(-3)), CoordMap())


def test_no_common_ancestor_is_an_error():
    text = conv("a", "x", 2, 3) + conv("b", "y", 2, 1) + crop("c", "a", "b")
    net = net_from_text(text, {"x": (1, 1, 9, 9), "y": (1, 1, 7, 7)})
    with pytest.raises(coord_map.CropOffsetError, match="share no ancestor"):
        crop_offset(net, "c")


def test_rectangular_geometry_per_axis():
    text = ('layer { name: "a" type: "Convolution" bottom: "x" top: "a" convolution_param '
            '{ num_output: 1 kernel_h: 1 kernel_w: 5 pad_h: 0 pad_w: 0 } }\n'
            + deconv("b", "a", 1, 1, 1) + crop("c", "x", "b"))
    net = net_from_text(text, {"x": (1, 1, 9, 9)})
    assert crop_offset(net, "c") == [0, 2]

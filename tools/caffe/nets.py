"""Net definitions for the Caffe parity fixtures (runs under tools/caffe/python3 only).

Every zoo net keeps the layer names, layer order and geometry of the matching
fcn.berkeleyvision.org net.py (deploy form: Input layers instead of the Python data layer, no
loss), but channel widths are cut so that a whole fixture is a few hundred kB. Geometry (kernel,
stride, pad, crop offsets) is what the parity tests are about, and it does not depend on width.

A `Case` is pure description: the generator (make_fixtures.py) builds the Caffe net from
`case.net`, fills its weights (`case.init` overrides the defaults per layer), runs real Caffe and
writes the files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from caffe import layers as L, params as P
from caffe import NetSpec
from caffe.proto import caffe_pb2

# VGG16 widths 64,128,256,512,512 divided by 16, fc 4096 by 128 (fc6 holds fc*C5*49 weights
# and would dominate the file size otherwise).
VGG_WIDTHS = (4, 8, 16, 32, 32)
VGG_FC = 32
# AlexNet/CaffeNet widths 96,256,384,384,256 and fc 4096, cut the same way (even numbers: g=2).
ALEX_WIDTHS = (6, 16, 24, 24, 16)
ALEX_FC = 32

# Why some nets have fewer classes than in R: the fixed upsampling weight is (K, K, k, k).
FEW_CLASSES = ("the bilinear deconv weight is K*K*k*k floats, 7 MB for K=21, k=64, almost all "
               "zeros; the class count does not change any geometry")

Init = Callable[[list[tuple[int, ...]], np.random.RandomState], list[np.ndarray]]


@dataclass
class Case:
    """One fixture: a deploy net, how to fill it, and what case.json says about it."""

    name: str
    net: caffe_pb2.NetParameter
    notes: str
    architecture: dict | None = None
    crop_offsets: dict[str, list[int]] = field(default_factory=dict)
    init: dict[str, Init] = field(default_factory=dict)  # layer name -> blobs
    input_scale: dict[str, float] = field(default_factory=dict)  # input -> std (default 1)
    v1: bool = False  # also write v1.prototxt / v1.caffemodel (legacy V1 format)
    hdf5: bool = False  # also write net.caffemodel.h5 (Caffe's own save_hdf5)
    legacy_cvpr: bool = False  # v1 files are the CVPR-era FCN-8s with CROP layers (see make_fixtures)


# ----------------------------------------------------------------------------- weight helpers

def bilinear_kernel(size: int) -> np.ndarray:
    """Bilinear upsampling kernel of side `size`, the same numbers as surgery.upsample_filt."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(ramp, ramp).astype(np.float32)


def bilinear_diagonal(shapes: list[tuple[int, ...]], rng: np.random.RandomState) -> list[np.ndarray]:
    """Deconv weights as surgery.interp leaves them: one bilinear kernel per class, 0 elsewhere."""
    c_in, c_out, kh, kw = shapes[0]
    assert c_in == c_out and kh == kw, shapes
    weight = np.zeros(shapes[0], np.float32)
    weight[range(c_in), range(c_out)] = bilinear_kernel(kh)
    return [weight] + [np.zeros(s, np.float32) for s in shapes[1:]]


def perturbed_bilinear(shapes: list[tuple[int, ...]], rng: np.random.RandomState) -> list[np.ndarray]:
    """A 'learned' deconv (CVPR score2/score4): bilinear diagonal plus noise everywhere, random bias."""
    blobs = bilinear_diagonal(shapes, rng)
    blobs[0] = blobs[0] + rng.normal(0, 0.05, shapes[0]).astype(np.float32)
    if len(blobs) > 1:
        blobs[1] = rng.normal(0, 0.5, shapes[1]).astype(np.float32)
    return blobs


def constant_scale(value: float) -> Init:
    """Scale blob filled with one value (at-once nets: scale_pool4 0.01, scale_pool3 0.0001)."""
    def init(shapes, rng):
        return [np.full(shapes[0], value, np.float32)] + [np.zeros(s, np.float32) for s in shapes[1:]]
    return init


def small_gaussian(std: float) -> Init:
    """Weights N(0, std), biases N(0, 0.5): classifier logits of a few units, so Softmax does not
    saturate into a one-hot vector that would hide errors."""
    def init(shapes, rng):
        return [rng.normal(0, std, shapes[0]).astype(np.float32)] + \
            [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes[1:]]
    return init


def random_init(layer_type: str, shapes: list[tuple[int, ...]], param, rng: np.random.RandomState
                ) -> list[np.ndarray]:
    """Default blobs: He-scaled gaussian weights (activations stay O(input)), random biases."""
    out = []
    if layer_type in ("Convolution", "InnerProduct"):
        fan_in = int(np.prod(shapes[0][1:]))
        if layer_type == "InnerProduct" and param.inner_product_param.transpose:
            fan_in = shapes[0][0]
        out.append(rng.normal(0, np.sqrt(2.0 / fan_in), shapes[0]))
        out += [rng.normal(0, 0.5, s) for s in shapes[1:]]
    elif layer_type == "Deconvolution":
        c_in, c_out_g, kh, kw = shapes[0]
        stride = max(param.convolution_param.stride or [1])
        fan_in = c_in * kh * kw / (stride * stride)  # each output sees about this many inputs
        out.append(rng.normal(0, np.sqrt(1.0 / fan_in), shapes[0]))
        out += [rng.normal(0, 0.5, s) for s in shapes[1:]]
    elif layer_type in ("Scale", "PReLU"):
        out.append(rng.normal(1.0, 0.3, shapes[0]))
        out += [rng.normal(0, 0.5, s) for s in shapes[1:]]
    elif layer_type == "Bias":
        out += [rng.normal(0, 0.5, s) for s in shapes]
    elif layer_type == "BatchNorm":
        factor = 3.7  # the moving-average factor Caffe divides by; != 1 on purpose
        mean = rng.normal(0, 1, shapes[0])
        var = rng.uniform(0.3, 2.0, shapes[1])
        out = [mean * factor, var * factor, np.full(shapes[2], factor)]
    else:
        raise ValueError(f"no default init for {layer_type} blobs")
    return [np.asarray(b, np.float32) for b in out]


# ----------------------------------------------------------------------------- building blocks

CONV_PARAM = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
FROZEN = [dict(lr_mult=0)]


def conv_relu(bottom, nout, ks=3, stride=1, pad=1, group=1, param=CONV_PARAM):
    extra = {} if param is None else dict(param=param)
    if group != 1:
        extra["group"] = group
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad, **extra)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom, ks=2, stride=2):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def score_conv(bottom, nout):
    return L.Convolution(bottom, num_output=nout, kernel_size=1, pad=0, param=CONV_PARAM)


def upsample(bottom, nout, ks, stride):
    return L.Deconvolution(bottom, convolution_param=dict(num_output=nout, kernel_size=ks,
                                                          stride=stride, bias_term=False),
                           param=FROZEN)


def crop(bottom, like, offset):
    return L.Crop(bottom, like, crop_param=dict(axis=2, offset=offset))


def data_input(*dims):
    return L.Input(shape=dict(dim=list(dims)))


def vgg_trunk(n: NetSpec, bottom, suffix: str = "", first: str = "conv1_1",
              widths=VGG_WIDTHS, fc=VGG_FC):
    """VGG16 trunk as in every R net.py: conv1_1 pad 100, pools k2 s2, fc6 k7 / fc7 k1 as convs."""
    s = suffix
    n[first], n["relu1_1" + s] = conv_relu(bottom, widths[0], pad=100)
    prev = n["relu1_1" + s]
    convs = [2, 2, 3, 3, 3]
    for stage, (count, width) in enumerate(zip(convs, widths), start=1):
        for i in range(1, count + 1):
            if stage == 1 and i == 1:
                continue
            conv, relu = conv_relu(prev, width)
            n[f"conv{stage}_{i}{s}"], n[f"relu{stage}_{i}{s}"] = conv, relu
            prev = relu
        n[f"pool{stage}{s}"] = max_pool(prev)
        prev = n[f"pool{stage}{s}"]
    n["fc6" + s], n["relu6" + s] = conv_relu(prev, fc, ks=7, pad=0)
    n["drop6" + s] = L.Dropout(n["relu6" + s], dropout_ratio=0.5, in_place=True)
    n["fc7" + s], n["relu7" + s] = conv_relu(n["drop6" + s], fc, ks=1, pad=0)
    n["drop7" + s] = L.Dropout(n["relu7" + s], dropout_ratio=0.5, in_place=True)
    return n["drop7" + s]


def fcn8s_head(n: NetSpec, top, k: int, suffix: str = "", scale_skips: bool = False):
    """score_fr -> upscore2 (+pool4) -> upscore_pool4 (+pool3) -> upscore8 -> crop, as R's 8s."""
    s = suffix
    n["score_fr" + s] = score_conv(top, k)
    n["upscore2" + s] = upsample(n["score_fr" + s], k, 4, 2)
    pool4, pool3 = n.pool4, n.pool3
    if scale_skips:
        n.scale_pool4 = L.Scale(pool4, filler=dict(type="constant", value=0.01), param=FROZEN)
        pool4 = n.scale_pool4
    n["score_pool4" + s] = score_conv(pool4, k)
    n["score_pool4" + s + "c"] = crop(n["score_pool4" + s], n["upscore2" + s], 5)
    n["fuse_pool4" + s] = L.Eltwise(n["upscore2" + s], n["score_pool4" + s + "c"],
                                    operation=P.Eltwise.SUM)
    n["upscore_pool4" + s] = upsample(n["fuse_pool4" + s], k, 4, 2)
    if scale_skips:
        n.scale_pool3 = L.Scale(pool3, filler=dict(type="constant", value=0.0001), param=FROZEN)
        pool3 = n.scale_pool3
    n["score_pool3" + s] = score_conv(pool3, k)
    n["score_pool3" + s + "c"] = crop(n["score_pool3" + s], n["upscore_pool4" + s], 9)
    n["fuse_pool3" + s] = L.Eltwise(n["upscore_pool4" + s], n["score_pool3" + s + "c"],
                                    operation=P.Eltwise.SUM)
    n["upscore8" + s] = upsample(n["fuse_pool3" + s], k, 16, 8)
    n["score" + s] = crop(n["upscore8" + s], n.data, 31)
    return {f"score_pool4{s}c": [5], f"score_pool3{s}c": [9], f"score{s}": [31]}


def vgg_arch(name: str, k: int, in_channels: int | None = 3, **extra) -> dict:
    """case.json "architecture" for a VGG-trunk FCN, in convert.architectures' vocabulary:
    fcn_ref model name plus the kwargs that rebuild these reduced nets (per-stage widths)."""
    kwargs = dict(num_classes=k)
    if in_channels is not None:  # the two-trunk color-hha model has no single input width
        kwargs["in_channels"] = in_channels
    kwargs.update(widths=list(VGG_WIDTHS), fc_widths=[VGG_FC, VGG_FC], **extra)
    return dict(name=name, kwargs=kwargs)


def named(net: NetSpec, name: str) -> caffe_pb2.NetParameter:
    proto = net.to_proto()
    proto.name = name
    return proto


# ----------------------------------------------------------------------------- zoo nets

def voc_fcn32s(k=5, name="voc-fcn32s", hw=(37, 53)):
    n = NetSpec()
    n.data = data_input(1, 3, *hw)
    top = vgg_trunk(n, n.data)
    n.score_fr = score_conv(top, k)
    n.upscore = upsample(n.score_fr, k, 64, 32)
    n.score = crop(n.upscore, n.data, 19)
    return Case(name, named(n, name), architecture=vgg_arch("fcn32s", k),
                crop_offsets={"score": [19]}, input_scale={"data": 50.0},
                notes="R voc-fcn32s/net.py in deploy form, widths /16 (fc /128), 5 classes instead "
                      "of 21 (" + FEW_CLASSES + "), random weights, bilinear diagonal upscore.")


def voc_fcn16s():
    k, name = 7, "voc-fcn16s"
    n = NetSpec()
    n.data = data_input(1, 3, 37, 53)
    top = vgg_trunk(n, n.data)
    n.score_fr = score_conv(top, k)
    n.upscore2 = upsample(n.score_fr, k, 4, 2)
    n.score_pool4 = score_conv(n.pool4, k)
    n.score_pool4c = crop(n.score_pool4, n.upscore2, 5)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    n.upscore16 = upsample(n.fuse_pool4, k, 32, 16)
    n.score = crop(n.upscore16, n.data, 27)
    return Case(name, named(n, name), architecture=vgg_arch("fcn16s", k),
                crop_offsets={"score_pool4c": [5], "score": [27]}, input_scale={"data": 50.0},
                notes="R voc-fcn16s/net.py in deploy form, widths /16 (fc /128), 7 classes instead "
                      "of 21 (" + FEW_CLASSES + "), random weights, bilinear diagonal deconvs.")


def voc_fcn8s(k=21, name="voc-fcn8s", hw=(37, 53), hdf5=True):
    n = NetSpec()
    n.data = data_input(1, 3, *hw)
    top = vgg_trunk(n, n.data)
    offsets = fcn8s_head(n, top, k)
    return Case(name, named(n, name), architecture=vgg_arch("fcn8s", k),
                crop_offsets=offsets, input_scale={"data": 50.0}, hdf5=hdf5,
                notes=f"R {name}/net.py in deploy form, widths /16 (fc /128), random weights, "
                      "bilinear diagonal deconvs.")


def voc_fcn8s_atonce():
    k, name = 11, "voc-fcn8s-atonce"
    n = NetSpec()
    n.data = data_input(1, 3, 37, 53)
    top = vgg_trunk(n, n.data)
    offsets = fcn8s_head(n, top, k, scale_skips=True)
    return Case(name, named(n, name),
                architecture=vgg_arch("fcn8s-atonce", k),
                crop_offsets=offsets, input_scale={"data": 50.0}, hdf5=True,
                init={"scale_pool4": constant_scale(0.01), "scale_pool3": constant_scale(0.0001)},
                notes="R voc-fcn8s-atonce/net.py in deploy form: Scale scale_pool4 (0.01 per "
                      "channel) and scale_pool3 (0.0001) before score_pool4/3; widths /16 (fc /128), 11 "
                      "classes instead of 21 (" + FEW_CLASSES + ").")


def alexnet_features(n: NetSpec, w, first_pad: int, param) -> None:
    """conv1 .. pool5 of AlexNet/CaffeNet (pool before norm, LRN 5/1e-4/0.75, groups 2) on n.data."""
    n.conv1, n.relu1 = conv_relu(n.data, w[0], ks=11, stride=4, pad=first_pad, param=param)
    n.pool1 = max_pool(n.relu1, 3, 2)
    n.norm1 = L.LRN(n.pool1, local_size=5, alpha=1e-4, beta=0.75)
    n.conv2, n.relu2 = conv_relu(n.norm1, w[1], ks=5, pad=2, group=2, param=param)
    n.pool2 = max_pool(n.relu2, 3, 2)
    n.norm2 = L.LRN(n.pool2, local_size=5, alpha=1e-4, beta=0.75)
    n.conv3, n.relu3 = conv_relu(n.norm2, w[2], ks=3, pad=1, param=param)
    n.conv4, n.relu4 = conv_relu(n.relu3, w[3], ks=3, pad=1, group=2, param=param)
    n.conv5, n.relu5 = conv_relu(n.relu4, w[4], ks=3, pad=1, group=2, param=param)
    n.pool5 = max_pool(n.relu5, 3, 2)


def voc_fcn_alexnet():
    k, name = 5, "voc-fcn-alexnet"
    w, fc = ALEX_WIDTHS, ALEX_FC
    n = NetSpec()
    n.data = data_input(1, 3, 37, 53)
    alexnet_features(n, w, first_pad=100, param=None)
    n.fc6, n.relu6 = conv_relu(n.pool5, fc, ks=6, pad=0, param=None)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7, n.relu7 = conv_relu(n.drop6, fc, ks=1, pad=0, param=None)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score_fr = score_conv(n.drop7, k)
    n.upscore = upsample(n.score_fr, k, 63, 32)
    n.score = crop(n.upscore, n.data, 18)
    arch = dict(name="fcn-alexnet", kwargs=dict(num_classes=k, in_channels=3, widths=list(w),
                                                fc_widths=[fc, fc]))
    return Case(name, named(n, name), architecture=arch,
                crop_offsets={"score": [18]}, input_scale={"data": 50.0}, hdf5=True,
                notes="R voc-fcn-alexnet/net.py in deploy form (LRN, groups, conv1 pad 100, k3 s2 "
                      "pools, fc6 k6, upscore 63/32, crop 18); widths /16, fc /128, 5 classes "
                      "instead of 21 (" + FEW_CLASSES + ").")


def siftflow_fcn8s():
    name = "siftflow-fcn8s"
    n = NetSpec()
    n.data = data_input(1, 3, 27, 37)
    top = vgg_trunk(n, n.data)
    offsets = {}
    # R's layer order: the whole _sem head, then the whole _geo head.
    for s, k in (("_sem", 33), ("_geo", 3)):
        n["score_fr" + s] = score_conv(top, k)
        n["upscore2" + s] = upsample(n["score_fr" + s], k, 4, 2)
        n["score_pool4" + s] = score_conv(n.pool4, k)
        n["score_pool4" + s + "c"] = crop(n["score_pool4" + s], n["upscore2" + s], 5)
        n["fuse_pool4" + s] = L.Eltwise(n["upscore2" + s], n["score_pool4" + s + "c"],
                                        operation=P.Eltwise.SUM)
        n["upscore_pool4" + s] = upsample(n["fuse_pool4" + s], k, 4, 2)
        n["score_pool3" + s] = score_conv(n.pool3, k)
        n["score_pool3" + s + "c"] = crop(n["score_pool3" + s], n["upscore_pool4" + s], 9)
        n["fuse_pool3" + s] = L.Eltwise(n["upscore_pool4" + s], n["score_pool3" + s + "c"],
                                        operation=P.Eltwise.SUM)
        n["upscore8" + s] = upsample(n["fuse_pool3" + s], k, 16, 8)
        n["score" + s] = crop(n["upscore8" + s], n.data, 31)
        offsets.update({f"score_pool4{s}c": [5], f"score_pool3{s}c": [9], f"score{s}": [31]})
    return Case(name, named(n, name),
                architecture=vgg_arch("siftflow-fcn8s", 33, num_geometric=3),
                crop_offsets=offsets, input_scale={"data": 50.0},
                notes="R siftflow-fcn8s/net.py in deploy form: two heads (_sem 33 classes, _geo 3), "
                      "outputs score_sem and score_geo; widths /16 (fc /128).")


def pascalcontext_fcn8s():
    case = voc_fcn8s(k=60, name="pascalcontext-fcn8s", hw=(25, 45), hdf5=False)
    case.notes = ("R pascalcontext-fcn8s/net.py in deploy form (60 classes, same layers as "
                  "voc-fcn8s); widths /16 (fc /128); input 25x45 (fc6 1x2) keeps the 60-class "
                  "blobs small.")
    return case


def nyud_fcn32s_color_hha():
    k, name = 4, "nyud-fcn32s-color-hha"
    n = NetSpec()
    n.color = data_input(1, 3, 41, 47)
    n.hha = data_input(1, 3, 41, 47)
    tops = {}
    for modality in ("color", "hha"):
        top = vgg_trunk(n, n[modality], suffix=modality, first="conv1_1" + modality)
        n["score_fr" + modality] = score_conv(top, k)
        tops[modality] = n["score_fr" + modality]
    n.score_fused = L.Eltwise(tops["color"], tops["hha"], operation=P.Eltwise.SUM, coeff=[0.5, 0.5])
    n.upscore = upsample(n.score_fused, k, 64, 32)
    n.score = crop(n.upscore, n.color, 19)
    return Case(name, named(n, name),
                architecture=vgg_arch("nyud-fcn32s-color-hha", k, in_channels=None),
                crop_offsets={"score": [19]}, input_scale={"color": 50.0, "hha": 50.0},
                notes="R nyud-fcn32s-color-hha/net.py in deploy form: trunks suffixed 'color'/'hha' "
                      "(conv1_1color, ..., score_frhha), score_fused = Eltwise SUM coeff 0.5/0.5, "
                      "crop against color; widths /16 (fc /128), 4 classes instead of 40 "
                      "(" + FEW_CLASSES + ").")


def nyud_fcn32s_color_d():
    k, name = 4, "nyud-fcn32s-color-d"
    n = NetSpec()
    n.color = data_input(1, 3, 41, 47)
    n.depth = data_input(1, 1, 41, 47)
    n.data = L.Concat(n.color, n.depth)
    top = vgg_trunk(n, n.data, first="conv1_1_bgrd")
    n.score_fr = score_conv(top, k)
    n.upscore = upsample(n.score_fr, k, 64, 32)
    n.score = crop(n.upscore, n.data, 19)
    return Case(name, named(n, name),
                architecture=vgg_arch("nyud-fcn32s-color-d", k, in_channels=4),
                crop_offsets={"score": [19]}, input_scale={"color": 50.0, "depth": 0.5},
                notes="R nyud-fcn32s-color-d/net.py in deploy form: inputs color (3) and depth (1) "
                      "joined by Concat 'data' (4 channels) into conv1_1_bgrd; widths /16 (fc /128), "
                      "4 classes instead of 40 (" + FEW_CLASSES + ").")


# ----------------------------------------------------------------------------- classifiers

def vgg16_classifier():
    name = "vgg16-classifier"
    w, fc = tuple(c // 2 for c in VGG_WIDTHS), VGG_FC  # /32: its 197x203 blobs are the big ones
    n = NetSpec()
    n.data = data_input(1, 3, 197, 203)  # ceil pooling: 197x203 -> pool5 7x7, like 224x224
    prev = n.data
    for stage, count in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, count + 1):
            n[f"conv{stage}_{i}"], n[f"relu{stage}_{i}"] = conv_relu(prev, w[stage - 1])
            prev = n[f"relu{stage}_{i}"]
        n[f"pool{stage}"] = max_pool(prev)
        prev = n[f"pool{stage}"]
    n.fc6 = L.InnerProduct(prev, num_output=fc, param=CONV_PARAM)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.InnerProduct(n.drop6, num_output=fc, param=CONV_PARAM)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.fc8 = L.InnerProduct(n.drop7, num_output=1000, param=CONV_PARAM)
    n.prob = L.Softmax(n.fc8)
    return Case(name, named(n, name), architecture=None,
                input_scale={"data": 50.0}, v1=True,
                init={"fc8": small_gaussian(0.01)},
                notes="VGG16 ILSVRC deploy net (fc6/fc7/fc8 InnerProduct + Softmax 'prob'), widths "
                      "/32, fc /128; input 197x203 gives pool5 7x7 with ceil pooling. Also written in "
                      "the legacy V1 format (v1.prototxt/v1.caffemodel, legacy 4-D blob shapes); "
                      "Caffe loads those and its outputs equal reference.h5 exactly.")


def caffenet_classifier():
    name = "caffenet-classifier"
    w, fc = ALEX_WIDTHS, ALEX_FC
    n = NetSpec()
    n.data = data_input(1, 3, 227, 227)
    alexnet_features(n, w, first_pad=0, param=CONV_PARAM)
    n.fc6 = L.InnerProduct(n.pool5, num_output=fc, param=CONV_PARAM)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.InnerProduct(n.drop6, num_output=fc, param=CONV_PARAM)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.fc8 = L.InnerProduct(n.drop7, num_output=1000, param=CONV_PARAM)
    n.prob = L.Softmax(n.fc8)
    return Case(name, named(n, name), architecture=None,
                input_scale={"data": 50.0}, v1=True,
                init={"fc8": small_gaussian(0.01)},
                notes="BVLC CaffeNet deploy net (pool before norm, LRN 5/1e-4/0.75, groups 2, "
                      "InnerProduct fc6-8, Softmax 'prob'), widths /16, fc /128, input 227. Also "
                      "written in the legacy V1 format; Caffe loads it and matches reference.h5.")


# ----------------------------------------------------------------------------- CVPR-era FCN-8s

CVPR_RENAMES = {"score_fr": "score-fr", "crop4": "crop", "fuse4": "fuse", "crop3": "crop",
                "fuse3": "fuse", "crop_out": "crop"}


def cvpr_fcn8s():
    """Modern equivalent of the CVPR-era fcn-8s-pascal deploy net (V1 'layers', type CROP).

    Layer names and tops follow the CVPR gist (as copied by crfasrnn): score-fr writes 'score',
    the three crops are all named 'crop' and both fuses 'fuse'. Branch F's CropLayer computed the
    offsets itself; here they are explicit (5, 9, 31), which is what F derives.
    """
    k, name = 21, "cvpr-fcn8s"
    conv_param = dict(engine=P.Convolution.CAFFE)  # the CVPR files name the engine
    n = NetSpec()
    n.data = data_input(1, 3, 53, 37)

    def cconv(bottom, nout, ks=3, pad=1):
        return L.Convolution(bottom, param=CONV_PARAM,
                             convolution_param=dict(conv_param, num_output=nout, kernel_size=ks, pad=pad))

    w, fc = VGG_WIDTHS, VGG_FC
    prev = n.data
    for stage, count in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, count + 1):
            pad = 100 if (stage, i) == (1, 1) else 1
            n[f"conv{stage}_{i}"] = cconv(prev, w[stage - 1], pad=pad)
            n[f"relu{stage}_{i}"] = L.ReLU(n[f"conv{stage}_{i}"], in_place=True)
            prev = n[f"relu{stage}_{i}"]
        n[f"pool{stage}"] = max_pool(prev)
        prev = n[f"pool{stage}"]
    n.fc6 = cconv(prev, fc, ks=7, pad=0)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = cconv(n.drop6, fc, ks=1, pad=0)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score = L.Convolution(n.drop7, name="score_fr", param=CONV_PARAM,
                            convolution_param=dict(conv_param, num_output=k, kernel_size=1, pad=0))
    n.score2 = L.Deconvolution(n.score, param=CONV_PARAM,
                               convolution_param=dict(num_output=k, kernel_size=4, stride=2))
    n["score-pool4"] = L.Convolution(n.pool4, param=CONV_PARAM,
                                     convolution_param=dict(conv_param, num_output=k, kernel_size=1, pad=0))
    n["score-pool4c"] = L.Crop(n["score-pool4"], n.score2, name="crop4",
                               crop_param=dict(axis=2, offset=5))
    n["score-fused"] = L.Eltwise(n.score2, n["score-pool4c"], name="fuse4", operation=P.Eltwise.SUM)
    n.score4 = L.Deconvolution(n["score-fused"], param=[dict(lr_mult=1, decay_mult=1)],
                               convolution_param=dict(num_output=k, kernel_size=4, stride=2,
                                                      bias_term=False))
    n["score-pool3"] = L.Convolution(n.pool3, param=CONV_PARAM,
                                     convolution_param=dict(conv_param, num_output=k, kernel_size=1, pad=0))
    n["score-pool3c"] = L.Crop(n["score-pool3"], n.score4, name="crop3",
                               crop_param=dict(axis=2, offset=9))
    n["score-final"] = L.Eltwise(n.score4, n["score-pool3c"], name="fuse3", operation=P.Eltwise.SUM)
    n.bigscore = L.Deconvolution(n["score-final"], name="upsample", param=[dict(lr_mult=0)],
                                 convolution_param=dict(num_output=k, kernel_size=16, stride=8,
                                                        bias_term=False))
    n.upscore = L.Crop(n.bigscore, n.data, name="crop_out", crop_param=dict(axis=2, offset=31))
    proto = named(n, name)
    for layer in proto.layer:
        layer.name = CVPR_RENAMES.get(layer.name, layer.name)
    return Case(name, proto, architecture=vgg_arch("cvpr-fcn8s", k, deconv_bias=["score2"]),
                crop_offsets={"score-pool4c": [5], "score-pool3c": [9], "upscore": [31]},
                input_scale={"data": 50.0},
                v1=True, legacy_cvpr=True,
                init={"score2": perturbed_bilinear, "score4": perturbed_bilinear},
                notes="CVPR-era FCN-8s (fcn-8s-pascal): v1.prototxt/v1.caffemodel use V1 'layers' "
                      "with the CVPR names (score-fr -> top score, score2 4/2 deconv with a learned "
                      "bias, score-pool4, crop, fuse, score4 4/2 learned no bias, score-pool3, crop, "
                      "fuse -> score-final, upsample 16/8 fixed no bias -> bigscore, crop -> upscore), "
                      "type CROP = enum 40 (longjon/caffe future only) without parameters. BVLC Caffe "
                      "cannot load the V1 files, so reference.h5 comes from real Caffe running the "
                      "SAME weights through net.prototxt/net.caffemodel, the modern equivalent with "
                      "explicit Crop offsets 5, 9, 31 (axis 2). The three crop layers are all named "
                      "'crop' and both fuses 'fuse' (as in the CVPR files), so crop_offsets is keyed "
                      "by each crop's top blob (score-pool4c, score-pool3c, upscore). score2/score4 are "
                      "bilinear plus noise (learned), upsample is exact bilinear. Widths /16 (fc /128).")


ZOO = [voc_fcn32s, voc_fcn16s, voc_fcn8s, voc_fcn8s_atonce, voc_fcn_alexnet, siftflow_fcn8s,
       pascalcontext_fcn8s, nyud_fcn32s_color_hha, nyud_fcn32s_color_d, vgg16_classifier,
       caffenet_classifier, cvpr_fcn8s]

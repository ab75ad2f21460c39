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
    legacy_cvpr: bool = False  # v1 files are a CVPR-era FCN with CROP layers (see make_fixtures)
    max_blob: int | None = None  # reference.h5 leaves out larger blobs (never inputs or outputs)
    input_fill: dict[str, Init] = field(default_factory=dict)  # input -> values (default: normal * scale)


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


# At-once nets: pool4 and pool3 are scaled by these constants (Scale layers) before scoring.
SKIP_SCALES = {"pool4": 0.01, "pool3": 0.0001}


def bilinear_random_bias(shapes: list[tuple[int, ...]], rng: np.random.RandomState) -> list[np.ndarray]:
    """A fixed deconv that has a bias blob (CVPR 32s 'upsample'): bilinear diagonal and a random
    bias, so that a reader which dropped the bias would show in the outputs."""
    blobs = bilinear_diagonal(shapes, rng)
    return blobs[:1] + [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes[1:]]


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


FINAL_UPSAMPLE = {32: "upscore", 16: "upscore16", 8: "upscore8"}  # R's name of the last deconv
# Offsets coord_map.crop writes for the VGG trunk (conv1_1 pad 100): skip crops, then the final one.
FINAL_CROP = {32: 19, 16: 27, 8: 31}


def fcn_head(n: NetSpec, top, k: int, stride: int = 8, suffix: str = "", scale_skips: bool = False,
             like=None) -> dict[str, list[int]]:
    """score_fr -> [upscore2 (+pool4) -> [upscore_pool4 (+pool3)]] -> final deconv -> crop, as R's
    32s/16s/8s heads (layer order included); returns the crop offsets by crop top."""
    s = suffix
    n["score_fr" + s] = score_conv(top, k)
    prev = n["score_fr" + s]
    offsets = {}
    skips = [("pool4", "upscore2", "fuse_pool4", 5), ("pool3", "upscore_pool4", "fuse_pool3", 9)]
    for pool, up, fuse, offset in skips[:{32: 0, 16: 1, 8: 2}[stride]]:
        n[up + s] = upsample(prev, k, 4, 2)
        bottom = n[pool]
        if scale_skips:
            n["scale_" + pool] = L.Scale(bottom, filler=dict(type="constant", value=SKIP_SCALES[pool]),
                                         param=FROZEN)
            bottom = n["scale_" + pool]
        n[f"score_{pool}{s}"] = score_conv(bottom, k)
        n[f"score_{pool}{s}c"] = crop(n[f"score_{pool}{s}"], n[up + s], offset)
        n[fuse + s] = L.Eltwise(n[up + s], n[f"score_{pool}{s}c"], operation=P.Eltwise.SUM)
        offsets[f"score_{pool}{s}c"] = [offset]
        prev = n[fuse + s]
    n[FINAL_UPSAMPLE[stride] + s] = upsample(prev, k, 2 * stride, stride)
    n["score" + s] = crop(n[FINAL_UPSAMPLE[stride] + s], n.data if like is None else like, FINAL_CROP[stride])
    offsets["score" + s] = [FINAL_CROP[stride]]
    return offsets


def fcn8s_head(n: NetSpec, top, k: int, suffix: str = "", scale_skips: bool = False) -> dict[str, list[int]]:
    """R's 8s head (train_synthetic.py builds its net with it)."""
    return fcn_head(n, top, k, 8, suffix=suffix, scale_skips=scale_skips)


def vgg_arch(name: str, k: int, in_channels: int | None = 3, widths=VGG_WIDTHS, fc=VGG_FC, **extra) -> dict:
    """case.json "architecture" for a VGG-trunk FCN, in fcn_ref.recognize's vocabulary:
    fcn_ref model name plus the kwargs that rebuild these reduced nets (per-stage widths)."""
    kwargs = dict(num_classes=k)
    if in_channels is not None:  # the two-trunk color-hha model has no single input width
        kwargs["in_channels"] = in_channels
    kwargs.update(widths=list(widths), fc_widths=[fc, fc], **extra)
    return dict(name=name, kwargs=kwargs)


def named(net: NetSpec, name: str) -> caffe_pb2.NetParameter:
    proto = net.to_proto()
    proto.name = name
    return proto


# ----------------------------------------------------------------------------- zoo nets

# The reduced cases (the other datasets' 32s/16s nets, the CVPR 32s/16s) repeat graphs that the
# cases above already check blob by blob; they pin down layer names, head wiring, crops and
# recognition. To keep tests/fixtures under 33 MB they are cut further: narrower trunks, 3 classes
# (SIFT Flow _geo 2), and reference.h5 keeps only the blobs of at most REDUCED_MAX_BLOB values and
# the outputs (the wide pad-100 trunk blobs are left out; the outputs still check them end to end).
REDUCED_WIDTHS = (2, 2, 4, 4, 4)
REDUCED_FC = 8
REDUCED_MAX_BLOB = 1024
REDUCED = ("widths (2, 2, 4, 4, 4), fc 8, reference.h5 holds the blobs of at most "
           f"{REDUCED_MAX_BLOB} values (head and outputs; the trunk is covered blob by blob by the "
           "voc cases)")


def vgg_fcn(name: str, stride: int, k: int, hw: tuple[int, int], notes: str, arch: str | None = None,
            widths=VGG_WIDTHS, fc=VGG_FC, scale_skips: bool = False, **case) -> Case:
    """R's one-head VGG FCN-{32,16,8}s net.py in deploy form (voc-, pascalcontext-, nyud-fcn32s-color
    and -hha: the same graph, input blob 'data'); `case` goes to Case (hdf5, init, max_blob)."""
    n = NetSpec()
    n.data = data_input(1, 3, *hw)
    top = vgg_trunk(n, n.data, widths=widths, fc=fc)
    offsets = fcn_head(n, top, k, stride, scale_skips=scale_skips)
    arch = arch or f"fcn{stride}s"
    return Case(name, named(n, name), architecture=vgg_arch(arch, k, widths=widths, fc=fc),
                crop_offsets=offsets, input_scale={"data": 50.0}, notes=notes, **case)


def voc_fcn32s():
    return vgg_fcn("voc-fcn32s", 32, 5, (37, 53),
                   notes="R voc-fcn32s/net.py in deploy form, widths /16 (fc /128), 5 classes instead "
                         "of 21 (" + FEW_CLASSES + "), random weights, bilinear diagonal upscore.")


def voc_fcn16s():
    return vgg_fcn("voc-fcn16s", 16, 7, (37, 53),
                   notes="R voc-fcn16s/net.py in deploy form, widths /16 (fc /128), 7 classes instead "
                         "of 21 (" + FEW_CLASSES + "), random weights, bilinear diagonal deconvs.")


def voc_fcn8s():
    return vgg_fcn("voc-fcn8s", 8, 21, (37, 53), hdf5=True,
                   notes="R voc-fcn8s/net.py in deploy form, widths /16 (fc /128), random weights, "
                         "bilinear diagonal deconvs.")


def voc_fcn8s_atonce():
    return vgg_fcn("voc-fcn8s-atonce", 8, 11, (37, 53), arch="fcn8s-atonce", scale_skips=True, hdf5=True,
                   init={"scale_pool4": constant_scale(SKIP_SCALES["pool4"]),
                         "scale_pool3": constant_scale(SKIP_SCALES["pool3"])},
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


def siftflow_fcn(stride: int = 8, sem: int = 33, geo: int = 3, hw=(27, 37), widths=VGG_WIDTHS, fc=VGG_FC,
                 notes: str | None = None, **case) -> Case:
    """R siftflow-fcn{32,16,8}s/net.py: one trunk, then the whole _sem head, then the whole _geo head."""
    name = f"siftflow-fcn{stride}s"
    n = NetSpec()
    n.data = data_input(1, 3, *hw)
    top = vgg_trunk(n, n.data, widths=widths, fc=fc)
    offsets = {}
    for s, k in (("_sem", sem), ("_geo", geo)):
        offsets.update(fcn_head(n, top, k, stride, suffix=s))
    notes = notes or (f"R {name}/net.py in deploy form: two heads (_sem {sem} classes, _geo {geo}), "
                      "outputs score_sem and score_geo; widths /16 (fc /128).")
    return Case(name, named(n, name),
                architecture=vgg_arch(name, sem, widths=widths, fc=fc, num_geometric=geo),
                crop_offsets=offsets, input_scale={"data": 50.0}, notes=notes, **case)


def siftflow_fcn8s():
    return siftflow_fcn(8)


def siftflow_fcn32s():
    return siftflow_fcn(32, sem=3, geo=2, widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB,
                        notes="R siftflow-fcn32s/net.py in deploy form: score_fr_sem -> upscore_sem "
                              "64/32 -> score_sem (crop 19), then the same _geo head; _sem 3 classes "
                              "instead of 33 and _geo 2 instead of 3 (" + FEW_CLASSES + "); " + REDUCED + ".")


def siftflow_fcn16s():
    return siftflow_fcn(16, sem=3, geo=2, hw=(29, 27), widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB,
                        notes="R siftflow-fcn16s/net.py in deploy form: per head score_fr, upscore2, "
                              "score_pool4 (crop 5), fuse_pool4, upscore16 32/16, score (crop 27), "
                              "suffixed _sem then _geo; _sem 3 classes instead of 33 and _geo 2 instead of 3 (" +
                              FEW_CLASSES +
                              "); " + REDUCED + ".")


def pascalcontext_fcn(stride: int, k: int, hw=(25, 45), **reduced) -> Case:
    name = f"pascalcontext-fcn{stride}s"
    notes = (f"R {name}/net.py in deploy form (60 classes, same layers as voc-fcn{stride}s); widths /16 "
             "(fc /128); input 25x45 (fc6 1x2) keeps the 60-class blobs small.")
    if reduced:
        notes = (f"R {name}/net.py in deploy form (same layers as voc-fcn{stride}s), {k} classes instead "
                 f"of 60 ({FEW_CLASSES}; pascalcontext-fcn8s has all 60); {REDUCED}.")
    return vgg_fcn(name, stride, k, hw, notes=notes, **reduced)


def pascalcontext_fcn8s():
    return pascalcontext_fcn(8, 60)


def pascalcontext_fcn32s():
    return pascalcontext_fcn(32, 3, hw=(27, 33), widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB)


def pascalcontext_fcn16s():
    return pascalcontext_fcn(16, 3, hw=(33, 29), widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB)


def nyud_fcn32s_single(modality: str, hw: tuple[int, int]) -> Case:
    """nyud-fcn32s-color and -hha: voc-fcn32s's graph on one 3-channel input, still called 'data'."""
    name = f"nyud-fcn32s-{modality}"
    what = {"color": "BGR color", "hha": "HHA (disparity, height, angle)"}[modality]
    return vgg_fcn(name, 32, 3, hw, widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB,
                   notes=f"R {name}/net.py in deploy form: the voc-fcn32s graph on {what} in the blob "
                         f"'data' (score_fr, upscore 64/32, score crop 19); 3 classes instead of 40 "
                         f"({FEW_CLASSES}); {REDUCED}.")


def nyud_fcn32s_color():
    return nyud_fcn32s_single("color", (29, 31))


def nyud_fcn32s_hha():
    return nyud_fcn32s_single("hha", (31, 29))


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

def classifier_head(n: NetSpec, bottom, fc: int) -> None:
    """fc6 .. fc8 InnerProducts with in-place ReLU/Dropout and Softmax 'prob', as in the ILSVRC nets."""
    n.fc6 = L.InnerProduct(bottom, num_output=fc, param=CONV_PARAM)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.InnerProduct(n.drop6, num_output=fc, param=CONV_PARAM)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.fc8 = L.InnerProduct(n.drop7, num_output=1000, param=CONV_PARAM)
    n.prob = L.Softmax(n.fc8)


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
    classifier_head(n, prev, fc)
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
    classifier_head(n, n.pool5, fc)
    return Case(name, named(n, name), architecture=None,
                input_scale={"data": 50.0}, v1=True,
                init={"fc8": small_gaussian(0.01)},
                notes="BVLC CaffeNet deploy net (pool before norm, LRN 5/1e-4/0.75, groups 2, "
                      "InnerProduct fc6-8, Softmax 'prob'), widths /16, fc /128, input 227. Also "
                      "written in the legacy V1 format; Caffe loads it and matches reference.h5.")


# ----------------------------------------------------------------------------- CVPR-era FCNs

CVPR_RENAMES = {"score_fr": "score-fr", "crop4": "crop", "fuse4": "fuse", "crop3": "crop",
                "fuse3": "fuse", "crop_out": "crop"}


def cvpr_fcn(stride: int, k: int, notes: str, hw=(53, 37), widths=VGG_WIDTHS, fc=VGG_FC, **case) -> Case:
    """Modern equivalent of a CVPR-era fcn-{32,16,8}s-pascal deploy net (V1 'layers', type CROP).

    Layer names and tops follow the CVPR gists (the 8s as copied by crfasrnn): score-fr writes
    'score', every crop is named 'crop' and every fuse 'fuse'. 8s: score2 (4/2, learned, bias),
    score4 (4/2, learned, no bias), upsample 16/8 fixed without bias. 16s: score2, then upsample
    32/16 fixed without bias. 32s: upsample 64/32 fixed (blobs_lr 0 0) WITH its default bias blob.
    Branch F's CropLayer computed the offsets itself; here they are explicit (19 / 5, 27 / 5, 9,
    31), which is what F derives.
    """
    name = f"cvpr-fcn{stride}s"
    conv_param = dict(engine=P.Convolution.CAFFE)  # the CVPR files name the engine
    n = NetSpec()
    n.data = data_input(1, 3, *hw)

    def cconv(bottom, nout, ks=3, pad=1):
        return L.Convolution(bottom, param=CONV_PARAM,
                             convolution_param=dict(conv_param, num_output=nout, kernel_size=ks, pad=pad))

    prev = n.data
    for stage, count in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, count + 1):
            pad = 100 if (stage, i) == (1, 1) else 1
            n[f"conv{stage}_{i}"] = cconv(prev, widths[stage - 1], pad=pad)
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
    prev, offsets, init = n.score, {}, {}
    if stride <= 16:
        n.score2 = L.Deconvolution(n.score, param=CONV_PARAM,
                                   convolution_param=dict(num_output=k, kernel_size=4, stride=2))
        n["score-pool4"] = L.Convolution(n.pool4, param=CONV_PARAM,
                                         convolution_param=dict(conv_param, num_output=k, kernel_size=1, pad=0))
        n["score-pool4c"] = L.Crop(n["score-pool4"], n.score2, name="crop4",
                                   crop_param=dict(axis=2, offset=5))
        n["score-fused"] = L.Eltwise(n.score2, n["score-pool4c"], name="fuse4", operation=P.Eltwise.SUM)
        prev, offsets["score-pool4c"], init["score2"] = n["score-fused"], [5], perturbed_bilinear
    if stride == 8:
        n.score4 = L.Deconvolution(n["score-fused"], param=[dict(lr_mult=1, decay_mult=1)],
                                   convolution_param=dict(num_output=k, kernel_size=4, stride=2,
                                                          bias_term=False))
        n["score-pool3"] = L.Convolution(n.pool3, param=CONV_PARAM,
                                         convolution_param=dict(conv_param, num_output=k, kernel_size=1, pad=0))
        n["score-pool3c"] = L.Crop(n["score-pool3"], n.score4, name="crop3",
                                   crop_param=dict(axis=2, offset=9))
        n["score-final"] = L.Eltwise(n.score4, n["score-pool3c"], name="fuse3", operation=P.Eltwise.SUM)
        prev, offsets["score-pool3c"], init["score4"] = n["score-final"], [9], perturbed_bilinear
    if stride == 32:  # blobs_lr 0 0 and no bias_term: false, so the fixed deconv has a bias blob
        n.bigscore = L.Deconvolution(prev, name="upsample", param=[dict(lr_mult=0), dict(lr_mult=0)],
                                     convolution_param=dict(num_output=k, kernel_size=64, stride=32))
        init["upsample"] = bilinear_random_bias
    else:
        n.bigscore = L.Deconvolution(prev, name="upsample", param=[dict(lr_mult=0)],
                                     convolution_param=dict(num_output=k, kernel_size=2 * stride,
                                                            stride=stride, bias_term=False))
    n.upscore = L.Crop(n.bigscore, n.data, name="crop_out", crop_param=dict(axis=2, offset=FINAL_CROP[stride]))
    offsets["upscore"] = [FINAL_CROP[stride]]
    proto = named(n, name)
    for layer in proto.layer:
        layer.name = CVPR_RENAMES.get(layer.name, layer.name)
    bias = [layer.name for layer in proto.layer if layer.type == "Deconvolution"
            and layer.convolution_param.bias_term]
    return Case(name, proto, architecture=vgg_arch(name, k, widths=widths, fc=fc, deconv_bias=bias),
                crop_offsets=offsets, input_scale={"data": 50.0}, v1=True, legacy_cvpr=True,
                init=init, notes=notes, **case)


def cvpr_fcn8s():
    return cvpr_fcn(
        8, 21,
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


def cvpr_fcn32s():
    return cvpr_fcn(32, 3, hw=(31, 27), widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB,
                    notes="CVPR-era FCN-32s (fcn-32s-pascal): v1.prototxt/v1.caffemodel use V1 'layers' "
                          "with the CVPR names (score-fr -> top score, upsample 64/32 fixed with "
                          "blobs_lr 0 0 and a bias blob -> bigscore, crop -> upscore), type CROP = enum 40 "
                          "(longjon/caffe future only) without parameters. BVLC Caffe cannot load the V1 "
                          "files, so reference.h5 comes from real Caffe running the SAME weights through "
                          "net.prototxt/net.caffemodel, the modern equivalent with an explicit Crop offset "
                          "19 (axis 2). upsample is exact bilinear with a random bias (so that the bias "
                          "shows in the outputs). 3 classes instead of 21 (" + FEW_CLASSES + "); " +
                          REDUCED + ".")


def cvpr_fcn16s():
    return cvpr_fcn(16, 3, hw=(27, 35), widths=REDUCED_WIDTHS, fc=REDUCED_FC, max_blob=REDUCED_MAX_BLOB,
                    notes="CVPR-era FCN-16s (fcn-16s-pascal): v1.prototxt/v1.caffemodel use V1 'layers' "
                          "with the CVPR names (score-fr -> top score, score2 4/2 deconv with a learned "
                          "bias, score-pool4, crop, fuse -> score-fused, upsample 32/16 fixed no bias -> "
                          "bigscore, crop -> upscore), type CROP = enum 40 without parameters. BVLC Caffe "
                          "cannot load the V1 files, so reference.h5 comes from real Caffe running the SAME "
                          "weights through net.prototxt/net.caffemodel, the modern equivalent with explicit "
                          "Crop offsets 5, 27 (axis 2); both crops are named 'crop', so crop_offsets is "
                          "keyed by each crop's top blob. score2 is bilinear plus noise (learned), upsample "
                          "is exact bilinear. 3 classes instead of 21 (" + FEW_CLASSES + "); " + REDUCED + ".")


ZOO = [voc_fcn32s, voc_fcn16s, voc_fcn8s, voc_fcn8s_atonce, voc_fcn_alexnet, siftflow_fcn8s,
       pascalcontext_fcn8s, nyud_fcn32s_color_hha, nyud_fcn32s_color_d, vgg16_classifier,
       caffenet_classifier, cvpr_fcn8s,
       siftflow_fcn32s, siftflow_fcn16s, pascalcontext_fcn32s, pascalcontext_fcn16s, nyud_fcn32s_color,
       nyud_fcn32s_hha, cvpr_fcn32s, cvpr_fcn16s]

"""Micro nets `layer-<what>`: one layer type or variant each, 1-3 layers, odd input sizes.

Each one pins down a corner of Caffe's semantics that a PyTorch port can get wrong: ceil
pooling and the "last window must start inside the image" clip, AVE divisors near padding,
rectangular/dilated/grouped convs and deconvs, crop axes and offsets, eltwise coefficients,
scale axes, in-place layers, implicit splits, and so on.
"""
from __future__ import annotations

import numpy as np
from caffe import layers as L, params as P
from caffe import NetSpec

from nets import Case, bilinear_diagonal, named


def micro(name: str, inputs: dict[str, tuple[int, ...]], build, notes: str, **case_kw) -> Case:
    """A Case whose net is `build(n)` applied to a NetSpec that already holds the Input layers."""
    n = NetSpec()
    for blob, shape in inputs.items():
        n[blob] = L.Input(shape=dict(dim=list(shape)))
    build(n)
    return Case("layer-" + name, named(n, "layer-" + name), notes=notes, **case_kw)


def pool(**kw):
    return lambda n: n.__setitem__("pool", L.Pooling(n.data, **kw))


MAX, AVE = P.Pooling.MAX, P.Pooling.AVE


def pooling_cases() -> list[Case]:
    c = []
    c.append(micro("pool-max-k3s2p1", {"data": (1, 3, 7, 9)}, pool(pool=MAX, kernel_size=3, stride=2, pad=1),
                   "MAX k3 s2 pad 1 on 7x9: ceil gives 4x5, no clip."))
    c.append(micro("pool-max-k3s3p2", {"data": (1, 2, 8, 6)}, pool(pool=MAX, kernel_size=3, stride=3, pad=2),
                   "MAX k3 s3 pad 2 on 8x6: H gives 4 (ceil), W gives ceil(7/3)+1=4 then the clip rule "
                   "((4-1)*3 >= 6+2) drops it to 3."))
    c.append(micro("pool-max-k2s2p1", {"data": (1, 3, 7, 8)}, pool(pool=MAX, kernel_size=2, stride=2, pad=1),
                   "MAX k2 s2 pad 1 on 7x8: H: ceil(7/2)+1=5 clipped to 4 ((5-1)*2 >= 7+1); W: 5, no clip."))
    c.append(micro("pool-max-k2s2", {"data": (2, 3, 10, 11)}, pool(pool=MAX, kernel_size=2, stride=2),
                   "MAX k2 s2 pad 0 on 10x11 (batch 2): ceil makes W 6 with a last window of width 1."))
    c.append(micro("pool-max-k3s2", {"data": (1, 2, 12, 13)}, pool(pool=MAX, kernel_size=3, stride=2),
                   "MAX k3 s2 pad 0 on 12x13 (AlexNet pools): H ceil(9/2)+1=6, W 6."))
    c.append(micro("pool-max-rect", {"data": (1, 2, 9, 10)},
                   pool(pool=MAX, kernel_h=3, kernel_w=2, stride_h=2, stride_w=1, pad_h=1, pad_w=0),
                   "MAX kernel_h 3 kernel_w 2, stride_h 2 stride_w 1, pad_h 1 pad_w 0 on 9x10."))
    c.append(micro("pool-ave-k3s2p1", {"data": (1, 3, 7, 9)}, pool(pool=AVE, kernel_size=3, stride=2, pad=1),
                   "AVE k3 s2 pad 1: the divisor counts padded cells inside H+pad (Caffe's rule)."))
    c.append(micro("pool-ave-k3s3p2", {"data": (1, 2, 8, 6)}, pool(pool=AVE, kernel_size=3, stride=3, pad=2),
                   "AVE k3 s3 pad 2 on 8x6: W clipped to 3; divisor = window clipped to H+pad."))
    c.append(micro("pool-ave-k2s2p1", {"data": (1, 3, 7, 8)}, pool(pool=AVE, kernel_size=2, stride=2, pad=1),
                   "AVE k2 s2 pad 1 on 7x8: H clipped to 4, W 5 with a last window half in the pad."))
    c.append(micro("pool-ave-k2s2", {"data": (1, 3, 10, 11)}, pool(pool=AVE, kernel_size=2, stride=2),
                   "AVE k2 s2 pad 0 on 10x11: the last W window has 1 cell and divisor 1."))
    c.append(micro("pool-ave-k3s2", {"data": (1, 2, 12, 13)}, pool(pool=AVE, kernel_size=3, stride=2),
                   "AVE k3 s2 pad 0 on 12x13: ceil windows past the edge average fewer cells."))
    c.append(micro("pool-global-max", {"data": (1, 4, 5, 7)}, pool(pool=MAX, global_pooling=True),
                   "MAX global_pooling -> 1x1."))
    c.append(micro("pool-global-ave", {"data": (1, 4, 5, 7)}, pool(pool=AVE, global_pooling=True),
                   "AVE global_pooling -> 1x1."))
    return c


def conv(top="conv", bottom="data", **kw):
    return lambda n: n.__setitem__(top, L.Convolution(n[bottom], **kw))


def deconv(**kw):
    return lambda n: n.__setitem__("deconv", L.Deconvolution(n.data, convolution_param=kw))


def conv_cases() -> list[Case]:
    c = []
    c.append(micro("conv-rect", {"data": (1, 3, 11, 17)},
                   conv(num_output=5, kernel_h=3, kernel_w=5, pad_h=1, pad_w=2, stride_h=2, stride_w=3),
                   "Convolution kernel_h 3 kernel_w 5, pad_h 1 pad_w 2, stride_h 2 stride_w 3."))
    c.append(micro("conv-dilation", {"data": (1, 3, 13, 10)},
                   conv(num_output=4, kernel_size=3, dilation=2, pad=2),
                   "Convolution k3 dilation 2 pad 2."))
    c.append(micro("conv-group", {"data": (2, 6, 9, 7)},
                   conv(num_output=4, kernel_size=3, group=2, pad=1, stride=2),
                   "Convolution group 2 (6 -> 4), k3 s2 p1, batch 2."))
    c.append(micro("conv-nobias", {"data": (1, 3, 8, 9)},
                   conv(num_output=5, kernel_size=3, bias_term=False),
                   "Convolution bias_term false (one blob), pad 0."))
    c.append(micro("conv-1x1", {"data": (1, 7, 5, 6)}, conv(num_output=3, kernel_size=1),
                   "Convolution k1 (the FCN score layers)."))
    c.append(micro("deconv-stride", {"data": (1, 3, 5, 6)},
                   deconv(num_output=4, kernel_size=4, stride=2),
                   "Deconvolution k4 s2 with a bias, random weights (3 -> 4 channels)."))
    c.append(micro("deconv-pad", {"data": (1, 3, 5, 6)},
                   deconv(num_output=2, kernel_size=3, stride=2, pad=1),
                   "Deconvolution k3 s2 pad 1 with a bias: out = 2(H-1)+3-2."))
    c.append(micro("deconv-group", {"data": (1, 4, 5, 4)},
                   deconv(num_output=6, kernel_size=3, stride=2, group=2),
                   "Deconvolution group 2 (4 -> 6): weight (4, 3, 3, 3)."))
    c.append(micro("deconv-dilation", {"data": (1, 2, 5, 6)},
                   deconv(num_output=3, kernel_size=3, stride=1, dilation=2, pad=1),
                   "Deconvolution dilation 2, pad 1, stride 1."))
    c.append(micro("deconv-rect", {"data": (1, 2, 4, 5)},
                   deconv(num_output=3, kernel_h=3, kernel_w=4, stride_h=2, stride_w=3, pad_h=1, pad_w=0),
                   "Deconvolution kernel_h 3 kernel_w 4, stride_h 2 stride_w 3, pad_h 1 pad_w 0."))
    c.append(micro("deconv-bilinear", {"data": (1, 5, 3, 4)},
                   deconv(num_output=5, kernel_size=16, stride=8, bias_term=False),
                   "FCN-style fixed upsampling: Deconvolution 16/8, bias_term false, bilinear kernel "
                   "on the channel diagonal (surgery.interp), zero elsewhere.",
                   init={"deconv": bilinear_diagonal}))
    return c


def crop(offset=None, axis=None):
    params = {}
    if offset is not None:
        params["offset"] = offset
    if axis is not None:
        params["axis"] = axis
    return lambda n: n.__setitem__("crop", L.Crop(n.data, n.like, crop_param=params) if params
                                   else L.Crop(n.data, n.like))


def crop_cases() -> list[Case]:
    big = (2, 8, 9, 11)
    c = []
    c.append(micro("crop-axis1", {"data": big, "like": (2, 5, 6, 7)}, crop(offset=2, axis=1),
                   "Crop axis 1, one offset 2: applies to C, H and W.", crop_offsets={"crop": [2]}))
    c.append(micro("crop-axis1-per-axis", {"data": big, "like": (2, 5, 6, 7)}, crop(offset=[1, 3, 4], axis=1),
                   "Crop axis 1, offsets 1, 3, 4 (one per cropped axis).",
                   crop_offsets={"crop": [1, 3, 4]}))
    c.append(micro("crop-axis2", {"data": big, "like": (1, 1, 4, 5)}, crop(offset=3, axis=2),
                   "Crop axis 2, one offset 3 (the FCN case); N and C come from bottom 0.",
                   crop_offsets={"crop": [3]}))
    c.append(micro("crop-axis2-per-axis", {"data": big, "like": (1, 1, 4, 5)}, crop(offset=[1, 5], axis=2),
                   "Crop axis 2, offsets 1 (H) and 5 (W).", crop_offsets={"crop": [1, 5]}))
    c.append(micro("crop-axis3", {"data": big, "like": (1, 1, 1, 6)}, crop(offset=4, axis=3),
                   "Crop axis 3, offset 4: only W is cropped.", crop_offsets={"crop": [4]}))
    c.append(micro("crop-default", {"data": big, "like": (1, 1, 4, 5)}, crop(),
                   "Crop with no crop_param: axis 2, offset 0 (crop_offsets lists none: the "
                   "prototxt writes none).", crop_offsets={"crop": []}))
    return c


def eltwise_cases() -> list[Case]:
    ins = {"a": (1, 3, 5, 7), "b": (1, 3, 5, 7), "c": (1, 3, 5, 7)}
    c = []
    c.append(micro("eltwise-sum", ins, lambda n: n.__setitem__("sum", L.Eltwise(n.a, n.b, n.c)),
                   "Eltwise with no eltwise_param: SUM."))
    c.append(micro("eltwise-sum-coeff", ins, lambda n: n.__setitem__(
        "sum", L.Eltwise(n.a, n.b, n.c, operation=P.Eltwise.SUM, coeff=[0.5, -2.0, 1.5])),
        "Eltwise SUM coeff 0.5, -2, 1.5."))
    c.append(micro("eltwise-prod", {"a": ins["a"], "b": ins["b"]}, lambda n: n.__setitem__(
        "prod", L.Eltwise(n.a, n.b, operation=P.Eltwise.PROD)), "Eltwise PROD of two bottoms."))
    c.append(micro("eltwise-max", ins, lambda n: n.__setitem__(
        "max", L.Eltwise(n.a, n.b, n.c, operation=P.Eltwise.MAX)), "Eltwise MAX of three bottoms."))
    return c


def scale_cases() -> list[Case]:
    c = []
    c.append(micro("scale-channel-bias", {"data": (2, 4, 5, 6)},
                   lambda n: n.__setitem__("scale", L.Scale(n.data, bias_term=True)),
                   "Scale axis 1 num_axes 1 with bias_term: blobs (C,) and (C,)."))
    c.append(micro("scale-axes", {"data": (1, 4, 5, 6)},
                   lambda n: n.__setitem__("scale", L.Scale(n.data, axis=1, num_axes=2)),
                   "Scale axis 1 num_axes 2: blob (C, H), no bias."))
    c.append(micro("scale-axis2", {"data": (1, 4, 5, 6)},
                   lambda n: n.__setitem__("scale", L.Scale(n.data, axis=2, num_axes=1, bias_term=True)),
                   "Scale axis 2 num_axes 1 with bias: blobs (H,) and (H,)."))
    c.append(micro("scale-scalar", {"data": (1, 4, 5, 6)},
                   lambda n: n.__setitem__("scale", L.Scale(n.data, num_axes=0)),
                   "Scale num_axes 0: one scalar blob of shape ()."))
    c.append(micro("scale-bottom", {"data": (2, 4, 5, 6), "factor": (2, 4)},
                   lambda n: n.__setitem__("scale", L.Scale(n.data, n.factor, axis=0)),
                   "Scale by a second bottom (2, 4) at axis 0: no blobs."))
    c.append(micro("bias", {"data": (1, 4, 5, 6)},
                   lambda n: n.__setitem__("bias", L.Bias(n.data)), "Bias layer, blob (C,)."))
    return c


def misc_cases() -> list[Case]:
    c = []
    c.append(micro("lrn-across", {"data": (1, 7, 5, 6)},
                   lambda n: n.__setitem__("norm", L.LRN(n.data, local_size=5, alpha=1e-4, beta=0.75)),
                   "LRN ACROSS_CHANNELS 5 / 1e-4 / 0.75 (AlexNet); inputs x30 so it bites.",
                   input_scale={"data": 30.0}))
    c.append(micro("lrn-across-k", {"data": (1, 6, 4, 5)},
                   lambda n: n.__setitem__("norm", L.LRN(n.data, local_size=3, alpha=0.5, beta=0.6, k=2.0)),
                   "LRN ACROSS_CHANNELS local_size 3, alpha 0.5, beta 0.6, k 2."))
    c.append(micro("lrn-within", {"data": (1, 3, 6, 7)},
                   lambda n: n.__setitem__("norm", L.LRN(n.data, local_size=3, alpha=0.3, beta=0.75,
                                                         norm_region=P.LRN.WITHIN_CHANNEL)),
                   "LRN WITHIN_CHANNEL local_size 3 (pads spatially, averages over 9 cells)."))
    c.append(micro("ip", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("ip", L.InnerProduct(n.data, num_output=7)),
                   "InnerProduct axis 1 on a 4-D bottom: flattens C*H*W = 60, weight (7, 60)."))
    c.append(micro("ip-axis2", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("ip", L.InnerProduct(n.data, num_output=6, axis=2)),
                   "InnerProduct axis 2: top (2, 3, 6), weight (6, 20)."))
    c.append(micro("ip-transpose", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("ip", L.InnerProduct(n.data, num_output=6, transpose=True)),
                   "InnerProduct transpose true: weight stored (60, 6)."))
    c.append(micro("ip-nobias", {"data": (3, 10)},
                   lambda n: n.__setitem__("ip", L.InnerProduct(n.data, num_output=4, bias_term=False)),
                   "InnerProduct on a 2-D bottom, bias_term false."))
    c.append(micro("softmax", {"data": (2, 5, 3, 4)},
                   lambda n: n.__setitem__("prob", L.Softmax(n.data)), "Softmax axis 1 (default).",
                   input_scale={"data": 3.0}))
    c.append(micro("softmax-axis2", {"data": (2, 5, 3, 4)},
                   lambda n: n.__setitem__("prob", L.Softmax(n.data, axis=2)), "Softmax axis 2.",
                   input_scale={"data": 3.0}))
    c.append(micro("concat", {"a": (1, 2, 5, 6), "b": (1, 3, 5, 6), "c": (1, 1, 5, 6)},
                   lambda n: n.__setitem__("cat", L.Concat(n.a, n.b, n.c)), "Concat axis 1 of three."))
    c.append(micro("concat-axis2", {"a": (1, 2, 3, 6), "b": (1, 2, 4, 6)},
                   lambda n: n.__setitem__("cat", L.Concat(n.a, n.b, axis=2)), "Concat axis 2."))
    c.append(micro("flatten", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("flat", L.Flatten(n.data)), "Flatten (axis 1..-1) -> (2, 60)."))
    c.append(micro("flatten-axis2", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("flat", L.Flatten(n.data, axis=2)),
                   "Flatten axis 2 -> (2, 3, 20)."))
    c.append(micro("reshape", {"data": (2, 3, 4, 5)},
                   lambda n: n.__setitem__("reshaped", L.Reshape(n.data, shape=dict(dim=[0, -1, 6]))),
                   "Reshape dim 0, -1, 6 -> (2, 10, 6)."))

    def batchnorm(n):
        n.bn = L.BatchNorm(n.data, use_global_stats=True)
        n.scale = L.Scale(n.bn, bias_term=True, in_place=True)
    c.append(micro("batchnorm", {"data": (2, 4, 5, 3)}, lambda n: n.__setitem__(
        "bn", L.BatchNorm(n.data, use_global_stats=True, eps=1e-3)),
        "BatchNorm use_global_stats, eps 1e-3, blobs (mean*f, var*f, [f]) with f = 3.7 != 1.",
        hdf5=True))
    c.append(micro("batchnorm-scale-inplace", {"data": (1, 4, 5, 3)}, batchnorm,
                   "BatchNorm (default eps 1e-5, scale factor 3.7) then in-place Scale with bias, "
                   "the ResNet pattern: blob 'bn' holds the Scale output."))
    c.append(micro("relu-slope", {"data": (1, 3, 5, 6)},
                   lambda n: n.__setitem__("relu", L.ReLU(n.data, negative_slope=0.1)),
                   "ReLU negative_slope 0.1 (not in place)."))

    def dropout(n):
        n.conv = L.Convolution(n.data, num_output=3, kernel_size=1)
        n.drop = L.Dropout(n.conv, dropout_ratio=0.5, in_place=True)
        n.drop2 = L.Dropout(n.conv, dropout_ratio=0.3)
    c.append(micro("dropout", {"data": (1, 2, 5, 6)}, dropout,
                   "Dropout in TEST phase is the identity (in place and not in place)."))

    def implicit_split(n):
        n.conv = L.Convolution(n.data, num_output=3, kernel_size=3, pad=1)
        n.relu = L.ReLU(n.conv)
        n.sig = L.Sigmoid(n.conv)
        n.sum = L.Eltwise(n.relu, n.sig, n.conv)
    c.append(micro("split-implicit", {"data": (1, 2, 5, 6)}, implicit_split,
                   "Blob conv feeds three layers; Caffe inserts a hidden Split (not stored)."))

    def explicit_split(n):
        n.a, n.b = L.Split(n.data, ntop=2)
        n.sum = L.Eltwise(n.a, n.b, operation=P.Eltwise.PROD)
    c.append(micro("split-explicit", {"data": (1, 2, 5, 6)}, explicit_split,
                   "An explicit Split layer with tops a and b."))

    def inplace(n):
        n.conv = L.Convolution(n.data, num_output=4, kernel_size=3)
        n.relu = L.ReLU(n.conv, in_place=True, negative_slope=0.2)
        n.scale = L.Scale(n.conv, in_place=True)
        n.drop = L.Dropout(n.conv, in_place=True)
    c.append(micro("inplace-chain", {"data": (1, 3, 7, 6)}, inplace,
                   "Convolution then in-place ReLU (slope 0.2), Scale and Dropout: blob conv holds "
                   "the final value."))

    def neurons(n):
        n.sig = L.Sigmoid(n.data)
        n.tanh = L.TanH(n.data)
        n.abs = L.AbsVal(n.data)
        n.power = L.Power(n.data, power=2.0, scale=0.5, shift=1.0)
    c.append(micro("neurons", {"data": (1, 3, 4, 5)}, neurons,
                   "Sigmoid, TanH, AbsVal and Power (power 2, scale 0.5, shift 1) of one input.",
                   input_scale={"data": 2.0}))
    return c


def bvlc_semantics_cases() -> list[Case]:
    """Issue 13: fork spellings, BVLC's Crop default, and a colorization-style net."""
    c = []

    def ceil_mode_false(n):
        n.pool_max = L.Pooling(n.data, pool=MAX, kernel_size=3, stride=2, ceil_mode=False)
        n.pool_ave = L.Pooling(n.data, pool=AVE, kernel_size=3, stride=2, pad=1, ceil_mode=False)
        n.pool_k2 = L.Pooling(n.data, pool=MAX, kernel_size=2, stride=2, ceil_mode=False)
    c.append(micro("pool-ceil-mode-false", {"data": (1, 3, 10, 13)}, ceil_mode_false,
                   "Pooling with the fork spelling ceil_mode: false (BVLC round_mode: FLOOR): MAX k3 s2 "
                   "-> 4x6 (ceil would give 5x6), AVE k3 s2 p1 -> 5x7, MAX k2 s2 -> 5x6 (ceil 5x7). "
                   "Written and run by the packaged Caffe, which is that fork for PoolingParameter "
                   "field 13; its pooling code for ceil_mode false is BVLC's FLOOR code."))

    def offsetless_crop(n):
        n.conv = L.Convolution(n.data, num_output=2, kernel_size=3)
        n.crop = L.Crop(n.data, n.conv)
    c.append(micro("crop-no-offset-geometry", {"data": (1, 2, 6, 9)}, offsetless_crop,
                   "A modern Crop with no crop_param cutting the input to the size of an unpadded k3 "
                   "convolution of it (a U-Net-style skip): BVLC crops at 0, although the coordinate "
                   "maps give offset 1 (the converter warns).", crop_offsets={"crop": []}))

    def colorization(n):
        # Zhang et al. colorization deploy structure at reduced width: strided and dilated
        # convolutions, BatchNorm without a Scale after each block, a deconvolution, 313-way
        # (here 13-way) 1x1 scores scaled by a constant and a Softmax.
        def block(name, bottom, nout, count, stride=1, dilation=1):
            for i in range(1, count + 1):
                last = i == count
                kw = dict(num_output=nout, kernel_size=3, pad=dilation)
                if dilation != 1:
                    kw["dilation"] = dilation
                if last and stride != 1:
                    kw["stride"] = stride
                n[f"{name}_{i}"] = L.Convolution(bottom, **kw)
                n[f"relu{name[4:]}_{i}"] = L.ReLU(n[f"{name}_{i}"], in_place=True)
                bottom = n[f"{name}_{i}"]
            n[f"{name}_{count}norm"] = L.BatchNorm(bottom, use_global_stats=True)
            return n[f"{name}_{count}norm"]
        x = block("conv1", n.data_l, 4, 2, stride=2)
        x = block("conv2", x, 8, 2, stride=2)
        x = block("conv3", x, 8, 3)
        x = block("conv4", x, 8, 3)
        x = block("conv5", x, 8, 3, dilation=2)
        x = block("conv6", x, 8, 3, dilation=2)
        x = block("conv7", x, 8, 3)
        n.conv8_1 = L.Deconvolution(x, convolution_param=dict(num_output=8, kernel_size=4, stride=2, pad=1))
        n.relu8_1 = L.ReLU(n.conv8_1, in_place=True)
        n.conv8_2 = L.Convolution(n.relu8_1, num_output=8, kernel_size=3, pad=1)
        n.relu8_2 = L.ReLU(n.conv8_2, in_place=True)
        n.conv8_313 = L.Convolution(n.relu8_2, num_output=13, kernel_size=1)
        n.conv8_313_rh = L.Scale(n.conv8_313, bias_term=False, filler=dict(type="constant", value=2.606))
        n.class8_313_rh = L.Softmax(n.conv8_313_rh)
    c.append(micro("colorization", {"data_l": (1, 1, 28, 36)}, colorization,
                   "Colorization-style (Zhang et al. 2016 deploy structure, widths cut): strided and "
                   "dilated 3x3 convolutions, BatchNorm without Scale, a k4 s2 p1 deconvolution, 1x1 "
                   "scores times a constant Scale (2.606) and a Softmax.",
                   init={"conv8_313_rh": lambda shapes, rng: [np.full(shapes[0], 2.606, np.float32)]},
                   max_blob=100_000))  # every blob kept; max_blob selects the compact HDF5 layout
    return c


def all_cases() -> list[Case]:
    return (pooling_cases() + conv_cases() + crop_cases() + eltwise_cases() + scale_cases() + misc_cases()
            + bvlc_semantics_cases() + bvlc_layer_cases())


# ----------------------------------------------------------------------------- every BVLC inference layer


def gaussian(std: float = 0.5):
    """Blobs N(0, std) (layers random_init has no rule for: Embed, Parameter, RNN, LSTM)."""
    return lambda shapes, rng: [rng.normal(0, std, s).astype(np.float32) for s in shapes]


def integers(high: int):
    """Integer-valued floats in [0, high): Embed and BatchReindex indices."""
    return lambda shapes, rng: [rng.randint(0, high, shapes[0]).astype(np.float32)]


def fixed(values):
    return lambda shapes, rng: [np.asarray(values, np.float32).reshape(shapes[0])]


def recurrent(kind: str, static: bool = False, expose: bool = False, hidden: int = 5):
    """x (T=4, N=3, 2, 3), cont marking new sequences at t = 0 and, for item 1, at t = 2."""
    inputs = {"x": (4, 3, 2, 3), "cont": (4, 3)}
    if static:
        inputs["x_static"] = (3, 4)
    if expose:
        inputs["h_0"] = (1, 3, hidden)
        if kind == "LSTM":
            inputs["c_0"] = (1, 3, hidden)

    def build(n):
        bottoms = [n[name] for name in inputs]
        ntop = 1 + expose * (2 if kind == "LSTM" else 1)
        layer = getattr(L, kind)(*bottoms, recurrent_param=dict(num_output=hidden, expose_hidden=expose),
                                 ntop=ntop)
        if ntop == 1:
            n.out = layer
        else:
            for name, top in zip(["out", "h_T", "c_T"], layer):
                n[name] = top
    return inputs, build


def bvlc_layer_cases() -> list[Case]:
    c = []
    cont = fixed([[0, 0, 0], [1, 1, 1], [1, 0, 1], [1, 1, 1]])

    def argmax(n):
        n.top1 = L.ArgMax(n.data)
        n.top3_val = L.ArgMax(n.data, top_k=3, out_max_val=True)
        n.axis1 = L.ArgMax(n.data, top_k=2, axis=1)
        n.axis2_val = L.ArgMax(n.data, axis=-2, out_max_val=True)
    c.append(micro("argmax", {"data": (3, 5, 3, 4)}, argmax,
                   "ArgMax: default (per item, top 1: (N, 1, 1, 1)), top_k 3 with out_max_val ((N, 2, 3, 1): "
                   "indices then values), axis 1 top_k 2, axis -2 with out_max_val."))
    c.append(micro("batch-reindex", {"data": (4, 3, 2, 5), "index": (6,)},
                   lambda n: n.__setitem__("reindexed", L.BatchReindex(n.data, n.index)),
                   "BatchReindex: 6 items picked from 4 by integer-valued float indices.",
                   input_fill={"index": fixed([3, 0, 0, 2, 1, 3])}))
    c.append(micro("embed", {"index": (2, 5)},
                   lambda n: n.__setitem__("embedded", L.Embed(n.index, num_output=4, input_dim=7)),
                   "Embed num_output 4, input_dim 7 with bias: weight (7, 4), top (2, 5, 4).",
                   init={"embedded": gaussian(1.0)}, input_fill={"index": integers(7)}))

    def filter_(n):
        n.kept, n.kept_other = L.Filter(n.data, n.other, n.selector, ntop=2)
    c.append(micro("filter", {"data": (5, 3, 2, 2), "other": (5, 4), "selector": (5, 1)}, filter_,
                   "Filter two bottoms by a (5, 1) selector with 3 non-zero entries.",
                   input_fill={"selector": fixed([1, 0, 2.5, 0, 1])}))

    def im2col(n):
        n.cols = L.Im2col(n.data, convolution_param=dict(kernel_size=3, stride=2, pad=1))
        n.cols_rect = L.Im2col(n.data, convolution_param=dict(kernel_h=2, kernel_w=3, dilation=2, pad_w=1))
    c.append(micro("im2col", {"data": (2, 3, 7, 8)}, im2col,
                   "Im2col k3 s2 p1, and kernel 2x3 dilation 2 pad_w 1: (N, C kh kw, H_out, W_out)."))

    def neurons_more(n):
        n.elu = L.ELU(n.data)
        n.elu_alpha = L.ELU(n.data, alpha=0.4)
        n.log = L.Log(n.positive, base=2.0, scale=0.5, shift=3.0)
        n.ln = L.Log(n.positive)
        n.exp = L.Exp(n.data, base=2.0, scale=0.5, shift=0.3)
        n.bnll = L.BNLL(n.data)
        n.threshold = L.Threshold(n.data, threshold=0.2)
    c.append(micro("neurons-more", {"data": (1, 3, 4, 5), "positive": (1, 2, 3, 3)}, neurons_more,
                   "ELU (alpha 1 and 0.4), Log (base 2, scale 0.5, shift 3; and natural), Exp (base 2, "
                   "scale 0.5, shift 0.3), BNLL and Threshold 0.2.",
                   input_scale={"data": 2.0},
                   input_fill={"positive": lambda shapes, rng: [rng.uniform(0.1, 5.0, shapes[0])]}))

    def mvn(n):
        n.mvn = L.MVN(n.data)
        n.mvn_across = L.MVN(n.data, across_channels=True, eps=1e-3)
        n.mvn_mean = L.MVN(n.data, normalize_variance=False)
    c.append(micro("mvn", {"data": (2, 3, 4, 5)}, mvn,
                   "MVN: per channel (eps 1e-9 added to the standard deviation), across channels with eps "
                   "1e-3, and mean only.", input_scale={"data": 3.0}))

    def parameter(n):
        n.param = L.Parameter(parameter_param=dict(shape=dict(dim=[2, 3, 4])))
        n.sum = L.Eltwise(n.data, n.param)
    c.append(micro("parameter", {"data": (2, 3, 4)}, parameter,
                   "Parameter layer (a learned (2, 3, 4) blob as a top) added to an input.",
                   init={"param": gaussian(1.0)}))

    def reduction(n):
        n.sum_all = L.Reduction(n.data)
        n.sum1 = L.Reduction(n.data, axis=1)
        n.asum2 = L.Reduction(n.data, operation=P.Reduction.ASUM, axis=2, coeff=0.5)
        n.sumsq = L.Reduction(n.data, operation=P.Reduction.SUMSQ, axis=-1)
        n.mean1 = L.Reduction(n.data, operation=P.Reduction.MEAN, axis=1, coeff=-2.0)
    c.append(micro("reduction", {"data": (2, 3, 4, 5)}, reduction,
                   "Reduction SUM over everything (a scalar), SUM from axis 1, ASUM from axis 2 times 0.5, "
                   "SUMSQ over the last axis, MEAN from axis 1 times -2."))

    def spp(n):
        n.spp_max = L.SPP(n.data, pyramid_height=3)
        n.spp_ave = L.SPP(n.data, pyramid_height=2, pool=P.SPP.AVE)
        n.spp_one = L.SPP(n.data, pyramid_height=1)
    c.append(micro("spp", {"data": (2, 3, 13, 10)}, spp,
                   "SPP: 3 levels of MAX (1 + 4 + 16 bins, padded windows on 13x10), 2 levels of AVE, and a "
                   "one-level pyramid (a 4-D pooled blob)."))

    def tile(n):
        n.tiled = L.Tile(n.data, tiles=3)
        n.tiled_last = L.Tile(n.data, axis=-1, tiles=2)
    c.append(micro("tile", {"data": (2, 3, 2, 4)}, tile, "Tile axis 1 x3, axis -1 x2."))

    def dummy(n):
        n.zeros = L.DummyData(num=[1], channels=[3], height=[2], width=[4])
        n.const, n.const2 = L.DummyData(shape=[dict(dim=[1, 3, 2, 4]), dict(dim=[2, 5])],
                                        data_filler=[dict(type="constant", value=1.5),
                                                     dict(type="constant", value=-2.0)], ntop=2)
        n.sum = L.Eltwise(n.data, n.zeros, n.const)
        n.sum2 = L.Eltwise(n.other, n.const2)
    c.append(micro("dummy-data", {"data": (1, 3, 2, 4), "other": (2, 5)}, dummy,
                   "DummyData with constant fillers: legacy num/channels/height/width (0, the default "
                   "filler), and two tops with shapes and constants 1.5 and -2; added to inputs."))

    def prelu(n):
        n.prelu = L.PReLU(n.data)
        n.prelu_shared = L.PReLU(n.data, prelu_param=dict(channel_shared=True))
    c.append(micro("prelu", {"data": (2, 4, 3, 5)}, prelu,
                   "PReLU with one slope per channel, and channel_shared (one slope).",
                   init={"prelu": gaussian(0.5), "prelu_shared": gaussian(0.5)}))

    def slice_silence(n):
        n.a, n.b, n.c = L.Slice(n.data, slice_point=[1, 3], ntop=3)
        n.silence = L.Silence(n.b, ntop=0)
        n.d, n.e = L.Slice(n.data, axis=2, ntop=2)
    c.append(micro("slice-silence", {"data": (2, 4, 6, 3)}, slice_silence,
                   "Slice axis 1 at 1 and 3 (one part silenced), and axis 2 into two equal parts."))

    for kind in ("RNN", "LSTM"):
        for static, expose in ((False, False), (True, False), (False, True)):
            inputs, build = recurrent(kind, static, expose)
            suffix = "-static" if static else "-expose-hidden" if expose else ""
            fill = {"cont": cont}
            c.append(micro(kind.lower() + suffix, inputs, build,
                           f"{kind} num_output 5 over T = 4 steps of N = 3 sequences of (2, 3) inputs; cont "
                           "starts every sequence at t = 0 and item 1 again at t = 2"
                           + ("; a static input (3, 4) added at every step" if static else "")
                           + ("; expose_hidden: initial state from inputs, final state as tops" if expose else "")
                           + ".", init={"out": gaussian(0.5)}, input_fill=fill))
    def lstm_unit(n):
        n.c, n.h = L.LSTMUnit(n.c_prev, n.gates, n.cont, ntop=2)
    c.append(micro("lstm-unit", {"c_prev": (1, 4, 3), "gates": (1, 4, 12), "cont": (1, 4)}, lstm_unit,
                   "LSTMUnit on its own: one step for N = 4, H = 3, cont 0 (forget gate exactly 0) for "
                   "two of them.", input_scale={"gates": 2.0}, input_fill={"cont": fixed([[1, 0, 1, 0]])}))
    for case in c:
        case.max_blob = 1_000_000  # keeps every blob; selects the compact HDF5 layout (half the size)
    return c

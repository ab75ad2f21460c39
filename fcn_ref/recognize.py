"""Recognize the FCN zoo architectures in a Caffe net: ``recognize(net) -> {"name", "kwargs"} | None``.

Model knowledge, so it lives in fcn_ref: ``python -m convert`` writes a generic file, and
``fcn_ref.load`` recognizes the net stored in it.

A guess comes from the layer names that set the zoo nets apart (``score_fr_sem``, ``conv1_1_bgrd``,
``score-fr``, ...) with widths and class counts read off the blob shapes. The guess is then checked
against the model it names: that model is built on the ``meta`` device (no memory, no init) and
must have exactly the net's weighted layers with the net's blob shapes, the same convolution,
deconvolution, pooling and LRN geometry layer by layer, and the same crop offsets. The fcn_ref model
classes are the one description of each architecture; nothing here repeats their layer lists.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from convert.coord_map import conv_geometry, pool_geometry
from convert.modules import Deconvolution, Scale
from convert.net import CaffeNet, Layer, blob_names
from fcn_ref.caffe_names import caffe_layer_names, caffe_state_dict
from fcn_ref.models import ARCHITECTURES

Guess = dict  # {"name": str, "kwargs": dict}
SPATIAL_TYPES = ("Convolution", "Deconvolution", "Pooling", "LRN", "Scale")


def recognize(net: CaffeNet) -> Guess | None:
    """The zoo architecture of ``net`` with its kwargs, or None when it is not one of them."""
    for guess in _guesses(net):
        if mismatch(net, guess) is None:
            return guess
    return None


# ----------------------------------------------------------------------------- guesses

def _shapes(net: CaffeNet) -> dict[str, list[tuple[int, ...]]]:
    return {layer.name: [tuple(b.shape) for b in layer.blobs] for layer in net.layers if layer.blobs}


def _out(shapes: dict, name: str) -> int | None:
    """Output channels of a 4-D conv weight, or None if the layer is absent or not a conv."""
    blobs = shapes.get(name)
    return blobs[0][0] if blobs and len(blobs[0]) == 4 else None


def _vgg_widths(shapes: dict, first: str, suffix: str = "") -> dict | None:
    names = [first + suffix] + [f"conv{b}_1{suffix}" for b in range(2, 6)]
    widths = [_out(shapes, n) for n in names]
    fc = [_out(shapes, f"fc6{suffix}"), _out(shapes, f"fc7{suffix}")]
    if None in widths or None in fc:
        return None
    return {"in_channels": shapes[names[0]][0][1], "widths": widths, "fc_widths": fc}


def _guesses(net: CaffeNet) -> Iterator[Guess]:
    shapes = _shapes(net)
    has = shapes.__contains__
    for guess in (_nyud_color_hha, _nyud_color_d, _siftflow, _cvpr, _googlenet, _heavy, _alexnet):
        found = guess(shapes, has)
        if found is not None:
            yield found


def _nyud_color_hha(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    if not (has("conv1_1color") and has("conv1_1hha")):
        return None
    trunk = _vgg_widths(shapes, "conv1_1", "color")
    if trunk is None or not has("score_frcolor"):
        return None
    trunk.pop("in_channels")
    return {"name": "nyud-fcn32s-color-hha", "kwargs": {"num_classes": _out(shapes, "score_frcolor"), **trunk}}


def _nyud_color_d(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    trunk = _vgg_widths(shapes, "conv1_1_bgrd") if has("conv1_1_bgrd") else None
    if trunk is None or not has("score_fr"):
        return None
    return {"name": "nyud-fcn32s-color-d", "kwargs": {"num_classes": _out(shapes, "score_fr"), **trunk}}


def _stride(has: Callable[[str], bool], by_stride: dict[int, str]) -> int | None:
    return next((s for s, name in by_stride.items() if has(name)), None)


def _siftflow(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    trunk = _vgg_widths(shapes, "conv1_1")
    if trunk is None or not (has("score_fr_sem") and has("score_fr_geo")):
        return None
    stride = _stride(has, {8: "upscore8_sem", 16: "upscore16_sem", 32: "upscore_sem"})
    if stride is None:
        return None
    kwargs = {"num_classes": _out(shapes, "score_fr_sem"), "num_geometric": _out(shapes, "score_fr_geo"), **trunk}
    return {"name": f"siftflow-fcn{stride}s", "kwargs": kwargs}


def _cvpr(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    trunk = _vgg_widths(shapes, "conv1_1")
    if trunk is None or not has("score-fr"):
        return None
    stride = _stride(has, {8: "score4", 16: "score2", 32: "upsample"})
    deconvs = [n for n in ("score2", "score4", "upsample") if has(n)]
    bias = [n for n in deconvs if len(shapes[n]) == 2]
    kwargs = {"num_classes": _out(shapes, "score-fr"), **trunk, "deconv_bias": bias}
    return {"name": f"cvpr-fcn{stride}s", "kwargs": kwargs}


def _heavy(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    trunk = _vgg_widths(shapes, "conv1_1")
    if trunk is None or not has("score_fr"):
        return None
    name = {8: "fcn8s-atonce" if has("scale_pool4") else "fcn8s", 16: "fcn16s", 32: "fcn32s"}
    stride = _stride(has, {8: "upscore8", 16: "upscore16", 32: "upscore"})
    if stride is None:
        return None
    return {"name": name[stride], "kwargs": {"num_classes": _out(shapes, "score_fr"), **trunk}}


def googlenet_widths(shapes: dict) -> dict | None:
    """in_channels, stem and inception widths of a BVLC GoogLeNet (classifier or FCN) from its blobs."""
    from fcn_ref.trunks import INCEPTION_KEYS

    stem = [_out(shapes, n) for n in ("conv1/7x7_s2", "conv2/3x3_reduce", "conv2/3x3")]
    branches = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")
    inceptions = [[_out(shapes, f"inception_{key}/{b}") for b in branches] for key in INCEPTION_KEYS]
    if None in stem or any(None in widths for widths in inceptions):
        return None
    return {"in_channels": shapes["conv1/7x7_s2"][0][1], "widths": stem, "inception_widths": inceptions}


def _googlenet(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    trunk = googlenet_widths(shapes)
    if trunk is None or _out(shapes, "score_fr") is None:
        return None
    return {"name": "fcn-googlenet", "kwargs": {"num_classes": _out(shapes, "score_fr"), **trunk}}


def _alexnet(shapes: dict, has: Callable[[str], bool]) -> Guess | None:
    widths = [_out(shapes, f"conv{i}") for i in range(1, 6)]
    fc = [_out(shapes, "fc6"), _out(shapes, "fc7")]
    if None in widths or None in fc or not has("score_fr"):
        return None
    kwargs = {"num_classes": _out(shapes, "score_fr"), "in_channels": shapes["conv1"][0][1],
              "widths": widths, "fc_widths": fc}
    return {"name": "fcn-alexnet", "kwargs": kwargs}


# ----------------------------------------------------------------------------- verification

def _f32(*values: float) -> tuple[float, ...]:
    """Compare float parameters as Caffe stores them (float32 in the prototxt's message)."""
    return tuple(float(np.float32(v)) for v in values)


def _caffe_geometry(layer: Layer) -> tuple:
    """(kind, kernel, stride, pad, dilation, group) of a spatial Caffe layer, per (H, W) axis."""
    if layer.type in ("Convolution", "Deconvolution"):
        g = conv_geometry(layer)
        return (layer.type, g.kernel, g.stride, g.pad, g.dilation, layer.param.convolution_param.group)
    if layer.type == "Pooling":
        p = layer.param.pooling_param
        if p.global_pooling:
            return ("Pooling", "global")
        g = pool_geometry(layer)
        ceil = not p.HasField("round_mode") or p.round_mode == 0
        return ("Pooling", "MAX" if p.pool == 0 else p.pool, g.kernel, g.stride, g.pad, ceil)
    if layer.type == "LRN":
        p = layer.param.lrn_param
        return ("LRN", p.local_size, *_f32(p.alpha, p.beta, p.k), p.norm_region)
    if layer.type == "Scale":
        p = layer.param.scale_param
        return ("Scale", p.axis, p.num_axes, p.bias_term, len(layer.bottoms))
    return (layer.type,)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _module_geometry(module: nn.Module) -> tuple | None:
    """The same tuple for the fcn_ref module standing for a layer (None: not a spatial layer)."""
    if isinstance(module, Deconvolution):
        return ("Deconvolution", tuple(module.weight.shape[2:]), _pair(module.stride), _pair(module.padding),
                _pair(module.dilation), module.groups)
    if isinstance(module, nn.Conv2d):
        return ("Convolution", module.kernel_size, module.stride, module.padding, module.dilation, module.groups)
    if isinstance(module, nn.MaxPool2d):
        return ("Pooling", "MAX", _pair(module.kernel_size), _pair(module.stride), _pair(module.padding),
                module.ceil_mode)
    if isinstance(module, nn.LocalResponseNorm):
        return ("LRN", module.size, *_f32(module.alpha, module.beta, module.k), 0)
    if isinstance(module, Scale):
        return ("Scale", module.axis, 1, module.bias_blob is not None, 1)
    return None


def _blob_shapes(net: CaffeNet) -> dict[str, tuple[int, ...]]:
    return {f"{layer.name}.{name}": tuple(blob.shape)
            for layer in net.layers for name, blob in zip(blob_names(layer.type, len(layer.blobs), len(layer.bottoms)), layer.blobs)}


def _explicit_crop_offset(layer: Layer) -> int | str | None:
    """The offset a Crop layer writes (one for H and W, from axis 2), None if it writes none.

    CVPR-era Crop layers write none (their offsets were implicit in the geometry, and they all share
    the name 'crop'); for those the model's own coordinate-map offsets stand, as they did in Caffe.
    """
    p = layer.param.crop_param
    if not p.offset:
        return None
    if p.axis not in (2, -2) or len(set(p.offset)) != 1:
        return f"axis {p.axis} offsets {list(p.offset)}"
    return int(p.offset[0])


def mismatch(net: CaffeNet, guess: Guess) -> str | None:
    """Why ``net`` is not the model ``guess`` names (None when it is): weights, geometry, crops."""
    cls = ARCHITECTURES.get(guess["name"])
    if cls is None:
        return f"unknown architecture {guess['name']!r}"
    try:
        with torch.device("meta"):
            model = cls(**guess["kwargs"])
    except (TypeError, ValueError, KeyError) as exc:
        return f"cannot build {guess['name']}: {exc}"

    ours = {k: tuple(v.shape) for k, v in caffe_state_dict(model).items()}
    theirs = _blob_shapes(net)
    if ours != theirs:
        missing = sorted(set(ours) - set(theirs))
        extra = sorted(set(theirs) - set(ours))
        shapes = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
        return f"weights differ: missing {missing[:4]}, unexpected {extra[:4]}, shapes {shapes[:4]}"

    modules = {name: model.get_submodule(path) for path, name in caffe_layer_names(model).items()}
    layers = {layer.name: layer for layer in net.layers if layer.type in SPATIAL_TYPES}
    spatial_modules = {n for n, m in modules.items() if _module_geometry(m) is not None}
    if set(layers) != spatial_modules:
        return f"spatial layers differ: {sorted(set(layers) ^ spatial_modules)[:6]}"
    for name, layer in layers.items():
        if _caffe_geometry(layer) != _module_geometry(modules[name]):
            return f"layer {name}: {_caffe_geometry(layer)} != {_module_geometry(modules[name])}"

    crops = [_explicit_crop_offset(layer) for layer in net.layers if layer.type == "Crop"]
    ours_crops = list(model.crop_offsets().values())  # in Caffe's layer order
    if len(crops) != len(ours_crops) or any(c is not None and c != o for c, o in zip(crops, ours_crops)):
        return f"crop offsets differ: {crops} != {ours_crops}"

    coeffs = [tuple(np.round(layer.param.eltwise_param.coeff, 6)) for layer in net.layers if layer.type == "Eltwise"]
    expected = [tuple(model.FUSE_COEFFS)] if hasattr(model, "FUSE_COEFFS") else []  # only color-HHA weighs
    if [c for c in coeffs if c] != expected:
        return f"Eltwise coefficients {coeffs} != {expected}"
    if any(layer.param.eltwise_param.operation != 1 for layer in net.layers if layer.type == "Eltwise"):
        return "an Eltwise layer is not a SUM"
    return None

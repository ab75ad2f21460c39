"""Net surgery: start an FCN from an ILSVRC classifier, and a finer FCN from a coarser one.

``fcn_from_classifier`` does what the reference ``surgery.transplant`` does for FCN training: the
convolutions are copied, the fully connected layers become convolutions (the same numbers, reshaped:
``W[o, c, h, w] = W_ip[o, c*k*k + h*k + w]``), the new score layers start at zero and the
upsampling at bilinear. ``stage`` is the FCN-32s -> 16s -> 8s step: everything the finer net shares
with the coarser one is copied, its new skip-score layers start at zero, its fixed upsampling is
bilinear (``surgery.interp`` on every ``up`` layer in the reference solve.py).

What "the finer net starts with the coarser net's predictions" means exactly: the new skips add
exact zeros, so the finer net's scores are the coarser net's ``score_fr`` blob (bit for bit) taken
through the finer net's upsampling path. That path (bilinear x2 then x16 for FCN-16s) is not the
coarser one (bilinear x32): the composed kernel is wider, so the scores differ slightly.
"""
from __future__ import annotations

import os

from dataclasses import fields

import numpy as np
import torch

from convert.errors import CaffeFormatError
from convert.net import CaffeNet
from convert.reader import read_net
from fcn_ref.blocks import Skip, Upsample
from fcn_ref.caffe_names import caffe_layer_names, caffe_state_dict
from fcn_ref.models import ARCHITECTURES, FCN, FCNAlexNet, FCNGoogLeNet, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s
from fcn_ref.recognize import googlenet_widths
from fcn_ref.trunks import VGG16_BLOCK_DEPTHS

VGG16_CONVS = [f"conv{b}_{i}" for b, depth in enumerate(VGG16_BLOCK_DEPTHS, start=1) for i in range(1, depth + 1)]
ALEXNET_CONVS = [f"conv{i}" for i in range(1, 6)]


def _weights(net: CaffeNet, name: str, path: str) -> list[np.ndarray]:
    try:
        layer = net.layer(name)
    except KeyError:
        raise CaffeFormatError(f"the classifier has no layer '{name}'", path=path) from None
    if not layer.blobs:
        raise CaffeFormatError("the classifier layer has no weights", path=path, layer=name)
    return layer.blobs


def _classifier_kwargs(net: CaffeNet, width_layers: list[str], path: str) -> dict:
    """Widths of the classifier's convolutions and fully connected layers (reduced nets welcome)."""
    return {"in_channels": int(_weights(net, width_layers[0], path)[0].shape[1]),
            "widths": [int(_weights(net, name, path)[0].shape[0]) for name in width_layers],
            "fc_widths": [int(_weights(net, name, path)[0].shape[0]) for name in ("fc6", "fc7")]}


def fcn_from_classifier(caffemodel: str | os.PathLike, arch: str = "fcn32s", num_classes: int | None = 21,
                        prototxt: str | os.PathLike | None = None) -> FCN:
    """An untrained FCN of ``arch`` carrying an ILSVRC classifier's weights (VGG16, CaffeNet for
    ``fcn-alexnet``, BVLC GoogLeNet for ``fcn-googlenet``); any caffemodel format, legacy V1
    included. Returned in training mode. For GoogLeNet, ``num_classes=None`` keeps the classifier
    itself as the 1x1 score layer (a dense ILSVRC classification map)."""
    path = str(caffemodel)
    net = read_net(caffemodel, prototxt)
    cls = ARCHITECTURES[arch]
    if cls is FCNGoogLeNet:
        return _googlenet_fcn(net, path, num_classes)
    if num_classes is None:
        raise ValueError(f"{arch} needs a class count (its classifier's fc8 is not kept)")
    convs = ALEXNET_CONVS if cls is FCNAlexNet else VGG16_CONVS
    width_layers = ALEXNET_CONVS if cls is FCNAlexNet else [c for c in VGG16_CONVS if c.endswith("_1")]
    kwargs = _classifier_kwargs(net, width_layers, path)
    if cls is NYUDColorDepthFCN32s:
        kwargs["in_channels"] += 1
    model = cls(num_classes=num_classes, **kwargs)
    state = caffe_state_dict(model)
    for suffix in _trunk_suffixes(model):
        for name in convs + ["fc6", "fc7"]:
            blobs = _weights(net, name, path)
            target = name + suffix
            if cls is NYUDColorDepthFCN32s and name == "conv1_1":
                target, blobs = "conv1_1_bgrd", [_add_depth_channel(blobs[0]), blobs[1]]
            _put(state, target, blobs, path)
    return model


def _put(state: dict[str, torch.Tensor], target: str, blobs: list[np.ndarray], path: str) -> None:
    """Copy a classifier layer's blobs into the model's layer ``target`` (Caffe keys), as the
    reference transplant's ``.flat`` assignment: InnerProduct (O, C*k*k) is the convolution
    (O, C, k, k) in row-major order (fc6/fc7; GoogLeNet's classifier with k = 1)."""
    for key, blob in zip(("weight", "bias"), blobs):
        tensor = state[f"{target}.{key}"]
        if tensor.numel() != blob.size:
            raise CaffeFormatError(f"{blob.shape} does not fit {target}.{key} {tuple(tensor.shape)}",
                                   path=path, layer=target)
        tensor.copy_(torch.from_numpy(np.array(blob, dtype=np.float32)).reshape(tensor.shape))


def _googlenet_fcn(net: CaffeNet, path: str, num_classes: int | None) -> FCN:
    """FCN-GoogLeNet from BVLC GoogLeNet: every trunk layer copied by name; the average pooling
    and dropout are left out; ``score_fr`` is loss3/classifier (an InnerProduct over a 1x1 blob is a
    1x1 convolution) when ``num_classes`` is None, else a new zero layer of that many classes."""
    shapes = {layer.name: [tuple(b.shape) for b in layer.blobs] for layer in net.layers if layer.blobs}
    kwargs = googlenet_widths(shapes)
    if kwargs is None:
        raise CaffeFormatError("not a BVLC GoogLeNet classifier (no conv1/7x7_s2 .. inception_5b layers)",
                               path=path)
    classifier = _weights(net, "loss3/classifier", path)
    model = FCNGoogLeNet(num_classes=int(classifier[0].shape[0]) if num_classes is None else num_classes, **kwargs)
    state = caffe_state_dict(model)
    sources = {layer: layer for layer in {key.rsplit(".", 1)[0] for key in state}} | {"score_fr": "loss3/classifier"}
    for target, source in sources.items():
        if target == "upscore" or (target == "score_fr" and num_classes is not None):
            continue  # bilinear / zero, as the model starts
        _put(state, target, _weights(net, source, path), path)
    return model


def _trunk_suffixes(model: FCN) -> list[str]:
    return ["color", "hha"] if isinstance(model, NYUDColorHHAFCN32s) else [""]


def _add_depth_channel(weight: np.ndarray) -> np.ndarray:
    """conv1_1 for BGR + depth: the depth filter is the mean of the three colour filters, as the
    reference nyud-fcn32s-color-d surgery does."""
    return np.concatenate([weight, weight.mean(axis=1, keepdims=True)], axis=1)


def stage(coarser: FCN, arch: str = "fcn16s") -> FCN:
    """The next, finer FCN (``fcn16s`` from ``fcn32s``, ``fcn8s`` from ``fcn16s``), initialised
    from ``coarser``: shared layers copied (by Caffe name), new skip scores zero, fixed upsampling
    bilinear. Every setting of ``coarser`` carries over (widths, classes, learned upsampling).

    Refused, with one line naming the layers, when ``coarser`` cannot initialise the finer net
    completely (a layer that is neither shared nor a new skip or upsampling, as from FCN-AlexNet to
    FCN-16s) or when a trained layer of ``coarser`` other than an upsampling has no place in it
    (FCN-8s to FCN-16s).
    """
    finer_class = ARCHITECTURES[arch]
    return stage_into(coarser, finer_class(_carried_config(coarser, finer_class)))


def stage_into(coarser: FCN, finer: FCN) -> FCN:
    """``stage`` into a model already built (a new architecture, e.g. an FCN-4s from an FCN-8s)."""
    finer = finer.to(next(coarser.parameters()).device)
    theirs, ours = caffe_state_dict(coarser), caffe_state_dict(finer)
    names = caffe_layer_names(finer)
    fresh = {f"{names[f'{path}.{sub}' if sub else path]}.{key}" for path, m in finer.named_modules()
             if isinstance(m, (Skip, Upsample)) for sub, part in m.named_modules()
             for key, _ in part.named_parameters(recurse=False)}  # zero scores, factors, bilinear
    fixed = {f"{names[path]}.{key}" for path, m in finer.named_modules()
             if isinstance(m, Upsample) and not m.weight.requires_grad for key, _ in m.named_parameters()}
    copied = {key for key in ours if key in theirs and key not in fixed and theirs[key].shape == ours[key].shape}
    uninitialised = sorted(set(ours) - copied - fresh - fixed)
    trained = {f"{caffe}.{key}" for path, caffe in caffe_layer_names(coarser).items()
               if not isinstance(layer := coarser.get_submodule(path), Upsample)  # the finer path replaces it
               for key, p in layer.named_parameters(recurse=False) if p.requires_grad}
    lost = sorted(trained - copied)
    if uninitialised or lost:
        why = (f"no source for {', '.join(uninitialised[:4])}" if uninitialised
               else f"it drops trained {', '.join(lost[:4])}")
        raise ValueError(f"cannot stage {type(coarser).__name__} into {type(finer).__name__}: {why}")
    with torch.no_grad():
        for key in copied:
            ours[key].copy_(theirs[key])
    return finer


def _carried_config(coarser: FCN, finer_class: type[FCN]):
    """The finer class's config with every field of ``coarser``'s it has (one file's blob layout,
    e.g. the CVPR ``deconv_bias``, only within one class)."""
    target = finer_class.config_class
    layout = () if type(coarser) is finer_class else getattr(target, "FILE_LAYOUT", ())
    names = {f.name for f in fields(target)} - set(layout)
    return target(**{k: v for k, v in vars(coarser.config).items() if k in names})

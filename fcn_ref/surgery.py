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

import numpy as np
import torch

from convert.errors import CaffeFormatError
from convert.net import CaffeNet
from convert.reader import read_net
from fcn_ref.blocks import Upsample
from fcn_ref.models import (ARCHITECTURES, FCN, FCNAlexNet, NYUDColorDepthFCN32s, NYUDColorHHAFCN32s)
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


def fcn_from_classifier(caffemodel: str | os.PathLike, arch: str = "fcn32s", num_classes: int = 21,
                        prototxt: str | os.PathLike | None = None) -> FCN:
    """An untrained FCN of ``arch`` carrying an ILSVRC classifier's weights (VGG16, or CaffeNet for
    ``fcn-alexnet``); any caffemodel format, legacy V1 included. Returned in training mode."""
    path = str(caffemodel)
    net = read_net(caffemodel, prototxt)
    cls = ARCHITECTURES[arch]
    convs = ALEXNET_CONVS if cls is FCNAlexNet else VGG16_CONVS
    width_layers = ALEXNET_CONVS if cls is FCNAlexNet else [c for c in VGG16_CONVS if c.endswith("_1")]
    kwargs = _classifier_kwargs(net, width_layers, path)
    if cls is NYUDColorDepthFCN32s:
        kwargs["in_channels"] += 1
    if cls is NYUDColorHHAFCN32s:
        kwargs.pop("in_channels")
    model = cls(num_classes=num_classes, **kwargs)
    state = model.state_dict()

    def put(target: str, blobs: list[np.ndarray]) -> None:
        for key, blob in zip(("weight", "bias"), blobs):
            tensor = state[f"{target}.{key}"]
            if tensor.numel() != blob.size:
                raise CaffeFormatError(f"{blob.shape} does not fit {target}.{key} {tuple(tensor.shape)}",
                                       path=path, layer=target)
            # fc6/fc7: InnerProduct (O, C*k*k) is the convolution (O, C, k, k) in row-major order.
            tensor.copy_(torch.from_numpy(np.array(blob, dtype=np.float32)).reshape(tensor.shape))

    for suffix in _trunk_suffixes(model):
        for name in convs + ["fc6", "fc7"]:
            blobs = _weights(net, name, path)
            target = name + suffix
            if cls is NYUDColorDepthFCN32s and name == "conv1_1":
                target, blobs = "conv1_1_bgrd", [_add_depth_channel(blobs[0]), blobs[1]]
            put(target, blobs)
    return model


def _trunk_suffixes(model: FCN) -> list[str]:
    return list(model.MODALITIES) if isinstance(model, NYUDColorHHAFCN32s) else [""]


def _add_depth_channel(weight: np.ndarray) -> np.ndarray:
    """conv1_1 for BGR + depth: the depth filter is the mean of the three colour filters, as the
    reference nyud-fcn32s-color-d surgery does."""
    return np.concatenate([weight, weight.mean(axis=1, keepdims=True)], axis=1)


def stage(coarser: FCN, arch: str = "fcn16s") -> FCN:
    """The next, finer FCN (``fcn16s`` from ``fcn32s``, ``fcn8s`` from ``fcn16s``), initialised
    from ``coarser``: shared layers copied, new skip scores zero, fixed upsampling bilinear."""
    finer = ARCHITECTURES[arch](**coarser.kwargs).to(next(coarser.parameters()).device)
    theirs = coarser.state_dict()
    fixed_upsampling = {f"{name}.{key}" for name, m in finer.named_children()
                        if isinstance(m, Upsample) and not m.weight.requires_grad for key in ("weight", "bias")}
    with torch.no_grad():
        for key, tensor in finer.state_dict().items():
            if key in theirs and key not in fixed_upsampling and theirs[key].shape == tensor.shape:
                tensor.copy_(theirs[key])
    return finer

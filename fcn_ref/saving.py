"""Write a model back as a converted file: the same format ``python -m convert`` writes.

``save(model, path)`` traces the model's ``forward`` (``torch.fx``, each layer a leaf) into the
Caffe net it computes: one Caffe layer per module, named by ``fcn_ref.caffe_names``, with its
settings read off the module and its weights under the Caffe keys. ``convert.load`` runs the file
with the generic runtime, ``fcn_ref.load`` rebuilds the model from the config it stores (or
recognizes the net). Training snapshots use it, so a trained net is a file like any other.
"""
from __future__ import annotations

import operator
import os
from typing import Any

import torch
import torch.fx
from torch import nn

from convert.checkpoint import save_checkpoint
from convert.modules import Concat, Crop, Deconvolution, Eltwise, Scale
from convert.net import CaffeNet, Layer, blob_names
from convert.schema import LayerParameter
from fcn_ref.caffe_names import caffe_layer_names, caffe_state_dict
from fcn_ref.models import FCN

# Module class -> Caffe type, its parameter message, {message field: module attribute}. Checked
# in order; convolutions (whose fields need shaping) are handled before this table.
SIMPLE_LAYERS: tuple[tuple[type, str, str, dict[str, str]], ...] = (
    (nn.ReLU, "ReLU", "relu_param", {}),
    (nn.Dropout, "Dropout", "dropout_param", {"dropout_ratio": "p"}),
    (nn.LocalResponseNorm, "LRN", "lrn_param", {"local_size": "size", "alpha": "alpha", "beta": "beta", "k": "k"}),
    (nn.MaxPool2d, "Pooling", "pooling_param", {"kernel_size": "kernel_size", "stride": "stride"}),  # MAX
    (Crop, "Crop", "crop_param", {"axis": "axis", "offset": "offsets"}),
    (Scale, "Scale", "scale_param", {"axis": "axis"}),  # no bias term: ChannelScale
    (Eltwise, "Eltwise", "eltwise_param", {"operation": "operation", "coeff": "coeffs"}),
    (Concat, "Concat", "concat_param", {"axis": "axis"}),
)
IN_PLACE = (nn.ReLU, nn.Dropout)  # Caffe runs these in place: top = bottom
EXAMPLE_SIZE = 500  # the example input shape a file declares (it never constrains the sizes that run)


class _LayerTracer(torch.fx.Tracer):
    """Stops at every module without children: each is one Caffe layer."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not any(True for _ in m.children())


def _settings(param: Any, module: nn.Module) -> str:
    """Fill the type-specific part of ``param`` from ``module``; return the Caffe type."""
    if isinstance(module, Deconvolution):
        p = param.convolution_param
        p.num_output, p.bias_term = module.weight.shape[1] * module.groups, module.bias is not None
        p.kernel_size.append(module.weight.shape[-1])
        p.stride.append(module.stride[0])
        if module.groups != 1:
            p.group = module.groups
        return "Deconvolution"
    if isinstance(module, Scale) and module.bias_blob is not None:
        raise TypeError("a Scale with a bias has no counterpart in the FCN models")
    if isinstance(module, nn.Conv2d):
        p = param.convolution_param
        p.num_output, p.bias_term = module.out_channels, module.bias is not None
        p.kernel_size.append(module.kernel_size[0])
        if module.stride[0] != 1:
            p.stride.append(module.stride[0])
        if module.padding[0]:
            p.pad.append(module.padding[0])
        if module.groups != 1:
            p.group = module.groups
        return "Convolution"
    if isinstance(module, nn.MaxPool2d) and module.padding:  # GoogLeNet's inception pools
        param.pooling_param.pad = module.padding
    for cls, caffe_type, message, fields in SIMPLE_LAYERS:
        if isinstance(module, cls):
            for field, attribute in fields.items():
                value = getattr(module, attribute)
                target = getattr(param, message)
                if isinstance(value, (tuple, list)):
                    getattr(target, field).extend(value)
                else:
                    setattr(target, field, value)
            return caffe_type
    raise TypeError(f"no Caffe layer for {type(module).__name__}")


def caffe_net(model: FCN) -> CaffeNet:
    """The Caffe net ``model`` computes, with its current weights (as numpy arrays)."""
    graph = _LayerTracer().trace(model)
    names = caffe_layer_names(model)
    state = {k: v.detach().cpu().numpy() for k, v in caffe_state_dict(model).items()}
    blob: dict[torch.fx.Node, str] = {}
    inputs: dict[str, tuple[int, ...]] = {}
    layers: list[Layer] = []
    tops_used: set[str] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            name = model.input_names[len(inputs)]
            inputs[name] = (1, model.input_channels()[len(inputs)], EXAMPLE_SIZE, EXAMPLE_SIZE)
            blob[node] = name
        elif node.op == "call_module":
            module = model.get_submodule(node.target)
            name = names[node.target]
            bottoms = [blob[arg] for arg in node.args]
            top = bottoms[0] if isinstance(module, IN_PLACE) else name
            while top in tops_used and not isinstance(module, IN_PLACE):  # CVPR's two 'fuse' layers
                top += "_"
            tops_used.add(top)
            param = LayerParameter(name=name, bottom=bottoms, top=[top])
            param.type = _settings(param, module)
            keys = blob_names(param.type, len(list(module.parameters(recurse=False))), len(bottoms))
            layers.append(Layer(param, [state[f"{name}.{key}"] for key in keys]))
            blob[node] = top
        elif node.op == "call_function" and node.target is operator.getitem:
            blob[node] = blob[node.args[0]]
        elif node.op != "output":
            raise TypeError(f"{type(model).__name__}.forward does {node.op} {node.target}; only layers trace")
    return CaffeNet(name=model.arch_name or type(model).__name__, inputs=inputs, layers=layers)


def save(model: FCN, path: str | os.PathLike, *, source: dict | None = None, overwrite: bool = False) -> None:
    """Write ``model`` as a converted file (atomically), storing its architecture and config.

    ``source`` describes where the weights came from (a converted file's ``source`` is kept by
    default, e.g. the original caffemodel's name, so the zoo registry still finds the model).
    """
    if source is None:
        source = dict((getattr(model, "meta", None) or {}).get("source") or {})
    save_checkpoint(caffe_net(model), path, architecture=model.architecture, source=source, overwrite=overwrite)


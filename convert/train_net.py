"""A Caffe net as Caffe's ``Net`` builds it for a phase (TRAIN or TEST), ready to train.

``phase_net`` applies Caffe's include/exclude rules for the phase (and the solver's level and
stages), keeps the loss and accuracy layers, and turns every data layer's tops into inputs: the
layers themselves are returned apart (``PhaseNet.data_layers``) so the trainer can feed those
inputs from a data source. ``initialize`` gives every weighted layer without weights its blobs,
from the layer's fillers (``convert.fillers``) at the shapes the first batch implies, as Caffe's
``LayerSetUp`` does. ``param_specs`` reads each blob's ``lr_mult`` / ``decay_mult``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from convert.binary_reader import parsed_from_message
from convert.errors import CaffeFormatError
from convert.fillers import fill
from convert.layers import build_layer
from convert.net import CaffeNet, Layer, blob_names
from convert.schema import NetParameter
from convert.training_layers import TRAINING_LAYER_BUILDERS
from convert.upgrade import DATA_LAYERS, TEST, TRAIN, in_phase, modern_layers, to_arrays

PHASES = {"TRAIN": TRAIN, "TEST": TEST}
# Layers whose tops are scalars or small summaries (not images): their shapes are not propagated.
SUMMARY_LAYERS = frozenset(TRAINING_LAYER_BUILDERS) - {"Dropout"}


@dataclass(frozen=True)
class ParamSpec:
    """How the solver treats one blob: its learning-rate and weight-decay multipliers."""

    lr_mult: float = 1.0
    decay_mult: float = 1.0


@dataclass
class PhaseNet:
    """The net of one phase: layers to run, and the data layers whose tops are its inputs."""

    net: CaffeNet
    data_layers: list[Layer] = field(default_factory=list)


def phase_net(proto: NetParameter, phase: str = "TRAIN", *, level: int = 0, stages: tuple[str, ...] = (),
              path: str | None = None) -> PhaseNet:
    """Caffe's ``FilterNet`` for ``phase``; data layers split off, their tops made inputs."""
    if phase not in PHASES:
        raise ValueError(f"phase must be TRAIN or TEST, not {phase!r}")
    parsed = parsed_from_message(proto)
    inputs: dict[str, tuple[int, ...]] = {}
    for i, name in enumerate(proto.input):
        dims = proto.input_shape[i].dim if i < len(proto.input_shape) else proto.input_dim[4 * i:4 * i + 4]
        inputs[name] = tuple(int(d) for d in dims)
    layers: list[Layer] = []
    data_layers: list[Layer] = []
    for param, raw in modern_layers(parsed, path):
        if not in_phase(param, PHASES[phase], level, stages):
            continue
        if param.type == "Input":
            shapes = [tuple(int(d) for d in s.dim) for s in param.input_param.shape]
            for i, top in enumerate(param.top):
                inputs[top] = shapes[i] if i < len(shapes) else (shapes[0] if shapes else ())
        elif param.type in DATA_LAYERS and not len(param.bottom):
            data_layers.append(Layer(param))
            for top in param.top:
                inputs[top] = ()
        else:
            layers.append(Layer(param, to_arrays(param.type, raw)))
    available = set(inputs)
    for layer in layers:
        missing = [b for b in layer.bottoms if b not in available]
        if missing:
            raise CaffeFormatError(f"bottom blob '{missing[0]}' is produced by no earlier layer or input "
                                   f"in the {phase} phase", path=path, layer=layer.name)
        available.update(layer.tops)
    for layer in layers:
        for spec in layer.param.param:
            if spec.name:
                raise CaffeFormatError("shared parameters (param { name }) are not supported",
                                       path=path, layer=layer.name)
    name = proto.name or "net"
    return PhaseNet(CaffeNet(name=name, inputs=inputs, layers=layers), data_layers)


# ----------------------------------------------------------------------------- initial weights


def _default(filler, type_: str, value: float):
    """A FillerParameter that is ``filler`` if the layer set one, else constant ``value``."""
    from convert.schema import _CLASSES

    if filler is not None:
        return filler
    return _CLASSES["FillerParameter"](type=type_, value=value)


def _axes_shape(shape: tuple[int, ...], axis: int, num_axes: int) -> tuple[int, ...]:
    axis = axis if axis >= 0 else axis + len(shape)
    end = len(shape) if num_axes == -1 else axis + num_axes
    return tuple(shape[axis:end])


def blob_plan(layer: Layer, bottoms: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], object]]:
    """(shape, FillerParameter) of each blob a weighted layer creates, as its ``LayerSetUp`` does;
    empty for layers without weights."""
    p = layer.param
    opt = lambda message, name: getattr(message, name) if message.HasField(name) else None  # noqa: E731
    if layer.type in ("Convolution", "Deconvolution"):
        from convert.shape_check import kernel_hw

        conv = p.convolution_param
        channels, groups, n = bottoms[0][1], conv.group, conv.num_output
        if channels % groups or n % groups:
            raise CaffeFormatError(f"channels {channels} and num_output {n} must divide by group {groups}",
                                   layer=layer.name)
        kernel = kernel_hw(conv)
        weight = ((n, channels // groups, *kernel) if layer.type == "Convolution"
                  else (channels, n // groups, *kernel))
        plan = [(weight, _default(opt(conv, "weight_filler"), "constant", 0.0))]
        if conv.bias_term:
            plan.append(((n,), _default(opt(conv, "bias_filler"), "constant", 0.0)))
        return plan
    if layer.type == "InnerProduct":
        ip = p.inner_product_param
        axis = ip.axis if ip.axis >= 0 else ip.axis + len(bottoms[0])
        k = math.prod(bottoms[0][axis:])
        weight = (k, ip.num_output) if ip.transpose else (ip.num_output, k)
        plan = [(weight, _default(opt(ip, "weight_filler"), "constant", 0.0))]
        if ip.bias_term:
            plan.append(((ip.num_output,), _default(opt(ip, "bias_filler"), "constant", 0.0)))
        return plan
    if layer.type == "Scale":
        sp = p.scale_param
        shape = _axes_shape(bottoms[0], sp.axis, sp.num_axes)
        plan = [] if len(bottoms) > 1 else [(shape, _default(opt(sp, "filler"), "constant", 1.0))]
        if sp.bias_term:
            bias_shape = bottoms[1] if len(bottoms) > 1 else shape
            plan.append((bias_shape, _default(opt(sp, "bias_filler"), "constant", 0.0)))
        return plan
    if layer.type == "Bias":
        if len(bottoms) > 1:
            return []
        bp = p.bias_param
        return [(_axes_shape(bottoms[0], bp.axis, bp.num_axes), _default(opt(bp, "filler"), "constant", 0.0))]
    if layer.type in ("BatchNorm", "PReLU"):
        raise CaffeFormatError(f"training a {layer.type} layer from scratch is not supported; give it "
                               "weights", layer=layer.name)
    return []


def _outputs(layer: Layer, module: torch.nn.Module, bottoms: list[Tensor]) -> list[Tensor]:
    """The layer's tops on zero inputs (only their shapes matter). Loss and accuracy layers give
    scalars and are not run."""
    if layer.type in SUMMARY_LAYERS:
        return [torch.zeros(()) for _ in layer.tops]
    result = module(*bottoms)
    return list(result) if getattr(module, "multi_output", False) else [result]


@torch.no_grad()
def initialize(net: CaffeNet, input_shapes: dict[str, tuple[int, ...]], generator: torch.Generator) -> list[str]:
    """Fill every weighted layer that has no blobs, walking the net on zero inputs of the given
    shapes (as Caffe's ``Net::Init`` sets each layer up from its bottoms' shapes).

    Returns the names of the layers it filled (the rest kept the blobs they came with).
    """
    missing = [name for name in net.inputs if name not in input_shapes]
    if missing:
        raise CaffeFormatError(f"no shape known for input blob(s) {missing}")
    last_use = {b: i for i, layer in enumerate(net.layers) for b in layer.bottoms}
    blobs = {name: torch.zeros(tuple(shape)) for name, shape in input_shapes.items()}
    filled = []
    for index, layer in enumerate(net.layers):
        bottoms = [blobs[b] for b in layer.bottoms]
        if not layer.blobs:
            plan = blob_plan(layer, [tuple(b.shape) for b in bottoms])
            if plan:
                layer.blobs = [fill(filler, shape, generator, layer=layer.name).numpy() for shape, filler in plan]
                filled.append(layer.name)
        module = build_layer(layer, net)
        try:
            tops = _outputs(layer, module, bottoms)
        except (RuntimeError, ValueError) as e:
            raise CaffeFormatError(f"cannot run on inputs {[tuple(b.shape) for b in bottoms]}: "
                                   f"{str(e).splitlines()[0]}", layer=layer.name) from None
        for name in layer.bottoms:
            if last_use.get(name) == index and name not in layer.tops:
                blobs.pop(name, None)
        blobs.update(zip(layer.tops, tops))
    return filled


# ----------------------------------------------------------------------------- solver view


def param_specs(net: CaffeNet) -> dict[str, ParamSpec]:
    """``<layer>.<blob>`` -> its ParamSpec; blobs without a ``param {}`` entry get 1 / 1. BatchNorm's
    statistics are never learned (Caffe forces their lr_mult to 0)."""
    specs = {}
    for layer in net.layers:
        names = blob_names(layer.type, len(layer.blobs), len(layer.bottoms))
        for i, name in enumerate(names):
            if layer.type == "BatchNorm":
                spec = ParamSpec(0.0, 0.0)
            elif i < len(layer.param.param):
                given = layer.param.param[i]
                spec = ParamSpec(float(given.lr_mult), float(given.decay_mult))
            else:
                spec = ParamSpec()
            specs[f"{layer.name}.{name}"] = spec
    return specs


def weighted_layers(net: CaffeNet) -> Iterator[Layer]:
    return (layer for layer in net.layers if layer.blobs)


def copy_blobs(net: CaffeNet, source: dict[str, list[np.ndarray]], *, path: str | None = None) -> list[str]:
    """Caffe's ``CopyTrainedLayersFrom``: every layer of ``net`` named in ``source`` takes its blobs
    (same count and shapes, else an error naming the layer); other layers keep theirs. Returns the
    names of the layers copied."""
    copied = []
    for layer in net.layers:
        if layer.name not in source or not source[layer.name]:
            continue
        theirs = source[layer.name]
        if len(theirs) != len(layer.blobs):
            raise CaffeFormatError(f"has {len(theirs)} blobs, the net's layer has {len(layer.blobs)}",
                                   path=path, layer=layer.name)
        for i, (ours, blob) in enumerate(zip(layer.blobs, theirs)):
            if tuple(np.shape(ours)) != tuple(np.shape(blob)):
                if np.size(ours) != np.size(blob):
                    raise CaffeFormatError(f"blob {i} has shape {tuple(np.shape(blob))}, the net expects "
                                           f"{tuple(np.shape(ours))}", path=path, layer=layer.name)
        layer.blobs = [np.array(blob, dtype=np.float32).reshape(np.shape(ours))
                       for ours, blob in zip(layer.blobs, theirs)]
        copied.append(layer.name)
    return copied

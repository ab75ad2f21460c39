"""Bring any parsed Caffe net into the one modern form the rest of the code reads.

Mirrors what Caffe's ``upgrade_proto.cpp`` does for the files the FCN zoo and its ancestors come in:
legacy V1 ``layers`` with enum types become ``layer`` entries with type strings, ``blobs_lr`` and
``weight_decay`` become ``param`` specs, 4-D legacy blob shapes get the layer's real shape, and every
way of declaring inputs (``input``/``input_dim``, ``input_shape``, Input layers, data layers) becomes
``CaffeNet.inputs``. Layers that only matter for training (losses, accuracy) are left out, as Caffe's
TEST phase rules and a deploy net would. ``CaffeNet.legacy_v1`` remembers the legacy form: its
offset-less ``CROP`` layers take coordinate-map offsets (``convert.crop_offsets``).
"""
from __future__ import annotations

import numpy as np

from convert.blobs import RawBlob
from convert.binary_reader import ParsedNet
from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer
from convert.schema import LayerParameter, NetParameter, V1LayerParameter

V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "CROP": "Crop",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col", "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct", "LRN": "LRN", "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN", "POOLING": "Pooling",
    "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# Layers that feed a net from a source: their tops become the converted net's inputs.
DATA_LAYERS = {"Data", "HDF5Data", "ImageData", "WindowData", "MemoryData", "DummyData", "Python"}
# Layers with no effect on inference outputs: dropped and listed in the summary.
TRAINING_ONLY_LAYERS = {
    "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
    "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "HDF5Output",
}
# Layer types whose legacy 4-D weight blobs already have their real shape.
FOUR_D_WEIGHTS = {"Convolution", "Deconvolution"}


def upgrade_v1_layer(v1: V1LayerParameter, path: str | None = None) -> LayerParameter:
    """One legacy V1 layer as a modern LayerParameter (blobs are handled separately)."""
    if v1.HasField("layer"):
        raise CaffeFormatError("V0 layer definitions (before 2014) are not supported", path=path, layer=v1.name)
    type_name = V1LayerParameter.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[v1.type].name
    if type_name not in V1_TYPE_NAMES:
        raise CaffeFormatError(f"legacy layer type {type_name} has no modern equivalent", path=path, layer=v1.name)
    layer = LayerParameter(name=v1.name, type=V1_TYPE_NAMES[type_name])
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.loss_weight.extend(v1.loss_weight)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    for i in range(max(len(v1.blobs_lr), len(v1.weight_decay), len(v1.param))):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    for descriptor, value in v1.ListFields():
        if descriptor.name.endswith("_param") and descriptor.name in LayerParameter.DESCRIPTOR.fields_by_name:
            getattr(layer, descriptor.name).CopyFrom(value)
    return layer


def modern_layers(parsed: ParsedNet, path: str | None = None) -> list[tuple[LayerParameter, list[RawBlob]]]:
    """All layers of a parsed file in modern form, each with its raw blobs."""
    if len(parsed.net.layer) and len(parsed.net.layers):
        raise CaffeFormatError("net mixes modern 'layer' and legacy 'layers' entries", path=path)
    if len(parsed.net.layers):
        return [(upgrade_v1_layer(v1, path), blobs) for v1, blobs in zip(parsed.net.layers, parsed.v1_blobs)]
    return [(layer, blobs) for layer, blobs in zip(parsed.net.layer, parsed.layer_blobs)]


def real_shape(layer_type: str, index: int, blob: RawBlob) -> tuple[int, ...]:
    """The shape a blob has in a modern net, undoing the legacy padding to 4-D."""
    if not blob.legacy or (layer_type in FOUR_D_WEIGHTS and index == 0):
        return blob.shape
    if layer_type == "InnerProduct" and index == 0:
        return blob.shape[2:]  # (1, 1, out, in)
    shape = list(blob.shape)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    return tuple(shape)


def to_arrays(layer_type: str, blobs: list[RawBlob]) -> list[np.ndarray]:
    return [blob.data.reshape(real_shape(layer_type, i, blob)) for i, blob in enumerate(blobs)]


TRAIN, TEST = 0, 1  # Caffe's Phase enum


def rule_matches(rule, phase: int, level: int = 0, stages: tuple[str, ...] = ()) -> bool:
    """Caffe's ``StateMeetsRule``: does a net state (phase, level, stages) satisfy one rule?"""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def in_phase(layer: LayerParameter, phase: int, level: int = 0, stages: tuple[str, ...] = ()) -> bool:
    """Caffe's ``FilterNet`` for one layer: kept if any include rule matches, or (without include
    rules) if no exclude rule matches."""
    if len(layer.include):
        return any(rule_matches(rule, phase, level, stages) for rule in layer.include)
    return not any(rule_matches(rule, phase, level, stages) for rule in layer.exclude)


def in_test_phase(layer: LayerParameter) -> bool:
    """Whether Caffe keeps this layer when it builds the net for TEST (as deploy and eval do)."""
    return in_phase(layer, TEST)


def declared_inputs(net: NetParameter, path: str | None = None) -> dict[str, tuple[int, ...]]:
    """Inputs declared in the net header: ``input`` with ``input_shape`` or legacy ``input_dim``."""
    inputs: dict[str, tuple[int, ...]] = {}
    dims = list(net.input_dim)
    if dims and len(dims) != 4 * len(net.input):
        raise CaffeFormatError(f"{len(net.input)} inputs but {len(dims)} input_dim values", path=path)
    for i, name in enumerate(net.input):
        if i < len(net.input_shape):
            inputs[name] = tuple(int(d) for d in net.input_shape[i].dim)
        elif dims:
            inputs[name] = tuple(dims[4 * i:4 * i + 4])
        else:
            inputs[name] = ()
    return inputs


def constant_dummy_data(param: LayerParameter) -> bool:
    """A DummyData layer whose every filler is constant (the default filler is): a layer of fixed
    tensors, which the runtime computes. Random fillers feed the net like other data layers."""
    return param.type == "DummyData" and all(
        filler.type == "constant" for filler in param.dummy_data_param.data_filler)


def build_net(name: str, header: NetParameter, layers: list[tuple[LayerParameter, list[np.ndarray]]],
              path: str | None = None) -> CaffeNet:
    """Assemble a CaffeNet: TEST-phase layers, inputs gathered from every form, training layers dropped."""
    inputs = declared_inputs(header, path)
    kept: list[Layer] = []
    dropped: list[str] = []
    for param, arrays in layers:
        if not in_test_phase(param):
            continue
        if param.type == "Input":
            shapes = [tuple(int(d) for d in s.dim) for s in param.input_param.shape]
            for i, top in enumerate(param.top):
                inputs[top] = shapes[i] if i < len(shapes) else (shapes[0] if shapes else ())
        elif param.type in DATA_LAYERS and not len(param.bottom) and not constant_dummy_data(param):
            for top in param.top:
                inputs.setdefault(top, ())
        elif param.type in TRAINING_ONLY_LAYERS:
            dropped.append(param.name)
        else:
            kept.append(Layer(param, arrays))
    available = set(inputs)
    for layer in kept:
        for bottom in layer.bottoms:
            if bottom not in available:
                raise CaffeFormatError(f"bottom blob '{bottom}' is produced by no earlier layer or input "
                                       "(wrong prototxt, or a truncated file)", path=path, layer=layer.name)
        available.update(layer.tops)
    consumed = {bottom for layer in kept for bottom in layer.bottoms}
    declared = set(declared_inputs(header, path))
    inputs = {k: v for k, v in inputs.items() if k in consumed or k in declared}
    return CaffeNet(name=name, inputs=inputs, layers=kept, dropped=dropped, legacy_v1=bool(len(header.layers)))

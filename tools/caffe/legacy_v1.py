"""Write a modern deploy net and its weights in the legacy V1 format (`layers`, enum types).

Old zoo files (the CVPR FCNs, CaffeNet, VGG16) look like this: `input:`/`input_dim:` header,
`layers { type: CONVOLUTION blobs_lr: 1 ... }`, and caffemodels whose blobs carry the legacy
num/channels/height/width shape padded to 4-D at the front (bias (1,1,1,N), InnerProduct
(1,1,O,I)). We build those messages with caffe_pb2 ourselves instead of keeping old files.

Types that master Caffe's V1 enum lacks (CROP = 40, only in longjon/caffe `future`) are written
with their raw enum number: as text `type: CROP`, and on the wire field 5 = 40, spliced in by hand
because the protobuf runtime refuses an enum value it does not know.
"""
from __future__ import annotations

import numpy as np
from caffe.proto import caffe_pb2
from google.protobuf import text_format

V1 = caffe_pb2.V1LayerParameter
V1_TYPES = {
    "AbsVal": V1.ABSVAL, "BNLL": V1.BNLL, "Concat": V1.CONCAT, "Convolution": V1.CONVOLUTION,
    "Deconvolution": V1.DECONVOLUTION, "Dropout": V1.DROPOUT, "Eltwise": V1.ELTWISE,
    "Exp": V1.EXP, "Flatten": V1.FLATTEN, "InnerProduct": V1.INNER_PRODUCT, "LRN": V1.LRN,
    "Pooling": V1.POOLING, "Power": V1.POWER, "ReLU": V1.RELU, "Sigmoid": V1.SIGMOID,
    "Softmax": V1.SOFTMAX, "Split": V1.SPLIT, "Slice": V1.SLICE, "TanH": V1.TANH,
    "Threshold": V1.THRESHOLD,
}
# Types only longjon/caffe `future` had in its V1 enum: modern type -> (enum name, number).
FUTURE_TYPES = {"Crop": ("CROP", 40)}
# LayerParameter fields that V1LayerParameter has under the same name and message type.
SHARED_PARAMS = ("concat_param", "convolution_param", "dropout_param", "eltwise_param",
                 "inner_product_param", "lrn_param", "pooling_param", "power_param",
                 "relu_param", "sigmoid_param", "slice_param", "softmax_param", "tanh_param",
                 "threshold_param", "exp_param")


def legacy_blob(array: np.ndarray) -> caffe_pb2.BlobProto:
    """BlobProto with the pre-2015 num/channels/height/width shape (front-padded to 4-D)."""
    shape = (1,) * (4 - array.ndim) + tuple(array.shape)
    assert len(shape) == 4, array.shape
    blob = caffe_pb2.BlobProto(num=shape[0], channels=shape[1], height=shape[2], width=shape[3])
    blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    return blob


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class V1Net:
    """A V1 net as (header, [(layer message, raw enum or None)]), serializable both ways."""

    def __init__(self, net: caffe_pb2.NetParameter, weights: dict[str, list[np.ndarray]],
                 allow_future: bool = False):
        self.name = net.name
        self.inputs: list[tuple[str, list[int]]] = []
        self.layers: list[tuple[caffe_pb2.V1LayerParameter, tuple[str, int] | None]] = []
        for layer in net.layer:
            if layer.type == "Input":
                for top, shape in zip(layer.top, layer.input_param.shape):
                    self.inputs.append((top, list(shape.dim)))
                continue
            self.layers.append(self._layer(layer, weights.get(layer.name, []), allow_future))

    @staticmethod
    def _layer(layer, blobs, allow_future):
        v1 = caffe_pb2.V1LayerParameter(name=layer.name)
        v1.bottom.extend(layer.bottom)
        v1.top.extend(layer.top)
        raw = None
        if layer.type in V1_TYPES:
            v1.type = V1_TYPES[layer.type]
        elif allow_future and layer.type in FUTURE_TYPES:
            raw = FUTURE_TYPES[layer.type]  # F's CropLayer takes no parameters
        else:
            raise ValueError(f"layer {layer.name}: type {layer.type} has no V1 enum")
        for spec in layer.param:
            v1.blobs_lr.append(spec.lr_mult)
            v1.weight_decay.append(spec.decay_mult)
        for field in SHARED_PARAMS:
            if layer.HasField(field):
                getattr(v1, field).CopyFrom(getattr(layer, field))
        v1.blobs.extend(legacy_blob(b) for b in blobs)
        return v1, raw

    def prototxt(self) -> str:
        """Deploy text: name, input/input_dim, then `layers { ... }` without blobs."""
        lines = [f'name: "{self.name}"']
        for top, dims in self.inputs:
            lines.append(f'input: "{top}"')
            lines += [f"input_dim: {d}" for d in dims]
        for layer, raw in self.layers:
            bare = caffe_pb2.V1LayerParameter()
            bare.CopyFrom(layer)
            bare.ClearField("blobs")
            body = text_format.MessageToString(bare).splitlines()
            if raw is not None:  # type (field 5) sits right after name (field 4)
                at = next(i for i, line in enumerate(body) if line.startswith("name:")) + 1
                body.insert(at, f"type: {raw[0]}")
            lines.append("layers {")
            lines += ["  " + line for line in body]
            lines.append("}")
        return "\n".join(lines) + "\n"

    def caffemodel(self) -> bytes:
        """Binary weights as an old Caffe saved them: name, `layers` with blobs, `input` names."""
        out = caffe_pb2.NetParameter(name=self.name).SerializeToString()
        for layer, raw in self.layers:
            if raw is None:
                body = layer.SerializeToString()
            else:  # fields 2-4, then field 5 (varint) = raw enum, then the rest, in field order
                head = caffe_pb2.V1LayerParameter(name=layer.name)
                head.bottom.extend(layer.bottom)
                head.top.extend(layer.top)
                rest = caffe_pb2.V1LayerParameter()
                rest.CopyFrom(layer)
                for f in ("name", "bottom", "top"):
                    rest.ClearField(f)
                body = head.SerializeToString() + b"\x28" + _varint(raw[1]) + rest.SerializeToString()
            out += b"\x12" + _varint(len(body)) + body  # NetParameter.layers = 2, length-delimited
        tail = caffe_pb2.NetParameter()
        tail.input.extend(top for top, _ in self.inputs)
        return out + tail.SerializeToString()

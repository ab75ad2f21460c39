"""The one in-memory form of a Caffe net that every reader produces and every consumer reads.

Readers (binary, text, HDF5, legacy V1) all end in a ``CaffeNet`` in the modern form: layers carry
their modern ``LayerParameter`` (without blob data) and their weights as numpy arrays of the layer's
real shape. Nothing downstream knows which file format the net came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convert.schema import LayerParameter


@dataclass
class Layer:
    """One Caffe layer: its parameters (``blobs`` cleared) and its weights, in Caffe's layout."""

    param: LayerParameter
    blobs: list[np.ndarray] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def type(self) -> str:
        return self.param.type

    @property
    def bottoms(self) -> list[str]:
        return list(self.param.bottom)

    @property
    def tops(self) -> list[str]:
        return list(self.param.top)


@dataclass
class CaffeNet:
    """A whole net: name, input blobs with their example shapes, and layers in execution order.

    An input's shape is the example shape its file declares (empty when a data layer gives none); it
    documents the net and never constrains what sizes the converted model accepts.
    """

    name: str
    inputs: dict[str, tuple[int, ...]]
    layers: list[Layer]
    dropped: list[str] = field(default_factory=list)  # loss/accuracy layers left out for inference
    legacy_v1: bool = False  # read from legacy V1 ``layers``: its Crop layers are the CVPR-era CROP

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def num_parameters(self) -> int:
        return sum(int(blob.size) for layer in self.layers for blob in layer.blobs)


# Names of each layer type's blobs, in Caffe's order. State-dict keys are "<layer>.<blob name>", the
# same for the generic runtime and the fcn_ref models; unknown types fall back to "blob<i>".
BLOB_NAMES: dict[str, tuple[str, ...]] = {
    "Convolution": ("weight", "bias"),
    "Deconvolution": ("weight", "bias"),
    "InnerProduct": ("weight", "bias"),
    "Scale": ("weight", "bias"),
    "Bias": ("bias",),
    "BatchNorm": ("mean", "variance", "scale_factor"),
    "PReLU": ("weight",),
    "Embed": ("weight", "bias"),
    "Parameter": ("value",),
    "LSTM": ("W_xc", "b_c", "W_hc"),
    "RNN": ("W_xh", "b_h", "W_hh", "W_ho", "b_o"),
}
# With a static input, recurrent layers hold one more weight, third in Caffe's order.
STATIC_INPUT_BLOB = {"LSTM": "W_xc_static", "RNN": "W_xh_static"}


def blob_names(layer_type: str, count: int, bottoms: int = 1) -> list[str]:
    """State-dict names for a layer's ``count`` blobs.

    A Scale with two bottoms takes its scale from the second bottom, so its one blob is the bias;
    an RNN or LSTM with a static input has one more blob.
    """
    known = ("bias",) if layer_type == "Scale" and bottoms > 1 else BLOB_NAMES.get(layer_type, ())
    if layer_type in STATIC_INPUT_BLOB and count == len(known) + 1:
        known = (*known[:2], STATIC_INPUT_BLOB[layer_type], *known[2:])
    return [known[i] if i < len(known) else f"blob{i}" for i in range(count)]

"""A converted net as ONNX, for ONNX Runtime, TensorRT, OpenCV dnn and the like.

The generic runtime is traced with plain operators (convolution, pooling, transposed convolution,
slicing): the CPU-only fast paths stay out of traced graphs (``convert.fastpath``). Height and width of every
image input are dynamic, and the crops follow them: a Crop slices ``[offset, offset + size)`` with
the size read from its reference blob at run time, the offset being a constant of the geometry.
What the converted file says about the net (name, architecture, source) goes into the model's
``metadata_props``. Needs the optional ``onnx`` package (``pip install 'fcn-ref[onnx]'``).
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

from convert.errors import CaffeFormatError
from convert.runtime import CaffeModule

OPSET = 17
# The TorchScript-based exporter (``dynamo=False``): about 1 s for a reduced FCN where the
# torch.export-based one takes 15-20 s, with the same graph and numbers; torch deprecates it but
# still ships it. ``torch.export.export`` of the same modules works too (tests/fcn_ref).
EXAMPLE_SIZE = (67, 59)  # traced at an odd size; any other works at run time


class _Outputs(nn.Module):
    """The net with positional inputs and a tuple of outputs, as tracing wants."""

    def __init__(self, net: CaffeModule) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        blobs = self.net(*inputs)
        return tuple(blobs[name] for name in self.net.output_names)


def example_inputs(net: CaffeModule, size: Sequence[int] | None = None) -> tuple[Tensor, ...]:
    """One zero tensor per input: its declared shape, with height and width ``size`` if given."""
    examples = []
    for name in net.input_names:
        shape = list(net.input_shapes.get(name) or ())
        if len(shape) != 4:
            raise CaffeFormatError(f"input '{name}' has no declared 4-D shape {tuple(shape)}; ONNX export "
                                   f"needs one (N, C, H, W)", layer=name)
        if size is not None:
            shape[2:] = size
        examples.append(torch.zeros(shape))
    return tuple(examples)


def write_onnx(net: CaffeModule, path: str | os.PathLike, metadata: dict, *,
               size: Sequence[int] | None = EXAMPLE_SIZE, opset: int = OPSET) -> None:
    """Trace ``net`` and write ONNX to ``path`` with dynamic batch, height and width."""
    try:
        import onnx
    except ImportError:
        raise CaffeFormatError("ONNX export needs the onnx package (pip install 'fcn-ref[onnx]')",
                               path=str(path)) from None
    examples = example_inputs(net, size)
    dynamic = {name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in net.input_names}
    dynamic.update({name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in net.output_names})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # size checks hold for any size
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: see OPSET
        warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # Slice with dynamic ends
        torch.onnx.export(_Outputs(net).eval(), examples, str(path), input_names=net.input_names,
                          output_names=net.output_names, dynamic_axes=dynamic, opset_version=opset,
                          dynamo=False)
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    model.producer_name = "fcn-ref"
    onnx.save(model, str(path))


def check_onnx(path: str | os.PathLike) -> None:
    """An ONNX file just written must load and pass ONNX's own model checker."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except (onnx.checker.ValidationError, OSError, ValueError) as e:
        raise CaffeFormatError(f"the ONNX file is not valid: {e}".splitlines()[0], path=str(path)) from None

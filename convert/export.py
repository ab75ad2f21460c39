"""One function and one command for every output format: ``export(model, out, format=...)``.

``model`` is a Caffe model (``.caffemodel``, ``.caffemodel.h5`` with its prototxt, a V1 file) or a
file ``python -m convert`` already wrote (``.pth`` or ``.safetensors``). Formats (``FORMATS``):

- ``pth``: the converted file (``convert.checkpoint``), ``torch.load(weights_only=True)`` opens it;
- ``safetensors``: the same tensors and, as metadata, the rest (``convert.safetensors_file``);
- ``onnx``: the net traced with dynamic height and width (``convert.onnx_export``).

Writing goes through ``convert.convert_file``: output checked first, a temporary file beside it,
loaded back, renamed only when proven.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from convert.checkpoint import Checkpoint, is_safetensors, payload_of

FORMATS = {"pth": ".pth", "safetensors": ".safetensors", "onnx": ".onnx"}  # format -> file suffix
CAFFE_SUFFIXES = (".h5", ".caffemodel", ".prototxt", ".binaryproto")


def default_output(model: Path, format: str = "pth") -> Path:
    """``x.caffemodel`` / ``x.caffemodel.h5`` / ``x.prototxt`` / ``x.pth`` -> ``x.<format>`` beside it."""
    name = model.name
    for suffix in CAFFE_SUFFIXES + tuple(FORMATS.values()):
        name = name.removesuffix(suffix)
    return model.with_name(name + FORMATS[format])


def is_converted(path: Path) -> bool:
    """Whether ``path`` is a file this project wrote (a torch zip archive or safetensors)."""
    return path.is_file() and (zipfile.is_zipfile(path) or is_safetensors(path))


def write_format(checkpoint: Checkpoint, path: Path, format: str) -> None:
    """Write ``checkpoint`` to ``path`` (an existing temporary file) as ``format``."""
    if format == "pth":
        import torch

        torch.save(payload_of(checkpoint), path)
    elif format == "safetensors":
        from convert.safetensors_file import write_payload

        write_payload(payload_of(checkpoint), path)
    else:
        from convert.onnx_export import write_onnx
        from convert.runtime import CaffeModule

        metadata = {"format": payload_of(checkpoint)["format"], "name": checkpoint.net.name,
                    "architecture": checkpoint.architecture, "source": checkpoint.source}
        write_onnx(CaffeModule(checkpoint.net).eval(), path, metadata)


def export(model: str | os.PathLike | None, out: str | os.PathLike | None = None, *, format: str | None = None,
           prototxt: str | os.PathLike | None = None, force: bool = False, crop_offsets: str = "caffe") -> Path:
    """Convert or re-export ``model`` to ``out`` as ``format`` (default: from ``out``'s suffix, else
    ``pth``); returns the path written. ``crop_offsets`` as ``python -m convert --crop-offsets``."""
    from convert.converter import convert_file

    if format is None:
        suffix = Path(out).suffix if out is not None else ""
        format = next((f for f, s in FORMATS.items() if s == suffix), "pth")
    return convert_file(model, prototxt, out, force=force, crop_offsets=crop_offsets, format=format).output

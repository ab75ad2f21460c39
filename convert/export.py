"""One function and one command for every output format: ``export(model, out, format=...)``.

``model`` is a Caffe model (``.caffemodel``, ``.caffemodel.h5`` with its prototxt, a V1 file) or a
file ``python -m convert`` already wrote (``.pth`` or ``.safetensors``). Formats (``FORMATS``):

- ``pth``: the converted file (``convert.checkpoint``), ``torch.load(weights_only=True)`` opens it;
- ``safetensors``: the same tensors and, as metadata, the rest (``convert.safetensors_file``);
- ``onnx``: the net traced with dynamic height and width (``convert.onnx_export``).

Every format is written to a temporary name beside the output and renamed only when complete.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from convert.checkpoint import Checkpoint, atomic_output, is_safetensors, payload_of, read_checkpoint
from convert.errors import CaffeFormatError

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


def read_source(model: Path | None, prototxt: Path | None = None, crop_offsets: str = "caffe") -> Checkpoint:
    """The net and source facts of a Caffe model (``crop_offsets``: the policy for Crop layers that
    write none, ``convert.crop_offsets``) or of an already converted file."""
    if model is not None and prototxt is None and is_converted(Path(model)):
        return read_checkpoint(model)
    from convert.cli import read_caffe  # the Caffe side of the command (hashing, support check)

    return read_caffe(model, prototxt, crop_offsets)


def write(checkpoint: Checkpoint, out: str | os.PathLike, format: str = "pth", force: bool = False) -> Path:
    """Write ``checkpoint`` as ``format`` to ``out`` (atomically; an existing file needs ``force``)."""
    if format not in FORMATS:
        raise CaffeFormatError(f"unknown format '{format}' (one of {', '.join(FORMATS)})", path=str(out))
    out = Path(out)
    if out.exists() and not force:
        raise CaffeFormatError("output exists; pass --force to overwrite it", path=str(out))
    with atomic_output(out) as tmp:
        if format == "pth":
            import torch

            torch.save(payload_of(checkpoint), tmp)
        elif format == "safetensors":
            from convert.safetensors_file import write_payload

            write_payload(payload_of(checkpoint), tmp)
        else:
            from convert.onnx_export import write_onnx
            from convert.runtime import CaffeModule

            metadata = {"format": payload_of(checkpoint)["format"], "name": checkpoint.net.name,
                        "architecture": checkpoint.architecture, "source": checkpoint.source}
            write_onnx(CaffeModule(checkpoint.net).eval(), tmp, metadata)
    return out


def export(model: str | os.PathLike, out: str | os.PathLike | None = None, *, format: str | None = None,
           prototxt: str | os.PathLike | None = None, force: bool = False, crop_offsets: str = "caffe") -> Path:
    """Convert or re-export ``model`` to ``out`` as ``format`` (default: from ``out``'s suffix, else
    ``pth``); returns the path written. ``crop_offsets`` as ``python -m convert --crop-offsets``."""
    model_path = Path(model) if model is not None else None
    if format is None:
        suffix = Path(out).suffix if out is not None else ""
        format = next((f for f, s in FORMATS.items() if s == suffix), "pth")
    if format not in FORMATS:
        raise CaffeFormatError(f"unknown format '{format}' (one of {', '.join(FORMATS)})")
    out = Path(out) if out is not None else default_output(model_path or Path(prototxt), format)
    if out.exists() and not force:
        raise CaffeFormatError("output exists; pass --force to overwrite it", path=str(out))
    checkpoint = read_source(model_path, Path(prototxt) if prototxt is not None else None, crop_offsets)
    return write(checkpoint, out, format, force)

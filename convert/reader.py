"""``read_net``: any Caffe model file (or pair of files) in, one checked ``CaffeNet`` out.

Structure and weights are merged by layer name, as Caffe's ``CopyTrainedLayersFrom`` does: a
caffemodel alone is enough when its layers carry their parameters (every berkeleyvision model does);
a prototxt, when given, defines the structure and the weights file only supplies blobs.
"""
from __future__ import annotations

import mmap
import os
import warnings
from pathlib import Path

import numpy as np
from google.protobuf import message, text_format

from convert import fork_fields, wire
from convert.binary_reader import ParsedNet, parsed_from_message, read_binary
from convert.errors import CaffeFormatError
from convert.net import CaffeNet
from convert.schema import NetParameter
from convert.shape_check import check_blobs
from convert.upgrade import build_net, modern_layers, to_arrays

_MAGIC = {
    b"\x89HDF\r\n\x1a\n": "hdf5",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PK\x03\x04": "a zip archive (a PyTorch checkpoint?)",
    b"\x1f\x8b": "a gzip archive",
    b"\x80\x02": "a Python pickle",
}


def sniff(path: Path) -> str:
    """Classify a file by its first bytes: 'hdf5', 'text', 'binary', or a description of what it is."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise CaffeFormatError("file is empty", path=str(path))
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "text" if printable >= 0.98 * len(text) else "binary"


def _open(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CaffeFormatError("no such file", path=str(p))
    if p.is_dir():
        raise CaffeFormatError("is a directory, not a model file", path=str(p))
    return p


def read_text(path: str | os.PathLike) -> ParsedNet:
    """Parse a text prototxt (modern or legacy; blobs, if it has any, included)."""
    p = _open(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaffeFormatError("not a text prototxt (not UTF-8 text)", path=str(p)) from None
    try:
        net = text_format.Parse(text, NetParameter())
    except text_format.ParseError as e:
        raise CaffeFormatError(f"prototxt syntax error at line {e}", path=str(p)) from None
    if not len(net.layer) and not len(net.layers):
        raise CaffeFormatError("prototxt defines no layers", path=str(p))
    for layer, problem in fork_fields.to_bvlc(net):
        raise CaffeFormatError(problem, path=str(p), layer=layer)
    return parsed_from_message(net)


def read_binary_file(path: Path) -> ParsedNet:
    """Parse a binary caffemodel through a read-only memory map (weights stay views of the map)."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        parsed = read_binary(buf)
    except wire.WireError as e:
        raise CaffeFormatError(f"not a Caffe model, or truncated: {e}", path=str(path)) from None
    except (message.DecodeError, ValueError) as e:
        raise CaffeFormatError(f"not a Caffe model, or truncated: {e}", path=str(path)) from None
    if not len(parsed.net.layer) and not len(parsed.net.layers):
        raise CaffeFormatError("not a Caffe model: no layers found", path=str(path))
    return parsed


def read_hdf5_blobs(path: Path) -> dict[str, list[np.ndarray]]:
    """Blobs from Caffe's HDF5 weights (``Net::ToHDF5``: datasets ``data/<layer>/<i>``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise CaffeFormatError("HDF5 file has no 'data' group: not Caffe HDF5 weights", path=str(path))
            blobs = {}
            for name, group in f["data"].items():
                keys = sorted(group.keys(), key=int)
                blobs[name] = [np.asarray(group[k][()], dtype=np.float32) for k in keys]
            return blobs
    except OSError as e:
        raise CaffeFormatError(f"unreadable HDF5 file: {e}", path=str(path)) from None


def _blobs_by_name(parsed: ParsedNet, path: Path) -> dict[str, tuple[str, list]]:
    found = {}
    for param, raw in modern_layers(parsed, str(path)):
        if raw:
            found.setdefault(param.name, (param.type, raw))
    return found


def warn_fork_ambiguity(parsed: ParsedNet, path: Path) -> None:
    """One warning for a caffemodel read without its prototxt whose stored fields a Caffe fork
    reads differently (``convert.fork_fields``); we follow BVLC, a prototxt would decide."""
    lines = fork_fields.ambiguous_layers(parsed.net)
    if lines:
        warnings.warn(f"{path}: {'; '.join(lines)}. Following BVLC Caffe; pass the net's prototxt "
                      "(--prototxt) to decide", stacklevel=3)


def read_net(weights: str | os.PathLike | None = None, prototxt: str | os.PathLike | None = None) -> CaffeNet:
    """Read a Caffe net: binary/HDF5 ``weights`` and/or a text ``prototxt``, merged by layer name."""
    if weights is None and prototxt is None:
        raise CaffeFormatError("give a caffemodel, a prototxt, or both")
    structure_path = _open(prototxt) if prototxt is not None else None
    weights_path = _open(weights) if weights is not None else None
    if structure_path is not None:
        kind = sniff(structure_path)
        if kind != "text":
            raise CaffeFormatError(f"expected a text prototxt, found {kind}", path=str(structure_path))
        structure = read_text(structure_path)
    weight_blobs: dict[str, list[np.ndarray]] | None = None
    if weights_path is not None:
        kind = sniff(weights_path)
        if kind == "text":
            raise CaffeFormatError("this is a text prototxt, not a binary caffemodel; pass it with --prototxt",
                                   path=str(weights_path))
        if kind == "hdf5":
            if structure_path is None:
                raise CaffeFormatError("HDF5 weights carry no structure; give the net's prototxt too",
                                       path=str(weights_path))
            weight_blobs = read_hdf5_blobs(weights_path)
        elif kind == "binary":
            parsed = read_binary_file(weights_path)
            if structure_path is None:
                structure = parsed
                warn_fork_ambiguity(parsed, weights_path)
            else:
                weight_blobs = {name: to_arrays(type_, raw)
                                for name, (type_, raw) in _blobs_by_name(parsed, weights_path).items()}
        else:
            raise CaffeFormatError(f"not a Caffe model: this is {kind}", path=str(weights_path))
    source = structure_path if structure_path is not None else weights_path
    layers = []
    for param, raw in modern_layers(structure, str(source)):
        arrays = to_arrays(param.type, raw)
        if weight_blobs is not None and param.name in weight_blobs:
            arrays = weight_blobs[param.name]
        layers.append((param, arrays))
    net = build_net(structure.net.name or Path(source).stem, structure.net, layers, str(source))
    for layer in net.layers:
        check_blobs(layer, str(weights_path or source))
    return net

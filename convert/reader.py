"""``read_net``: any Caffe model file (or pair of files) in, one checked ``CaffeNet`` out.

Structure and weights are merged by layer name, as Caffe's ``CopyTrainedLayersFrom`` does: a
caffemodel alone is enough when its layers carry their parameters (every berkeleyvision model does);
a prototxt, when given, defines the structure and the weights file only supplies blobs.
"""
from __future__ import annotations

import mmap
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from google.protobuf import message, text_format

from convert import fork_fields, wire
from convert.binary_reader import ParsedNet, parsed_from_message, read_binary
from convert.errors import CaffeFormatError
from convert.files import regular_file
from convert.net import CaffeNet
from convert.schema import NetParameter
from convert.param_check import check_params, check_unique_weighted_names
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


MIN_MODEL_BYTES = 8  # below this no file is a Caffe net worth reading (an empty net is 0 bytes)
# Keys that start a prototxt statement: text without any of them is some other text file.
_PROTOTXT_KEY = re.compile(r"^\s*(layers?|name|input|input_dim|input_shape|force_backward|state|debug_info)\s*[:{]",
                           re.MULTILINE)


def sniff(path: Path) -> str:
    """Classify a file by its first bytes: 'hdf5', 'text', 'binary', or a description of what it is."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise CaffeFormatError("file is empty", path=str(path))
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if len(head) < MIN_MODEL_BYTES:
        raise CaffeFormatError(f"file is {len(head)} bytes: too small to be a Caffe model", path=str(path))
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "text" if printable >= 0.98 * len(text) else "binary"


def looks_like_prototxt(path: Path) -> bool:
    """Whether a text file starts like a Caffe net definition (a README or a CSV does not)."""
    with open(path, "rb") as f:
        head = f.read(65536).decode("utf-8", errors="replace")
    return _PROTOTXT_KEY.search(head) is not None


def read_text(path: str | os.PathLike) -> ParsedNet:
    """Parse a text prototxt (modern or legacy; blobs, if it has any, included)."""
    p = regular_file(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaffeFormatError("not a text prototxt (not UTF-8 text)", path=str(p)) from None
    try:
        net = text_format.Parse(text, NetParameter())
    except text_format.ParseError as e:
        raise CaffeFormatError(f"prototxt syntax error at line {e}".splitlines()[0], path=str(p)) from None
    if not len(net.layer) and not len(net.layers):
        raise CaffeFormatError("prototxt defines no layers", path=str(p))
    for layer, problem in fork_fields.to_bvlc(net):
        raise CaffeFormatError(problem, path=str(p), layer=layer)
    try:
        return parsed_from_message(net)
    except wire.WireError as e:
        raise CaffeFormatError(f"bad blob in prototxt: {e}", path=str(p)) from None


def read_binary_file(path: Path) -> ParsedNet:
    """Parse a binary caffemodel through a read-only memory map (weights stay views of the map)."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        parsed = read_binary(buf)
    except (wire.WireError, message.DecodeError, ValueError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CaffeFormatError(f"not a Caffe model, or truncated: {reason}", path=str(path)) from None
    if not len(parsed.net.layer) and not len(parsed.net.layers):
        raise CaffeFormatError("not a Caffe model: no layers found", path=str(path))
    bad = _non_utf8_field(parsed.net)
    if bad:
        raise CaffeFormatError(f"text field '{bad}' is not valid UTF-8 (damaged file?)", path=str(path))
    return parsed


def _non_utf8_field(msg: message.Message) -> str | None:
    """The name of a string field holding bytes that are not UTF-8 (protobuf then hands back bytes)."""
    for descriptor, value in msg.ListFields():
        repeated = getattr(descriptor, "is_repeated", None)  # protobuf >= 5.29; ``label`` before
        if repeated is None:
            repeated = descriptor.label == descriptor.LABEL_REPEATED
        values = value if repeated else [value]
        for item in values:
            if descriptor.type == descriptor.TYPE_STRING and not isinstance(item, str):
                return descriptor.name
            if descriptor.type == descriptor.TYPE_MESSAGE:
                found = _non_utf8_field(item)
                if found:
                    return f"{descriptor.name}.{found}"
    return None


HDF5_EXPANSION = 16  # Net::ToHDF5 writes uncompressed data: a blob cannot be much bigger than the file


def read_hdf5_blobs(path: Path) -> dict[str, list[np.ndarray]]:
    """Blobs from Caffe's HDF5 weights (``Net::ToHDF5``: datasets ``data/<layer>/<i>``)."""
    import h5py

    budget = HDF5_EXPANSION * path.stat().st_size + 2**20
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f or not isinstance(f["data"], h5py.Group):
                raise CaffeFormatError("HDF5 file has no 'data' group: not Caffe HDF5 weights", path=str(path))
            blobs = {}
            for name, group in f["data"].items():
                blobs[name] = _hdf5_layer_blobs(name, group, path, budget)
                budget -= sum(b.nbytes for b in blobs[name])
            return blobs
    except CaffeFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:  # h5py's errors on damaged files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CaffeFormatError(f"unreadable HDF5 file: {reason}", path=str(path)) from None


def _hdf5_layer_blobs(name: str, group, path: Path, budget: int) -> list[np.ndarray]:
    """One layer's datasets ``0, 1, ...`` as float32 arrays, each checked before it is read."""
    import h5py

    if not isinstance(group, h5py.Group):
        raise CaffeFormatError("HDF5 weights: data/<layer> must be a group of datasets", path=str(path), layer=name)
    if set(group.keys()) != {str(i) for i in range(len(group))}:
        raise CaffeFormatError(f"HDF5 weights: blobs must be named 0, 1, ..., found {sorted(group.keys())[:4]}",
                               path=str(path), layer=name)
    arrays = []
    for i in range(len(group)):
        dataset = group[str(i)]
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
            raise CaffeFormatError(f"HDF5 weights: blob {i} is not a numeric dataset", path=str(path), layer=name)
        shape = tuple(int(d) for d in dataset.shape)
        if any(d < 1 for d in shape):
            raise CaffeFormatError(f"HDF5 weights: blob {i} has an empty shape {shape}", path=str(path), layer=name)
        nbytes = 4 * int(np.prod(shape, dtype=object))
        if nbytes > budget:
            raise CaffeFormatError(f"HDF5 weights: blob {i} of shape {shape} is larger than the file could hold",
                                   path=str(path), layer=name)
        budget -= nbytes
        arrays.append(np.asarray(dataset[()], dtype=np.float32).reshape(shape))
    return arrays


def _blobs_by_name(parsed: ParsedNet, path: Path) -> dict[str, tuple[str, list]]:
    """Blobs of a weights file by layer name; two layers of one name both carrying blobs are refused
    (Caffe would copy both into one layer, the last winning)."""
    found = {}
    for param, raw in modern_layers(parsed, str(path)):
        if raw:
            if param.name in found:
                raise CaffeFormatError("two layers of this name carry weights in the weights file",
                                       path=str(path), layer=param.name)
            found[param.name] = (param.type, raw)
    return found


def warn_fork_ambiguity(parsed: ParsedNet, path: Path) -> None:
    """One warning for a caffemodel read without its prototxt whose stored fields a Caffe fork
    reads differently (``convert.fork_fields``); we follow BVLC, a prototxt would decide."""
    lines = fork_fields.ambiguous_layers(parsed.net)
    if lines:
        warnings.warn(f"{path}: {'; '.join(lines)}. Following BVLC Caffe; pass the net's prototxt "
                      "(--prototxt) to decide", stacklevel=3)


def _arrays(type_: str, raw: list, path: Path, layer: str) -> list[np.ndarray]:
    try:
        return to_arrays(type_, raw)
    except ValueError as e:  # a legacy 4-D shape that does not reduce to the layer's
        raise CaffeFormatError(f"blob shape does not fit the layer: {e}", path=str(path), layer=layer) from None


@contextmanager
def mapped_net(weights: str | os.PathLike | None = None,
               prototxt: str | os.PathLike | None = None) -> Iterator[CaffeNet]:
    """``read_net`` whose blobs may be read-only views of the weights file's memory map (no copy).

    The views are valid only inside the ``with`` block; on leaving it the net's blobs are dropped,
    so that nothing reads the map once the caller may rewrite or delete the file.
    """
    net = _read(weights, prototxt)
    try:
        yield net
    finally:
        for layer in net.layers:
            layer.blobs = []


def read_net(weights: str | os.PathLike | None = None, prototxt: str | os.PathLike | None = None) -> CaffeNet:
    """Read a Caffe net: binary/HDF5 ``weights`` and/or a text ``prototxt``, merged by layer name.

    The blobs are the caller's own arrays (copied out of the file's memory map), so the file may be
    rewritten or deleted as soon as this returns.
    """
    with mapped_net(weights, prototxt) as net:
        blobs = [[np.array(b, dtype=np.float32, copy=True) for b in layer.blobs] for layer in net.layers]
    for layer, arrays in zip(net.layers, blobs):
        layer.blobs = arrays
    return net


def _read(weights: str | os.PathLike | None, prototxt: str | os.PathLike | None) -> CaffeNet:
    if weights is None and prototxt is None:
        raise CaffeFormatError("give a caffemodel, a prototxt, or both")
    structure_path = regular_file(prototxt) if prototxt is not None else None
    weights_path = regular_file(weights) if weights is not None else None
    if structure_path is not None:
        kind = sniff(structure_path)
        if kind != "text":
            raise CaffeFormatError(f"expected a text prototxt, found {kind}", path=str(structure_path))
        structure = read_text(structure_path)
    weight_blobs: dict[str, list[np.ndarray]] | None = None
    if weights_path is not None:
        kind = sniff(weights_path)
        if kind == "text":
            if looks_like_prototxt(weights_path):
                raise CaffeFormatError("this is a text prototxt, not a binary caffemodel; pass it with --prototxt",
                                       path=str(weights_path))
            raise CaffeFormatError("this is a text file, not a Caffe model (.caffemodel or .caffemodel.h5)",
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
                weight_blobs = {name: _arrays(type_, raw, weights_path, name)
                                for name, (type_, raw) in _blobs_by_name(parsed, weights_path).items()}
        else:
            raise CaffeFormatError(f"not a Caffe model: this is {kind}", path=str(weights_path))
    source = structure_path if structure_path is not None else weights_path
    layers = []
    for param, raw in modern_layers(structure, str(source)):
        arrays = _arrays(param.type, raw, source, param.name)
        if weight_blobs is not None and param.name in weight_blobs:
            arrays = weight_blobs[param.name]
        layers.append((param, arrays))
    net = build_net(structure.net.name or Path(source).stem, structure.net, layers, str(source))
    blob_source = str(weights_path or source)
    for layer in net.layers:
        check_params(layer, str(source))  # parameters come from the structure's file
        check_blobs(layer, blob_source)
    check_unique_weighted_names(net, blob_source)
    return net

"""Blob data as numpy arrays, from protobuf messages or from spans of a mapped file."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convert import wire


@dataclass
class RawBlob:
    """A blob's values (flat, float32, possibly a read-only view of the file) and its stored shape.

    ``legacy`` is true when the shape came from the old num/channels/height/width fields, which pad
    every blob to 4-D; the upgrade step reshapes those to the layer's real shape.
    """

    data: np.ndarray
    shape: tuple[int, ...]
    legacy: bool

    def array(self) -> np.ndarray:
        return self.data.reshape(self.shape)


MAX_DIM = 2**31 - 1  # Caffe's blob axes are int32 counts


def _signed64(value: int) -> int:
    """A varint as the int64 protobuf would read (BlobShape.dim is int64)."""
    value &= 2**64 - 1
    return value - 2**64 if value >= 2**63 else value


def _check_count(data: np.ndarray, shape: tuple[int, ...]) -> None:
    """Every dim positive and their product (exact, no overflow) equal to the values present."""
    bad = [d for d in shape if not 1 <= d <= MAX_DIM]
    if bad:
        raise wire.WireError(f"blob shape {shape} has dimension {bad[0]} (each must be 1 .. {MAX_DIM})")
    expected = math.prod(shape)
    if data.size != expected:
        raise wire.WireError(f"blob holds {data.size} values but its shape {shape} needs {expected}")


def blob_from_proto(proto) -> RawBlob:
    """Convert a parsed ``BlobProto`` (text prototxts, tests) to a RawBlob."""
    legacy = any(proto.HasField(name) for name in ("num", "channels", "height", "width"))
    if legacy:
        shape = (proto.num, proto.channels, proto.height, proto.width)
    else:
        shape = tuple(int(d) for d in proto.shape.dim)
    if len(proto.double_data):
        data = np.asarray(proto.double_data, dtype=np.float64).astype(np.float32)  # Caffe prefers it
    else:
        data = np.asarray(proto.data, dtype=np.float32)
    _check_count(data, shape)
    return RawBlob(data, shape, legacy)


def _unpacked_run(buf, pos: int, end: int, tag: int, width: int, dtype: str) -> tuple[np.ndarray, int]:
    """Read consecutive unpacked fixed-width values with the same one-byte tag, vectorised."""
    stride = width + 1
    raw = np.frombuffer(buf, dtype=np.uint8, count=end - pos, offset=pos)
    count = len(raw) // stride
    tags = raw[: count * stride : stride]
    mismatch = np.flatnonzero(tags != tag)
    count = int(mismatch[0]) if len(mismatch) else count
    records = raw[: count * stride].reshape(count, stride)[:, 1:]
    values = np.ascontiguousarray(records).view(dtype).reshape(-1)
    return values, pos + count * stride


def blob_from_span(buf, start: int, end: int) -> RawBlob:
    """Read a BlobProto stored in ``buf[start:end]``; packed float data is viewed, not copied."""
    legacy_dims = {1: 0, 2: 0, 3: 0, 4: 0}
    legacy = False
    shape: tuple[int, ...] = ()
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    pos = start
    while pos < end:
        field = wire.read_field(buf, pos, end)
        pos = field.end
        number, wire_type = field.number, field.wire_type
        if number in legacy_dims and wire_type == wire.VARINT:
            legacy = True
            legacy_dims[number] = _signed64(field.value)
        elif number in (5, 8) and wire_type == wire.LENGTH_DELIMITED:
            width, dtype, out = (4, "<f4", floats) if number == 5 else (8, "<f8", doubles)
            length = field.end - field.start
            if length % width:
                raise wire.WireError(f"packed data of {length} bytes is not a multiple of {width}")
            out.append(np.frombuffer(buf, dtype=dtype, count=length // width, offset=field.start))
        elif (number, wire_type) in ((5, wire.FIXED32), (8, wire.FIXED64)):
            # Unpacked repeated values (legal, though Caffe never writes them): read the whole run.
            width, dtype, out = (4, "<f4", floats) if number == 5 else (8, "<f8", doubles)
            values, pos = _unpacked_run(buf, field.tag_start, end, buf[field.tag_start], width, dtype)
            out.append(values)
        elif number == 7 and wire_type == wire.LENGTH_DELIMITED:
            shape = tuple(_shape_dims(buf, field.start, field.end))
    if legacy:
        shape = tuple(legacy_dims[i] for i in (1, 2, 3, 4))
    if doubles:  # Caffe prefers double_data when a blob has it
        data = np.concatenate(doubles).astype(np.float32)
    elif len(floats) == 1:
        data = floats[0]
    elif floats:
        data = np.concatenate(floats).astype(np.float32)
    else:
        data = np.zeros(0, dtype=np.float32)
    _check_count(data, shape)
    return RawBlob(data, shape, legacy)


def _shape_dims(buf, start: int, end: int) -> list[int]:
    dims: list[int] = []
    for field in wire.iter_fields(buf, start, end):
        if field.number != 1:
            continue
        if field.wire_type == wire.LENGTH_DELIMITED:
            dims.extend(wire.decode_packed_varints(buf, field.start, field.end))
        elif field.wire_type == wire.VARINT:
            dims.append(field.value)
    return [_signed64(d) for d in dims]

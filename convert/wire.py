"""A minimal protobuf wire-format scanner, so big caffemodels are read without copying their weights.

A generic protobuf parse of a 500 MB caffemodel turns every float into a Python-visible repeated field
and then into numpy: seconds and three times the file in memory. Caffe's weights sit in packed float
fields, so we only walk the tags: small messages go to protobuf, and packed payloads are reported as
(offset, length) spans that numpy can view in place.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(Exception):
    """The bytes are not valid protobuf wire format (the reader turns this into CaffeFormatError)."""


class Field(NamedTuple):
    """One field occurrence: its number, wire type, and where its bytes lie in the buffer.

    For a length-delimited field ``start:end`` is the payload; for a varint ``value`` holds it and
    ``start == end`` is the position after it; for fixed-width fields ``start:end`` is the raw bytes. ``tag_start`` is where the field's tag
    begins, so that a caller can copy the whole field verbatim.
    """

    number: int
    wire_type: int
    tag_start: int
    start: int
    end: int
    value: int


def read_varint(buf, pos: int, limit: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    while True:
        if pos >= limit:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def read_field(buf, pos: int, end: int) -> Field:
    """Read the field whose tag starts at ``pos``; its ``end`` is where the next field starts."""
    tag_start = pos
    tag, pos = read_varint(buf, pos, end)
    number, wire_type = tag >> 3, tag & 7
    if number == 0:
        raise WireError(f"field number 0 at byte {tag_start}")
    if wire_type == VARINT:
        value, pos = read_varint(buf, pos, end)
        return Field(number, wire_type, tag_start, pos, pos, value)
    if wire_type == LENGTH_DELIMITED:
        length, pos = read_varint(buf, pos, end)
        payload_end = pos + length
    elif wire_type == FIXED32:
        payload_end = pos + 4
    elif wire_type == FIXED64:
        payload_end = pos + 8
    else:
        raise WireError(f"unsupported wire type {wire_type} at byte {tag_start}")
    if payload_end > end:
        raise WireError(f"field {number} at byte {tag_start} runs past the end of its message")
    return Field(number, wire_type, tag_start, pos, payload_end, 0)


def iter_fields(buf, start: int, end: int) -> Iterator[Field]:
    """Yield the fields of the message stored in ``buf[start:end]`` without decoding payloads."""
    pos = start
    while pos < end:
        field = read_field(buf, pos, end)
        yield field
        pos = field.end


def decode_packed_varints(buf, start: int, end: int) -> list[int]:
    """Decode a packed repeated varint field (e.g. BlobShape.dim)."""
    values = []
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        values.append(value)
    return values

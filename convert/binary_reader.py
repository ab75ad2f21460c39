"""Read a binary ``.caffemodel`` (a serialized NetParameter) with its weights viewed in place.

Only the small messages (the net header and each layer's parameters) go through protobuf; the blob
fields are cut out of each layer and read by ``blobs.blob_from_span`` straight from the buffer, which
is normally a memory map of the file. Peak memory stays near the file's size and time near a read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from convert import wire
from convert.blobs import RawBlob, blob_from_proto, blob_from_span
from convert.schema import NetParameter

LAYER_FIELD, V1_LAYERS_FIELD = 100, 2
BLOBS_FIELD = {LAYER_FIELD: 7, V1_LAYERS_FIELD: 6}


@dataclass
class ParsedNet:
    """A NetParameter without blob data, and the blobs of ``layer`` / ``layers`` entries by index."""

    net: NetParameter
    layer_blobs: list[list[RawBlob]] = field(default_factory=list)
    v1_blobs: list[list[RawBlob]] = field(default_factory=list)


def read_binary(buf) -> ParsedNet:
    """Parse a binary NetParameter held in ``buf`` (bytes, bytearray or mmap)."""
    end = len(buf)
    header = bytearray()
    layer_spans: list[tuple[int, int, int]] = []
    for fld in wire.iter_fields(buf, 0, end):
        if fld.number in BLOBS_FIELD and fld.wire_type == wire.LENGTH_DELIMITED:
            layer_spans.append((fld.number, fld.start, fld.end))
        else:
            header += buf[fld.tag_start:fld.end]
    parsed = ParsedNet(NetParameter.FromString(bytes(header)))
    for number, start, stop in layer_spans:
        params, blobs = _split_layer(buf, start, stop, BLOBS_FIELD[number])
        container = parsed.net.layer if number == LAYER_FIELD else parsed.net.layers
        container.add().MergeFromString(params)
        (parsed.layer_blobs if number == LAYER_FIELD else parsed.v1_blobs).append(blobs)
    return parsed


def _split_layer(buf, start: int, end: int, blobs_field: int) -> tuple[bytes, list[RawBlob]]:
    """Separate one layer's parameter fields (returned as bytes) from its blobs (read in place)."""
    params = bytearray()
    blobs: list[RawBlob] = []
    for fld in wire.iter_fields(buf, start, end):
        if fld.number == blobs_field and fld.wire_type == wire.LENGTH_DELIMITED:
            blobs.append(blob_from_span(buf, fld.start, fld.end))
        else:
            params += buf[fld.tag_start:fld.end]
    return bytes(params), blobs


def parsed_from_message(net: NetParameter) -> ParsedNet:
    """The same split for a NetParameter already parsed by protobuf (text prototxts with blobs)."""
    parsed = ParsedNet(NetParameter())
    parsed.net.CopyFrom(net)
    for container, out in ((parsed.net.layer, parsed.layer_blobs), (parsed.net.layers, parsed.v1_blobs)):
        for layer in container:
            out.append([blob_from_proto(blob) for blob in layer.blobs])
            del layer.blobs[:]
    return parsed

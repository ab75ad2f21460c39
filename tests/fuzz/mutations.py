"""Seeded mutations of Caffe and converted files: raw bytes, protobuf fields, prototxt text, HDF5, .pth.

Every function takes a ``numpy.random.Generator`` and returns new content plus a short label of what
it did, so a failing case is reproduced from (seed, index) alone.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np

# Values that sit on the edges of protobuf's and Caffe's integer types.
INTERESTING = [0, 1, 2, 3, 7, 255, 2**15, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**40, 2**63 - 1,
               2**63, 2**64 - 1]
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


# ----------------------------------------------------------------------------- raw bytes

def bit_flips(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    out = bytearray(data)
    count = int(rng.integers(1, 9))
    for _ in range(count):
        pos = int(rng.integers(len(out)))
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out), f"bitflip x{count}"


def byte_overwrite(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    out = bytearray(data)
    pos = int(rng.integers(len(out)))
    length = int(min(rng.integers(1, 9), len(out) - pos))
    choice = rng.integers(3)
    fill = (rng.integers(0, 256, length, dtype=np.uint8).tobytes() if choice == 0
            else bytes([0xFF]) * length if choice == 1 else bytes(length))
    out[pos:pos + length] = fill
    return bytes(out), f"overwrite {length}@{pos}"


def truncation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    keep = int(rng.integers(1, len(data)))
    return data[:keep], f"truncate to {keep}"


def chunk_delete(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    start = int(rng.integers(len(data)))
    length = int(rng.integers(1, max(2, min(4096, len(data) - start))))
    return data[:start] + data[start + length:], f"delete {length}@{start}"


def chunk_duplicate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    start = int(rng.integers(len(data)))
    length = int(rng.integers(1, max(2, min(4096, len(data) - start))))
    where = int(rng.integers(len(data)))
    return data[:where] + data[start:start + length] + data[where:], f"duplicate {length}@{start}->{where}"


RAW = [bit_flips, byte_overwrite, truncation, chunk_delete, chunk_duplicate]


def raw_mutation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    return RAW[int(rng.integers(len(RAW)))](data, rng)


# ----------------------------------------------------------------------------- protobuf tree

@dataclass
class Node:
    """One protobuf field: a varint/fixed value, raw bytes, or (for messages) child nodes."""

    number: int
    wire_type: int
    value: int | bytes = 0
    children: list[Node] | None = None
    path: tuple[int, ...] = field(default_factory=tuple)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# Length-delimited fields that hold packed numbers (blob data, dims), never messages.
PACKED = {5, 8}


def parse_tree(data: bytes, path: tuple[int, ...] = (), depth: int = 0) -> list[Node]:
    """Fields of a message; a length-delimited payload that parses as a message becomes children."""
    nodes, pos = [], 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field 0")
        if wire_type == VARINT:
            value, pos = _varint(data, pos)
            nodes.append(Node(number, wire_type, value, path=path + (number,)))
        elif wire_type in (FIXED32, FIXED64):
            width = 4 if wire_type == FIXED32 else 8
            if pos + width > len(data):
                raise ValueError("truncated")
            nodes.append(Node(number, wire_type, data[pos:pos + width], path=path + (number,)))
            pos += width
        elif wire_type == LENGTH:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated")
            payload = data[pos:pos + length]
            pos += length
            node = Node(number, wire_type, payload, path=path + (number,))
            if depth < 6 and payload and not (number in PACKED and len(path) >= 2):
                try:
                    node.children = parse_tree(payload, node.path, depth + 1)
                except ValueError:
                    node.children = None
            nodes.append(node)
        else:
            raise ValueError("wire type")
    return nodes


def serialize(nodes: list[Node]) -> bytes:
    out = bytearray()
    for node in nodes:
        out += encode_varint(node.number << 3 | node.wire_type)
        if node.wire_type == VARINT:
            out += encode_varint(int(node.value))
        elif node.wire_type in (FIXED32, FIXED64):
            out += node.value
        else:
            payload = serialize(node.children) if node.children is not None else node.value
            out += encode_varint(len(payload)) + payload
    return bytes(out)


def walk(nodes: list[Node], parent: list[Node] | None = None):
    """Yield (node, the list holding it) for every node, depth first."""
    for node in nodes:
        yield node, nodes
        if node.children is not None:
            yield from walk(node.children, nodes)


def _strings(nodes: list[Node]) -> list[bytes]:
    return [n.value for n, _ in walk(nodes) if n.wire_type == LENGTH and n.children is None
            and isinstance(n.value, bytes) and 0 < len(n.value) < 64 and n.value.isascii()]


def protobuf_mutation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A structurally valid file with one field changed: a number, a name, a length, or a field
    deleted or duplicated (a duplicated layer duplicates its name)."""
    try:
        tree = parse_tree(data)
    except ValueError:
        return raw_mutation(data, rng)
    nodes = list(walk(tree))
    choice = int(rng.integers(6))
    if choice <= 1:  # a number: dims, strides, groups, kernel sizes, counts, enums
        varints = [(n, c) for n, c in nodes if n.wire_type == VARINT]
        packed = [(n, c) for n, c in nodes if n.wire_type == LENGTH and n.children is None
                  and n.path[-1] == 1 and len(n.path) >= 2]  # BlobShape.dim, packed
        if packed and rng.random() < 0.3:
            node, _ = packed[int(rng.integers(len(packed)))]
            dims = [_varint(node.value, 0)[0]] if node.value else [1]
            value = INTERESTING[int(rng.integers(len(INTERESTING)))]
            node.value = b"".join(encode_varint(v) for v in [value, *dims[1:]])
            return serialize(tree), f"dim -> {value} at {node.path}"
        if not varints:
            return raw_mutation(data, rng)
        node, _ = varints[int(rng.integers(len(varints)))]
        value = INTERESTING[int(rng.integers(len(INTERESTING)))] if rng.random() < 0.8 else int(rng.integers(0, 2**20))
        node.value = value
        return serialize(tree), f"varint {node.path} -> {value}"
    if choice == 2:  # a string: another layer's name, empty, non-UTF-8, with a dot
        strings = [(n, c) for n, c in nodes if n.wire_type == LENGTH and n.children is None
                   and isinstance(n.value, bytes) and 0 < len(n.value) < 64 and n.value.isascii()]
        if not strings:
            return raw_mutation(data, rng)
        node, _ = strings[int(rng.integers(len(strings)))]
        pool = _strings(tree)
        options = [pool[int(rng.integers(len(pool)))], b"", b"\xff\xfe" + node.value, node.value + b".x",
                   b"Convolution", b"Crop", b"Deconvolution", b"Pooling", b"Eltwise", b"Input"]
        node.value = options[int(rng.integers(len(options)))]
        return serialize(tree), f"string {node.path} -> {node.value[:20]!r}"
    if choice == 3:  # a field removed
        node, holder = nodes[int(rng.integers(len(nodes)))]
        holder.remove(node)
        return serialize(tree), f"delete field {node.path}"
    if choice == 4:  # a field duplicated (a whole layer, a blob, a dim, a param)
        node, holder = nodes[int(rng.integers(len(nodes)))]
        holder.insert(holder.index(node), Node(node.number, node.wire_type, node.value,
                                               None if node.children is None else list(node.children), node.path))
        return serialize(tree), f"duplicate field {node.path}"
    # a length prefix made wrong (the file stays otherwise intact)
    encoded = serialize(tree)
    lengths = [m.start() for m in re.finditer(rb"[\x0a\x12\x1a\x22\x2a\x32\x3a\xa2]", encoded)]
    if not lengths:
        return raw_mutation(data, rng)
    pos = lengths[int(rng.integers(len(lengths)))] + 1
    try:
        old, end = _varint(encoded, pos)
    except ValueError:
        return raw_mutation(data, rng)
    new = INTERESTING[int(rng.integers(len(INTERESTING)))] if rng.random() < 0.5 else max(0, old + int(rng.integers(-3, 4)))
    return encoded[:pos] + encode_varint(new) + encoded[end:], f"length at {pos}: {old} -> {new}"


# ----------------------------------------------------------------------------- prototxt text

NUMBER = re.compile(rb"(?<=: )-?\d+(\.\d+)?(e-?\d+)?")
STRING = re.compile(rb'"[^"\n]*"')


def prototxt_mutation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    choice = int(rng.integers(7))
    if choice <= 1:
        numbers = list(NUMBER.finditer(data))
        if numbers:
            m = numbers[int(rng.integers(len(numbers)))]
            value = INTERESTING[int(rng.integers(len(INTERESTING)))]
            value = -value if rng.random() < 0.15 else value
            return data[:m.start()] + str(value).encode() + data[m.end():], f"number@{m.start()} -> {value}"
    if choice == 2:
        strings = list(STRING.finditer(data))
        if strings:
            m = strings[int(rng.integers(len(strings)))]
            other = strings[int(rng.integers(len(strings)))].group()
            options = [other, b'""', b'"\xff\xfe"', other[:-1] + b'.x"', b'"Convolution"', b'"Crop"']
            new = options[int(rng.integers(len(options)))]
            return data[:m.start()] + new + data[m.end():], f"string@{m.start()} -> {new[:20]!r}"
    if choice == 3 and len(lines) > 1:
        i = int(rng.integers(len(lines)))
        return b"\n".join(lines[:i] + lines[i + 1:]), f"delete line {i}"
    if choice == 4 and len(lines) > 1:
        i, j = (int(v) for v in rng.integers(len(lines), size=2))
        return b"\n".join(lines[:j] + [lines[i]] + lines[j:]), f"copy line {i} to {j}"
    if choice == 5:  # duplicate a whole layer block (duplicate names)
        starts = [m.start() for m in re.finditer(rb"^layers? \{", data, re.MULTILINE)]
        if len(starts) >= 2:
            k = int(rng.integers(len(starts) - 1))
            block = data[starts[k]:starts[k + 1]]
            return data[:starts[k + 1]] + block + data[starts[k + 1]:], f"duplicate layer block {k}"
    return raw_mutation(data, rng)


# ----------------------------------------------------------------------------- HDF5

def hdf5_mutation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Either raw corruption or a well-formed file with odd content (keys, dtypes, shapes, sizes)."""
    if rng.random() < 0.5:
        return raw_mutation(data, rng)
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        layers = list(f["data"].keys())
        layer = f["data"][layers[int(rng.integers(len(layers)))]]
        choice = int(rng.integers(7))
        if choice == 0:
            layer.create_dataset("weights", data=np.zeros(3, np.float32))
            label = "non-integer dataset key"
        elif choice == 1 and "0" in layer:
            del layer["0"]
            layer.create_dataset("0", data=np.array([b"text"] * 4))
            label = "string dataset"
        elif choice == 2 and "0" in layer:
            shape = layer["0"].shape
            del layer["0"]
            layer.create_dataset("0", data=np.zeros((2,) + tuple(shape[1:]), np.float32))
            label = "wrong shape"
        elif choice == 3 and "0" in layer:
            del layer["0"]
            layer.create_dataset("0", shape=(2**20, 2**20), dtype=np.float32, chunks=(16, 16))
            label = "huge unallocated dataset"
        elif choice == 4:
            layer.create_group(str(len(layer)))
            label = "group where a blob should be"
        elif choice == 5 and "0" in layer:
            del layer["0"]
            layer.create_dataset("0", data=np.zeros((0, 3), np.float32))
            label = "empty dataset"
        else:
            f["data"].move(layer.name.split("/")[-1], "renamed_layer")
            label = "layer renamed"
    return buf.getvalue(), f"hdf5 {label}"

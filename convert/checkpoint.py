"""The converted-file format: what ``python -m convert`` writes and ``convert.load`` reads.

One ``torch.save`` dict that ``torch.load(path, weights_only=True)`` opens with no pickled code:
the net's structure as prototxt text (so the file rebuilds the net without the caffemodel), an
optional architecture record that a model library may store (``python -m convert`` stores None;
convert never reads it), the source file's name and sha256, and a state dict whose keys are
``<caffe layer>.<blob name>`` with tensors in Caffe's own layout.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from google.protobuf import text_format

from convert.binary_reader import parsed_from_message
from convert.crop_offsets import resolve_legacy_crops
from convert.errors import CaffeFormatError
from convert.net import CaffeNet, blob_names
from convert.schema import NetParameter
from convert.shape_check import check_blobs
from convert.upgrade import build_net, modern_layers

FORMAT = "fcn-ref/1"


@dataclass
class Checkpoint:
    """A converted file, read back: the net with its weights, and what the file says about it."""

    net: CaffeNet
    architecture: dict | None
    source: dict
    state_dict: dict[str, torch.Tensor]


def structure_text(net: CaffeNet) -> str:
    """The net as a modern prototxt without blobs (inputs declared with ``input``/``input_shape``)."""
    net = resolve_legacy_crops(net)  # a legacy CROP's offsets are written in: the file is modern
    proto = NetParameter(name=net.name)
    for name, shape in net.inputs.items():
        proto.input.append(name)
        proto.input_shape.add().dim.extend(shape)
    for layer in net.layers:
        proto.layer.add().CopyFrom(layer.param)
    return text_format.MessageToString(proto)


def state_dict_of(net: CaffeNet) -> dict[str, torch.Tensor]:
    """Tensors sharing memory with the net's arrays (views of the caffemodel's map: no copies)."""
    state: dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only views are fine: they are only written out
        for layer in net.layers:
            for name, blob in zip(blob_names(layer.type, len(layer.blobs), len(layer.bottoms)), layer.blobs):
                state[f"{layer.name}.{name}"] = torch.from_numpy(np.ascontiguousarray(blob))
    return state


def save_checkpoint(net: CaffeNet, out: str | os.PathLike, *, architecture: dict | None, source: dict,
                    overwrite: bool = False) -> None:
    """Write atomically: a temporary file beside ``out``, renamed over it only when complete."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    payload = payload_of(Checkpoint(net, architecture, source, state_dict_of(net)))
    with atomic_output(out) as tmp:
        torch.save(payload, tmp)


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``out`` to write; renamed over ``out`` only if the block succeeds."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a converted file (``.pth``, or ``.safetensors`` from ``python -m convert --format``) back
    into a CaffeNet whose blobs are the file's tensors (as numpy)."""
    path = Path(path)
    if not path.exists():
        raise CaffeFormatError("no such file", path=str(path))
    if is_safetensors(path):
        from convert.safetensors_file import read_payload

        return checkpoint_from_payload(read_payload(path), path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for a file that is not its own
        raise CaffeFormatError(f"not a converted fcn-ref file: {e}".splitlines()[0], path=str(path)) from None
    return checkpoint_from_payload(payload, path)


def is_safetensors(path: str | os.PathLike) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:  # a folder, unreadable: not this format (the caller's reader says why)
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size


def payload_of(checkpoint: Checkpoint) -> dict:
    """The dict a converted file holds (what ``save_checkpoint`` writes), from a checkpoint."""
    return {"format": FORMAT, "net": structure_text(checkpoint.net), "name": checkpoint.net.name,
            "architecture": checkpoint.architecture, "source": checkpoint.source,
            "state_dict": checkpoint.state_dict}


def checkpoint_from_payload(payload: object, path: Path) -> Checkpoint:
    """Rebuild and check the net a converted file's payload describes (any container format)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CaffeFormatError(f"not a converted fcn-ref file (format is not {FORMAT})", path=str(path))
    proto = text_format.Parse(payload["net"], NetParameter())
    parsed = parsed_from_message(proto)
    state = payload["state_dict"]
    layers = []
    expected = set()
    for param, _ in modern_layers(parsed, str(path)):
        blobs = []
        names = blob_names(param.type, len(state), len(param.bottom))
        for name in names:
            key = f"{param.name}.{name}"
            if key not in state:
                break
            expected.add(key)
            blobs.append(state[key].numpy())
        layers.append((param, blobs))
    unexpected = sorted(set(state) - expected)
    if unexpected:
        raise CaffeFormatError(f"state_dict has keys no layer owns: {', '.join(unexpected[:5])}", path=str(path))
    net = build_net(payload["name"], proto, layers, str(path))
    for layer in net.layers:
        check_blobs(layer, str(path))
    return Checkpoint(net=net, architecture=payload.get("architecture"), source=payload.get("source", {}),
                      state_dict=state)

"""The converted-file format: what ``python -m convert`` writes and ``convert.load`` reads.

One ``torch.save`` dict (or the same entries as safetensors, ``convert.safetensors_file``) that ``torch.load(path, weights_only=True)`` opens with no pickled code:
the net's structure as prototxt text (so the file rebuilds the net without the caffemodel), an
optional architecture record that a model library may store (``python -m convert`` stores None;
convert never reads it), the source file's name and sha256, a state dict whose keys are
``<caffe layer>.<blob name>`` with tensors in Caffe's own layout, and a digest of all of it
(``convert.digest``) that every reader verifies before it trusts a byte.

Reading is strict and bounded: the dict must have exactly the expected entries of the expected types,
the digest must match, and the net must pass the same checks as a freshly read caffemodel, so that
any damaged or foreign file is one ``CaffeFormatError`` naming the file (and the tensor or layer).
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
from google.protobuf import message, text_format

from convert.binary_reader import parsed_from_message
from convert.crop_offsets import resolve_legacy_crops
from convert.digest import make_digest, verify_digest
from convert.errors import CaffeFormatError
from convert.files import regular_file
from convert.net import CaffeNet, blob_names
from convert.schema import NetParameter
from convert.param_check import check_unique_weighted_names
from convert.shape_check import check_blobs
from convert.upgrade import build_net, modern_layers

FORMAT = "fcn-ref/2"  # /2 added the digest
LEGACY_FORMATS = ("fcn-ref/1",)  # read without verification, with a warning
DESCRIPTION_KEYS = ("format", "net", "name", "architecture", "source")
PAYLOAD_KEYS = (*DESCRIPTION_KEYS, "state_dict", "digest")


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


def description_of(payload: dict) -> dict:
    """The entries of a payload that the digest's ``description`` hash covers."""
    return {key: payload[key] for key in DESCRIPTION_KEYS}


def sealed(payload: dict) -> dict:
    """``payload`` (format, net, name, architecture, source, state_dict) with its digest added."""
    payload = {**payload, "format": FORMAT}
    payload["digest"] = make_digest(description_of(payload), payload["state_dict"])
    return payload


def save_checkpoint(net: CaffeNet, out: str | os.PathLike, *, architecture: dict | None, source: dict,
                    overwrite: bool = False) -> None:
    """Write atomically: a temporary file beside ``out``, renamed over it only when complete."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    with atomic_output(out) as tmp:
        torch.save(payload_of(Checkpoint(net, architecture, source, state_dict_of(net))), tmp)


def payload_of(checkpoint: Checkpoint) -> dict:
    """The sealed dict a converted file holds (what ``save_checkpoint`` writes), from a checkpoint."""
    return sealed({"net": structure_text(checkpoint.net), "name": checkpoint.net.name,
                   "architecture": checkpoint.architecture, "source": checkpoint.source,
                   "state_dict": checkpoint.state_dict})


def temporary_beside(out: Path) -> Path:
    """A new empty hidden file beside ``out`` with the mode the umask allows (mkstemp makes 0600;
    a converted file is an ordinary output)."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``out`` to write; renamed over ``out`` only if the block succeeds."""
    out = Path(out)
    tmp = temporary_beside(out)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_temporary(net: CaffeNet, out: Path, *, architecture: dict | None, source: dict) -> Path:
    """Write the converted file to a hidden temporary name beside ``out``; the caller renames it
    into place or deletes it."""
    payload = payload_of(Checkpoint(net, architecture, source, state_dict_of(net)))
    tmp = temporary_beside(out)
    try:
        torch.save(payload, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def is_safetensors(path: str | os.PathLike) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:  # a folder, unreadable: not this format (the caller's reader says why)
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size


def _load_payload(path: Path) -> dict:
    """The file's dict, read fully into memory (no map outlives the call), or CaffeFormatError."""
    regular_file(path, "a file written by python -m convert")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        what = "a caffemodel? convert it first with python -m convert" if head else "an empty file"
        raise CaffeFormatError(f"not a converted fcn-ref file ({what})", path=str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not its own (or is damaged)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CaffeFormatError(f"not a converted fcn-ref file, or damaged: {reason}", path=str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, *LEGACY_FORMATS):
        raise CaffeFormatError(f"not a converted fcn-ref file (format is not {FORMAT})", path=str(path))
    return payload


def _check_payload(payload: dict, path: Path) -> None:
    """Exactly the expected entries, of the expected types, and (current format) a matching digest."""
    legacy = payload["format"] in LEGACY_FORMATS
    keys = [k for k in PAYLOAD_KEYS if not (legacy and k == "digest")]
    if sorted(payload) != sorted(keys):
        odd = sorted(set(map(str, payload)) ^ set(keys))
        raise CaffeFormatError(f"damaged file: unexpected or missing entries {odd}", path=str(path))
    types = {"net": str, "name": str, "source": dict, "state_dict": dict}
    for key, kind in types.items():
        if not isinstance(payload[key], kind):
            raise CaffeFormatError(f"damaged file: '{key}' is not a {kind.__name__}", path=str(path))
    if payload["architecture"] is not None and not isinstance(payload["architecture"], dict):
        raise CaffeFormatError("damaged file: 'architecture' is not a dict", path=str(path))
    for key, tensor in payload["state_dict"].items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32:
            raise CaffeFormatError(f"damaged file: state_dict entry '{key}' is not a float32 tensor", path=str(path))
    if legacy:
        warnings.warn(f"{path}: written before converted files carried a digest ({payload['format']}); its "
                      "tensors cannot be verified. Convert the caffemodel again to protect it.", stacklevel=4)
    else:
        verify_digest(payload["digest"], description_of(payload), payload["state_dict"], str(path))


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a converted file (``.pth``, or ``.safetensors`` from ``python -m convert --format``) back
    into a CaffeNet whose blobs are the file's tensors (as numpy)."""
    path = Path(path)
    if path.is_file() and is_safetensors(path):
        from convert.safetensors_file import read_payload

        return checkpoint_from_payload(read_payload(path), path)
    return checkpoint_from_payload(_load_payload(path), path)


def checkpoint_from_payload(payload: dict, path: Path) -> Checkpoint:
    """Check a converted file's payload (entries, types, digest) and rebuild the net it describes."""
    path = Path(path)
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, *LEGACY_FORMATS):
        raise CaffeFormatError(f"not a converted fcn-ref file (format is not {FORMAT})", path=str(path))
    _check_payload(payload, path)
    try:
        proto = text_format.Parse(payload["net"], NetParameter())
        parsed = parsed_from_message(proto)
    except (text_format.ParseError, message.DecodeError, ValueError) as e:
        raise CaffeFormatError(f"damaged net description: {e}".splitlines()[0], path=str(path)) from None
    state = payload["state_dict"]
    layers = []
    expected = set()
    for param, _ in modern_layers(parsed, str(path)):
        blobs = []
        names = blob_names(param.type, len(state), len(param.bottom))
        for name in names:
            key = f"{param.name}.{name}"
            if key not in state or key in expected:
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
    check_unique_weighted_names(net, str(path))
    source = payload["source"]
    return Checkpoint(net=net, architecture=payload["architecture"], source=source, state_dict=state)

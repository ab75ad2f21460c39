"""The converted file as safetensors: the weights as plain tensors, everything else as metadata.

safetensors loads without running code in any language that has a reader (Rust, JS, C++ ...). The
tensors are the converted file's state dict (``<caffe layer>.<blob>``, Caffe's layout); the header's
string metadata holds every other entry of the payload, each as JSON under its own key: ``format``,
``name``, ``net`` (the prototxt text that rebuilds the net), ``architecture``, ``source``, and
whatever else the .pth format carries, so the two hold the same facts and pass the same checks
(``convert.checkpoint.checkpoint_from_payload``). ``convert.load`` and ``fcn_ref.load`` read it like
a ``.pth``. Needs the optional ``safetensors`` package (``pip install 'fcn-ref[safetensors]'``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from convert.errors import CaffeFormatError

REQUIRED = ("format", "name", "net", "architecture", "source")


def _safetensors(path: str | os.PathLike):
    try:
        import safetensors.torch
    except ImportError:
        raise CaffeFormatError("reading or writing safetensors needs the safetensors package "
                               "(pip install 'fcn-ref[safetensors]')", path=str(path)) from None
    return safetensors


def write_payload(payload: dict, path: str | os.PathLike) -> None:
    """Write a converted file's payload (``convert.checkpoint.payload_of``) to ``path``."""
    safetensors = _safetensors(path)
    metadata = {key: json.dumps(value, sort_keys=True) for key, value in payload.items() if key != "state_dict"}
    tensors = {key: tensor.contiguous() for key, tensor in payload["state_dict"].items()}
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def read_payload(path: str | os.PathLike) -> dict:
    """The payload dict (as ``torch.load`` gives it for a ``.pth``) of a safetensors file."""
    safetensors = _safetensors(path)
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as e:  # the reader raises its own types for damaged files
        raise CaffeFormatError(f"not a readable safetensors file: {e}".splitlines()[0], path=str(path)) from None
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise CaffeFormatError(f"safetensors metadata lacks {', '.join(missing)}: not written by "
                               f"python -m convert", path=str(Path(path)))
    try:
        payload: dict = {key: json.loads(value) for key, value in metadata.items()}
    except json.JSONDecodeError as e:
        raise CaffeFormatError(f"safetensors metadata is not valid JSON ({e})", path=str(path)) from None
    payload["state_dict"] = state
    return payload

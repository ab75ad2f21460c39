"""The integrity digest every converted file carries, and the one function that checks it.

A converted file is a plain dict of text and tensors; one byte changed in a tensor would otherwise
load silently as a different model. ``make_digest`` records a sha256 of each tensor (dtype, shape and
bytes) and of the net's description (every non-tensor entry, canonically serialized);
``verify_digest`` recomputes them and names the first tensor or entry that differs. Every loader of
converted weights (``convert.load``, ``fcn_ref.load``, other export formats) calls ``verify_digest``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import torch

from convert.errors import CaffeFormatError

ALGORITHM = "sha256"
DIGEST_KEYS = ("algorithm", "description", "tensors")


class DigestError(CaffeFormatError):
    """A converted file whose tensors or description do not match its recorded digest (damaged)."""


def tensor_sha256(tensor: torch.Tensor | np.ndarray) -> str:
    """sha256 of a tensor's dtype, shape and bytes (C order; numpy arrays hash as the same tensor)."""
    t = torch.as_tensor(tensor).detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def description_sha256(description: Mapping[str, object]) -> str:
    """sha256 of the non-tensor entries (net text, name, architecture, source...), canonical JSON."""
    text = json.dumps(description, sort_keys=True, ensure_ascii=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def make_digest(description: Mapping[str, object], tensors: Mapping[str, torch.Tensor | np.ndarray]) -> dict:
    """The digest to store beside ``description`` and ``tensors``."""
    return {"algorithm": ALGORITHM, "description": description_sha256(description),
            "tensors": {name: tensor_sha256(t) for name, t in tensors.items()}}


def verify_digest(digest: object, description: Mapping[str, object],
                  tensors: Mapping[str, torch.Tensor | np.ndarray], path: str | None = None) -> None:
    """Raise ``DigestError`` naming what differs from ``digest`` (a malformed digest is damage too)."""
    if (not isinstance(digest, dict) or sorted(digest) != sorted(DIGEST_KEYS)
            or digest["algorithm"] != ALGORITHM or not isinstance(digest["tensors"], dict)):
        raise DigestError("damaged file: its digest entry is malformed", path=path)
    recorded = digest["tensors"]
    if sorted(recorded) != sorted(tensors):
        extra = sorted(set(map(str, recorded)) ^ set(tensors))
        raise DigestError(f"damaged file: tensors differ from the digest's list ({', '.join(extra[:3])})",
                          path=path)
    if digest["description"] != description_sha256(description):
        raise DigestError("damaged file: the net description does not match its digest", path=path)
    for name, tensor in tensors.items():
        if recorded[name] != tensor_sha256(tensor):
            raise DigestError(f"damaged file: tensor '{name}' does not match its digest", path=path)

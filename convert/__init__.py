"""Read Caffe models without Caffe and run them in PyTorch with Caffe's exact numerics.

``read_net`` reads any Caffe file into one checked ``CaffeNet``; ``convert`` writes it as a verified
``.pth`` (what ``python -m convert`` does); ``load_caffe`` and ``load`` give a ``torch.nn.Module``
(the latter from a file written by ``convert``, its digest verified).

The names below that need the protobuf schema are imported on first use, so that the pure-torch
parts (``convert.modules``, ``convert.coord_map``) import without it.
"""
from __future__ import annotations

import importlib
from typing import Any

from convert.errors import CaffeFormatError

__all__ = ["CaffeFormatError", "CaffeNet", "DigestError", "Layer", "convert", "read_net", "load_caffe", "load",
           "verify_digest"]

_LAZY = {"CaffeNet": "convert.net", "Layer": "convert.net", "read_net": "convert.reader",
         "convert": "convert.converter", "DigestError": "convert.digest", "verify_digest": "convert.digest"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'convert' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name]), name)


def load_caffe(weights=None, prototxt=None, *, crop_offsets="caffe", exact: bool = False):
    """A Caffe model as an eval-mode ``torch.nn.Module`` (see ``convert.runtime``); ``crop_offsets``
    "coord-map" gives offset-less Crop layers their coordinate-map offsets (``convert.crop_offsets``);
    ``exact=True`` computes every layer exactly as ``F.conv2d`` does (no measured fast paths)."""
    from convert.runtime import load_caffe as _load_caffe

    return _load_caffe(weights, prototxt, crop_offsets=crop_offsets, exact=exact)


def load(path, *, crop_offsets="caffe", exact: bool = False):
    """A file written by ``python -m convert`` as an eval-mode ``torch.nn.Module`` (keywords as for
    ``load_caffe``)."""
    from convert.runtime import load as _load

    return _load(path, crop_offsets=crop_offsets, exact=exact)

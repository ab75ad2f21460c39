"""Reading what Caffe recorded for a public net, and measuring a run against it.

A folder written by tools/caffe/make_public_nets.py holds meta.json and either sampled values
(``small``: <size>.npy) or every blob (``full``: blobs-<size>.h5). The errors are the suite's one
measure, max |ours - Caffe| / max |Caffe| per blob. Shared by the default tests, the oracle tier
and tools/public_net_floors.py; needs numpy (and h5py for ``full``), not Caffe or torch.
"""
from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import sampling

SIZES = ("deploy", "odd")


def meta(folder: Path) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text())


def caffe_input(folder: Path, size: str) -> tuple[str, np.ndarray]:
    """The input blob's name and the array Caffe ran, rebuilt from its seed and checked."""
    m = meta(folder)
    entry = m["sizes"][size]
    x = sampling.input_array(entry["input_seed"], tuple(entry["shape"]))
    assert hashlib.sha256(x.tobytes()).hexdigest() == entry["input_sha256"], "input stream changed"
    return m["input"], x


def _error(ours: np.ndarray, theirs: np.ndarray, scale: float) -> float:
    diff = float(np.abs(ours.astype(np.float64) - theirs).max()) if theirs.size else 0.0
    return diff / scale if scale > 0 else diff


def _ours(ours: Mapping, name: str, shape: list[int]) -> np.ndarray:
    assert name in ours, f"blob '{name}' not produced"
    array = np.asarray(ours[name])
    assert list(array.shape) == shape, f"blob '{name}': shape {array.shape} != Caffe's {shape}"
    return array


def sampled_errors(ours: Mapping, folder: Path, size: str) -> dict[str, float]:
    """Errors of every blob over the positions a ``small`` fixture kept."""
    m = meta(folder)
    entry = m["sizes"][size]
    values = np.load(Path(folder) / f"{size}.npy")
    errors, positions, offset = {}, [], 0
    for blob in entry["blobs"]:
        array = _ours(ours, blob["name"], blob["shape"])
        index = sampling.positions(blob["name"], array.size, output=blob["name"] in m["outputs"])
        assert index.size == blob["count"], blob["name"]
        errors[blob["name"]] = _error(array.reshape(-1)[index], values[offset:offset + index.size], blob["absmax"])
        offset += index.size
        positions.append(index)
    assert offset == values.size, "fixture has values no blob claimed"
    assert sampling.digest(positions) == entry["positions_sha256"], "sampled positions changed"
    return errors


def full_errors(ours: Mapping, folder: Path, size: str) -> dict[str, float]:
    """Errors of every value of every blob (``full`` folders), reading one blob at a time."""
    import h5py

    errors = {}
    with h5py.File(Path(folder) / f"blobs-{size}.h5", "r") as f:
        for blob in meta(folder)["sizes"][size]["blobs"]:
            theirs = f["blobs/" + urllib.parse.quote(blob["name"], safe="")][()]
            array = _ours(ours, blob["name"], blob["shape"])
            errors[blob["name"]] = _error(array, theirs, float(np.abs(theirs).max()))
    return errors


def errors(ours: Mapping, folder: Path, size: str) -> dict[str, float]:
    """Per-blob errors against whichever record the folder holds."""
    full = (Path(folder) / f"blobs-{size}.h5").exists()
    return (full_errors if full else sampled_errors)(ours, folder, size)

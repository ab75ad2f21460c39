"""Which values of a blob a committed fixture keeps: all of a small blob, else a seeded sample.

Shared by the generator (which stores Caffe's values at these positions) and the tests (which
compare ours at the same positions). The positions depend only on the blob's name and size, via
numpy's legacy RandomState, whose stream numpy keeps stable across versions; the fixture also
records a sha256 of all positions, so a drift would fail loudly instead of comparing wrong values.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np

KEEP_WHOLE = 512  # blobs up to this many values are stored entire
SAMPLES = 128  # positions drawn (with repeats removed) from a larger blob
OUTPUT_SAMPLES = 2048  # outputs get more


def positions(name: str, size: int, output: bool = False) -> np.ndarray:
    """Sorted flat indices into a blob of ``size`` values (all of them for a small blob)."""
    count = OUTPUT_SAMPLES if output else SAMPLES
    if size <= max(KEEP_WHOLE, count if output else 0):
        return np.arange(size, dtype=np.int64)
    rng = np.random.RandomState(zlib.crc32(name.encode()) ^ size % (2**31))
    return np.unique(rng.randint(0, size, count)).astype(np.int64)


def digest(arrays: list[np.ndarray]) -> str:
    """sha256 over a list of index arrays (as little-endian int64)."""
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array, "<i8").tobytes())
    return h.hexdigest()


def input_array(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The input a fixture was made with: N(0, 1) float32 from a legacy RandomState."""
    return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)

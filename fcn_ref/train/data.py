"""Where a training net's input blobs come from: data sources, one per Caffe data layer.

A ``DataSource`` yields batches (a dict of top name -> tensor) in a fixed order and can save and
restore its position (``state_dict``), so a resumed run reads exactly the batches the straight run
would have read. ``ShardedSource`` splits one stream between ranks: rank r of w takes batches
r, r + w, r + 2w, ..., so w ranks with iter_size k together read what one process with iter_size
w * k reads. ``DATA_LAYER_SOURCES`` maps a Caffe data layer type to the function that makes its
source; other layer kinds (e.g. the reference repo's Python layers) register there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from convert.errors import CaffeFormatError
from convert.net import Layer


class DataSource(Protocol):
    """What the solver needs from a data layer's replacement."""

    tops: tuple[str, ...]

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes of the next batch, without consuming it (the net is built from them)."""

    def next_batch(self) -> dict[str, Tensor]:
        """The next batch, one tensor per top."""

    def state_dict(self) -> dict:
        """Everything needed to continue from here (position, RNG)."""

    def load_state_dict(self, state: dict) -> None:
        ...

    # Optional: ``skip(count)`` moves on ``count`` batches without reading them (ShardedSource uses
    # it to pass the other ranks' batches; without it they are read and dropped).


class HDF5Source:
    """Caffe's HDF5Data layer (``hdf5_data_layer.cpp``): the files listed in ``source`` (whitespace
    separated, paths as Caffe opens them: relative to the working directory), each holding one
    dataset per top with rows along axis 0; batches of ``batch_size`` rows taken in file order and
    row order, running across file ends and wrapping around to the first file.

    ``shuffle`` permutes the file order at each wrap and the rows of each file as it is entered,
    with our own generator (seeded by ``seed``): Caffe draws these from its own RNG, which cannot
    be reproduced outside Caffe, so a shuffled run reads the same rows as Caffe's, in another order.
    """

    def __init__(self, source: str | os.PathLike, tops: tuple[str, ...], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, layer: str | None = None) -> None:
        self.tops, self.batch_size, self.shuffle, self.layer = tuple(tops), batch_size, shuffle, layer
        self.source = str(source)
        if batch_size < 1:
            raise CaffeFormatError("batch_size must be at least 1", path=self.source, layer=layer)
        try:
            self.files = Path(source).read_text().split()
        except OSError as e:
            raise CaffeFormatError(f"cannot read the HDF5 source list: {e.strerror}", path=self.source,
                                   layer=layer) from None
        if not self.files:
            raise CaffeFormatError("the HDF5 source list names no files", path=self.source, layer=layer)
        self.rng = np.random.default_rng(seed)
        self.file_order = list(range(len(self.files)))
        self.row_order: list[int] = []
        self.file_index = 0  # position in file_order
        self.row = 0  # position in row_order
        self._loaded: tuple[int, dict[str, np.ndarray]] | None = None
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self._enter_file()

    def _arrays(self, file_number: int) -> dict[str, np.ndarray]:
        if self._loaded is not None and self._loaded[0] == file_number:
            return self._loaded[1]
        import h5py

        path = self.files[file_number]
        try:
            with h5py.File(path, "r") as f:
                missing = [t for t in self.tops if t not in f]
                if missing:
                    raise CaffeFormatError(f"has no dataset {missing[0]!r} for top {missing[0]!r}", path=path,
                                           layer=self.layer)
                arrays = {t: np.asarray(f[t][()], dtype=np.float32) for t in self.tops}
        except OSError as e:
            raise CaffeFormatError(f"unreadable HDF5 data file: {e}".splitlines()[0], path=path,
                                   layer=self.layer) from None
        rows = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
        if len(rows) != 1 or 0 in rows:
            raise CaffeFormatError("datasets must have the same, non-zero number of rows", path=path,
                                   layer=self.layer)
        self._loaded = (file_number, arrays)
        return arrays

    def _enter_file(self) -> None:
        count = next(iter(self._arrays(self.file_order[self.file_index]).values())).shape[0]
        self.row_order = list(range(count))
        if self.shuffle:
            self.rng.shuffle(self.row_order)
        self.row = 0

    def _advance(self) -> None:
        self.row += 1
        if self.row == len(self.row_order):
            self.file_index += 1
            if self.file_index == len(self.files):
                self.file_index = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_order)
            self._enter_file()

    def _rows(self, advance: bool) -> dict[str, Tensor]:
        saved = (self.file_index, self.row, list(self.row_order), list(self.file_order),
                 self.rng.bit_generator.state)
        picked: dict[str, list[np.ndarray]] = {t: [] for t in self.tops}
        for _ in range(self.batch_size):
            arrays = self._arrays(self.file_order[self.file_index])
            for top in self.tops:
                picked[top].append(arrays[top][self.row_order[self.row]])
            self._advance()
        if not advance:
            (self.file_index, self.row, self.row_order, self.file_order, state) = saved
            self.rng.bit_generator.state = state
        try:
            return {top: torch.from_numpy(np.stack(rows)) for top, rows in picked.items()}
        except ValueError:
            raise CaffeFormatError("rows of one batch differ in shape (files with different sizes need "
                                   "batch_size 1)", path=self.source, layer=self.layer) from None

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        return {top: tuple(t.shape) for top, t in self._rows(advance=False).items()}

    def next_batch(self) -> dict[str, Tensor]:
        return self._rows(advance=True)

    def state_dict(self) -> dict:
        return {"file_index": self.file_index, "row": self.row, "row_order": list(self.row_order),
                "file_order": list(self.file_order), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.file_order = list(state["file_order"])
        self.file_index = int(state["file_index"])
        self.row_order = list(state["row_order"])
        self.row = int(state["row"])
        self.rng.bit_generator.state = state["rng"]


class ShardedSource:
    """Rank ``rank`` of ``world`` takes every ``world``-th batch of ``source``, starting at ``rank``."""

    def __init__(self, source: DataSource, rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.source, self.rank, self.world = source, rank, world
        self.tops = source.tops
        self._started = False

    def _skip(self, count: int) -> None:
        skip = getattr(self.source, "skip", None)  # a source that can move on without loading
        if skip is not None:
            skip(count)
            return
        for _ in range(count):
            self.source.next_batch()

    def _align(self) -> None:
        if not self._started:
            self._skip(self.rank)
            self._started = True

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        self._align()
        return self.source.peek_shapes()

    def next_batch(self) -> dict[str, Tensor]:
        self._align()
        batch = self.source.next_batch()
        self._skip(self.world - 1)
        return batch

    def state_dict(self) -> dict:
        return {"started": self._started, "source": self.source.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._started = bool(state["started"])
        self.source.load_state_dict(state["source"])


class Feeder:
    """All the data sources of one net together: one batch is every source's next batch."""

    def __init__(self, sources: list[DataSource]) -> None:
        self.sources = sources
        tops = [t for s in sources for t in s.tops]
        if len(set(tops)) != len(tops):
            raise CaffeFormatError(f"two data layers produce the same top among {tops}")
        self.tops = tuple(tops)

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v for s in self.sources for k, v in s.peek_shapes().items()}

    def next_batch(self) -> dict[str, Tensor]:
        return {k: v for s in self.sources for k, v in s.next_batch().items()}

    def state_dict(self) -> dict:
        return {"sources": [s.state_dict() for s in self.sources]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["sources"]) != len(self.sources):
            raise ValueError("solver state has a different number of data sources")
        for source, saved in zip(self.sources, state["sources"]):
            source.load_state_dict(saved)


def hdf5_source(layer: Layer, seed: int) -> DataSource:
    p = layer.param.hdf5_data_param
    if not p.source:
        raise CaffeFormatError("HDF5Data needs hdf5_data_param.source", layer=layer.name)
    return HDF5Source(p.source, tuple(layer.tops), p.batch_size, shuffle=p.shuffle, seed=seed, layer=layer.name)


# Caffe data layer type -> (layer, seed) -> its source. The reference repo's Python layers are
# added by the module that maps them onto voc/ datasets.
DATA_LAYER_SOURCES: dict[str, Callable[[Layer, int], DataSource]] = {
    "HDF5Data": hdf5_source,
}


def source_for_layer(layer: Layer, seed: int = 0) -> DataSource:
    make = DATA_LAYER_SOURCES.get(layer.type)
    if make is None:
        what = layer.type
        if layer.type == "Python":
            what = f"Python ({layer.param.python_param.module}.{layer.param.python_param.layer})"
        raise CaffeFormatError(f"data layer type {what} has no data source (known: "
                               f"{', '.join(sorted(DATA_LAYER_SOURCES))})", layer=layer.name)
    return make(layer, seed)

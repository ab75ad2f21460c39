"""HDF5Data as Caffe reads it: files in list order, rows in order, batches across file ends,
wrap-around; shuffle a permutation; positions saved and restored; sharding by rank."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from convert.errors import CaffeFormatError
from fcn_ref.train import Feeder, HDF5Source, ShardedSource


@pytest.fixture
def source_list(tmp_path):
    rows = {"a.h5": [0, 1, 2], "b.h5": [3, 4]}
    for name, ids in rows.items():
        with h5py.File(tmp_path / name, "w") as f:
            f["data"] = np.array(ids, np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 2, 3, 4), np.float32)
            f["label"] = np.array(ids, np.float32).reshape(-1, 1)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'a.h5'}\n  {tmp_path / 'b.h5'}\n")
    return listing


def _ids(source, batches):
    return [source.next_batch()["label"][:, 0].int().tolist() for _ in range(batches)]


def test_order_across_files_and_wrap(source_list):
    source = HDF5Source(source_list, ("data", "label"), batch_size=2)
    assert source.peek_shapes() == {"data": (2, 2, 3, 4), "label": (2, 1)}
    assert _ids(source, 4) == [[0, 1], [2, 3], [4, 0], [1, 2]]


def test_state_resumes_exactly(source_list):
    for shuffle in (False, True):
        straight = HDF5Source(source_list, ("data", "label"), batch_size=1, shuffle=shuffle, seed=5)
        first = _ids(straight, 4)
        state = straight.state_dict()
        rest = _ids(straight, 8)
        resumed = HDF5Source(source_list, ("data", "label"), batch_size=1, shuffle=shuffle, seed=99)
        resumed.load_state_dict(state)
        assert _ids(resumed, 8) == rest
        if shuffle:  # every row once per pass, in some order
            assert sorted(sum(first + rest[:1], [])) == [0, 1, 2, 3, 4]


def test_sharding_interleaves_batches(source_list):
    whole = _ids(HDF5Source(source_list, ("data", "label"), batch_size=1), 6)
    shards = [ShardedSource(HDF5Source(source_list, ("data", "label"), batch_size=1), r, 2) for r in range(2)]
    assert _ids(shards[0], 3) == whole[0::2] and _ids(shards[1], 3) == whole[1::2]


def test_bad_sources(tmp_path, source_list):
    with pytest.raises(CaffeFormatError, match="cannot read the HDF5 source list"):
        HDF5Source(tmp_path / "missing.txt", ("data",), 1)
    with pytest.raises(CaffeFormatError, match="no dataset 'depth'"):
        HDF5Source(source_list, ("data", "depth"), 1)
    with pytest.raises(CaffeFormatError, match="same top"):
        Feeder([HDF5Source(source_list, ("data",), 1), HDF5Source(source_list, ("data",), 1)])

"""Every weight we read equals the weight real Caffe holds after loading the same file, bit for bit.

The references (``params.h5``, ``params-v1.h5`` in each fixture) were dumped by real Caffe after it
parsed the files itself (tools/caffe/dump_params.py), so these tests compare our reader with Caffe's.
"""
from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, fixture_cases
from convert import read_net
from convert.checkpoint import read_checkpoint
from convert.cli import main
from convert.net import CaffeNet, blob_names

CASES = fixture_cases()


def caffe_params(path) -> dict[str, list[np.ndarray]]:
    with h5py.File(path, "r") as f:
        return {name: [group[k][()] for k in sorted(group, key=int)] for name, group in f["params"].items()}


def assert_bitwise_equal(net: CaffeNet, reference: dict[str, list[np.ndarray]]) -> None:
    ours = {layer.name: layer.blobs for layer in net.layers if layer.blobs}
    assert sorted(ours) == sorted(reference), "layers with weights differ from Caffe's"
    for name, blobs in reference.items():
        assert len(ours[name]) == len(blobs), name
        for i, (mine, ref) in enumerate(zip(ours[name], blobs)):
            assert mine.dtype == np.float32 and mine.shape == ref.shape, (name, i, mine.shape, ref.shape)
            assert np.array_equal(mine.view(np.uint32), ref.view(np.uint32)), f"{name} blob {i} differs"


def with_file(name: str) -> list[str]:
    return [case for case in CASES if (FIXTURES / case / name).exists()]


def test_fixtures_exist():
    assert len(CASES) >= 10, f"expected the real-Caffe fixtures in {FIXTURES}; regenerate them (tests/fixtures/README.md)"
    assert with_file("params.h5") == with_file("net.caffemodel")


@pytest.mark.parametrize("case", with_file("params.h5"))
def test_binary_caffemodel_alone(case):
    net = read_net(FIXTURES / case / "net.caffemodel")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.h5"))


@pytest.mark.parametrize("case", with_file("params.h5"))
def test_binary_caffemodel_with_prototxt(case):
    net = read_net(FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.h5"))


@pytest.mark.parametrize("case", with_file("net.caffemodel.h5"))
def test_hdf5_weights_with_prototxt(case):
    net = read_net(FIXTURES / case / "net.caffemodel.h5", FIXTURES / case / "net.prototxt")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.h5"))


@pytest.mark.parametrize("case", with_file("params-v1.h5"))
def test_legacy_v1_files(case):
    """Caffe upgraded these V1 files itself when it dumped params-v1.h5."""
    reference = caffe_params(FIXTURES / case / "params-v1.h5")
    assert_bitwise_equal(read_net(FIXTURES / case / "v1.caffemodel"), reference)
    assert_bitwise_equal(read_net(FIXTURES / case / "v1.caffemodel", FIXTURES / case / "v1.prototxt"), reference)


def test_some_legacy_and_hdf5_cases_exist():
    assert with_file("params-v1.h5"), "no legacy V1 fixture that Caffe loaded"
    assert with_file("net.caffemodel.h5"), "no HDF5 fixture"


@pytest.mark.parametrize("case", with_file("net.caffemodel"))
def test_prototxt_alone_gives_the_structure(case):
    """A prototxt alone reads when the net has no weights; otherwise it names the layer that lacks them."""
    full = read_net(FIXTURES / case / "net.caffemodel")
    if any(layer.blobs for layer in full.layers):
        with pytest.raises(ValueError, match="no weights"):
            read_net(prototxt=FIXTURES / case / "net.prototxt")
        return
    structure = read_net(prototxt=FIXTURES / case / "net.prototxt")
    assert [l.name for l in structure.layers] == [l.name for l in full.layers]
    assert structure.inputs == full.inputs


@pytest.mark.parametrize("case", ["voc-fcn8s", "caffenet-classifier"])
def test_converted_file_loads_in_one_line(case, tmp_path):
    model = FIXTURES / case / "net.caffemodel"
    out = tmp_path / "out.pth"
    assert main([str(model), "-o", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["source"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert payload["source"]["file"] == "net.caffemodel"
    reference = caffe_params(FIXTURES / case / "params.h5")
    for layer, blobs in reference.items():
        layer_type = read_checkpoint(out).net.layer(layer).type
        for name, ref in zip(blob_names(layer_type, len(blobs)), blobs):
            assert np.array_equal(payload["state_dict"][f"{layer}.{name}"].numpy(), ref)
    assert_bitwise_equal(read_checkpoint(out).net, reference)

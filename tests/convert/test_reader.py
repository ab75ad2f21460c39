"""Every weight we read equals the weight real Caffe holds after loading the same file, bit for bit.

The references (``params.json``, ``params-v1.json`` in each fixture: shape and sha256 of every blob)
were written by the fixture generator from a real Caffe net that parsed the files itself, so these
tests compare our reader with Caffe's.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import FIXTURES, fixture_cases
from convert import read_net
from convert.checkpoint import read_checkpoint
from convert.cli import main
from convert.net import CaffeNet, blob_names

CASES = fixture_cases()


def caffe_params(path) -> dict[str, list[dict]]:
    return json.loads(path.read_text())


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def assert_bitwise_equal(net: CaffeNet, reference: dict[str, list[dict]]) -> None:
    ours = {layer.name: layer.blobs for layer in net.layers if layer.blobs}
    assert sorted(ours) == sorted(reference), "layers with weights differ from Caffe's"
    for name, blobs in reference.items():
        assert len(ours[name]) == len(blobs), name
        for i, (mine, ref) in enumerate(zip(ours[name], blobs)):
            assert mine.dtype == np.float32 and list(mine.shape) == ref["shape"], (name, i, mine.shape, ref)
            assert digest(mine) == ref["sha256"], f"{name} blob {i} differs from Caffe's"


def with_file(name: str) -> list[str]:
    return [case for case in CASES if (FIXTURES / case / name).exists()]


def test_fixtures_exist():
    assert len(CASES) >= 10, f"expected the real-Caffe fixtures in {FIXTURES}; regenerate them (tests/fixtures/README.md)"
    assert with_file("params.json") == with_file("net.caffemodel")


@pytest.mark.parametrize("case", with_file("params.json"))
def test_binary_caffemodel_alone(case):
    net = read_net(FIXTURES / case / "net.caffemodel")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.json"))


@pytest.mark.parametrize("case", with_file("params.json"))
def test_binary_caffemodel_with_prototxt(case):
    net = read_net(FIXTURES / case / "net.caffemodel", FIXTURES / case / "net.prototxt")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.json"))


@pytest.mark.parametrize("case", with_file("net.caffemodel.h5"))
def test_hdf5_weights_with_prototxt(case):
    net = read_net(FIXTURES / case / "net.caffemodel.h5", FIXTURES / case / "net.prototxt")
    assert_bitwise_equal(net, caffe_params(FIXTURES / case / "params.json"))


@pytest.mark.parametrize("case", with_file("params-v1.json"))
def test_legacy_v1_files(case):
    """Caffe upgraded these V1 files itself when it dumped params-v1.json."""
    reference = caffe_params(FIXTURES / case / "params-v1.json")
    assert_bitwise_equal(read_net(FIXTURES / case / "v1.caffemodel"), reference)
    assert_bitwise_equal(read_net(FIXTURES / case / "v1.caffemodel", FIXTURES / case / "v1.prototxt"), reference)


def test_some_legacy_and_hdf5_cases_exist():
    assert with_file("params-v1.json"), "no legacy V1 fixture that Caffe loaded"
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
    # Caffe saves the Split layers it inserted by itself into the caffemodel; the prototxt has none.
    names = [l.name for l in structure.layers]
    assert names == [l.name for l in full.layers if l.type != "Split" or l.name in names]
    assert structure.inputs == full.inputs


@pytest.mark.parametrize("case", ["voc-fcn8s", "caffenet-classifier"])
def test_converted_file_loads_in_one_line(case, tmp_path):
    model = FIXTURES / case / "net.caffemodel"
    out = tmp_path / "out.pth"
    assert main([str(model), "-o", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["source"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert payload["source"]["file"] == "net.caffemodel"
    reference = caffe_params(FIXTURES / case / "params.json")
    converted = read_checkpoint(out).net
    for layer, blobs in reference.items():
        spec = converted.layer(layer)
        for name, ref in zip(blob_names(spec.type, len(blobs), len(spec.bottoms)), blobs):
            assert digest(payload["state_dict"][f"{layer}.{name}"].numpy()) == ref["sha256"]
    assert_bitwise_equal(read_checkpoint(out).net, reference)


@pytest.mark.parametrize("case", [c for c in with_file("v1.caffemodel") if c not in with_file("params-v1.json")])
def test_cvpr_era_v1_with_crop_40(case):
    """Master Caffe cannot load CROP = 40 nets; the same weights, loaded by Caffe from the modern
    equivalent, are the reference. The crops come through as offset-less Crop layers."""
    assert case.startswith("cvpr-fcn")
    reference = caffe_params(FIXTURES / case / "params.json")
    for args in [(FIXTURES / case / "v1.caffemodel",), (FIXTURES / case / "v1.caffemodel", FIXTURES / case / "v1.prototxt")]:
        net = read_net(*args)
        assert_bitwise_equal(net, reference)
        crops = [l for l in net.layers if l.type == "Crop"]
        expected = len(json.loads((FIXTURES / case / "case.json").read_text())["crop_offsets"])  # 3, 2, 1
        assert len(crops) == expected and all(not len(l.param.crop_param.offset) for l in crops)

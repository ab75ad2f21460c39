"""BVLC master is the contract: fork spellings, the field-13 ambiguity, and the modern Crop default.

The fixtures (layer-pool-ceil-mode-false, layer-crop-no-offset-geometry) were written and run by real
Caffe; tests/convert/test_parity.py holds every blob of them to Caffe's. These tests pin down what
the converter says and does around them.
"""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, rel_error
from convert import cli, fork_fields
from convert.checkpoint import read_checkpoint
from convert.errors import CaffeFormatError
from convert.reader import read_net
from convert.runtime import load, load_caffe

CEIL = FIXTURES / "layer-pool-ceil-mode-false"
CROP = FIXTURES / "layer-crop-no-offset-geometry"


def reference(folder) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with h5py.File(folder / "reference.h5", "r", locking=False) as f:
        return ({k: f["inputs"][k][()] for k in f["inputs"]}, {k: f["blobs"][k][()] for k in f["blobs"]})


def run(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        return {k: v.numpy() for k, v in model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).items()}


# ----------------------------------------------------------------------------- fork spellings


def test_ceil_mode_prototxt_reads_as_bvlc_round_mode():
    assert "ceil_mode: false" in (CEIL / "net.prototxt").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the prototxt decides: nothing to warn about
        net = read_net(CEIL / "net.caffemodel", CEIL / "net.prototxt")
    pools = {layer.name: layer.param.pooling_param for layer in net.layers}
    assert {name: p.round_mode for name, p in pools.items()} == {"pool_max": 1, "pool_ave": 1, "pool_k2": 1}
    assert not any(p.HasField("ceil_mode") for p in pools.values())  # no fork spelling downstream


def test_ceil_mode_prototxt_matches_caffe():
    inputs, expected = reference(CEIL)
    ours = run(load_caffe(CEIL / "net.caffemodel", CEIL / "net.prototxt"), inputs)
    for name in ("pool_max", "pool_ave", "pool_k2"):
        assert rel_error(ours[name], expected[name]) <= 1e-6, name


def test_caffemodel_alone_warns_once_with_both_readings_and_follows_bvlc():
    with pytest.warns(UserWarning) as caught:
        model = load_caffe(CEIL / "net.caffemodel")
    messages = [str(w.message) for w in caught if "field 13" in str(w.message)]
    assert len(messages) == 1
    for layer in ("pool_max", "pool_ave", "pool_k2"):
        assert f"layer '{layer}': PoolingParameter field 13 = 0 is round_mode CEIL in BVLC Caffe but " \
               "ceil_mode false (FLOOR) in a Caffe fork" in messages[0]
    assert "--prototxt" in messages[0]
    inputs, expected = reference(CEIL)
    ours = run(model, inputs)
    assert ours["pool_max"].shape == (1, 3, 5, 6) != expected["pool_max"].shape  # BVLC's CEIL reading


@pytest.mark.parametrize(("text", "mode"), [("ceil_mode: true", 0), ("ceil_mode: false", 1),
                                            ("ceil_mode: false round_mode: FLOOR", 1), ("", 0)])
def test_fork_spelling_maps_to_the_bvlc_value(tmp_path, text, mode):
    path = tmp_path / "p.prototxt"
    path.write_text('input: "x" layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
                    f'pooling_param {{ pool: MAX kernel_size: 2 stride: 2 {text} }} }}')
    assert read_net(prototxt=path).layers[0].param.pooling_param.round_mode == mode


def test_disagreeing_spellings_are_an_error(tmp_path):
    path = tmp_path / "p.prototxt"
    path.write_text('input: "x" layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
                    'pooling_param { pool: MAX kernel_size: 2 ceil_mode: true round_mode: FLOOR } }')
    with pytest.raises(CaffeFormatError, match=r"p.prototxt: layer 'p': ceil_mode and round_mode disagree"):
        read_net(prototxt=path)


def test_the_table_says_where_each_spelling_comes_from():
    for fork in fork_fields.FORK_FIELDS:
        assert fork.source and fork.bvlc_field and set(fork.to_bvlc) == {True, False}


def test_bvlc_caffemodel_without_field_13_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_caffe(FIXTURES / "layer-pool-max-k3s2" / "net.caffemodel")


# ----------------------------------------------------------------------------- Crop


def test_offsetless_crop_matches_bvlc_caffe_and_warns_with_the_computed_offset():
    with pytest.warns(UserWarning, match=r"Crop layer 'crop' has no offset, so BVLC Caffe crops at 0; "
                                         r"its coordinate maps give offset \[1, 1\]"):
        model = load_caffe(CROP / "net.caffemodel", CROP / "net.prototxt")
    inputs, expected = reference(CROP)
    assert rel_error(run(model, inputs)["crop"], expected["crop"]) <= 1e-6


def test_coord_map_option_applies_the_computed_offset():
    model = load_caffe(CROP / "net.caffemodel", CROP / "net.prototxt", crop_offsets="coord-map")
    inputs, expected = reference(CROP)
    with torch.inference_mode():
        blobs = model(torch.from_numpy(inputs["data"]), all_blobs=True)
    h, w = expected["crop"].shape[2:]
    assert np.array_equal(blobs["crop"].numpy(), inputs["data"][:, :, 1:1 + h, 1:1 + w])
    assert rel_error(blobs["crop"].numpy(), expected["crop"]) > 0.1  # not what BVLC Caffe computes


def test_cli_crop_offsets_option_writes_the_offsets_into_the_file(tmp_path, capsys):
    args = [str(CROP / "net.caffemodel"), "--prototxt", str(CROP / "net.prototxt")]
    assert cli.main([*args, "-o", str(tmp_path / "bvlc.pth")]) == 0
    assert "warning: Crop layer 'crop' has no offset" in capsys.readouterr().err
    assert cli.main([*args, "-o", str(tmp_path / "map.pth"), "--crop-offsets", "coord-map"]) == 0
    assert "warning" not in capsys.readouterr().err
    offsets = {name: list(read_checkpoint(tmp_path / name).net.layer("crop").param.crop_param.offset)
               for name in ("bvlc.pth", "map.pth")}
    assert offsets == {"bvlc.pth": [], "map.pth": [1, 1]}
    inputs, expected = reference(CROP)
    assert rel_error(run(load(tmp_path / "bvlc.pth"), inputs)["crop"], expected["crop"]) <= 1e-6


def test_cli_warns_about_field_13_from_a_caffemodel_alone(tmp_path, capsys):
    assert cli.main([str(CEIL / "net.caffemodel"), "-o", str(tmp_path / "x.pth")]) == 0
    assert "warning: " in capsys.readouterr().err


@pytest.mark.parametrize("case", ["cvpr-fcn8s", "cvpr-fcn16s", "cvpr-fcn32s"])
def test_legacy_crop_40_keeps_coordinate_map_offsets_in_a_converted_file(case, tmp_path):
    """V1 CROP layers carry no offsets; the converted file writes the ones their branch computed,
    the same ones the modern prototxt that real Caffe ran writes."""
    folder = FIXTURES / case
    out = tmp_path / "v1.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main([str(folder / "v1.caffemodel"), "-o", str(out)]) == 0
    written = [list(l.param.crop_param.offset) for l in read_checkpoint(out).net.layers if l.type == "Crop"]
    modern = [list(l.param.crop_param.offset) for l in read_net(folder / "net.caffemodel", folder / "net.prototxt").layers
              if l.type == "Crop"]
    assert len(written) == len(modern) > 0
    assert [o * 2 if len(o) == 1 else o for o in modern] == written  # axis 2: (H, W)


def test_an_input_size_the_net_cannot_take_names_the_layer():
    """Caffe aborts on an equal Slice of an odd height; the runtime raises, saying which layer."""
    net = load_caffe(FIXTURES / "layer-slice-silence" / "net.caffemodel",
                     FIXTURES / "layer-slice-silence" / "net.prototxt")
    with pytest.raises(ValueError, match="2 equal parts") as raised:
        net(data=torch.randn(2, 4, 7, 3))
    assert raised.value.__notes__ == ["in layer 'd' of net 'layer-slice-silence' (bottoms ['data'])"]

"""Every layer BVLC Caffe runs at inference, and a clear refusal of the types that forks added.

Each new layer type has a real-Caffe micro-net fixture (tools/caffe/micro_nets.py,
``bvlc_layer_cases``) that tests/convert/test_parity.py holds blob for blob to Caffe. Clip and
Swish, which the packaged Caffe lacks, are held to real Caffe running an equivalent net
(tests/fixtures/bvlc-only/clip-swish). The tests below pin down the rules around them.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from conftest import FIXTURES, rel_error
from convert import cli
from convert.errors import CaffeFormatError
from convert.layers import FORK_LAYER_TYPES, LAYER_BUILDERS, build_layer
from convert.net import CaffeNet, Layer
from convert.reader import read_net
from convert.runtime import CaffeModule, load_caffe
from convert.schema import LayerParameter, NetParameter

# BVLC master 9b89154's layer registry (src/caffe/layers/*.cpp, REGISTER_LAYER_CLASS and the
# creator functions of layer_factory.cpp) minus what a deploy net never runs: data sources become
# the net's inputs, losses and Accuracy are left out (convert.upgrade), and Python layers run user
# code.
BVLC_INFERENCE_LAYERS = {
    "AbsVal", "ArgMax", "BatchNorm", "BatchReindex", "Bias", "BNLL", "Clip", "Concat", "Convolution",
    "Crop", "Deconvolution", "Dropout", "DummyData", "Eltwise", "ELU", "Embed", "Exp", "Filter",
    "Flatten", "Im2col", "InnerProduct", "Log", "LRN", "LSTM", "LSTMUnit", "MVN", "Parameter", "Pooling", "Power",
    "PReLU", "Reduction", "ReLU", "Reshape", "RNN", "Scale", "Sigmoid", "Silence", "Slice", "Softmax",
    "Split", "SPP", "Swish", "TanH", "Threshold", "Tile",
}
CLIP_SWISH = FIXTURES / "bvlc-only" / "clip-swish"


def module_for(text: str, *blobs) -> torch.nn.Module:
    layer = Layer(text_format.Parse(text, LayerParameter()), [np.asarray(b, np.float32) for b in blobs])
    return build_layer(layer, CaffeNet("t", {}, [layer]))


def test_every_bvlc_inference_layer_has_a_builder():
    assert BVLC_INFERENCE_LAYERS <= set(LAYER_BUILDERS)


@pytest.mark.parametrize("case", ["argmax", "batch-reindex", "embed", "filter", "im2col", "neurons-more",
                                  "mvn", "parameter", "reduction", "spp", "tile", "dummy-data",
                                  "prelu", "slice-silence", "rnn", "rnn-static", "rnn-expose-hidden", "lstm",
                                  "lstm-static", "lstm-expose-hidden", "lstm-unit"])
def test_each_new_layer_has_a_real_caffe_fixture(case):
    """The blob-for-blob comparison is test_parity's; this makes sure the fixtures are there."""
    assert (FIXTURES / f"layer-{case}" / "net.caffemodel").exists()


def test_clip_and_swish_match_real_caffe_running_their_bvlc_definitions():
    with h5py.File(CLIP_SWISH / "reference.h5", "r", locking=False) as f:
        x = f["inputs/data"][()]
        expected = {name: f["blobs"][name][()] for name in ("clip", "swish", "swish_beta")}
    model = load_caffe(None, CLIP_SWISH / "net.prototxt")
    with torch.inference_mode():
        ours = model(torch.from_numpy(x))
    assert set(ours) == set(expected)
    for name, value in expected.items():
        assert rel_error(ours[name].numpy(), value) <= 1e-6, name
    assert (expected["clip"] == expected["clip"].max()).sum() > 1  # both bounds bite
    with pytest.raises(CaffeFormatError, match="Clip needs min and max"):
        module_for('name: "c" type: "Clip" clip_param { min: 0 }')


@pytest.mark.parametrize("layer_type", ["Interp", "Normalize", "PriorBox", "Upsample", "ShuffleChannel"])
def test_fork_layer_types_are_named_as_such(layer_type):
    with pytest.raises(CaffeFormatError, match=rf"layer 'odd': layer type '{layer_type}' comes from a "
                                               rf"Caffe fork \(.+\), not BVLC Caffe"):
        module_for(f'name: "odd" type: "{layer_type}"')
    assert layer_type in FORK_LAYER_TYPES


def test_cli_names_a_fork_layer_in_one_line(tmp_path, capsys):
    proto = tmp_path / "fork.prototxt"
    proto.write_text('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 } '
                     'layer { name: "up" type: "Interp" bottom: "x" top: "up" }')
    assert cli.main(["--prototxt", str(proto), "-o", str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer 'up'" in err and "Caffe fork" in err and "not BVLC" in err
    assert not (tmp_path / "x.pth").exists()


def test_argmax_breaks_ties_like_caffes_partial_sort():
    """std::partial_sort over (value, index) with std::greater: equal values, higher index first."""
    argmax = module_for('name: "a" type: "ArgMax" argmax_param { top_k: 3 axis: 1 }')
    x = torch.tensor([[1.0, 5.0, 5.0, 2.0, 5.0]])
    assert argmax(x).tolist() == [[4.0, 2.0, 1.0]]
    both = module_for('name: "a" type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }')
    assert both(x.reshape(1, 5, 1, 1)).tolist() == [[[[4.0], [2.0]], [[5.0], [5.0]]]]


def test_embed_refuses_out_of_range_or_fractional_indices():
    embed = module_for('name: "e" type: "Embed" embed_param { num_output: 2 input_dim: 3 bias_term: false }',
                       np.arange(6).reshape(3, 2))
    assert embed(torch.tensor([2.0, 0.0])).tolist() == [[4, 5], [0, 1]]
    for bad in ([3.0], [-1.0], [0.5]):
        with pytest.raises(ValueError, match="integers in"):
            embed(torch.tensor(bad))


def recurrent_net(kind: str, hidden: int, blobs: list[np.ndarray]) -> CaffeModule:
    text = (f'layer {{ name: "r" type: "{kind}" bottom: "x" bottom: "cont" top: "y" '
            f'recurrent_param {{ num_output: {hidden} }} }}')
    param = text_format.Parse(text, NetParameter())
    net = CaffeNet("t", {"x": (), "cont": ()}, [Layer(param.layer[0], [np.asarray(b, np.float32) for b in blobs])])
    return CaffeModule(net).eval()


@pytest.mark.parametrize(("kind", "shapes"), [
    ("LSTM", [(12, 2), (12,), (12, 3)]), ("RNN", [(3, 2), (3,), (3, 3), (3, 3), (3,)])])
def test_a_zero_cont_starts_a_new_sequence(kind, shapes):
    """Two sequences run back to back, the second starting at cont 0, give what each gives alone."""
    rng = np.random.default_rng(0)
    model = recurrent_net(kind, 3, [rng.normal(0, 0.7, s) for s in shapes])
    x = torch.randn(6, 1, 2)
    cont = torch.tensor([[0.0], [1], [1], [0], [1], [1]])
    with torch.no_grad():
        together = model(x, cont)["y"]
        first, second = model(x[:3], cont[:3])["y"], model(x[3:], cont[3:])["y"]
    torch.testing.assert_close(together, torch.cat([first, second]))
    assert list(model.state_dict()) == [f"r.{n}" for n in (["W_xc", "b_c", "W_hc"] if kind == "LSTM" else
                                                           ["W_xh", "b_h", "W_hh", "W_ho", "b_o"])]


def test_recurrent_static_input_blob_is_named_and_its_count_checked():
    case = FIXTURES / "layer-lstm-static"
    model = load_caffe(case / "net.caffemodel", case / "net.prototxt")
    assert list(model.state_dict()) == ["out.W_xc", "out.b_c", "out.W_xc_static", "out.W_hc"]
    net = read_net(case / "net.caffemodel", case / "net.prototxt")
    net.layers[0].blobs.pop()
    with pytest.raises(CaffeFormatError, match="expects 4 weight blobs"):
        CaffeModule(net)


def test_dummy_data_constant_is_a_layer_random_is_an_input(tmp_path):
    proto = tmp_path / "dummy.prototxt"
    proto.write_text('layer { name: "c" type: "DummyData" top: "c" dummy_data_param { shape { dim: 2 dim: 3 } '
                     'data_filler { type: "constant" value: 0.25 } } } '
                     'layer { name: "g" type: "DummyData" top: "g" dummy_data_param { shape { dim: 2 dim: 3 } '
                     'data_filler { type: "gaussian" } } } '
                     'layer { name: "s" type: "Eltwise" bottom: "c" bottom: "g" top: "s" }')
    model = load_caffe(None, proto)
    assert model.input_names == ["g"]  # random data cannot be reproduced: the caller feeds it
    assert model(torch.ones(2, 3))["s"].tolist() == [[1.25] * 3] * 2
    assert list(model.state_dict()) == []  # constants are not weights


def test_spp_on_an_input_too_small_for_its_pyramid_is_refused_as_caffe_refuses_it():
    spp = module_for('name: "s" type: "SPP" spp_param { pyramid_height: 3 }')
    assert spp(torch.randn(1, 2, 8, 12)).shape == (1, 2 * (1 + 4 + 16))
    with pytest.raises(ValueError, match="too small"):
        spp(torch.randn(1, 2, 1, 6))


def test_python_layers_are_refused_as_user_code():
    with pytest.raises(CaffeFormatError, match="Python layer runs user code"):
        module_for('name: "py" type: "Python" bottom: "x" top: "y" python_param { module: "m" layer: "L" }')

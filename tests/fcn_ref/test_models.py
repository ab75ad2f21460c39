"""Model definitions: Caffe names and keys, geometry from coordinate maps, blocks, strict loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fcn_ref
from convert.checkpoint import save_checkpoint
from convert.reader import read_net
from fcn_ref.blocks import Upsample, bilinear_weight, upsample_filt
from fcn_ref.caffe_names import caffe_layer as layer, caffe_state_dict
from fcn_ref.loading import load_state_strict
from fcn_ref.models import ARCHITECTURES, build
from conftest import FIXTURES

TINY = {"widths": [1, 1, 1, 1, 1], "fc_widths": [1, 1]}


def _meta(cls, **kwargs):
    with torch.device("meta"):
        return cls(**kwargs)


@pytest.mark.parametrize("cls, offsets", [
    (fcn_ref.FCN32s, {"score": 19}),
    (fcn_ref.FCN16s, {"score_pool4c": 5, "score": 27}),
    (fcn_ref.FCN8s, {"score_pool4c": 5, "score_pool3c": 9, "score": 31}),
    (fcn_ref.FCN8sAtOnce, {"score_pool4c": 5, "score_pool3c": 9, "score": 31}),
    (fcn_ref.FCNAlexNet, {"score": 18}),
    (fcn_ref.CVPRFCN8s, {"score-pool4c": 5, "score-pool3c": 9, "upscore": 31}),
    (fcn_ref.NYUDColorHHAFCN32s, {"score": 19}),
])
def test_crop_offsets_follow_from_the_geometry(cls, offsets):
    assert _meta(cls).crop_offsets() == offsets


def test_full_size_state_dicts_have_caffes_names_and_shapes():
    vgg = caffe_state_dict(_meta(fcn_ref.FCN8s))
    assert vgg["conv1_1.weight"].shape == (64, 3, 3, 3) and vgg["fc6.weight"].shape == (4096, 512, 7, 7)
    assert vgg["upscore8.weight"].shape == (21, 21, 16, 16) and "upscore8.bias" not in vgg
    assert caffe_state_dict(_meta(fcn_ref.FCN8sAtOnce))["scale_pool3.weight"].shape == (256,)
    alex = caffe_state_dict(_meta(fcn_ref.FCNAlexNet))
    assert alex["conv2.weight"].shape == (256, 48, 5, 5) and alex["fc6.weight"].shape == (4096, 256, 6, 6)
    assert alex["upscore.weight"].shape == (21, 21, 63, 63)
    cvpr = caffe_state_dict(_meta(fcn_ref.CVPRFCN32s))
    assert "score-fr.weight" in cvpr and cvpr["upsample.bias"].shape == (21,)
    d = caffe_state_dict(_meta(fcn_ref.NYUDColorDepthFCN32s))
    assert d["conv1_1_bgrd.weight"].shape == (64, 4, 3, 3) and "conv1_1.weight" not in d
    hha = caffe_state_dict(_meta(fcn_ref.NYUDColorHHAFCN32s))
    assert {"conv1_1color.weight", "fc7hha.bias", "score_frcolor.weight", "upscore.weight"} <= set(hha)
    sift = caffe_state_dict(_meta(fcn_ref.SIFTFlowFCN16s))
    assert sift["score_fr_sem.weight"].shape[0] == 33 and sift["upscore16_geo.weight"].shape[0] == 3


def test_caffe_blob_sizes_at_500():
    """fcn-facts: conv1 698, pools 349/175/88/44/22, fc6 16, upscore8 568 -> 500; AlexNet 543 -> 500."""
    model = fcn_ref.FCN8s(num_classes=2, **TINY).eval()
    x = torch.zeros(1, 3, 500, 500)
    with torch.no_grad():
        out = model.trunk.blobs(x, ("conv1_1", "pool1", "pool2", "pool3", "pool4", "pool5", "fc6"))
        assert [out[k].shape[-1] for k in ("conv1_1", "pool1", "pool2", "pool3", "pool4", "pool5", "fc6")] == \
            [698, 349, 175, 88, 44, 22, 16]
        assert model(x).shape == (1, 2, 500, 500)
        alex = fcn_ref.FCNAlexNet(num_classes=2, widths=[2, 2, 2, 2, 2], fc_widths=[1, 1]).eval()
        taps = ("conv1", "pool1", "pool2", "pool5", "fc6")
        feats = alex.trunk.blobs(x, taps)
        assert [feats[k].shape[-1] for k in taps] == [173, 86, 43, 21, 16]
        assert layer(alex, "upscore")(layer(alex, "score_fr")(feats["fc7"])).shape[-1] == 543


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_keeps_the_input_size(name):
    cls = ARCHITECTURES[name]
    small = {"fcn-alexnet": {"widths": [2, 2, 2, 2, 2], "fc_widths": [1, 1]},
             "fcn-googlenet": {"widths": [2, 2, 2], "inception_widths": [[1] * 6] * 9}}
    model = cls(**small.get(name, TINY)).eval()
    for h, w in [(1, 1), (31, 33), (64, 47)]:
        inputs = [torch.randn(1, 3, h, w)]
        if cls.input_names == ("color", "depth"):
            inputs.append(torch.randn(1, 1, h, w))
        elif len(cls.input_names) == 2:
            inputs.append(torch.randn(1, 3, h, w))
        with torch.no_grad():
            out = model(*inputs)
        for score in (out.values() if isinstance(out, dict) else [out]):
            assert score.shape[-2:] == (h, w)


def test_architecture_round_trips_through_build():
    model = fcn_ref.CVPRFCN16s(num_classes=5, **TINY)
    again = build(model.architecture)
    assert type(again) is fcn_ref.CVPRFCN16s and again.kwargs == model.kwargs
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_upsample_filt_is_the_reference_kernel():
    assert np.array_equal(upsample_filt(4), np.outer([.25, .75, .75, .25], [.25, .75, .75, .25]))
    assert np.array_equal(upsample_filt(3), np.outer([.5, 1, .5], [.5, 1, .5]))
    k63 = upsample_filt(63)  # AlexNet: odd, centred on a pixel, factor 32
    assert k63[31, 31] == 1 and k63[0, 31] == 1 / 32 and np.array_equal(k63, k63.T)
    for size in (4, 16, 32, 63, 64):  # exact in float32
        assert np.array_equal(upsample_filt(size).astype(np.float32).astype(np.float64), upsample_filt(size))
    w = bilinear_weight(3, 4)
    assert torch.equal(w[1, 1], torch.from_numpy(upsample_filt(4)).float()) and not w[0, 1].any()


def test_upsample_is_fixed_by_default_and_learnable_on_request():
    assert not Upsample(3, 4, 2).weight.requires_grad
    assert Upsample(3, 4, 2, learnable=True).weight.requires_grad
    model = fcn_ref.FCN8s(num_classes=2, learn_upsampling=True, **TINY)
    assert layer(model, "upscore8").weight.requires_grad
    cvpr = fcn_ref.CVPRFCN8s(num_classes=2, **TINY)
    assert layer(cvpr, "score2").weight.requires_grad and layer(cvpr, "score4").weight.requires_grad
    assert not layer(cvpr, "upsample").weight.requires_grad


def test_upsample_equals_the_full_deconvolution_with_or_without_off_diagonal_weights():
    up = Upsample(4, 16, 8).eval()
    x = torch.randn(2, 4, 5, 7)
    with torch.no_grad():
        assert torch.allclose(up(x), F.conv_transpose2d(x, up.weight, stride=8), atol=1e-6)
        up.weight[0, 1, 3, 3] = 0.5  # no longer per-channel: the full deconvolution must run
        assert torch.allclose(up(x), F.conv_transpose2d(x, up.weight, stride=8), atol=1e-6)


def test_strict_loading_lists_missing_and_unexpected_keys():
    model = fcn_ref.FCN8s(num_classes=2, **TINY)
    state = dict(caffe_state_dict(model))
    state.pop("score_pool3.bias")
    state["score_pool2.weight"] = torch.zeros(1)
    state["fc7.weight"] = torch.zeros(3, 1, 1, 1)
    with pytest.raises(fcn_ref.CaffeFormatError) as info:
        load_state_strict(model, state, path="x.pth")
    message = str(info.value)
    assert "missing keys: score_pool3.bias" in message and "unexpected keys: score_pool2.weight" in message
    assert "fc7.weight (3, 1, 1, 1)" in message


def test_unrecognized_nets_load_through_the_generic_runtime(tmp_path):
    net = read_net(FIXTURES / "vgg16-classifier" / "net.caffemodel")
    out = tmp_path / "vgg.pth"
    save_checkpoint(net, out, architecture=None, source={"file": "net.caffemodel"})
    model = fcn_ref.load(out)
    assert not isinstance(model, fcn_ref.FCN) and not model.training
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 197, 203))["prob"].shape == (1, 1000)


def test_print_shows_the_figure():
    text = repr(_meta(fcn_ref.FCN8s))
    for part in ("(trunk): VGG16(", "(head): Head8s(", "(skip_pool4): Skip(", "(crop): Crop(offset=5)",
                 "(upscore8): Upsample(21, kernel_size=16, stride=8)", "(crop): Crop(offset=31)"):
        assert part in text, part

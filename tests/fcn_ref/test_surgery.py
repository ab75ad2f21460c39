"""Net surgery against real Caffe where Caffe has an answer, and exact invariants where it does not.

Caffe's own transplant + forward for a whole FCN is not in the fixtures. What it does have: the
classifiers' pool5, fc6 and fc7 blobs from Caffe's forward, so the reshaped fc6/fc7 convolutions
applied to Caffe's pool5 must give Caffe's InnerProduct outputs at the single spatial position.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convert.reader import read_net
import fcn_ref
from fcn_ref.blocks import bilinear_weight
from fcn_ref.caffe_names import caffe_layer as layer, caffe_layer_names, caffe_state_dict
from fcn_ref.surgery import fcn_from_classifier, stage
from conftest import FIXTURES, rel_error

CLASSIFIERS = {  # case -> (FCN architecture, the file pair to read, as (weights, prototxt))
    "vgg16-v1": ("vgg16-classifier", "fcn32s", "v1.caffemodel", None),
    "vgg16-v1-with-prototxt": ("vgg16-classifier", "fcn32s", "v1.caffemodel", "v1.prototxt"),
    "vgg16": ("vgg16-classifier", "fcn8s", "net.caffemodel", None),
    "caffenet-v1": ("caffenet-classifier", "fcn-alexnet", "v1.caffemodel", None),
}


def _transplant(key: str):
    case, arch, weights, prototxt = CLASSIFIERS[key]
    folder = FIXTURES / case
    assert (folder / weights).exists(), f"fixture {case}/{weights} is missing"
    model = fcn_from_classifier(folder / weights, arch=arch, num_classes=21,
                                prototxt=folder / prototxt if prototxt else None)
    with h5py.File(folder / "reference.h5", "r") as f:
        blobs = {name: torch.from_numpy(f["blobs"][name][...]) for name in ("pool5", "fc6", "fc7")}
    return model.eval(), blobs, folder


@pytest.mark.parametrize("key", sorted(CLASSIFIERS))
def test_fc_layers_as_convolutions_equal_caffes_inner_products(key):
    model, blobs, _ = _transplant(key)
    with torch.no_grad():
        fc6 = torch.relu(layer(model, "fc6")(blobs["pool5"]))  # relu6 runs in place in Caffe: blob 'fc6' is after it
        fc7 = torch.relu(layer(model, "fc7")(blobs["fc6"][:, :, None, None]))
    assert fc6.shape[2:] == (1, 1) and fc7.shape[2:] == (1, 1)
    assert rel_error(fc6.flatten(1).numpy(), blobs["fc6"].numpy()) <= 1e-5
    assert rel_error(fc7.flatten(1).numpy(), blobs["fc7"].numpy()) <= 1e-5


def test_fc6_reshape_is_the_documented_index_map():
    """W[o, c, h, w] = W_ip[o, 49c + 7h + w] for VGG's 7 x 7 pool5."""
    model, _, folder = _transplant("vgg16-v1")
    ip = read_net(folder / "v1.caffemodel").layer("fc6").blobs[0]
    conv = layer(model, "fc6").weight.detach().numpy()
    o, c, h, w = 3, 5, 2, 6
    assert conv.shape[2:] == (7, 7) and conv[o, c, h, w] == ip[o, 49 * c + 7 * h + w]


@pytest.mark.parametrize("key", sorted(CLASSIFIERS))
def test_transplanted_fcn_starts_with_zero_scores_and_bilinear_upsampling(key):
    model, _, folder = _transplant(key)
    net = read_net(folder / "net.caffemodel")
    for name in ("conv1_1" if "vgg" in key else "conv1", "conv3_1" if "vgg" in key else "conv3"):
        assert np.array_equal(layer(model, name).weight.detach().numpy(), net.layer(name).blobs[0])
    for name, module in ((caffe, model.get_submodule(path)) for path, caffe in caffe_layer_names(model).items()):
        if name.startswith("score") and hasattr(module, "weight"):
            assert not module.weight.any() and not module.bias.any()
        if isinstance(module, fcn_ref.blocks.Upsample):
            assert torch.equal(module.weight, bilinear_weight(module.channels, module.kernel_size))
            assert not module.weight.requires_grad
    with torch.no_grad():
        score = model(torch.randn(1, 3, 40, 52))
    assert score.shape == (1, 21, 40, 52) and not score.any()


def test_color_depth_surgery_adds_the_mean_colour_filter():
    model = fcn_from_classifier(FIXTURES / "vgg16-classifier" / "net.caffemodel", arch="nyud-fcn32s-color-d",
                                num_classes=40)
    rgb = read_net(FIXTURES / "vgg16-classifier" / "net.caffemodel").layer("conv1_1").blobs[0]
    w = layer(model, "conv1_1_bgrd").weight.detach().numpy()
    assert w.shape[1] == 4 and np.array_equal(w[:, :3], rgb)
    assert np.allclose(w[:, 3], rgb.mean(axis=1), rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- staged training


def _trained_fcn32s() -> fcn_ref.FCN32s:
    return fcn_ref.FCN32s.from_caffemodel(FIXTURES / "voc-fcn32s" / "net.caffemodel")


def test_stage_copies_shared_layers_and_zeroes_new_skips():
    coarse = _trained_fcn32s()
    fine = stage(coarse, "fcn16s")
    ours, theirs = caffe_state_dict(fine), caffe_state_dict(coarse)
    for key in theirs:
        if key.startswith(("conv", "fc", "score_fr")):
            assert torch.equal(ours[key], theirs[key]), key
    assert not layer(fine, "score_pool4").weight.any() and not layer(fine, "score_pool4").bias.any()
    assert torch.equal(layer(fine, "upscore2").weight, bilinear_weight(layer(fine, "upscore2").channels, 4))
    finer = stage(fine, "fcn8s")
    assert not layer(finer, "score_pool3").weight.any() and torch.equal(layer(finer, "score_pool4").weight,
                                                                     layer(fine, "score_pool4").weight)


@pytest.mark.parametrize("arch", ["fcn16s", "fcn8s"])
def test_staged_net_is_the_coarse_score_through_its_own_upsampling(arch):
    """Exact: the zero skips add exact zeros, so the finer net's output is, bit for bit, the coarse
    net's score_fr blob taken through the finer net's upsampling layers and final crop."""
    coarse = _trained_fcn32s()
    fine = stage(coarse, "fcn16s")
    if arch == "fcn8s":
        fine = stage(fine, "fcn8s")
    fine.eval()
    x = torch.randn(1, 3, 61, 47)
    with torch.no_grad():
        score_fr = layer(coarse, "score_fr")(coarse.trunk(x)["fc7"])
        up = layer(fine, "upscore2")(score_fr)
        if arch == "fcn8s":
            up = layer(fine, "upscore_pool4")(up)
            expected = layer(fine, "score")(layer(fine, "upscore8")(up), x)
        else:
            expected = layer(fine, "score")(layer(fine, "upscore16")(up), x)
        assert torch.equal(fine(x), expected)
        assert torch.equal(fine(x).argmax(1), expected.argmax(1))


def test_staged_scores_are_not_the_coarse_scores():
    """Why the staged net's first scores only approximate the coarse net's: bilinear x2 followed by
    bilinear x16 is a wider kernel (80 taps per 32 pixels) than one bilinear x32 (64 taps)."""
    impulse = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    impulse[..., 0, 0] = 1
    two_step = F.conv_transpose2d(F.conv_transpose2d(impulse, bilinear_weight(1, 4).double(), stride=2),
                                  bilinear_weight(1, 32).double(), stride=16)
    one_step = F.conv_transpose2d(impulse, bilinear_weight(1, 64).double(), stride=32)
    assert two_step.shape[-1] == 80 and one_step.shape[-1] == 64
    # and on the real trained net the scores move, though far less than their range
    coarse = _trained_fcn32s()
    fine = stage(coarse, "fcn16s").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = coarse(x), fine(x)
    assert not torch.equal(a, b)
    assert rel_error(b.numpy(), a.numpy()) < 0.5


def test_stage_keeps_learned_cvpr_upsampling():
    coarse = fcn_ref.CVPRFCN8s.from_caffemodel(FIXTURES / "cvpr-fcn8s" / "net.caffemodel")
    again = stage(coarse, "cvpr-fcn8s")
    assert torch.equal(layer(again, "score2").weight, layer(coarse, "score2").weight)  # learned: carried over
    assert torch.equal(layer(again, "score2").bias, layer(coarse, "score2").bias)
    assert torch.equal(layer(again, "upsample").weight, bilinear_weight(21, 16))  # fixed: bilinear


@pytest.mark.parametrize("source, arch, why", [
    ("fcn-alexnet", "fcn16s", "no source for conv1_1"),
    ("fcn8s", "fcn16s", "drops trained score_pool3"),
])
def test_stage_refuses_a_source_that_cannot_initialise_the_finer_net(source, arch, why):
    coarse = fcn_ref.ARCHITECTURES[source](num_classes=3, widths=[2, 2, 2, 2, 2], fc_widths=[2, 2])
    with pytest.raises(ValueError, match=why) as info:
        stage(coarse, arch)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch", ["fcn16s", "cvpr-fcn16s"])
def test_stage_keeps_every_setting_of_the_source(arch):
    source = {"fcn16s": "fcn32s", "cvpr-fcn16s": "cvpr-fcn32s"}[arch]
    coarse = fcn_ref.ARCHITECTURES[source](num_classes=3, widths=[2, 2, 2, 2, 2], fc_widths=[2, 2],
                                           learn_upsampling=True)
    fine = stage(coarse, arch)
    assert fine.config.learn_upsampling and fine.config.num_classes == 3 and fine.config.widths == (2, 2, 2, 2, 2)
    assert all(m.weight.requires_grad for m in fine.modules() if isinstance(m, fcn_ref.Upsample))

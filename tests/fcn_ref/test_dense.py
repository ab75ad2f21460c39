"""Shift-and-stitch and filter rarefaction (section 3.2) compute the same dense scores.

Both are run on the reduced zoo nets (real-Caffe fixture weights), through the fcn_ref models and
through the generic runtime. ``exact_region`` (receptive field inside the picture the shift sees) is
where they must agree to fp32 noise; the border outside it, where the shifted nets read padding
instead of picture, is where they must not be assumed to, and there they do differ.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convert
import fcn_ref
from conftest import FIXTURES
from fcn_ref import dense

FP32_NOISE = 1e-5  # relative to the largest score, as every parity test in the suite


def _net(case: str, runtime: str) -> nn.Sequential:
    weights = FIXTURES / case / "net.caffemodel"
    model = fcn_ref.from_caffemodel(weights) if runtime == "fcn_ref" else convert.load_caffe(weights)
    return dense.chain(model, "score_fr").eval()


def _compare(net: nn.Module, factor: int, size: tuple[int, int], seed: int = 0) -> tuple[float, float, int, int]:
    """(max relative difference inside the exact region, max outside it (0 if none), positions
    inside, positions both methods give)."""
    x = torch.from_numpy(np.random.RandomState(seed).standard_normal((1, 3, *size)).astype(np.float32) * 50)
    with torch.no_grad():
        rarefied = dense.rarefy(net, factor)(x)
        stitched = dense.shift_and_stitch(net, x, factor, dense.output_stride(net))
    h, w = (min(a, b) for a, b in zip(rarefied.shape[-2:], stitched.shape[-2:]))
    diff = (rarefied[..., :h, :w] - stitched[..., :h, :w]).abs().amax(dim=(0, 1)) / stitched.abs().max()
    rows = [i for i in dense.exact_region(net, factor, size[0]) if i < h]
    cols = [j for j in dense.exact_region(net, factor, size[1]) if j < w]
    inside = torch.zeros_like(diff, dtype=torch.bool)
    inside[np.ix_(rows, cols)] = True
    outside = float(diff[~inside].max()) if (~inside).any() else 0.0
    return float(diff[inside].max()), outside, int(inside.sum()), h * w


def test_receptive_fields_are_the_papers():
    """Table 1 of the paper: rf size 404 (VGG16) and 355 (AlexNet), from our layer geometry."""
    assert dense.receptive_field(_net("voc-fcn32s", "fcn_ref")) == 404
    assert dense.receptive_field(_net("voc-fcn-alexnet", "fcn_ref")) == 355
    assert dense.output_stride(_net("voc-fcn32s", "runtime")) == 32


@pytest.mark.parametrize("case,runtime,factor,size", [
    ("voc-fcn-alexnet", "fcn_ref", 2, (400, 384)),
    ("voc-fcn-alexnet", "fcn_ref", 4, (400, 384)),
    ("voc-fcn32s", "runtime", 2, (440, 424)),
])
def test_rarefaction_equals_shift_and_stitch_inside_the_picture(case, runtime, factor, size):
    inside, outside, count, _ = _compare(_net(case, runtime), factor, size)
    assert count >= 2
    assert inside <= FP32_NOISE
    assert outside > 1e-3  # at the border the shifted nets read zero padding: not the same numbers


@pytest.mark.slow
@pytest.mark.parametrize("case", ["voc-fcn8s", "voc-fcn-alexnet"])
@pytest.mark.parametrize("runtime", ["fcn_ref", "runtime"])
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_rarefaction_equals_shift_and_stitch_every_factor(case, runtime, factor):
    inside, _, count, _ = _compare(_net(case, runtime), factor, (520, 488), seed=factor)
    assert count >= 4 and inside <= FP32_NOISE


def test_without_padding_they_are_equal_everywhere():
    """No padding, no clipped pooling window: every output of both methods is the same number."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                        nn.MaxPool2d(3, 2), nn.Conv2d(6, 5, 2)).eval()
    for factor in (2, 4):
        inside, _, count, total = _compare(net, factor, (61, 53))
        assert count == total > 100 and inside <= FP32_NOISE


def test_rarefied_vgg_geometry():
    """Stride 32 -> 8: pool5 and pool4 lose their stride; conv5 is dilated 2, pool5 2, fc6 4."""
    rarefied = dense.rarefy(_net("voc-fcn8s", "fcn_ref"), 4)
    geometry = {w.name: w for w in dense.windows(rarefied)}
    assert dense.output_stride(rarefied) == 8
    assert (geometry["pool4"].stride, geometry["pool5"].stride) == (1, 1)
    assert (geometry["conv5_1"].dilation, geometry["conv5_1"].pad) == (2, 2)
    assert geometry["pool5"].dilation == 2 and geometry["fc6"].dilation == 4
    assert geometry["conv4_3"].dilation == 1 and geometry["pool3"].stride == 2


def test_factor_must_divide_the_stride():
    net = _net("voc-fcn32s", "fcn_ref")
    with pytest.raises(ValueError, match="factor 3"):
        dense.rarefy(net, 3)
    with pytest.raises(ValueError, match="no layer"):
        dense.chain(fcn_ref.from_caffemodel(FIXTURES / "voc-fcn32s" / "net.caffemodel"), "fc9")

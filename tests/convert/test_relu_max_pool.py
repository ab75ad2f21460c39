"""``convert.modules.pooling.relu_max_pool``: an in-place ReLU and the max pool reading it as one
call whose backward writes the gradient into the activation; the numbers are ReLU's and max
pooling's, forward and backward. It runs in the zoo's trunks and in the runtime only where the
ReLU's blob has no other reader."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from google.protobuf import text_format

from convert.modules import pooling
from convert.runtime import CaffeModule
from convert.coord_map import WindowGeometry
from convert.layers import build_layer
from convert.net import Layer
from convert.schema import LayerParameter, NetParameter
from convert.train_net import initialize, phase_net
from fcn_ref.trunks import Trunk, conv, max_pool, relu

GEOMETRIES = {  # kernel, stride, padding, ceil_mode
    "VGG 2x2 ceil": ((2, 2), (2, 2), (0, 0), True),
    "AlexNet 3x3 s2 (overlapping windows)": ((3, 3), (2, 2), (0, 0), True),
    "padded 3x3 s1": ((3, 3), (1, 1), (1, 1), False),
    "2x3 s(1,2)": ((2, 3), (1, 2), (0, 1), True),
}


class _Probe(torch.autograd.Function):
    """Identity into a fresh tensor; records where that tensor and the gradient it gets live."""
    seen: list[int] = []

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        _Probe.seen.append(out.data_ptr())
        return out

    @staticmethod
    def backward(ctx, grad):
        _Probe.seen.append(grad.data_ptr())
        return grad


def _run(fn, x0: torch.Tensor, geometry, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = x0.clone().requires_grad_()
    h = _Probe.apply(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    out = fn(h, *geometry)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
    return out.detach(), x.grad


def _reference(h, kernel, stride, padding, ceil_mode):
    return F.max_pool2d(F.relu(h), kernel, stride, padding, 1, ceil_mode)


def _fused(h, kernel, stride, padding, ceil_mode):
    return pooling.relu_max_pool(h, WindowGeometry(kernel, stride, padding), ceil_mode)


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_numbers_are_relu_then_max_pool_and_the_gradient_lands_in_the_activation(name, channels_last):
    kernel, stride, padding, ceil_mode = GEOMETRIES[name]
    x0 = torch.randn(2, 5, 11, 14, generator=torch.Generator().manual_seed(0))
    x0[0, 1] = -1.0  # whole windows at zero after the ReLU: no gradient at all there
    x0[1, 2, :4, :4] = 0.5  # ties inside windows
    geometry = (kernel, stride, padding, ceil_mode)
    want = _run(_reference, x0, geometry, channels_last)
    _Probe.seen.clear()
    got = _run(_fused, x0, geometry, channels_last)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert _Probe.seen[0] == _Probe.seen[1]  # the activation's own storage took the gradient


def test_a_second_backward_fails_instead_of_reading_the_overwritten_activation():
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    out = pooling.relu_max_pool(x * 1, WindowGeometry((2, 2), (2, 2)))
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_without_a_gradient_it_is_relu_then_pool():
    x = torch.randn(1, 3, 7, 7)
    with torch.no_grad():
        got = pooling.relu_max_pool(x.clone(), WindowGeometry((2, 2), (2, 2)), ceil_mode=True)
    assert torch.equal(got, F.max_pool2d(F.relu(x), 2, 2, ceil_mode=True))


def _count_fused(monkeypatch) -> list[int]:
    calls = []
    original = pooling._ReLUMaxPool.apply
    monkeypatch.setattr(pooling._ReLUMaxPool, "apply", lambda *a: calls.append(1) or original(*a))
    return calls


def _trunk(taps=()) -> Trunk:
    torch.manual_seed(0)
    return Trunk([conv("conv1", 3, 4, 3, pad=1), relu("relu1"), max_pool("pool1", 2, 2),
                  conv("conv2", 4, 6, 3, pad=1), relu("relu2"), max_pool("pool2", 2, 2)], 3, taps)


def _trunk_grads(trunk: Trunk) -> list[torch.Tensor]:
    x = torch.randn(1, 3, 13, 15, generator=torch.Generator().manual_seed(2), requires_grad=True)
    out = trunk(x)
    sum((v * torch.randn(v.shape, generator=torch.Generator().manual_seed(3))).sum() for v in out.values()).backward()
    return [x.grad] + [p.grad for p in trunk.parameters()]


def test_a_trunk_runs_relu_and_pool_as_one_with_the_same_gradients(monkeypatch):
    hooked = _trunk()
    for name in ("relu1", "relu2"):  # a hook on either layer keeps them apart
        getattr(hooked, name).register_forward_hook(lambda *a: None)
    want = _trunk_grads(hooked)
    calls = _count_fused(monkeypatch)
    got = _trunk_grads(_trunk())
    assert len(calls) == 2
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_a_tapped_relu_blob_is_not_fused(monkeypatch):
    calls = _count_fused(monkeypatch)
    trunk = _trunk(taps=("conv2",))
    _trunk_grads(trunk)
    assert len(calls) == 1  # pool1 only: conv2's blob (after relu2) is read by the head too


NET = """
name: "relu-pool"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 9 dim: 11 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
%s
"""


def _runtime_grads(extra: str = "", all_blobs: bool = False) -> list[torch.Tensor]:
    phase = phase_net(text_format.Parse(NET % extra, NetParameter()), "TRAIN")
    initialize(phase.net, {"data": (1, 2, 9, 11)}, torch.Generator().manual_seed(0))
    module = CaffeModule(phase.net).train()
    x = torch.randn(1, 2, 9, 11, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = module(x, all_blobs=all_blobs)
    total = sum((out[name] * (i + 1)).sum() for i, name in enumerate(sorted(module.output_names)))
    total.backward()
    return [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("extra, fused", [
    ("", 2),
    # relu2's blob read again after the pool: only relu1 + pool1 run as one
    ('layer { name: "again" type: "Power" bottom: "conv2" top: "again" }', 1),
])
def test_the_runtime_fuses_only_a_relu_blob_the_pool_alone_reads(monkeypatch, extra, fused):
    want = _runtime_grads(extra, all_blobs=True)  # every blob kept: never fused
    calls = _count_fused(monkeypatch)
    got = _runtime_grads(extra)
    assert len(calls) == fused
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_blobs_returned_by_all_blobs_keep_their_values_through_backward():
    phase = phase_net(text_format.Parse(NET % "", NetParameter()), "TRAIN")
    initialize(phase.net, {"data": (1, 2, 9, 11)}, torch.Generator().manual_seed(0))
    module = CaffeModule(phase.net).train()
    x = torch.randn(1, 2, 9, 11, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = module(x, all_blobs=True)
    kept = out["conv1"].detach().clone()
    out["pool2"].sum().backward()
    assert kept.min() >= 0 and torch.equal(out["conv1"].detach(), kept)


def test_the_runtime_pool_leaves_an_input_too_small_to_its_own_error():
    """``Pooling.after_relu`` declines an input too small for Caffe's windows, so the Pooling
    layer itself (named in the runtime's error) reports it, as without the fusion."""
    layer = text_format.Parse('name: "pool" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }',
                              LayerParameter())
    pool = build_layer(Layer(layer, []), None)
    x = torch.randn(1, 2, 1, 5, requires_grad=True) * 1
    assert pool.after_relu(x) is None
    with pytest.raises(ValueError, match="too small"):
        pool(x)

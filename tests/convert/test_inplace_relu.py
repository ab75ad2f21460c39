"""``convert.modules.pointwise.relu_``: nn.ReLU(inplace=True)'s numbers, forward and backward, with the
gradient masked in place only where nothing else holds it."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from convert.modules import pointwise
from convert.modules import ReLU as CaffeReLU
from fcn_ref.blocks import ReLU


def _grads(relu, build, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    a = torch.randn(2, 3, 8, 8, requires_grad=True)
    b = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    out = build(relu, a, b, w)
    out.backward(torch.randn_like(out))
    return [t.grad if t.grad is not None else torch.zeros(()) for t in (a, b, w)]


def plain(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x, inplace=True)


CASES = {
    # the gradient reaching the ReLU is fresh and its own: masked in place
    "conv after relu": lambda r, a, b, w: F.conv2d(r(a * 1), w, padding=1),
    "pool after relu": lambda r, a, b, w: F.max_pool2d(r(a * 1), 2, ceil_mode=True),
    # one gradient handed to two nodes (a sum's backward), both ReLUs: must not be overwritten
    "sum of two relus": lambda r, a, b, w: r(a * 1) + r(b * 1),
    "relu plus leaf": lambda r, a, b, w: r(a * 1) + b,
    # a view of a larger gradient (cat's backward)
    "cat of relus": lambda r, a, b, w: torch.cat([r(a * 1), r(b * 1)], 1) * 2,
    # the next layer switches to channels_last: its gradient comes back in the other layout
    "channels_last conv after relu": lambda r, a, b, w: F.conv2d(
        r(a * 1).contiguous(memory_format=torch.channels_last), w, padding=1),
    # the output read twice
    "two readers": lambda r, a, b, w: F.conv2d(r(a * 1), w, padding=1) + r(a * 2).sum(1, keepdim=True),
}


def test_every_graph_gets_autograds_gradients():
    for name, build in CASES.items():
        want = _grads(plain, build)
        for relu in (pointwise.relu_, ReLU(inplace=True), CaffeReLU(0.0)):
            if isinstance(relu, CaffeReLU):
                relu.inplace = True
            got = _grads(relu, build)
            for g, w in zip(got, want):
                assert torch.equal(g, w), name


def test_the_gradient_is_masked_in_place_when_it_is_owned(monkeypatch):
    calls = []
    original = pointwise._owned
    monkeypatch.setattr(pointwise, "_owned", lambda g: calls.append(original(g)) or calls[-1])
    _grads(pointwise.relu_, CASES["conv after relu"])
    assert calls == [True]
    calls.clear()
    _grads(pointwise.relu_, CASES["sum of two relus"])
    assert calls[0] is False  # the first of the two sees the shared gradient
    calls.clear()
    _grads(pointwise.relu_, CASES["cat of relus"])
    assert True not in calls  # views of cat's gradient: never overwritten


def test_a_gradient_in_the_other_layout_goes_on_in_the_activations(monkeypatch):
    """A channels_last gradient for an NCHW activation is copied into NCHW (the layer before
    reads that layout) and then masked in place, with threshold_backward's numbers."""
    calls = []
    original = pointwise._owned
    monkeypatch.setattr(pointwise, "_owned", lambda g: calls.append(original(g)) or calls[-1])
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9, requires_grad=True)
    seen = []
    h = x * 1
    h.register_hook(lambda g: seen.append(g.is_contiguous()))  # what the layer before gets
    y = pointwise.relu_(h)
    grad = torch.randn(2, 5, 7, 9).contiguous(memory_format=torch.channels_last)
    y.backward(grad)
    assert calls == [True] and seen == [True]
    assert torch.equal(x.grad, torch.ops.aten.threshold_backward(grad, F.relu(x.detach()), 0))


def test_blockwise_transpose_equals_contiguous(monkeypatch):
    monkeypatch.setattr(pointwise, "TRANSPOSE_BLOCK_BYTES", 3 * 5 * 4)  # 3 positions a block
    for shape in ((2, 5, 7, 9), (1, 1, 4, 4), (1, 64, 1, 1), (3, 2, 1, 10)):
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        got = pointwise._channels_last_to_nchw(x)
        assert got.is_contiguous() and torch.equal(got, x.contiguous()), shape


def test_a_hook_keeping_the_gradient_sees_it_unmasked():
    kept = []
    torch.manual_seed(0)
    a = torch.randn(1, 2, 5, 5, requires_grad=True)
    y = pointwise.relu_(a * 1)
    y.register_hook(lambda g: kept.append(g))
    y.backward(torch.ones_like(y))
    assert torch.equal(kept[0], torch.ones_like(y))
    assert torch.equal(a.grad, (y > 0).float())


def test_without_a_gradient_it_is_plain_relu():
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(pointwise.relu_(x.clone()), F.relu(x))
    leaf = torch.randn(3, 4)
    assert pointwise.relu_(leaf) is leaf and leaf.min() >= 0

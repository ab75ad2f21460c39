"""Caffe's SGD update against an independent numpy transcription of SGDSolver::ApplyUpdate
(clip on the global norm, divide by iter_size, regularize, momentum history, w -= history), with a
rate that changes at every step, where torch.optim.SGD's form gives other numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convert.train_net import ParamSpec
from fcn_ref.train import CaffeSGD


def _reference(weights, grads_per_step, rates, specs, *, momentum, wd, reg, clip, iter_size):
    w = {k: v.astype(np.float64).copy() for k, v in weights.items()}
    h = {k: np.zeros_like(v) for k, v in w.items()}
    for grads, rate in zip(grads_per_step, rates):
        g = {k: v.astype(np.float64) for k, v in grads.items()}
        if clip >= 0:
            norm = np.sqrt(sum((v ** 2).sum() for v in g.values()))
            if norm > clip:
                g = {k: v * clip / norm for k, v in g.items()}
        for k in w:
            lr_mult, decay_mult = specs[k]
            if lr_mult == 0:
                continue
            d = g[k] / iter_size
            d = d + wd * decay_mult * (w[k] if reg == "L2" else np.sign(w[k]))
            h[k] = rate * lr_mult * d + momentum * h[k]
            w[k] = w[k] - h[k]
    return w


@pytest.mark.parametrize("reg,clip,iter_size", [("L2", -1.0, 1), ("L1", -1.0, 2), ("L2", 0.5, 3)])
def test_update_matches_caffes_rule(reg, clip, iter_size):
    rng = np.random.default_rng(0)
    weights = {"a.weight": rng.normal(size=(4, 3)).astype(np.float32),
               "a.bias": rng.normal(size=4).astype(np.float32),
               "up.weight": rng.normal(size=(2, 2)).astype(np.float32)}
    specs = {"a.weight": (1.0, 1.0), "a.bias": (2.0, 0.0), "up.weight": (0.0, 1.0)}
    module = nn.Module()
    for name, value in weights.items():
        module.register_parameter(name.replace(".", "_"), nn.Parameter(torch.tensor(value)))
    named = [(k, getattr(module, k.replace(".", "_"))) for k in weights]
    sgd = CaffeSGD(named, {k: ParamSpec(*v) for k, v in specs.items()}, momentum=0.9, weight_decay=5e-3,
                   regularization=reg, clip_gradients=clip, iter_size=iter_size)
    assert not dict(named)["up.weight"].requires_grad  # lr_mult 0: frozen, no gradient computed
    rates = [0.1, 0.05, 0.2, 0.01]
    steps = []
    for rate in rates:
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in weights.items() if k != "up.weight"}
        for k, g in grads.items():
            dict(named)[k].grad = torch.tensor(g)
        grads["up.weight"] = np.zeros((2, 2), np.float32)
        steps.append(grads)
        sgd.step(rate)
    expected = _reference(weights, steps, rates, specs, momentum=0.9, wd=5e-3, reg=reg, clip=clip,
                          iter_size=iter_size)
    for name, param in named:
        np.testing.assert_allclose(param.detach().numpy(), expected[name], rtol=1e-6, atol=1e-7)
    assert np.array_equal(dict(named)["up.weight"].detach().numpy(), weights["up.weight"])
    if clip >= 0:
        return
    # torch.optim.SGD's form (buf = m*buf + g; w -= lr*buf) differs once the rate changes
    torch_w = torch.tensor(weights["a.weight"], requires_grad=True)
    opt = torch.optim.SGD([torch_w], lr=rates[0], momentum=0.9)
    for grads, rate in zip(steps, rates):
        opt.param_groups[0]["lr"] = rate
        torch_w.grad = torch.tensor(grads["a.weight"] / iter_size) + 5e-3 * (
            torch_w.detach() if reg == "L2" else torch.sign(torch_w.detach()))
        opt.step()
    assert not np.allclose(torch_w.detach().numpy(), expected["a.weight"], rtol=1e-4)

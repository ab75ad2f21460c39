"""Caffe's lr policies against the formulas of sgd_solver.cpp (fcn-facts.md, "SGD"), written out
independently here in float64."""
from __future__ import annotations

import math

import pytest

from fcn_ref.train import LearningRate, parse_solver_text

NET = 'net_param { layer { name: "x" type: "ReLU" } }\n'


def _rates(text: str, iters: int = 30) -> list[float]:
    lr = LearningRate(parse_solver_text(NET + text))
    return [lr(i) for i in range(iters)]


def _close(ours, theirs):
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_fixed_step_exp_inv():
    _close(_rates('base_lr: 0.1 lr_policy: "fixed"'), [0.1] * 30)
    _close(_rates('base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 7'), [0.1 * 0.5 ** (i // 7) for i in range(30)])
    _close(_rates('base_lr: 0.1 lr_policy: "exp" gamma: 0.9'), [0.1 * 0.9 ** i for i in range(30)])
    _close(_rates('base_lr: 0.1 lr_policy: "inv" gamma: 0.1 power: 0.75'),
           [0.1 * (1 + 0.1 * i) ** -0.75 for i in range(30)])


def test_multistep_poly_sigmoid():
    steps = [3, 10, 11]
    _close(_rates('base_lr: 1 lr_policy: "multistep" gamma: 0.1 stepvalue: 3 stepvalue: 10 stepvalue: 11'),
           [0.1 ** sum(i >= s for s in steps) for i in range(30)])
    _close(_rates('base_lr: 0.01 lr_policy: "poly" power: 0.9 max_iter: 30'),
           [0.01 * (1 - i / 30) ** 0.9 for i in range(30)])
    _close(_rates('base_lr: 0.01 lr_policy: "sigmoid" gamma: -0.5 stepsize: 10'),
           [0.01 / (1 + math.exp(0.5 * (i - 10))) for i in range(30)])

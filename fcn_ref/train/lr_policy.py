"""Caffe's learning-rate policies (``SGDSolver::GetLearningRate``), ``iter`` = iterations done.

fixed: base_lr; step: base_lr * gamma^floor(iter / stepsize); exp: base_lr * gamma^iter;
inv: base_lr * (1 + gamma * iter)^-power; multistep: base_lr * gamma^k, where k advances by one
each call at which iter has reached the next stepvalue (Caffe's ``current_step_``, kept in the
solver state); poly: base_lr * (1 - iter / max_iter)^power; sigmoid:
base_lr / (1 + exp(-gamma * (iter - stepsize))). The rate is a float32, as Caffe's Dtype.
"""
from __future__ import annotations

import math

import numpy as np


def _f(value: float) -> float:
    return float(np.float32(value))


class LearningRate:
    """The rate at each iteration; holds multistep's ``current_step`` like Caffe's solver."""

    def __init__(self, param) -> None:
        self.param = param
        self.current_step = 0

    def __call__(self, iteration: int) -> float:
        p = self.param
        base, gamma, power = _f(p.base_lr), _f(p.gamma), _f(p.power)
        policy = p.lr_policy
        if policy == "fixed":
            return base
        if policy == "step":
            self.current_step = iteration // p.stepsize
            return _f(base * gamma ** self.current_step)
        if policy == "exp":
            return _f(base * gamma ** iteration)
        if policy == "inv":
            return _f(base * _f(1.0 + gamma * iteration) ** -power)
        if policy == "multistep":
            steps = list(p.stepvalue)
            if self.current_step < len(steps) and iteration >= steps[self.current_step]:
                self.current_step += 1
            return _f(base * gamma ** self.current_step)
        if policy == "poly":
            return _f(base * _f(1.0 - _f(iteration) / _f(p.max_iter)) ** power)
        if policy == "sigmoid":
            return _f(base * (1.0 / (1.0 + math.exp(-gamma * (iteration - p.stepsize)))))
        raise ValueError(f"unknown lr_policy '{policy}'")

"""Caffe's solver types: the value each subtracts from a weight (``ComputeUpdateValue``).

All six share SGDSolver's ``ApplyUpdate`` (``CaffeSGD``): the lr policy's rate, clipping on the
global gradient norm, the 1/iter_size normalization, L1/L2 regularization, ``local_rate = rate *
lr_mult``, and ``w -= update``; only the update differs. With ``g`` the regularized gradient, ``h``
Caffe's ``history_`` (two sets for AdaDelta and Adam, laid out as Caffe's ``history_[i]`` and
``history_[N + i]``), float32 throughout, in Caffe's order of operations (src/caffe/solvers/):

- SGD: ``h = momentum * h + local_rate * g``; update ``h``.
- Nesterov: ``h_prev = h``; ``h = momentum * h + local_rate * g``; update
  ``(1 + momentum) * h - momentum * h_prev``.
- AdaGrad (momentum must be 0): ``h += g^2``; update ``local_rate * g / (sqrt(h) + delta)``.
- RMSProp (momentum 0, 0 <= rms_decay < 1): ``h = rms_decay * h + (1 - rms_decay) * g^2``; update
  ``local_rate * g / (sqrt(h) + delta)``.
- AdaDelta: ``h = momentum * h + (1 - momentum) * g^2``;
  ``step = g * sqrt((u + delta) / (h + delta))`` with ``u`` the history of steps;
  ``u = momentum * u + (1 - momentum) * step^2``; update ``local_rate * step`` (the rate scales
  the update, not the stored step: Caffe's AdaDelta is usually run with base_lr 1).
- Adam (beta1 = momentum, beta2 = momentum2, eps = delta): ``m = beta1 * m + (1 - beta1) * g``;
  ``v = beta2 * v + (1 - beta2) * g^2``; update ``local_rate * c * m / (sqrt(v) + eps)`` with the
  bias correction ``c = sqrt(1 - beta2^t) / (1 - beta1^t)``, ``t = iter + 1``, computed in double
  and rounded to float32 as Caffe's ``pow(Dtype, int)`` does.

Adam's ``t`` is counted per blob (every learnable blob is updated once per iteration, so it equals
Caffe's iter + 1) and is part of the state, so a resumed run continues its bias correction.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch
from torch import Tensor

from convert.errors import CaffeFormatError
from fcn_ref.train.config import solver_type
from fcn_ref.train.sgd import CaffeSGD, _f, copy_into, cpu_copies


def _zeros(like: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: torch.zeros_like(t) for name, t in like.items()}


class Nesterov(CaffeSGD):
    """NesterovSolver: momentum history, stepping back by the old history and over by the new."""

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        history = self.history[name][rows]
        previous = history.clone()
        history.mul_(self.momentum).add_(g, alpha=local_rate)
        return history * _f(1 + self.momentum) - previous * self.momentum


class AdaGrad(CaffeSGD):
    """AdaGradSolver: the sum of squared gradients scales each element's rate."""

    def __init__(self, *args, delta: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delta = _f(delta)

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        history = self.history[name][rows]
        history.add_(g * g)
        return g / (history.sqrt() + self.delta) * local_rate


class RMSProp(CaffeSGD):
    """RMSPropSolver: a decaying mean of squared gradients scales each element's rate."""

    def __init__(self, *args, delta: float, rms_decay: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delta, self.rms_decay = _f(delta), _f(rms_decay)

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        history = self.history[name][rows]
        history.mul_(self.rms_decay).add_(g * g, alpha=_f(1 - self.rms_decay))
        return g / (history.sqrt() + self.delta) * local_rate


class AdaDelta(CaffeSGD):
    """AdaDeltaSolver: decaying means of squared gradients (``history``) and of squared steps
    (``step_history``, Caffe's second half of ``history_``)."""

    def __init__(self, *args, delta: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delta = _f(delta)
        self.step_history = _zeros(self.history)

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        gradients, steps = self.history[name][rows], self.step_history[name][rows]
        keep = _f(1 - self.momentum)
        gradients.mul_(self.momentum).add_(g * g, alpha=keep)
        step = g * ((steps + self.delta) / (gradients + self.delta)).sqrt()
        steps.mul_(self.momentum).add_(step * step, alpha=keep)
        return step * local_rate

    def state_dict(self) -> dict:
        return {"gradients": super().state_dict(), "steps": cpu_copies(self.step_history)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state["gradients"])
        copy_into(self.step_history, state["steps"], "AdaDelta's step history")


class Adam(CaffeSGD):
    """AdamSolver: first (``history``) and second (``second_moment``) moment estimates with
    Caffe's bias correction folded into the rate."""

    def __init__(self, *args, momentum2: float, delta: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.beta2, self.eps = _f(momentum2), _f(delta)
        self.second_moment = _zeros(self.history)
        self.t = {name: 0 for name in self.history}

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        m, v = self.history[name][rows], self.second_moment[name][rows]
        beta1, beta2 = self.momentum, self.beta2
        if not rows.start:  # a blob's first rows: one step of t per iteration
            self.t[name] += 1
        t = self.t[name]
        correction = _f(math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t))
        m.mul_(beta1).add_(g, alpha=_f(1 - beta1))
        v.mul_(beta2).add_(g * g, alpha=_f(1 - beta2))
        return m / (v.sqrt() + self.eps) * _f(local_rate * correction)

    def state_dict(self) -> dict:
        return {"m": super().state_dict(), "v": cpu_copies(self.second_moment), "t": dict(self.t)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state["m"])
        copy_into(self.second_moment, state["v"], "Adam's second moment")
        self.t.update({name: int(state["t"][name]) for name in self.t})


# Solver type (Caffe's ``type`` string) -> the rule and the SolverParameter fields it reads
# besides the shared ones (momentum, weight_decay, regularization_type, clip_gradients, iter_size).
RULES: dict[str, tuple[type[CaffeSGD], tuple[str, ...]]] = {
    "SGD": (CaffeSGD, ()),
    "Nesterov": (Nesterov, ()),
    "AdaGrad": (AdaGrad, ("delta",)),
    "RMSProp": (RMSProp, ("delta", "rms_decay")),
    "AdaDelta": (AdaDelta, ("delta",)),
    "Adam": (Adam, ("momentum2", "delta")),
}


def update_rule(param) -> Callable[..., CaffeSGD]:
    """The rule class for the solver's type with its own fields bound; call it as ``CaffeSGD``."""
    kind = solver_type(param)
    if kind not in RULES:
        raise CaffeFormatError(f"unknown solver type '{kind}' (known: {', '.join(RULES)})")
    rule, fields = RULES[kind]
    return functools.partial(rule, **{f: getattr(param, f) for f in fields})

"""Caffe's SGD update (``SGDSolver::ApplyUpdate``), not ``torch.optim.SGD``'s.

For every learnable blob, in this order (Caffe's): the gradient is clipped on the global L2 norm of
all gradients when ``clip_gradients`` >= 0 (before anything else, so before the iter_size
division); multiplied by 1/iter_size; regularized, L2 ``g += wd * decay_mult * w`` or L1
``g += wd * decay_mult * sign(w)``; then ``history = lr * lr_mult * g + momentum * history`` and
``w -= history``. torch's SGD keeps ``buf = momentum * buf + g`` and steps ``lr * buf``, which
differs from this as soon as the rate changes. Scalars are float32, as Caffe's Dtype.
Blobs with lr_mult 0 are frozen: they get no gradient and are never written.

**Update in backward** (``arm`` / ``finish``): when nothing needs all gradients at once (iter_size 1,
no clipping, one process), each parameter is updated by the same rule the moment its gradient is
complete (``Tensor.register_post_accumulate_grad_hook``) and its gradient is dropped at once, so
the full-size gradient buffer (half a GB for FCN-8s) never exists. A parameter's gradient is
complete only after every node that reads the parameter has run, so no later backward step sees
the new value. The numbers are those of ``step``: the same function updates each parameter.
Parameters named in ``arm``'s ``by_rows`` (a module's own, used once) go further: the layer that
computes the gradient hands it over a block of output channels at a time
(``convert.trainpath.RowUpdate``; fc6's GEMM path) and each block is applied as it comes, since
every rule is elementwise: fc6's 411 MB gradient never exists.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from convert.train_net import ParamSpec
from convert.trainpath import RowUpdate, set_row_update


def _f(value: float) -> float:
    return float(np.float32(value))


def cpu_copies(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """A solver-state set detached onto the CPU (what a .solverstate stores)."""
    return {name: t.detach().cpu().clone() for name, t in tensors.items()}


def copy_into(into: dict[str, Tensor], saved: dict[str, Tensor], what: str) -> None:
    """Restore a solver-state set in place; every blob must be in ``saved`` (KeyError naming them)."""
    missing = sorted(set(into) - set(saved))
    if missing:
        raise KeyError(f"solver state lacks {what} for {', '.join(missing[:5])}")
    for name, t in into.items():
        t.copy_(saved[name])


class CaffeSGD:
    """Momentum history per learnable parameter and Caffe's update rule (see module docstring)."""

    def __init__(self, named_parameters: Iterable[tuple[str, nn.Parameter]], specs: dict[str, ParamSpec], *,
                 momentum: float, weight_decay: float, regularization: str = "L2",
                 clip_gradients: float = -1.0, iter_size: int = 1) -> None:
        self.params: dict[str, nn.Parameter] = {}
        self.specs: dict[str, ParamSpec] = {}
        for name, param in named_parameters:
            spec = specs.get(name, ParamSpec())
            param.requires_grad_(spec.lr_mult != 0)
            if spec.lr_mult != 0:
                self.params[name] = param
                self.specs[name] = spec
        self.momentum, self.weight_decay = _f(momentum), _f(weight_decay)
        self.regularization, self.clip_gradients, self.iter_size = regularization, clip_gradients, iter_size
        self.history = {name: torch.zeros_like(p, memory_format=torch.preserve_format)
                        for name, p in self.params.items()}
        self._armed_rate: float | None = None  # set between ``arm`` and ``finish``
        self._pending: set[str] = set()  # armed parameters not yet updated in this backward
        self._hooks: list = []

    def can_update_in_backward(self) -> bool:
        """Whether each parameter's update needs only its own gradient of one backward pass (no
        ``clip_gradients``, which needs the global norm; no ``iter_size`` accumulation)."""
        return self.iter_size == 1 and self.clip_gradients < 0

    def arm(self, rate: float, by_rows: Iterable[str] = ()) -> None:
        """Update each parameter at ``rate`` as soon as the next backward completes its gradient;
        ``finish`` then updates those that got none. Parameters in ``by_rows`` may also be updated
        block by block by the layer computing their gradient (see the module docstring): name only
        parameters that one module owns. Needs ``can_update_in_backward``."""
        if not self.can_update_in_backward():
            raise RuntimeError("update in backward needs iter_size 1 and no clip_gradients")
        if not self._hooks:
            self._hooks = [param.register_post_accumulate_grad_hook(self._on_gradient(name))
                           for name, param in self.params.items()]
        self._armed_rate, self._pending = rate, set(self.params)
        for name in by_rows:
            if name in self.params:
                set_row_update(self.params[name], RowUpdate(self._row_update(name, rate)))

    def _on_gradient(self, name: str):
        def hook(param: Tensor) -> None:
            if self._armed_rate is None or name not in self._pending or param.grad is None:
                return  # not armed: the gradient stays for ``step`` (none: ``finish`` decays it)
            with torch.no_grad():
                self._update(name, param, param.grad, self._armed_rate, owned=True)
            param.grad = None
            self._pending.discard(name)
        return hook

    def _row_update(self, name: str, rate: float):
        def apply(rows: slice, grad_rows: Tensor, last: bool) -> None:
            with torch.no_grad():
                self._update(name, self.params[name], grad_rows, rate, owned=True, rows=rows)
            if last:
                self._pending.discard(name)
        return apply

    def finish(self) -> None:
        """End an armed iteration: parameters without a gradient are updated as ``step`` updates
        them (zero gradient: decay and momentum still apply), and the hooks disarm."""
        rate, pending = self._armed_rate, self._pending
        self.disarm()
        if rate is None:
            raise RuntimeError("finish without arm")
        with torch.no_grad():
            for name, param in self.params.items():
                if name not in pending:
                    continue
                self._update(name, param, param.grad if param.grad is not None else torch.zeros_like(param), rate)
                param.grad = None

    def disarm(self) -> None:
        """Leave an armed iteration without updating the rest (after an error in the pass)."""
        self._armed_rate, self._pending = None, set()
        for param in self.params.values():
            set_row_update(param, None)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def _gradients(self) -> dict[str, Tensor]:
        return {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in self.params.items()}

    @torch.no_grad()
    def step(self, rate: float) -> None:
        grads = self._gradients()
        if self.clip_gradients >= 0:
            sumsq = sum(float(torch.sum(g.double() * g.double())) for g in grads.values())
            norm = math.sqrt(sumsq)
            if norm > self.clip_gradients:
                scale = _f(_f(self.clip_gradients) / _f(norm))
                grads = {name: g * scale for name, g in grads.items()}
        for name, param in self.params.items():
            self._update(name, param, grads[name], rate)

    def _update(self, name: str, param: Tensor, g: Tensor, rate: float, owned: bool = False,
                rows: slice = slice(None)) -> None:
        """One parameter's update from its (clipped) gradient: the rule in the module docstring.
        ``owned``: ``g`` is dropped afterwards, so regularization may add into it in place.
        ``rows``: ``g`` is the gradient of ``param[rows]`` only (a block of a ``RowUpdate``)."""
        spec = self.specs[name]
        if self.iter_size != 1:
            g = g * _f(1.0 / self.iter_size)
        weights = param[rows]
        decay = _f(self.weight_decay * _f(spec.decay_mult))
        if decay:
            g = self._regularized(g, weights, decay, owned)
        local_rate = _f(_f(rate) * _f(spec.lr_mult))
        weights.sub_(self.update_value(name, g, local_rate, rows))

    def update_value(self, name: str, g: Tensor, local_rate: float, rows: slice = slice(None)) -> Tensor:
        """What ``w[rows] -=`` subtracts, from the regularized gradient of those rows (Caffe's
        ``ComputeUpdateValue``, the one step the solver types differ in: see ``update_rules``): here
        the momentum history. A blob's rows come in order; ``rows.start`` is falsy at its first."""
        history = self.history[name][rows]
        return history.mul_(self.momentum).add_(g, alpha=local_rate)  # Caffe's axpby

    def _regularized(self, g: Tensor, param: Tensor, decay: float, owned: bool) -> Tensor:
        """``g + decay * w`` (L2) or ``g + decay * sign(w)`` (L1), as one fused multiply-add per
        element like Caffe's ``caffe_axpy`` (BLAS saxpy). L2 on a gradient about to be dropped is
        added in place: no temporary the size of the blob (fc6's is 411 MB)."""
        if self.regularization != "L2":
            return g.add(torch.sign(param), alpha=decay)
        return g.add_(param, alpha=decay) if owned else g.add(param, alpha=decay)

    def state_dict(self) -> dict[str, Tensor]:
        return cpu_copies(self.history)

    def load_state_dict(self, history: dict[str, Tensor]) -> None:
        copy_into(self.history, history, "momentum history")

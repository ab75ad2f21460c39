"""Updating each parameter during backward (``CaffeSGD.arm``) gives bit for bit the numbers of the
plain path (all gradients, then ``CaffeSGD.step``), for every lr policy and regularization, with
frozen and unused parameters; the solver state, snapshots and resume are unchanged by it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from torch import nn

from convert.schema import SolverParameter
from convert.train_net import ParamSpec
from fcn_ref.models import FCN8s
from fcn_ref.train import CaffeSGD, Solver
from fcn_ref.train.zoo import WithLoss, param_specs

POLICIES = {
    "fixed": "",
    "step": "gamma: 0.5 stepsize: 2",
    "multistep": "gamma: 0.5 stepvalue: 1 stepvalue: 3",
    "exp": "gamma: 0.7",
    "inv": "gamma: 0.3 power: 0.75",
    "poly": "power: 0.9",
    "sigmoid": "gamma: -0.5 stepsize: 2",
}


@pytest.fixture(autouse=True)
def one_thread():
    """Reduced nets run faster on one intra-op thread; the comparisons do not depend on it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Fixed:
    """One batch, every iteration (a DataSource)."""

    tops = ("data", "label")

    def __init__(self, seed: int = 0, size: int = 37) -> None:
        g = torch.Generator().manual_seed(seed)
        self.batch = {"data": torch.randn(1, 3, size, size, generator=g) * 40,
                      "label": torch.randint(0, 5, (1, 1, size, size), generator=g).float()}
        self.served = 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        self.served += 1
        return self.batch

    def peek_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self.batch.items()}

    def state_dict(self) -> dict:
        return {"served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.served = state["served"]


def _model(seed: int = 0) -> FCN8s:
    torch.manual_seed(seed)
    model = FCN8s(num_classes=5, widths=[4, 6, 8, 8, 8], fc_widths=[12, 12])
    for m in model.modules():  # score layers start at zero: give every learned layer some signal
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.1)
            nn.init.normal_(m.bias, 0, 0.1)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def _solver(policy: str, update_in_backward: bool | None, *, reg: str = "L2", extra: str = "",
            model: FCN8s | None = None, momentum: str = "momentum: 0.9") -> Solver:
    model = model or _model()
    text = (f"base_lr: 1e-4 lr_policy: '{policy}' {POLICIES[policy]} {momentum} weight_decay: 0.01 "
            f"regularization_type: '{reg}' max_iter: 5 {extra}")
    param = text_format.Parse(text, SolverParameter())
    return Solver(WithLoss(model), Fixed(), param, specs=param_specs(model, "model."),
                  update_in_backward=update_in_backward)


def _flat(prefix: str, state: dict) -> dict[str, np.ndarray]:
    """A solver state (nested for AdaDelta and Adam) as arrays by dotted key."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_flat(f"{prefix}{key}.", value))
        else:
            out[prefix + key] = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value)
    return out


def _state(solver: Solver) -> dict[str, np.ndarray]:
    weights = {k: v.detach().numpy().copy() for k, v in solver.net.state_dict().items()}
    return {**weights, **_flat("history.", solver.rule.state_dict())}


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_update_in_backward_equals_plain_path(policy, reg):
    fused, plain = _solver(policy, None, reg=reg), _solver(policy, False, reg=reg)
    assert fused.update_in_backward and not plain.update_in_backward
    losses = {}
    for name, solver in (("fused", fused), ("plain", plain)):
        recorded = []
        solver.events.on_iteration = lambda s, record, recorded=recorded: recorded.append(record)
        solver.step(5)
        losses[name] = [(r.loss, r.lr) for r in recorded]
    assert losses["fused"] == losses["plain"]
    assert len({lr for _, lr in losses["plain"]}) > 1 or policy == "fixed"
    a, b, initial = _state(fused), _state(plain), _model().state_dict()
    assert a.keys() == b.keys()
    moved = 0
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        moved += key.startswith("model.") and not np.array_equal(a[key], initial[key[len("model."):]].numpy())
    assert moved > 10  # the net did train (a no-op on both sides must fail)
    assert all(p.grad is None for p in fused.net.parameters())  # no gradient buffer is left over


@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_in_place_regularization_is_bit_identical(reg):
    """The fused path adds the decay into the gradient in place (fc6's blob would need a 411 MB
    temporary otherwise); that changes no bit against the plain path's new tensor."""
    fused, plain = _solver("step", True, reg=reg), _solver("step", False, reg=reg)
    fused.step(3)
    plain.step(3)
    a, b = _state(fused), _state(plain)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_regularization_is_one_fused_multiply_add_as_caffes_axpy():
    """``g + decay * w`` rounded once per element (BLAS saxpy's FMA), not twice."""
    from convert.train_net import ParamSpec
    from fcn_ref.train.sgd import CaffeSGD

    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(1 << 12))
    rule = CaffeSGD([("w", w)], {"w": ParamSpec()}, momentum=0.0, weight_decay=0.37)
    g = torch.randn(1 << 12)
    decay = float(np.float32(0.37))
    got = rule._regularized(g.clone(), w.detach(), decay, owned=True)
    once = (g.double() + decay * w.detach().double()).float()
    twice = g + decay * w.detach()
    assert torch.equal(got, once) and not torch.equal(once, twice)


@pytest.mark.parametrize("kind,fields", [
    ("Nesterov", "momentum: 0.9"), ("AdaGrad", "momentum: 0 delta: 1e-6"),
    ("RMSProp", "momentum: 0 rms_decay: 0.9 delta: 1e-6"), ("AdaDelta", "momentum: 0.95 delta: 1e-6"),
    ("Adam", "momentum: 0.9 momentum2: 0.999 delta: 1e-8")])
def test_every_solver_type_updates_in_backward_bit_for_bit(kind, fields):
    """The other solver types (``update_rules``) share the per-parameter update, so the fused path
    gives their numbers too, state included (Adam's step count, AdaDelta's second history)."""
    fused = _solver("step", None, extra=f"type: '{kind}'", momentum=fields)
    plain = _solver("step", False, extra=f"type: '{kind}'", momentum=fields)
    assert fused.update_in_backward
    fused.step(3)
    plain.step(3)
    a, b = _state(fused), _state(plain)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_unused_parameter_decays_as_in_the_plain_path():
    """A learned parameter outside the graph gets no gradient: Caffe still applies decay and momentum."""
    def run(fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(1)
        used, unused = nn.Linear(3, 2), nn.Linear(3, 2)
        named = [("used.weight", used.weight), ("used.bias", used.bias),
                 ("unused.weight", unused.weight), ("unused.bias", unused.bias)]
        specs = {"used.bias": ParamSpec(2.0, 0.0), "unused.bias": ParamSpec(0.0, 0.0)}
        sgd = CaffeSGD(named, specs, momentum=0.9, weight_decay=0.1)
        x = torch.randn(4, 3)
        for rate in (0.1, 0.3, 0.05):
            sgd.zero_grad()
            if fused:
                sgd.arm(rate)
                used(x).square().sum().backward()
                sgd.finish()
            else:
                used(x).square().sum().backward()
                sgd.step(rate)
        return torch.cat([p.detach().flatten() for _, p in named]), sgd.history["unused.weight"]

    (w_fused, h_fused), (w_plain, h_plain) = run(True), run(False)
    assert torch.equal(w_fused, w_plain)
    assert torch.equal(h_fused, h_plain) and h_plain.abs().sum() > 0


def test_gradients_are_dropped_as_they_are_used():
    """While backward runs, every parameter already updated holds no gradient: at most the layers
    in flight keep one (the point of updating in backward)."""
    solver = _solver("fixed", True)
    params = [p for p in solver.net.parameters() if p.requires_grad]
    most = [0]

    def watch(_: torch.Tensor) -> None:
        most[0] = max(most[0], sum(p.grad is not None for p in params))

    handles = [p.register_post_accumulate_grad_hook(watch) for p in params]
    solver.step(1)
    for h in handles:
        h.remove()
    assert most[0] <= 2 < len(params)


@pytest.mark.parametrize("extra", ["iter_size: 2", "clip_gradients: 0.5"])
def test_not_used_where_an_update_needs_every_gradient(extra):
    assert not _solver("fixed", None, extra=extra).update_in_backward
    with pytest.raises(ValueError, match="update_in_backward"):
        _solver("fixed", True, extra=extra)


def test_solver_state_and_resume_unchanged(tmp_path):
    """A snapshot written on the fused path holds what the plain path's does, and either resumes
    into the other with identical results."""
    def snapshot(fused: bool, prefix: str) -> Solver:
        solver = _solver("step", fused)
        solver.save_weights = lambda path: torch.save(solver.net.state_dict(), path)
        solver.snapshot_prefix = str(tmp_path / prefix)
        solver.step(2)
        solver.snapshot()
        return solver

    fused, plain = snapshot(True, "fused"), snapshot(False, "plain")
    sf = torch.load(tmp_path / "fused_iter_2.solverstate", weights_only=True)
    sp = torch.load(tmp_path / "plain_iter_2.solverstate", weights_only=True)
    assert sf.keys() == sp.keys()
    for key in ("iteration", "current_step", "recent_losses", "data"):
        assert sf[key] == sp[key]
    assert all(torch.equal(sf["history"][k], sp["history"][k]) for k in sp["history"])
    resumed = _solver("step", True)
    resumed.restore(tmp_path / "plain_iter_2.solverstate",
                    lambda path: torch.load(path, weights_only=True))
    resumed.step(3)
    plain.step(3)
    a, b = _state(resumed), _state(plain)
    assert all(np.array_equal(a[k], b[k]) for k in a)

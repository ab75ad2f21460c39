"""Caffe's other solver types (Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) against real Caffe.

Every case in tests/fixtures/train-solvers (recorded by tools/caffe/make_solver_fixtures.py with
``caffe.get_solver``, never by this code) is trained here from the same init.caffemodel through
``python -m fcn_ref.train``'s setup and compared as the SGD step-equality test compares (its
``_check``): each iteration's loss within rel 1e-5, each blob's update within 1e-4 of its largest
value, every blob (these tiny-net runs are well conditioned). A run with another
rule in its place must fail that comparison (the fixtures tell the rules apart); 10 iterations +
snapshot + resume + 10 equal 20 straight bit for bit, every history set included; and each rule
equals an independent float64 transcription of Caffe's ComputeUpdateValue to rel 1e-5 under a
rate that changes at every step.

Oracle tier (``-m oracle``): live Caffe trains fresh draws of every case (new inputs, filler draws
and seeds; ``make_solver_fixtures.py --draw N``, N from FCN_ORACLE_SEED) and the same comparison
must hold.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import FIXTURES, ROOT
from convert.errors import CaffeFormatError
from fcn_ref.train import parse_solver_text
from fcn_ref.train.caffe_net import load_weights, read_layer_blobs
from fcn_ref.train.cli import build_solver, main
from fcn_ref.train.config import SOLVER_TYPE_NAMES, solver_type
from fcn_ref.train.update_rules import RULES, update_rule
from test_train_step_equality import _blob_key, _check
from train_helpers import LossRecorder, flat_state, inside, update_mismatch

CASES_DIR = FIXTURES / "train-solvers"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "meta.json").exists()) if CASES_DIR.is_dir() else []
# A rule in place of each case's own, for the "the fixtures tell the rules apart" check.
OTHER = {"Nesterov": "SGD", "AdaGrad": "RMSProp", "RMSProp": "AdaGrad", "AdaDelta": "Adam",
         "Adam": "AdaDelta"}


def test_every_solver_type_has_a_rule_and_a_fixture():
    assert set(RULES) == set(SOLVER_TYPE_NAMES.values())
    recorded = {json.loads((CASES_DIR / case / "meta.json").read_text())["solver_type"] for case in CASES}
    assert recorded == set(RULES) - {"SGD"}  # SGD's fixtures are tests/fixtures/train


def _copy(case: str, tmp_path: Path) -> tuple[Path, dict]:
    work = tmp_path / case
    shutil.copytree(CASES_DIR / case, work)
    return work, json.loads((work / "meta.json").read_text())


def _train(work: Path, edit=None, iterations: int | None = None, resume: str | None = None):
    """Our run of the case's solver file from init.caffemodel (or from the solver state ``resume``)
    to max_iter; ``edit(text)`` rewrites the solver file first, as a user would."""
    with inside(work):
        if edit is not None:
            (work / "solver.prototxt").write_text(edit((work / "solver.prototxt").read_text()))
        recorder = LossRecorder()
        solver = build_solver("solver.prototxt", weights="init.caffemodel", progress=False, log="train.jsonl")
        progress, solver.events = solver.events, recorder
        try:
            if resume is not None:
                solver.restore(resume, load_weights)
            solver.step((solver.param.max_iter - solver.iteration) if iterations is None else iterations)
        finally:
            progress.close(solver)  # the log file
    return solver, recorder.losses


def _state(solver) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in solver.net.state_dict().items()}


@pytest.mark.parametrize("case", CASES)
def test_solver_type_matches_caffe(case, tmp_path):
    work, meta = _copy(case, tmp_path)
    solver, losses = _train(work)
    assert solver_type(solver.param) == meta["solver_type"]
    state = _state(solver)
    _check(work, meta, losses, state)


@pytest.mark.oracle
def test_fresh_draws_match_live_caffe(live_caffe, tmp_path):
    draw = int(os.environ.get("FCN_ORACLE_SEED", int(time.time()) % 100_000)) + 1
    live_caffe(ROOT / "tools" / "caffe" / "make_solver_fixtures.py", "--out", tmp_path / "caffe", "--draw", draw)
    fresh = sorted((tmp_path / "caffe").iterdir())
    assert len(fresh) == len(CASES)
    for folder in fresh:
        meta = json.loads((folder / "meta.json").read_text())
        solver, losses = _train(folder)
        state = _state(solver)
        try:
            _check(folder, meta, losses, state)
        except AssertionError as e:
            raise AssertionError(f"{folder.name} (FCN_ORACLE_SEED={draw - 1}): {e}") from None


@pytest.mark.parametrize("case", CASES)
def test_a_skipped_update_fails_the_comparison(case):
    """The initial weights in place of ours miss Caffe's update on every learned blob."""
    folder = CASES_DIR / case
    meta = json.loads((folder / "meta.json").read_text())
    init, final = read_layer_blobs(folder / "init.caffemodel"), read_layer_blobs(folder / "final.caffemodel")
    verdicts = [update_mismatch(init[layer][i], init[layer][i], blob, meta["iters"])[1]
                for layer, blobs in final.items() for i, blob in enumerate(blobs)]
    assert verdicts and not any(verdicts)


@pytest.mark.parametrize("case", CASES)
def test_another_rule_fails_the_comparison(case, tmp_path):
    """The same run with another solver type misses Caffe's updates: the comparison is not vacuous."""
    work, meta = _copy(case, tmp_path)
    other = OTHER[meta["solver_type"]]
    momentum = "0" if other in ("AdaGrad", "RMSProp") else "0.9"  # what Caffe allows for the other type

    def swap(text: str) -> str:
        kept = [line for line in text.splitlines() if not line.startswith(("type:", "solver_type:", "momentum:"))]
        return "\n".join(kept + [f'type: "{other}"', f"momentum: {momentum}"]) + "\n"

    solver, _ = _train(work, swap)
    state = _state(solver)
    init, final = read_layer_blobs(work / "init.caffemodel"), read_layer_blobs(work / "final.caffemodel")
    verdicts = [update_mismatch(state[_blob_key(state, layer, i)], init[layer][i], blob, meta["iters"])[1]
                for layer, blobs in final.items() for i, blob in enumerate(blobs)]
    assert verdicts and not all(verdicts)


@pytest.mark.parametrize("case", CASES)
def test_resume_continues_bit_for_bit(case, tmp_path):
    """20 iterations straight == 10, snapshot, restore into a fresh solver, 10 more."""
    work, _ = _copy(case, tmp_path)
    with_snapshots = lambda text: text.replace("snapshot: 0", "snapshot: 10") + 'snapshot_prefix: "snap"\n'
    straight, losses = _train(work, with_snapshots)
    resumed, resumed_losses = _train(work, resume="snap_iter_10.solverstate")
    assert resumed.iteration == straight.iteration == 20 and resumed_losses == losses[10:]
    ours, theirs = resumed.net.state_dict(), straight.net.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    after_10 = torch.load(work / "snap_iter_10.solverstate", weights_only=True)["history"]
    assert flat_state(resumed.rule.state_dict()) == flat_state(straight.rule.state_dict()) != flat_state(after_10)


# ----------------------------------------------------------------------------- the rules, exactly

def _reference(kind: str, w: np.ndarray, grads: list[np.ndarray], rates: list[float], f: dict) -> np.ndarray:
    """Caffe's ComputeUpdateValue for one blob (src/caffe/solvers/*_solver.cpp), in float64, with
    lr_mult 1, no decay, iter_size 1: only the rule."""
    w = w.astype(np.float64)
    h, h2 = np.zeros_like(w), np.zeros_like(w)
    m, d = f.get("momentum", 0.0), f.get("delta", 1e-8)
    for t, (g, lr) in enumerate(zip(grads, rates), start=1):
        g = g.astype(np.float64)
        if kind == "SGD":
            h = m * h + lr * g
            update = h
        elif kind == "Nesterov":
            previous, h = h, m * h + lr * g
            update = (1 + m) * h - m * previous
        elif kind == "AdaGrad":
            h = h + g * g
            update = lr * g / (np.sqrt(h) + d)
        elif kind == "RMSProp":
            r = f["rms_decay"]
            h = r * h + (1 - r) * g * g
            update = lr * g / (np.sqrt(h) + d)
        elif kind == "AdaDelta":
            h = m * h + (1 - m) * g * g
            step = g * np.sqrt((h2 + d) / (h + d))
            h2 = m * h2 + (1 - m) * step * step
            update = lr * step
        else:  # Adam
            b2 = f["momentum2"]
            h = m * h + (1 - m) * g
            h2 = b2 * h2 + (1 - b2) * g * g
            update = lr * math.sqrt(1 - b2 ** t) / (1 - m ** t) * h / (np.sqrt(h2) + d)
        w = w - update
    return w


RULE_FIELDS = {
    "SGD": dict(momentum=0.9),
    "Nesterov": dict(momentum=0.9),
    "AdaGrad": dict(delta=1e-3),
    "RMSProp": dict(rms_decay=0.9, delta=1e-4),
    "AdaDelta": dict(momentum=0.95, delta=1e-4),
    "Adam": dict(momentum=0.9, momentum2=0.99, delta=1e-3),
}


@pytest.mark.parametrize("kind", list(RULE_FIELDS))
def test_rule_equals_caffes_formula(kind):
    rng = np.random.default_rng(len(kind))
    w0 = rng.normal(size=(5, 4)).astype(np.float32)
    param = torch.nn.Parameter(torch.tensor(w0))
    fields = RULE_FIELDS[kind]
    text = 'train_net: "x"\nbase_lr: 1\nlr_policy: "fixed"\n' + f'type: "{kind}"\n' + "".join(
        f"{k}: {v}\n" for k, v in fields.items())
    rule = update_rule(parse_solver_text(text))(
        [("w", param)], {}, momentum=fields.get("momentum", 0.0), weight_decay=0.0)
    rates = [0.1, 0.03, 0.2, 0.01, 0.05, 0.1]
    grads = [rng.normal(scale=s, size=w0.shape).astype(np.float32) for s in (1, 0.1, 2, 0.5, 1, 0.01)]
    for g, rate in zip(grads, rates):
        param.grad = torch.tensor(g)
        rule.step(rate)
    expected = _reference(kind, w0, grads, rates, fields)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    moved = np.abs(expected - w0).max()
    assert moved > 1e-2  # the steps are far above the tolerance


def test_adam_bias_correction_uses_the_iteration():
    """Adam's first step moves every element by about the rate (m / sqrt(v) = sign(g) after the
    correction), whatever the gradient's scale; without the correction it would be (1 - beta1) /
    sqrt(1 - beta2) of that."""
    param = nn.Parameter(torch.zeros(3))
    param.grad = torch.tensor([0.05, -2.0, 50.0])
    rule = update_rule(parse_solver_text('train_net: "x"\nbase_lr: 1\nlr_policy: "fixed"\ntype: "Adam"\n'))(
        [("w", param)], {}, momentum=0.9, weight_decay=0.0)
    rule.step(0.01)
    np.testing.assert_allclose(param.detach().numpy(), [-0.01, 0.01, -0.01], rtol=1e-4)


# ----------------------------------------------------------------------------- solver files

BASE = 'train_net: "nets/train.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'


@pytest.mark.parametrize("number, name", sorted(SOLVER_TYPE_NAMES.items()))
def test_legacy_enum_names_the_same_type(number, name):
    enum = ["SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM"][number]
    assert solver_type(parse_solver_text(BASE + f"solver_type: {enum}\n")) == name
    assert solver_type(parse_solver_text(BASE + f'type: "{name}"\n')) == name


@pytest.mark.parametrize("extra, message", [
    ('type: "Adamax"\n', "unknown solver type 'Adamax'"),
    ('type: "adam"\n', "unknown solver type 'adam'"),  # Caffe's registry is case-sensitive
    ('type: "Adam"\nsolver_type: ADAM\n', "cannot both be set"),
    ('type: "AdaGrad"\nmomentum: 0.9\n', "momentum cannot be used with AdaGrad"),
    ('solver_type: RMSPROP\nmomentum: 0.5\n', "momentum cannot be used with RMSProp"),
    ('type: "RMSProp"\nrms_decay: 1\n', "rms_decay should lie between 0 and 1"),
    ('type: "RMSProp"\nrms_decay: -0.1\n', "rms_decay should lie between 0 and 1"),
])
def test_what_caffe_refuses_is_one_line(tmp_path, capsys, extra, message):
    (tmp_path / "bad.prototxt").write_text(BASE + extra)
    with inside(tmp_path):
        assert main(["bad.prototxt", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bad.prototxt: ") and message in err and "\n" not in err


def test_resume_with_another_solver_type_is_refused(tmp_path):
    work, _ = _copy("adam", tmp_path)
    _train(work, lambda text: text.replace("snapshot: 0", "snapshot: 2") + 'snapshot_prefix: "snap"\n', 2)
    (work / "solver.prototxt").write_text((work / "solver.prototxt").read_text().replace('"Adam"', '"AdaDelta"'))
    with pytest.raises(CaffeFormatError, match="snap_iter_2.solverstate: solver state was written by an Adam "
                                               "solver, not by an AdaDelta one"):
        _train(work, resume="snap_iter_2.solverstate")

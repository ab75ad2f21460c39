"""Step equality with real Caffe: every case in tests/fixtures/train (recorded by
tools/caffe/make_train_fixtures.py with Caffe's SGDSolver, never by this code) is trained here from
the same init.caffemodel through ``python -m fcn_ref.train``'s own setup (``build_solver``).

Each iteration's loss must be within rel 1e-5 of Caffe's; each learned blob's update (final minus
initial weights: the weights themselves barely move) within 1e-4 of the update's max abs, up to the
float32 rounding floor explained in ``update_mismatch``; frozen blobs bit-identical. Every blob of
every case, no exceptions. The zoo models (``fcn_ref.FCN32s`` ...) loaded from the same
init.caffemodel and trained through ``Solver`` with ``zoo.param_specs`` and ``zoo.WithLoss`` must
meet the same bounds on the zoo-graph cases.

``FCN_TRAIN_FIXTURES=DIR`` runs the same tests on another fixture root, e.g. fresh draws of every
case: ``tools/caffe/python3 tools/caffe/make_train_fixtures.py --seed 7 --out DIR``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fcn_ref

from conftest import FIXTURES
from convert.train_net import phase_net
from convert.training_layers import normalization_mode
from fcn_ref.caffe_names import caffe_state_dict
from fcn_ref.train import HDF5Source, Solver, read_solver
from fcn_ref.train.caffe_net import read_layer_blobs
from fcn_ref.train.cli import build_solver
from fcn_ref.train.config import train_net
from fcn_ref.train.zoo import WithLoss, load_weights, param_specs
from train_helpers import LossRecorder, inside, update_mismatch

CASES_DIR = Path(os.environ.get("FCN_TRAIN_FIXTURES") or FIXTURES / "train")
# Cases whose net is a zoo graph (the rest are tiny nets for one solver feature each).
# The zoo's AlexNet and CVPR-era cases take 10 s each here: slow tier (their Caffe-net runs above
# are in the default suite).
ZOO_CASES = ["fcn32s-heavy", "fcn16s-staged", "fcn8s-atonce", pytest.param("fcn-alexnet", marks=pytest.mark.slow),
             pytest.param("cvpr-fcn8s", marks=pytest.mark.slow)]


def _cases() -> list[str]:
    names = sorted(p.name for p in CASES_DIR.iterdir() if (p / "meta.json").exists()) if CASES_DIR.is_dir() else []
    assert names, f"no training fixtures in {CASES_DIR}"
    return names


def _blob_key(state: dict, layer: str, index: int) -> str:
    return [k for k in state if k.split(".", 1)[0] == layer][index]


def _check(case_dir, meta, losses, state: dict) -> None:
    """Losses and updates against Caffe's (see the module docstring); ``state`` by Caffe keys."""
    caffe_losses = np.load(case_dir / "losses.npy")
    assert len(losses) == len(caffe_losses) == meta["iters"]
    loss_rel = np.abs(np.array(losses) - caffe_losses) / np.abs(caffe_losses)
    assert loss_rel.max() <= 1e-5, f"iteration {loss_rel.argmax()}: rel {loss_rel.max():.2e}"
    init, final = read_layer_blobs(case_dir / "init.caffemodel"), read_layer_blobs(case_dir / "final.caffemodel")
    missed, compared = [], 0
    for layer, blobs in final.items():
        for i, blob in enumerate(blobs):
            key = _blob_key(state, layer, i)
            if layer in meta["frozen"]:
                assert np.array_equal(state[key], blob) and np.array_equal(state[key], init[layer][i]), f"{key} moved"
                continue
            rel, ok = update_mismatch(state[key], init[layer][i], blob, meta["iters"])
            compared += 1
            if not ok:
                missed.append(f"{key}: update rel {rel:.2e}")
    assert compared
    assert not missed, "; ".join(missed)


def _copy_case(case: str, tmp_path: Path) -> tuple[Path, dict]:
    """A writable copy of a fixture case (snapshots and logs land beside it) and its meta.json."""
    work = tmp_path / case
    shutil.copytree(CASES_DIR / case, work)
    return work, json.loads((work / "meta.json").read_text())


@pytest.mark.parametrize("case", _cases())
def test_training_matches_caffe(case, tmp_path):
    work, meta = _copy_case(case, tmp_path)
    recorder = LossRecorder()
    with inside(work):
        solver = build_solver("solver.prototxt", weights="init.caffemodel", progress=False, log="train.jsonl")
        solver.events = recorder
        solver.step(solver.param.max_iter)
    state = {k: v.detach().cpu().numpy() for k, v in solver.net.state_dict().items()}
    _check(work, meta, recorder.losses, state)


@pytest.mark.parametrize("case", ZOO_CASES)
def test_zoo_model_trains_like_caffe(case, tmp_path):
    work, meta = _copy_case(case, tmp_path)
    recorder = LossRecorder()
    with inside(work):
        param = read_solver("solver.prototxt")
        model = fcn_ref.from_caffemodel("init.caffemodel", "train.prototxt")
        for module in model.modules():  # the fixtures train with dropout_ratio 0 (Caffe's masks are its RNG's)
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        phased = phase_net(train_net(param).proto, "TRAIN")
        loss = next(layer for layer in phased.net.layers if layer.type == "SoftmaxWithLoss")
        net = WithLoss(model, normalization=normalization_mode(loss.param.loss_param))
        solver = Solver(net, HDF5Source("data.txt", ("data", "label"), 1), param,
                        specs=param_specs(model, "model."), events=recorder)
        solver.step(param.max_iter)
    _check(work, meta, recorder.losses, {k: v.cpu().numpy() for k, v in caffe_state_dict(model).items()})


@pytest.mark.parametrize("case", _cases())
def test_a_skipped_update_fails_the_comparison(case):
    """The comparison is not vacuous: with our weights replaced by the initial ones (no update),
    every learned blob of every case fails it."""
    meta = json.loads((CASES_DIR / case / "meta.json").read_text())
    init = read_layer_blobs(CASES_DIR / case / "init.caffemodel")
    final = read_layer_blobs(CASES_DIR / case / "final.caffemodel")
    verdicts = [update_mismatch(init[layer][i], init[layer][i], blob, meta["iters"])[1]
                for layer, blobs in final.items() if layer not in meta["frozen"] for i, blob in enumerate(blobs)]
    assert verdicts and not any(verdicts)


def test_a_rate_off_by_a_tenth_of_a_percent_fails(tmp_path):
    """The bounds are tight enough to catch a small slip: the heavy case trained at 1.001 times its
    base_lr misses Caffe's losses, and (checked alone, given Caffe's losses) its updates."""
    work, meta = _copy_case("fcn32s-heavy", tmp_path)
    recorder = LossRecorder()
    with inside(work):
        solver = build_solver("solver.prototxt", weights="init.caffemodel", progress=False, log="train.jsonl")
        solver.param.base_lr *= 1.001  # the rate policy reads it at every iteration
        solver.events = recorder
        solver.step(solver.param.max_iter)
    state = {k: v.detach().cpu().numpy() for k, v in solver.net.state_dict().items()}
    with pytest.raises(AssertionError, match="iteration"):
        _check(work, meta, recorder.losses, state)
    with pytest.raises(AssertionError, match="update rel"):
        _check(work, meta, list(np.load(work / "losses.npy")), state)


def test_zoo_model_resumes_bit_for_bit(tmp_path):
    """A zoo model snapshotted with fcn_ref.save at iteration 4 and restored continues exactly."""
    work, _ = _copy_case("fcn32s-heavy", tmp_path)

    def solver_for(model):
        param = read_solver("solver.prototxt")
        param.max_iter, param.snapshot, param.snapshot_prefix = 8, 4, "snap"
        return Solver(WithLoss(model), HDF5Source("data.txt", ("data", "label"), 1), param,
                      specs=param_specs(model, "model."), snapshot_prefix="snap",
                      save_weights=lambda path: fcn_ref.save(model, path, overwrite=True))

    with inside(work):
        straight = fcn_ref.from_caffemodel("init.caffemodel", "train.prototxt")
        solver = solver_for(straight)
        solver.step(8)
        resumed = fcn_ref.from_caffemodel("init.caffemodel", "train.prototxt")
        again = solver_for(resumed)
        again.restore("snap_iter_4.solverstate", load_weights(resumed, "model."))
        again.step(4)
    assert again.iteration == 8
    ours, theirs = caffe_state_dict(resumed), caffe_state_dict(straight)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)

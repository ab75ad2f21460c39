"""Every training path (convert.trainpath), forced onto every layer it can compute, trains like
the plain path and like real Caffe: the zoo FCN-16s and the same net through ``python -m
fcn_ref.train``'s setup (the runtime's Caffe layers), from tests/fixtures/train/fcn16s-staged
(recorded by Caffe's SGDSolver, tools/caffe/make_train_fixtures.py).

- One iteration from the same initial weights: every learned blob's update within 1e-4 of the
  plain path's (``update_mismatch``; the plain path is held to Caffe's over 20 iterations by
  test_train_step_equality.py), the frozen upsampling untouched.
- The first iterations' losses within rel 1e-5 of Caffe's. Over all 20 iterations at this
  recipe's rate any change of summation order (even plain F.conv2d in channels_last) drifts past
  1e-5 (momentum 0.99 amplifies float32 rounding), so the comparison stops where the trajectory
  is still well-conditioned.

The fixture's layers are under ``MIN_MEASURED_FLOPS``, so the default run takes the baseline there;
here the timer is faked (``fake_timer``) and the accuracy gate turned off, so the named path runs
wherever it applies, whatever it measures."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import fcn_ref
from conftest import FIXTURES
from convert import trainpath, tuning
from convert.fastpath import set_exact
from fcn_ref.caffe_names import caffe_state_dict
from fcn_ref.train import HDF5Source, Solver, read_solver
from fcn_ref.train.caffe_net import read_layer_blobs
from fcn_ref.train.cli import build_solver
from fcn_ref.train.zoo import WithLoss, param_specs
from train_helpers import LossRecorder, inside, update_mismatch

CASE = FIXTURES / "train" / "fcn16s-staged"  # well-conditioned: the plain path meets the bounds as they are


CONDITIONED_ITERATIONS = 5


def _zoo(iterations: int, exact: bool) -> tuple[list[float], dict[str, np.ndarray]]:
    recorder = LossRecorder()
    param = read_solver("solver.prototxt")
    model = set_exact(fcn_ref.from_caffemodel("init.caffemodel", "train.prototxt"), exact)
    for module in model.modules():  # the fixture trains with dropout_ratio 0 (Caffe's masks are its RNG's)
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    solver = Solver(WithLoss(model), HDF5Source("data.txt", ("data", "label"), 1), param,
                    specs=param_specs(model, "model."), events=recorder)
    solver.step(iterations)
    return recorder.losses, {k: v.numpy().copy() for k, v in caffe_state_dict(model).items()}


def _runtime(iterations: int, exact: bool) -> tuple[list[float], dict[str, np.ndarray]]:
    recorder = LossRecorder()
    solver = build_solver("solver.prototxt", weights="init.caffemodel", progress=False, log="train.jsonl")
    set_exact(solver.net, exact)
    solver.events = recorder
    solver.step(iterations)
    return recorder.losses, {k: v.detach().numpy().copy() for k, v in solver.net.state_dict().items()}


@pytest.mark.parametrize("net", ["zoo", "runtime"])
@pytest.mark.parametrize("path", ["gemm", "winograd", "winograd_weight_gradient", "autograd_channels_last"])
def test_forced_path_trains_like_the_plain_path_and_caffe(path, net, fake_timer, monkeypatch, tmp_path):
    fake_timer({path: 0.1})
    monkeypatch.setattr(tuning, "ACCURACY_FACTOR", float("inf"))
    taken = []
    monkeypatch.setitem(trainpath.PATHS, path, lambda c, x, run=trainpath.PATHS[path]: taken.append(1) or run(c, x))
    work = tmp_path / CASE.name
    shutil.copytree(CASE, work)
    meta = json.loads((work / "meta.json").read_text())
    train = _zoo if net == "zoo" else _runtime
    with inside(work):
        _, plain = train(1, exact=True)
        assert not taken
        _, forced = train(1, exact=False)
        assert taken, f"{path} never ran"
        losses, _ = train(CONDITIONED_ITERATIONS, exact=False)
    init = read_layer_blobs(work / "init.caffemodel")
    compared = 0
    for layer, blobs in init.items():
        keys = [k for k in plain if k.split(".", 1)[0] == layer]
        for key, start in zip(keys, blobs):
            if layer in meta["frozen"]:
                assert np.array_equal(forced[key], start), key
                continue
            assert not np.array_equal(plain[key], start), f"{key} did not move"
            rel, ok = update_mismatch(forced[key], start, plain[key], 1)
            assert ok, f"{key}: update rel {rel:.2e} from the plain path's"
            compared += 1
    assert compared
    caffe_losses = np.load(work / "losses.npy")[:CONDITIONED_ITERATIONS]
    assert (np.abs(np.array(losses) - caffe_losses) / np.abs(caffe_losses)).max() <= 1e-5

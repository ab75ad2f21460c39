"""Shared by the training tests: run a solver file in its folder, compare updates with Caffe's."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from fcn_ref.train.solver import SolverEvents

UPDATE_RTOL = 1e-4


class LossRecorder(SolverEvents):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_iteration(self, solver, record) -> None:
        self.losses.append(record.loss)


@contextlib.contextmanager
def inside(folder: Path, threads: int = 1):
    """Run in ``folder`` (Caffe resolves the solver's paths against the working directory), with
    one intra-op thread (the reduced nets are faster so, and results do not depend on it)."""
    old_cwd, old_threads = os.getcwd(), torch.get_num_threads()
    os.chdir(folder)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        torch.set_num_threads(old_threads)


def update_mismatch(ours: np.ndarray, init: np.ndarray, final: np.ndarray, iters: int) -> tuple[float, bool]:
    """Compare our update (ours - init) with Caffe's (final - init), in float64.

    Returns (max |ours - caffe| / max |caffe update|, whether it passes). An element passes when
    |ours - caffe| <= 1e-4 * max |caffe update| + iters * ulp(its weight): each of the ``iters``
    float32 subtractions ``w -= history`` rounds to the weight's ulp in both programs, so blobs whose
    update is a few ulps of the weight (deep layers at small rates) cannot agree better than that.
    A skipped update (ours == init) fails every blob whose update exceeds that rounding floor.
    """
    init64 = init.astype(np.float64)
    ref = final.astype(np.float64) - init64
    got = ours.astype(np.float64) - init64
    diff = np.abs(got - ref)
    scale = np.abs(ref).max() if ref.size else 0.0
    ulp = np.spacing(np.maximum(np.abs(init), np.abs(final)).astype(np.float32)).astype(np.float64)
    ok = bool((diff <= UPDATE_RTOL * scale + iters * ulp).all())
    return (float(diff.max() / scale) if scale else float(diff.max())), ok

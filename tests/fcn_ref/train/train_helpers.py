"""Shared by the training tests: run a solver file in its folder, compare updates with Caffe's."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from convert.net import Layer
from convert.schema import LayerParameter
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


def python_layer(module: str, cls: str, params: dict, tops=("data", "label")) -> Layer:
    """A ``type: "Python"`` data layer as the reference's net.py writes it (``param_str`` = repr of a dict)."""
    param = LayerParameter()
    param.name, param.type = "data", "Python"
    param.top.extend(tops)
    param.python_param.module, param.python_param.layer = module, cls
    param.python_param.param_str = repr(params)
    return Layer(param)


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


def tiny_fcn(hdf5_data_param: str, dropout: bool) -> str:
    """A small FCN train net: conv, ReLU, ceil pooling, [Dropout 0.5], 1x1 score, frozen bilinear
    deconvolution, crop, unnormalized loss; fed by HDF5Data with ``hdf5_data_param``."""
    drop = ('layer { name: "drop1" type: "Dropout" bottom: "pool1" top: "pool1" '
            'dropout_param { dropout_ratio: 0.5 } }\n') if dropout else ""
    return f"""
name: "tiny"
layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param {{ {hdf5_data_param} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
        convolution_param {{ num_output: 6 kernel_size: 3 pad: 1 weight_filler {{ type: "msra" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
{drop}layer {{ name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param {{ num_output: 3 kernel_size: 1 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "upscore" type: "Deconvolution" bottom: "score" top: "upscore" param {{ lr_mult: 0 }}
        convolution_param {{ num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false
                            weight_filler {{ type: "bilinear" }} }} }}
layer {{ name: "crop" type: "Crop" bottom: "upscore" bottom: "data" top: "crop" crop_param {{ axis: 2 offset: 1 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "crop" bottom: "label" top: "loss"
        loss_param {{ ignore_label: 255 normalize: false }} }}
"""


def flat_state(state, prefix: str = "") -> dict:
    """A solver state's nested dicts (an update rule's history sets, Adam's step counts) as
    {path: bytes or value}: two are equal only if every tensor is bit-identical."""
    if isinstance(state, dict):
        return {k: v for key, value in state.items() for k, v in flat_state(value, f"{prefix}/{key}").items()}
    if isinstance(state, torch.Tensor):
        return {prefix: (state.dtype, tuple(state.shape), state.detach().cpu().numpy().tobytes())}
    return {prefix: state}

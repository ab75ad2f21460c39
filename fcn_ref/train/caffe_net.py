"""A Caffe train (or test) net from a solver file, run by the generic runtime and fed by data sources.

``build_net`` does what Caffe's ``Net`` constructor and ``--weights`` do together: the phase's
layers (``convert.train_net.phase_net``), data layers replaced by their sources, blobs from the
fillers at the first batch's shapes, then blobs copied by layer name from a weights file
(``copy_from``). ``save_net`` writes the current weights in the converted-file format (the net
as a deploy net: data tops become inputs, losses dropped), so a snapshot loads with
``convert.load`` and ``fcn_ref.load``. ``caffe_tester`` is Caffe's ``Solver::Test`` for a test net
that shares the train net's weights by layer name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from convert.checkpoint import read_checkpoint, save_checkpoint
from convert.errors import CaffeFormatError
from convert.net import CaffeNet, Layer
from convert.reader import read_binary_file, read_hdf5_blobs, sniff
from convert.runtime import CaffeModule
from convert.train_net import ParamSpec, copy_blobs, initialize, param_specs, phase_net
from convert.upgrade import TRAINING_ONLY_LAYERS, modern_layers, to_arrays
from fcn_ref.train.config import NetSource
from fcn_ref.train.data import DataSource, Feeder, ShardedSource, source_for_layer


@dataclass
class TrainableNet:
    """A phase's net as a module, its data, the solver's view of its blobs, and its input shapes."""

    module: CaffeModule
    net: CaffeNet
    data: Feeder
    specs: dict[str, ParamSpec]
    input_shapes: dict[str, tuple[int, ...]]


def read_layer_blobs(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Every layer's blobs, by layer name, from a .caffemodel, .caffemodel.h5 or converted .pth."""
    p = Path(path)
    if not p.is_file():
        raise CaffeFormatError("no such weights file", path=str(p))
    kind = sniff(p)
    if kind == "hdf5":
        return read_hdf5_blobs(p)
    if kind == "binary":
        return {param.name: to_arrays(param.type, raw) for param, raw in modern_layers(read_binary_file(p), str(p))
                if raw}
    if kind.startswith("a zip archive"):
        net = read_checkpoint(p).net
        return {layer.name: [np.asarray(b) for b in layer.blobs] for layer in net.layers if layer.blobs}
    raise CaffeFormatError(f"not a weights file (.caffemodel, .caffemodel.h5 or converted .pth): {kind}",
                           path=str(p))


def build_net(source: NetSource, phase: str, *, seed: int, weights: str | os.PathLike | None = None,
              level: int = 0, stages: tuple[str, ...] = (), rank: int = 0, world: int = 1,
              sources: list[DataSource] | None = None) -> TrainableNet:
    """The phase's net, initialized (fillers with ``seed``, then ``weights`` by layer name)."""
    phased = phase_net(source.proto, phase, level=level, stages=stages, path=source.origin)
    if sources is None:
        sources = [source_for_layer(layer, seed) for layer in phased.data_layers]
        if world > 1:
            sources = [ShardedSource(s, rank, world) for s in sources]
    feeder = Feeder(sources)
    shapes = dict(phased.net.inputs)
    shapes.update(feeder.peek_shapes())
    generator = torch.Generator().manual_seed(seed)
    initialize(phased.net, shapes, generator)
    if weights is not None:
        copy_blobs(phased.net, read_layer_blobs(weights), path=str(weights))
    module = CaffeModule(phased.net)
    return TrainableNet(module, phased.net, feeder, param_specs(phased.net), shapes)


def deploy_net(trainable: TrainableNet) -> CaffeNet:
    """The trained net as a deploy net with the module's current weights: training-only layers
    dropped, phase rules cleared, the inputs the remaining layers read declared with the shapes
    of the first batch."""
    state = {k: v.detach().cpu().numpy() for k, v in trainable.module.state_dict().items()}
    layers = []
    for layer in trainable.net.layers:
        if layer.type in TRAINING_ONLY_LAYERS:
            continue
        param = type(layer.param)()
        param.CopyFrom(layer.param)
        del param.include[:]
        del param.exclude[:]
        names = [k.split(".", 1)[1] for k in state if k.split(".", 1)[0] == layer.name]
        layers.append(Layer(param, [state[f"{layer.name}.{n}"] for n in names]))
    consumed = {b for layer in layers for b in layer.bottoms}
    inputs = {name: tuple(trainable.input_shapes[name]) for name in trainable.net.inputs if name in consumed}
    return CaffeNet(name=trainable.net.name, inputs=inputs, layers=layers)


def save_net(trainable: TrainableNet, out: Path, *, source: dict | None = None) -> None:
    net = deploy_net(trainable)
    save_checkpoint(net, out, architecture=None, source=source or {"file": "", "sha256": ""},
                    overwrite=True)


def load_weights(path: Path) -> dict[str, Tensor]:
    """A snapshot's weights as a state dict (for ``Solver.restore``)."""
    return {k: torch.as_tensor(v) for k, v in read_checkpoint(path).state_dict.items()}


def share_weights(test: CaffeModule, train: CaffeModule) -> None:
    """Caffe's ``ShareTrainedLayersWith``: a test-net blob whose layer the train net has becomes the
    train net's very parameter."""
    trained = dict(train.named_parameters())
    for name, _ in list(test.named_parameters()):
        if name in trained:
            layer, blob = name.rsplit(".", 1)
            setattr(test.get_submodule(layer), blob, trained[name])


def caffe_tester(test: TrainableNet, iterations: int, index: int, compute_loss: bool):
    """Caffe's ``Solver::Test``: ``iterations`` batches through the test net, each output blob
    averaged over them (loss outputs only with ``test_compute_loss``)."""

    def run(solver) -> dict[str, float]:
        share_weights(test.module, solver.net)
        test.module.to(solver.device).eval()
        sums: dict[str, np.ndarray] = {}
        for _ in range(iterations):
            batch = {k: v.to(solver.device) for k, v in test.data.next_batch().items()}
            outputs = test.module(**batch)
            for name, value in outputs.items():
                if name in test.module.loss_weights and not compute_loss:
                    continue
                sums[name] = sums.get(name, 0) + value.detach().double().cpu().numpy().reshape(-1)
        scores = {}
        for name, total in sums.items():
            mean = total / max(1, iterations)
            if mean.size == 1:
                scores[f"test{index}/{name}"] = float(mean[0])
            else:
                scores.update({f"test{index}/{name}[{i}]": float(v) for i, v in enumerate(mean)})
        return scores

    return run

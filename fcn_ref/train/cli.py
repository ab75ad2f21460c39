"""``python -m fcn_ref.train SOLVER.prototxt [--weights W] [--resume STATE] [--device D]``.

Trains the solver file's net as Caffe's ``caffe train`` would (see ``fcn_ref.train.solver``), with
a progress bar, a JSONL log and a loss plot beside the snapshots. Bad input is one line on stderr
and exit status 1. Other ways to start training (e.g. the paper's recipes) register a subcommand
in ``COMMANDS``: ``python -m fcn_ref.train NAME ...`` runs ``COMMANDS[NAME](argv)``.

Under ``torchrun --nproc-per-node N -m fcn_ref.train SOLVER`` each rank reads its own share of the
batches and DistributedDataParallel sums the gradients: one iteration consumes N x iter_size
batches and equals one process with iter_size N x iter_size. Rank 0 logs and snapshots.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from convert.errors import CaffeFormatError
from fcn_ref.devices import DeviceError, pick_device
from fcn_ref.distributed import init_from_env, shutdown
from fcn_ref.train.caffe_net import build_net, caffe_tester, load_weights, save_net
from fcn_ref.train.config import read_solver, test_nets, train_net
from fcn_ref.train.progress import RunProgress
from fcn_ref.train.loss_sampling import LossSampling
from fcn_ref.train.solver import Solver, SolverEvents
from fcn_ref.train import python_layers  # noqa: F401 - registers the reference repo's Python data layers

COMMANDS: dict[str, Callable[[list[str]], int]] = {}


def snapshot_prefix(param, solver_file: str) -> str:
    """Caffe's rule: no prefix -> the solver file's path without extension; a directory -> the
    solver file's stem inside it."""
    if not param.HasField("snapshot_prefix"):
        return str(Path(solver_file).with_suffix(""))
    if Path(param.snapshot_prefix).is_dir():
        return str(Path(param.snapshot_prefix) / Path(solver_file).stem)
    return param.snapshot_prefix


def _state_of(message) -> tuple[int, tuple[str, ...]]:
    return message.level, tuple(message.stage)


def loss_label(net) -> tuple[str, int]:
    """The label top of the net's SoftmaxWithLoss and its ignore_label (what loss sampling writes)."""
    for layer in net.layers:
        if layer.type == "SoftmaxWithLoss" and len(layer.bottoms) > 1:
            if not layer.param.loss_param.HasField("ignore_label"):
                raise CaffeFormatError("loss sampling needs loss_param.ignore_label on the loss layer",
                                       layer=layer.name)
            return layer.bottoms[1], layer.param.loss_param.ignore_label
    raise CaffeFormatError("loss sampling needs a SoftmaxWithLoss layer with a label bottom")


def build_solver(solver_file: str, *, weights: str | None = None, device: str | None = None,
                 progress: bool = True, log: str | None = None, plot: str | None = None,
                 loss_sampling: float = 1.0, loss_cell: int = 1) -> Solver:
    """Everything ``caffe train`` sets up, ready to ``solve()``."""
    param = read_solver(solver_file)
    seed = param.random_seed if param.random_seed >= 0 else int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    dev = pick_device(device, deterministic=True)
    rank, world = init_from_env(dev)
    if world > 1 and dev.type == "cuda":  # init_from_env made it the current device
        dev = torch.device("cuda", torch.cuda.current_device())
    level, stages = _state_of(param.train_state)
    train = build_net(train_net(param, solver_file), "TRAIN", seed=seed, weights=weights, level=level, stages=stages,
                      rank=rank, world=world)
    testers = []
    for index, (source, iterations) in enumerate(zip(test_nets(param, solver_file), param.test_iter)):
        state = param.test_state[index] if index < len(param.test_state) else None
        level, stages = _state_of(state) if state is not None else (0, ())
        test = build_net(source, "TEST", seed=seed, level=level, stages=stages)
        testers.append(caffe_tester(test, iterations, index, param.test_compute_loss))
    prefix = snapshot_prefix(param, solver_file)
    source = {"file": Path(solver_file).name, "sha256": "", "trained_by": "fcn_ref.train"}
    events = RunProgress(log_path=log or f"{prefix}_log.jsonl", plot_path=plot or f"{prefix}_loss.png",
                         total=param.max_iter, display=param.display, bar=progress) if rank == 0 else SolverEvents()
    data = train.data
    if loss_sampling < 1:
        top, ignore = loss_label(train.net)
        data = LossSampling(data, loss_sampling, label_top=top, ignore_label=ignore, cell=loss_cell,
                            seed=seed + rank)
    return Solver(train.module, data, param, specs=train.specs, device=dev, testers=testers,
                  save_weights=lambda out: save_net(train, out, source=source), events=events,
                  snapshot_prefix=prefix)


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcn_ref.train",
                                     description="Train a Caffe solver file's net exactly as Caffe's solver would.")
    parser.add_argument("solver", help="Caffe solver prototxt (paths in it: relative to the working directory)")
    parser.add_argument("--weights", help="initial weights by layer name: .caffemodel, .caffemodel.h5 or .pth")
    parser.add_argument("--resume", help="a .solverstate written by a snapshot: continue exactly from it")
    parser.add_argument("--device", help="torch device (default cpu), e.g. cuda")
    parser.add_argument("--log", help="JSONL log (default <snapshot_prefix>_log.jsonl)")
    parser.add_argument("--plot", help="loss plot PNG (default <snapshot_prefix>_loss.png; needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--loss-sampling", type=float, default=1.0, metavar="P",
                        help="keep each output cell's loss with probability P (paper sec. 4.3; default 1)")
    parser.add_argument("--loss-cell", type=int, default=1, metavar="S",
                        help="loss sampling drops S x S blocks (e.g. 32: FCN-32s's cells); default 1")
    args = parser.parse_args(argv)
    if not 0 < args.loss_sampling <= 1:
        parser.error("--loss-sampling must be in (0, 1]")
    if args.weights and args.resume:
        parser.error("give --weights or --resume, not both")
    try:
        solver = build_solver(args.solver, weights=args.weights, device=args.device,
                              progress=not args.no_progress, log=args.log, plot=args.plot,
                              loss_sampling=args.loss_sampling, loss_cell=args.loss_cell)
        if args.resume:
            solver.restore(args.resume, load_weights)
        solver.solve()
    except (CaffeFormatError, DeviceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    if solver.stop_requested:
        print(f"stopped at iteration {solver.iteration}; snapshot written", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return train_main(argv)

"""The paper's training recipes from one command:

    python -m fcn_ref.train recipe voc-fcn8s --vgg16 VGG_ILSVRC_16_layers.caffemodel \\
        --sbd-root SBD/dataset --voc-root VOCdevkit/VOC2012 [--out DIR] [--iters N]

Surgery (``fcn_ref.surgery.fcn_from_classifier``: fc6/fc7 -> convolutions, zero scores, bilinear
upsampling), then each stage in turn, the next one staged from the last (``surgery.stage``: zero-
initialized skips). Hyperparameters are the reference solvers' (``STAGES`` below). Training data is
the reference's ``SBDDSegDataLayer`` (SBD ``train.txt``, seed 1337, the same image order); every
``--test-interval`` iterations seg11valid is scored as the reference's ``score.seg_tests`` does (one
confusion matrix, four metrics), logged in the JSONL log and plotted. Each stage snapshots to
``DIR/<stage>_iter_<N>.pth`` (a converted file: ``fcn_ref.load`` opens it).

Without ``--vgg16`` the trunk starts from PyTorch's default initialization at ``--widths``: a
smoke run on a small (e.g. synthetic) set, not the paper's recipe.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from convert.errors import CaffeFormatError
from convert.schema import SolverParameter
from fcn_ref.evaluate import evaluate
from fcn_ref.models import ARCHITECTURES, FCN
from fcn_ref.saving import save
from fcn_ref.surgery import fcn_from_classifier, stage
from fcn_ref.devices import pick_device
from fcn_ref.train.cli import COMMANDS
from fcn_ref.train.loss_sampling import LossSampling
from fcn_ref.train.progress import RunProgress
from fcn_ref.train.python_layers import PlanSource, _sbdd
from fcn_ref.train.solver import Solver
from fcn_ref.train.zoo import WithLoss, param_specs
from voc.datasets import VOCSegmentation
from voc.means import VOC_MEAN


@dataclass(frozen=True)
class Stage:
    """One solver run: the architecture, and its solver's rate, momentum, iter_size and loss."""

    arch: str
    base_lr: float
    momentum: float = 0.99
    iter_size: int = 1
    normalization: str = "BATCH_SIZE"  # the heavy nets' normalize: false (a sum over pixels)


HEAVY_32, HEAVY_16, HEAVY_8 = Stage("fcn32s", 1e-10), Stage("fcn16s", 1e-12), Stage("fcn8s", 1e-14)
CVPR = dict(momentum=0.9, iter_size=20, normalization="VALID")  # normalized loss; biases lr x2 as always

# Recipe name -> its stages, in order (shelhamer/fcn.berkeleyvision.org voc-*/solver.prototxt; the
# CVPR-era nets as the paper describes them).
STAGES: dict[str, tuple[Stage, ...]] = {
    "voc-fcn32s": (HEAVY_32,),
    "voc-fcn16s": (HEAVY_32, HEAVY_16),
    "voc-fcn8s": (HEAVY_32, HEAVY_16, HEAVY_8),
    "voc-fcn8s-atonce": (Stage("fcn8s-atonce", 1e-10),),
    "voc-cvpr-fcn8s": (Stage("cvpr-fcn32s", 1e-4, **CVPR), Stage("cvpr-fcn16s", 1e-4, **CVPR),
                       Stage("cvpr-fcn8s", 1e-4, **CVPR)),
}
SOLVER_COMMON = "lr_policy: 'fixed'\nweight_decay: 0.0005\naverage_loss: 20\ndisplay: 20\ntest_initialization: false\n"  # solve.py scores after each block of steps
SBDD_SEED = 1337
METRICS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def solver_param(s: Stage, iters: int, test_interval: int, base_lr: float | None = None) -> SolverParameter:
    text = (f"{SOLVER_COMMON}base_lr: {base_lr if base_lr is not None else s.base_lr!r}\nmomentum: {s.momentum}\n"
            f"iter_size: {s.iter_size}\nmax_iter: {iters}\ntest_interval: {test_interval}\n"
            f"snapshot: {test_interval}\n")
    return text_format.Parse(text, SolverParameter())


def seg_tests(model: FCN, voc_root: str, split: str = "seg11valid"):
    """A solver test hook: the model over ``split``, one confusion matrix, the four metrics."""
    dataset = VOCSegmentation(voc_root, split)

    def run(solver: Solver) -> dict[str, float]:
        result = evaluate(model, dataset, model.config.num_classes, device=solver.device)
        return {name: float(getattr(result.scores, name)) for name in METRICS}

    return run


def first_model(arch: str, vgg16: str | None, widths: tuple[int, ...] | None) -> FCN:
    if vgg16 is not None:
        return fcn_from_classifier(vgg16, arch)
    cls = ARCHITECTURES[arch]
    kwargs = {} if widths is None else {"widths": widths[:5], "fc_widths": widths[5:7]}
    return cls(num_classes=21, **kwargs).train()


def run_recipe(name: str, *, vgg16: str | None, sbd_root: str, voc_root: str, out: str | Path, iters: int,
               test_interval: int, device: str | None = None, base_lr: float | None = None,
               widths: tuple[int, ...] | None = None, test_split: str = "seg11valid",
               loss_sampling: float = 1.0, progress: bool = True) -> list[Solver]:
    """Every stage of recipe ``name``; returns their solvers (the last one's ``net.model`` is the result)."""
    dev = pick_device(device, deterministic=True)  # before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    solvers: list[Solver] = []
    model: FCN | None = None
    for s in STAGES[name]:
        model = first_model(s.arch, vgg16, widths) if model is None else stage(model, s.arch)
        data = PlanSource(_sbdd({"sbdd_dir": sbd_root, "split": "train", "mean": tuple(VOC_MEAN), "seed": SBDD_SEED}),
                          ("data", "label"), "data")
        if loss_sampling < 1:
            data = LossSampling(data, loss_sampling, seed=SBDD_SEED)
        prefix = out / s.arch
        events = RunProgress(log_path=f"{prefix}_log.jsonl", plot_path=f"{prefix}_loss.png", total=iters,
                             display=20, bar=progress)
        current = model
        solver = Solver(WithLoss(model, normalization=s.normalization), data, solver_param(s, iters, test_interval, base_lr),
                        specs=param_specs(model, "model."), device=dev, testers=[seg_tests(model, voc_root, test_split)],
                        save_weights=lambda path, m=current: save(m, path, source={"file": "", "sha256": "",
                                                                                  "trained_by": f"recipe {name}"},
                                                                  overwrite=True),
                        events=events, snapshot_prefix=str(prefix))
        solver.solve()
        solvers.append(solver)
        if solver.stop_requested:
            break
    return solvers


def recipe_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcn_ref.train recipe", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(STAGES))
    parser.add_argument("--vgg16", help="ILSVRC VGG16 caffemodel (VGG_ILSVRC_16_layers.caffemodel)")
    parser.add_argument("--sbd-root", required=True, help="SBD's dataset folder (img/, cls/, train.txt)")
    parser.add_argument("--voc-root", required=True, help="VOC year folder scored at test points")
    parser.add_argument("--out", default="recipe", help="snapshots, logs and plots (default ./recipe)")
    parser.add_argument("--iters", type=int, default=100000, help="iterations per stage (reference: 100000)")
    parser.add_argument("--test-interval", type=int, default=4000, help="score and snapshot every N (reference: 4000)")
    parser.add_argument("--test-split", default="seg11valid", help="split scored at test points")
    parser.add_argument("--device", help="torch device (default cpu)")
    parser.add_argument("--base-lr", type=float, help="override every stage's rate (small demos)")
    parser.add_argument("--widths", help="without --vgg16: conv1..conv5,fc6,fc7 widths, e.g. 4,4,8,8,8,16,16")
    parser.add_argument("--loss-sampling", type=float, default=1.0, metavar="P", help="keep each cell's loss with P")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else None
    if widths is not None and len(widths) != 7:
        parser.error("--widths takes 7 numbers: conv1..conv5, fc6, fc7")
    try:
        solvers = run_recipe(args.name, vgg16=args.vgg16, sbd_root=args.sbd_root, voc_root=args.voc_root,
                             out=args.out, iters=args.iters, test_interval=args.test_interval, device=args.device,
                             base_lr=args.base_lr, widths=widths, test_split=args.test_split,
                             loss_sampling=args.loss_sampling, progress=not args.no_progress)
    except CaffeFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 130 if solvers and solvers[-1].stop_requested else 0


COMMANDS["recipe"] = recipe_main

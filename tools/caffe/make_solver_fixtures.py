"""Regenerate tests/fixtures/train-solvers/<case>/ with real Caffe's other solver types (tools/caffe/python3 only).

    tools/caffe/python3 tools/caffe/make_solver_fixtures.py [--only NAME ...] [--out DIR] [--draw N]

Nesterov, AdaGrad, RMSProp, AdaDelta and Adam train train_cases.py's tiny net (conv, ReLU, ceil
max pool, 1x1 score, learned grouped deconvolution with bias, crop, SoftmaxWithLoss) on odd-sized
HDF5 inputs for 20 iterations. Everything else is make_train_fixtures.py's (same files, same
meta.json, same checks), whose ``caffe.get_solver(file)`` builds the solver the file's type names
(the registry's, after Caffe's upgrade of the legacy ``solver_type`` enum).

A legacy case is first trained with ``type`` and then again from a solver.prototxt that spells the
type with the ``solver_type`` enum instead; Caffe must write byte-identical init.caffemodel,
final.caffemodel and losses.npy both times (the folder keeps the legacy spelling).

``--draw N`` (N > 0) names every case ``<case>-drawN``: the seeds come from the name, so the inputs,
Caffe's filler draws and random_seed are new while the recipes stay (the oracle tier's fresh cases).
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402

import make_train_fixtures as mtf  # noqa: E402
from train_cases import TINY_DATA, TrainCase, tiny_net  # noqa: E402

GENERATOR = "tools/caffe/make_solver_fixtures.py"
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures", "train-solvers"))
TINY = ("the tiny net (conv 3x3, ReLU, ceil max pool, 1x1 score, learned grouped deconv 4/2 with bias, crop, "
        "SoftmaxWithLoss VALID)")

# case -> (solver fields besides make_train_fixtures' defaults, what it shows). The rates move
# every blob by 3% of its weights or more over 20 iterations; delta, rms_decay and momentum2 are
# Caffe's defaults where a case does not set them.
CASES = {
    "nesterov": (dict(type="Nesterov", base_lr=0.1, momentum=0.9, weight_decay=5e-4, lr_policy="fixed"),
                 "Nesterov momentum 0.9"),
    "adagrad": (dict(type="AdaGrad", base_lr=0.05, momentum=0.0, weight_decay=5e-4, lr_policy="fixed"),
                "AdaGrad, default delta (1e-8)"),
    "rmsprop": (dict(type="RMSProp", base_lr=0.005, momentum=0.0, weight_decay=5e-4, rms_decay=0.9, delta=1e-6,
                     lr_policy="inv", gamma=0.1, power=0.75), "RMSProp rms_decay 0.9, delta 1e-6, lr_policy inv"),
    "adadelta": (dict(type="AdaDelta", base_lr=1.0, momentum=0.95, weight_decay=5e-4, delta=1e-6, lr_policy="fixed"),
                 "AdaDelta momentum 0.95, delta 1e-6, base_lr 1"),
    "adam": (dict(type="Adam", base_lr=0.01, momentum=0.9, weight_decay=5e-4, lr_policy="fixed"),
             "Adam beta1 0.9, default beta2 (momentum2 0.999) and eps (delta 1e-8)"),
    "adam-step-iter-size": (dict(type="Adam", base_lr=0.02, momentum=0.8, momentum2=0.99, delta=1e-4,
                                 weight_decay=5e-3, iter_size=2, lr_policy="step", gamma=0.5, stepsize=6),
                            "Adam beta1 0.8, beta2 0.99, eps 1e-4, weight decay 5e-3, iter_size 2, lr_policy step "
                            "(gamma 0.5 every 6)"),
    "adadelta-legacy-enum": (dict(type="AdaDelta", base_lr=0.5, momentum=0.9, delta=1e-5, weight_decay=1e-3,
                                  regularization_type="L1", lr_policy="poly", power=1.5),
                             "AdaDelta spelled with the legacy enum (solver_type: ADADELTA), L1 weight decay 1e-3, "
                             "lr_policy poly"),
}
LEGACY_ENUM = {"adadelta-legacy-enum": "ADADELTA"}
COMPARED = ("init.caffemodel", "final.caffemodel", "losses.npy")


def cases(draw: int = 0) -> list[TrainCase]:
    """The cases; ``draw`` > 0 renames them (new seeds, same recipes)."""
    made = []
    for base, (solver, what) in CASES.items():
        name = f"{base}-draw{draw}" if draw else base
        notes = {"legacy_enum": LEGACY_ENUM[base]} if base in LEGACY_ENUM else {}
        made.append(TrainCase(name, f"{what} on {TINY}.", tiny_net(name), solver, TINY_DATA, notes=notes))
    return made


def respell_legacy(case: TrainCase, out: str, enum: str) -> None:
    """Rewrite solver.prototxt with ``solver_type: <enum>`` for ``type``, train again in Caffe and
    require the same bytes as the run with ``type``."""
    path = os.path.join(out, "solver.prototxt")
    with open(path) as f:
        text = f.read()
    modern = f'type: "{case.solver["type"]}"\n'
    assert text.count(modern) == 1, text
    with open(path, "w") as f:
        f.write(text.replace(modern, f"solver_type: {enum}\n"))
    before = {}
    for name in COMPARED:
        with open(os.path.join(out, name), "rb") as f:
            before[name] = f.read()
    cwd = os.getcwd()
    os.chdir(out)
    try:
        mtf.run(case, out)
    finally:
        os.chdir(cwd)
    for name in COMPARED:
        with open(os.path.join(out, name), "rb") as f:
            assert f.read() == before[name], (case.name, name, "the legacy enum trained differently")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to regenerate (default: all)")
    parser.add_argument("--out", default=FIXTURES)
    parser.add_argument("--draw", type=int, default=0, help="N > 0: fresh draws of every case, named <case>-drawN")
    args = parser.parse_args(argv)
    caffe.set_mode_cpu()
    if args.only:
        unknown = set(args.only) - set(CASES)
        if unknown:
            parser.error(f"unknown cases: {sorted(unknown)}")
    chosen = [c for base, c in zip(CASES, cases(args.draw)) if not args.only or base in args.only]
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    for case in chosen:
        meta = mtf.generate(case, args.out)
        folder = os.path.join(args.out, case.name)
        if "legacy_enum" in case.notes:
            respell_legacy(case, folder, case.notes["legacy_enum"])
        meta["generator"] = GENERATOR
        meta["solver_type"] = case.solver["type"]
        mtf.write_json(os.path.join(folder, "meta.json"), meta)
        mtf.print_summary(case.name, args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Caffe against itself: the staged fixture's three runs again, one initial blob nudged by one ulp.

    tools/caffe/python3 tools/caffe/staged_sensitivity.py --fixture tests/fixtures/train/staged-synthetic \\
        --work DIR --out OUT [--nudge conv3_1]

DIR is what ``python tools/make_staged_fixture.py --data-only DIR`` writes (train.h5, val_inputs.h5).
Each stage runs the fixture's own solver and net files in OUT/<stage> exactly as
tools/caffe/train_staged.py did (FCN-32s from the fixture's init.caffemodel; each later stage from
the previous stage's final weights by ``copy_from``, over the fixture's init for the fixed
upsampling and the zero skip), except that FCN-32s's ``--nudge`` weights start one ulp higher
(``nextafter`` towards +inf). Writes OUT/<stage>/losses.npy and predictions.h5 (Caffe's argmax per
val id). With ``--nudge ''`` it is a plain rerun, which reproduces the fixture bit for bit.

How far this moves Caffe's own predictions and mean IU is how chaotic the training is: the
smallest difference any other float32 implementation must expect (tests/fcn_ref/train/
test_train_end_to_end.py; tools/make_staged_fixture.py records it in staged.json).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import numpy as np  # noqa: E402

import train_synthetic as ts  # noqa: E402
from train_staged import PARENT, SOURCE, STAGES, TRAIN_H5, write_predictions  # noqa: E402


def run_stage(stage: str, fixture: str, work: str, out: str, nudge: str) -> None:
    folder = os.path.join(out, stage)
    os.makedirs(folder)
    for name in ("solver.prototxt", "train.prototxt", SOURCE, "deploy.prototxt", "init.caffemodel"):
        shutil.copy(os.path.join(fixture, stage, name), folder)
    os.symlink(os.path.join(work, TRAIN_H5), os.path.join(folder, TRAIN_H5))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        solver = caffe.SGDSolver("solver.prototxt")
        net = solver.net
        net.copy_from("init.caffemodel")
        if stage in PARENT:
            net.copy_from(os.path.join("..", PARENT[stage], "final.caffemodel"))
        elif nudge:
            weight = net.params[nudge][0].data
            weight[...] = np.nextafter(weight, np.float32(np.inf))
        losses = []
        for _ in range(STAGES[stage][0]):
            solver.step(1)
            losses.append(float(net.blobs["loss"].data))
        net.save("final.caffemodel")
        np.save("losses.npy", np.array(losses, np.float64))
    finally:
        os.chdir(cwd)
    ids, predictions, _, _ = ts.predict(os.path.join(folder, "deploy.prototxt"),
                                        os.path.join(folder, "final.caffemodel"), work)
    write_predictions(os.path.join(folder, "predictions.h5"), ids, predictions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixture", required=True, help="tests/fixtures/train/staged-synthetic")
    parser.add_argument("--work", required=True, help="folder with train.h5 and val_inputs.h5")
    parser.add_argument("--out", required=True, help="empty or new folder for the runs")
    parser.add_argument("--nudge", default="conv3_1", help="FCN-32s layer whose weights move one ulp ('' none)")
    args = parser.parse_args(argv)
    caffe.set_mode_cpu()
    fixture, work, out = (os.path.abspath(p) for p in (args.fixture, args.work, args.out))
    for stage in STAGES:
        run_stage(stage, fixture, work, out, args.nudge)
    return 0


if __name__ == "__main__":
    sys.exit(main())

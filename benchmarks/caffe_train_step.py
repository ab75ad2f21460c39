"""Caffe's side of train_step.py; run under Debian python3 with pycaffe (tools/caffe/python3).

Usage: caffe_train_step.py WORK_DIR WIDTH_DIV REPEATS
WORK_DIR holds step.h5 (data (1,3,S,S), label (1,1,S,S)) written by train_step.py. Builds the
reference voc-fcn8s train net (tools/caffe/nets.py: VGG16 trunk with widths / WIDTH_DIV, the FCN-8s
head, SoftmaxWithLoss normalize false) fed by HDF5Data, the reference solver (fixed lr 1e-14,
momentum 0.99, weight decay 5e-4), and times solver.step(1). Prints "caffe_times t1 t2 ..." and
"caffe_maxrss_kib N" (this process's peak RSS).
"""
from __future__ import annotations

import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "caffe"))

import caffe  # noqa: E402
from caffe import layers as L  # noqa: E402

import nets  # noqa: E402

FULL_WIDTHS, FULL_FC = (64, 128, 256, 512, 512), 4096  # VGG16 (nets.py's defaults are reduced)


def main() -> None:
    work, div, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.chdir(work)
    with open("step_h5.txt", "w") as f:
        f.write("step.h5\n")
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(source="step_h5.txt", batch_size=1, ntop=2)
    widths = tuple(max(1, w // div) for w in FULL_WIDTHS)
    top = nets.vgg_trunk(n, n.data, widths=widths, fc=max(1, FULL_FC // div))
    nets.fcn8s_head(n, top, 21)
    proto = nets.named(n, "fcn8s-train-step")
    with open("train.prototxt", "w") as f:
        f.write(str(proto))
    with open("solver.prototxt", "w") as f:
        f.write('train_net: "train.prototxt"\nbase_lr: 1e-14\nlr_policy: "fixed"\nmomentum: 0.99\n'
                'weight_decay: 0.0005\nmax_iter: 100000\nsnapshot: 0\ndisplay: 0\nsolver_mode: CPU\n')
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver("solver.prototxt")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    print("caffe_times " + " ".join(f"{t:.4f}" for t in times), flush=True)
    print(f"caffe_maxrss_kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


if __name__ == "__main__":
    main()

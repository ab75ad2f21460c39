"""Time real Caffe's CPU forward; run under Debian python3 with pycaffe (tools/caffe/python3).

Usage: caffe_forward.py PROTOTXT CAFFEMODEL INPUT.npy OUTPUT.npy REPEATS
Prints one line "caffe_times <t1> <t2> ..." (seconds per forward, timed inside this process) and
saves the output blob "score" of the last forward to OUTPUT.npy.
"""

from __future__ import annotations

import sys
import time

import caffe
import numpy as np


def main() -> None:
    proto, model, inp, out, repeats = sys.argv[1:6]
    caffe.set_mode_cpu()
    net = caffe.Net(proto, model, caffe.TEST)
    x = np.load(inp).astype(np.float32)
    net.blobs["data"].reshape(*x.shape)
    net.reshape()
    net.blobs["data"].data[...] = x
    times = []
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        net.forward()
        times.append(time.perf_counter() - t0)
    np.save(out, net.blobs["score"].data.copy())
    print("caffe_times " + " ".join(f"{t:.4f}" for t in times), flush=True)


if __name__ == "__main__":
    main()

"""Write a full-width FCN-8s caffemodel with random weights, using real Caffe (pycaffe).

Run under Debian python3 with pycaffe:  tools/caffe/python3 benchmarks/make_fcn8s_caffemodel.py [OUT_DIR]
Writes OUT_DIR/fcn8s-full.prototxt and OUT_DIR/fcn8s-full.caffemodel (513 MiB; default benchmarks/out).
Weights: He-scaled Gaussians (so activations neither vanish nor explode through 15 ReLU layers),
small random biases, bilinear deconvolution kernels on the class diagonal as in the zoo nets.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import caffe  # noqa: E402

from fcn8s_spec import fcn8s_prototxt  # noqa: E402


def bilinear(channels: int, k: int) -> np.ndarray:
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = np.ogrid[:k, :k]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((channels, channels, k, k), np.float32)
    w[range(channels), range(channels)] = filt
    return w


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
    os.makedirs(out_dir, exist_ok=True)
    proto = os.path.join(out_dir, "fcn8s-full.prototxt")
    with open(proto, "w") as f:
        f.write(fcn8s_prototxt())
    caffe.set_mode_cpu()
    net = caffe.Net(proto, caffe.TEST)
    rng = np.random.RandomState(0)
    for name, blobs in net.params.items():
        w = blobs[0].data
        if name.startswith("upscore"):
            w[...] = bilinear(w.shape[0], w.shape[2])
            continue
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        w[...] = rng.standard_normal(w.shape).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        if len(blobs) > 1:
            blobs[1].data[...] = rng.standard_normal(blobs[1].data.shape).astype(np.float32) * 0.01
    path = os.path.join(out_dir, "fcn8s-full.caffemodel")
    net.save(path)
    print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()

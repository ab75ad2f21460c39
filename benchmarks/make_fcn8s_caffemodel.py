"""Write a full-width FCN-8s caffemodel with random weights, using real Caffe (pycaffe).

Run under Debian python3 with pycaffe:  tools/caffe/python3 benchmarks/make_fcn8s_caffemodel.py [OUT_DIR]
Writes OUT_DIR/fcn8s-full.prototxt and OUT_DIR/fcn8s-full.caffemodel (513 MiB; default benchmarks/out).
The net is the fixture generator's voc-fcn8s (tools/caffe/nets.py) at the paper's widths and a
500x500 input. Weights: He-scaled Gaussians (so activations neither vanish nor explode through 15
ReLU layers), small random biases, bilinear deconvolution kernels on the class diagonal.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "caffe"))
import caffe  # noqa: E402

import nets  # noqa: E402

VGG16_WIDTHS, VGG16_FC, NUM_CLASSES, SIZE = (64, 128, 256, 512, 512), 4096, 21, 500


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out")
    os.makedirs(out_dir, exist_ok=True)
    case = nets.vgg_fcn("fcn8s-full", 8, NUM_CLASSES, (SIZE, SIZE), notes="benchmark",
                        widths=VGG16_WIDTHS, fc=VGG16_FC)
    proto = os.path.join(out_dir, "fcn8s-full.prototxt")
    with open(proto, "w") as f:
        f.write(str(case.net))
    caffe.set_mode_cpu()
    net = caffe.Net(proto, caffe.TEST)
    rng = np.random.RandomState(0)
    for name, blobs in net.params.items():
        w = blobs[0].data
        if name.startswith("upscore"):
            w[...] = nets.bilinear_diagonal([w.shape], rng)[0]
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

"""tests/fixtures/bvlc-only/clip-swish: BVLC layers the packaged Caffe lacks, referenced by real Caffe.

    tools/caffe/python3 tools/caffe/make_bvlc_only_fixture.py

BVLC master has Clip and Swish layers; the packaged Caffe (brocolli-caffe 9.0.2) does not. So the
reference is real Caffe running an equivalent net of layers it has, written from BVLC's definitions
(clip_layer.cpp: max(min, min(x, max)); swish_layer.cpp: x sigmoid(beta x)):

    Clip:  min + ReLU(x - min), then max - ReLU(max - that)   (Power shifts/scales and ReLU)
    Swish: Eltwise PROD(x, Sigmoid(Power(x, scale: beta)))

``net.prototxt`` is the BVLC net the converter reads (its Clip/Swish are ours to write: the
packaged caffe_pb2 cannot express them); ``caffe-equivalent.prototxt`` is what Caffe ran;
``reference.h5`` holds the input and Caffe's blobs under the BVLC net's top names. The additions
round x by at most an ulp of |min| or |max|, far inside the parity tolerance.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402

from oracle import CAFFE_COMMIT, CAFFE_SOURCE, forward, write_arrays  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures", "bvlc-only", "clip-swish"))
SHAPE = (2, 3, 4, 5)
LOW, HIGH, BETA = -0.5, 0.8, 0.7

BVLC_NET = f"""name: "clip-swish"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: {' dim: '.join(map(str, SHAPE))} }} }} }}
layer {{ name: "clip" type: "Clip" bottom: "data" top: "clip" clip_param {{ min: {LOW} max: {HIGH} }} }}
layer {{ name: "swish" type: "Swish" bottom: "data" top: "swish" }}
layer {{ name: "swish_beta" type: "Swish" bottom: "data" top: "swish_beta" swish_param {{ beta: {BETA} }} }}
"""


def power(name: str, bottom: str, scale: float = 1.0, shift: float = 0.0) -> str:
    return (f'layer {{ name: "{name}" type: "Power" bottom: "{bottom}" top: "{name}" '
            f'power_param {{ scale: {scale} shift: {shift} }} }}\n')


def equivalent_net() -> str:
    text = BVLC_NET.split("\n")[0] + "\n" + BVLC_NET.split("\n")[1] + "\n"
    text += power("above_low", "data", shift=-LOW)
    text += 'layer { name: "relu_low" type: "ReLU" bottom: "above_low" top: "above_low" }\n'
    text += power("clip_low", "above_low", shift=LOW)
    text += power("below_high", "clip_low", scale=-1.0, shift=HIGH)
    text += 'layer { name: "relu_high" type: "ReLU" bottom: "below_high" top: "below_high" }\n'
    text += power("clip", "below_high", scale=-1.0, shift=HIGH)
    text += 'layer { name: "sig" type: "Sigmoid" bottom: "data" top: "sig" }\n'
    text += 'layer { name: "swish" type: "Eltwise" bottom: "data" bottom: "sig" top: "swish" eltwise_param { operation: PROD } }\n'
    text += power("beta_x", "data", scale=BETA)
    text += 'layer { name: "sig_beta" type: "Sigmoid" bottom: "beta_x" top: "sig_beta" }\n'
    text += ('layer { name: "swish_beta" type: "Eltwise" bottom: "data" bottom: "sig_beta" top: "swish_beta" '
             'eltwise_param { operation: PROD } }\n')
    return text


def main() -> int:
    caffe.set_mode_cpu()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "net.prototxt"), "w") as f:
        f.write(BVLC_NET)
    equivalent = os.path.join(OUT, "caffe-equivalent.prototxt")
    with open(equivalent, "w") as f:
        f.write(equivalent_net())
    rng = np.random.RandomState(13)
    inputs = {"data": (rng.standard_normal(SHAPE) * 2).astype(np.float32)}
    blobs = forward(caffe.Net(equivalent, caffe.TEST), inputs, {"data", "clip", "swish", "swish_beta"})
    assert abs(blobs["clip"].min() - LOW) < 1e-6 and abs(blobs["clip"].max() - HIGH) < 1e-6  # both sides bite
    path = os.path.join(OUT, "reference.h5")
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)  # byte-identical reruns
    with h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)) as f:
        f.attrs["caffe_commit"] = CAFFE_COMMIT
        f.attrs["caffe_source"] = CAFFE_SOURCE
        f.attrs["generator"] = "tools/caffe/make_bvlc_only_fixture.py"
        write_arrays(f.create_group("inputs"), inputs, compress=False)
        write_arrays(f.create_group("blobs"), blobs, compress=False)
    print(f"{OUT}: clip {blobs['clip'].shape}, swish, swish_beta")
    return 0


if __name__ == "__main__":
    sys.exit(main())

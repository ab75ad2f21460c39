"""Caffe's own net surgery as the reference for fcn_ref.surgery (run under tools/caffe/python3).

    tools/caffe/python3 tools/caffe/make_surgery_fixture.py

Caffe loads the legacy V1 vgg16-classifier fixture, an FCN-32s of the same widths is built in
Caffe, and the classifier's parameters are transplanted the way the reference surgery does it
(``.flat`` assignment by layer name, so fc6/fc7 InnerProducts become 7x7/1x1 convolutions), with
score_fr zero and the upsampling bilinear on the diagonal. Caffe then runs forward on an odd-sized
input. Written to tests/fixtures/surgery/vgg16-fcn32s/: fcn32s.prototxt and reference.h5 (the input,
every blob, and for each blob the name of the last layer that wrote it).
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import numpy as np  # noqa: E402
from caffe import NetSpec  # noqa: E402

import nets  # noqa: E402
from oracle import declared_blobs, forward, write_surgery_reference  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures"))
SOURCE = os.path.join(FIXTURES, "vgg16-classifier")
OUT = os.path.join(FIXTURES, "surgery", "vgg16-fcn32s")
NUM_CLASSES, HEIGHT, WIDTH = 21, 61, 45


def main() -> None:
    caffe.set_mode_cpu()
    classifier = caffe.Net(os.path.join(SOURCE, "v1.prototxt"), caffe.TEST,
                           weights=os.path.join(SOURCE, "v1.caffemodel"))
    widths = [classifier.params[f"conv{i}_1"][0].data.shape[0] for i in range(1, 6)]
    fc = classifier.params["fc6"][0].data.shape[0]

    n = NetSpec()
    n.data = nets.data_input(1, 3, HEIGHT, WIDTH)
    top = nets.vgg_trunk(n, n.data, widths=widths, fc=fc)
    n.score_fr = nets.score_conv(top, NUM_CLASSES)
    n.upscore = nets.upsample(n.score_fr, NUM_CLASSES, 64, 32)
    n.score = nets.crop(n.upscore, n.data, 19)
    os.makedirs(OUT, exist_ok=True)
    prototxt = os.path.join(OUT, "fcn32s.prototxt")
    proto = n.to_proto()
    proto.name = "vgg16-fcn32s-surgery"
    with open(prototxt, "w") as f:
        f.write(str(proto))
    fcn = caffe.Net(prototxt, caffe.TEST)

    for name, blobs in fcn.params.items():  # the reference transplant: by name, .flat assignment
        if name in classifier.params:
            for mine, theirs in zip(blobs, classifier.params[name]):
                mine.data.flat = theirs.data.flat
    for blob in fcn.params["score_fr"]:
        blob.data[...] = 0
    fcn.params["upscore"][0].data[...] = nets.bilinear_diagonal(
        [fcn.params["upscore"][0].data.shape], np.random.RandomState(0))[0]

    rng = np.random.RandomState(20151)
    inputs = {"data": (rng.standard_normal((1, 3, HEIGHT, WIDTH)) * 50).astype(np.float32)}
    blobs = forward(fcn, inputs, declared_blobs(prototxt))
    write_surgery_reference(os.path.join(OUT, "reference.h5"), proto, inputs, blobs,
                            "tools/caffe/make_surgery_fixture.py")
    print(f"{OUT}: {len(blobs)} blobs, widths {widths}, fc {fc}")


if __name__ == "__main__":
    main()

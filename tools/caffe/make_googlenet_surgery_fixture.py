"""Caffe's own surgery of BVLC GoogLeNet into an FCN-32s, the reference for FCN-GoogLeNet (run under
tools/caffe/python3).

    tools/caffe/python3 tools/caffe/make_googlenet_surgery_fixture.py

The classifier is the reduced-width bvlc_googlenet of the public-net suite
(tests/fixtures/public-nets/googlenet: every layer of BVLC's deploy.prototxt, real-Caffe weights).
The FCN keeps its layers up to inception_5b/output and, as section 4.1 of the paper says, discards
the final average pooling (pool5/7x7_s1 and its dropout); the classifier loss3/classifier becomes
the 1x1 convolution score_fr (the same numbers: an InnerProduct over a 1x1 blob is a 1x1
convolution), then a fixed bilinear 63/32 deconvolution and a crop to the input. As in every
released FCN, the first convolution is padded by 100 (conv1/7x7_s2: 3 in the classifier) so that
any input size survives the four stride-2 poolings.

The crop offset is 98, from Caffe's coord_map arithmetic (which has no rule for Concat; every
inception branch maps coordinates by the identity, so the chain is): conv1/7x7_s2 k7 s2 p100 gives
x/2 + 97/2; the four k3 s2 pools give x/32 + 97/32 - 15/16; the deconvolution
32 * (.) + (63 - 1)/2 = x + 98. A 64-wide kernel (as VGG's) would leave the maps half a pixel
apart, so the kernel is 63, as FCN-AlexNet's is for the same reason.

Caffe builds the FCN, copies the classifier's parameters by layer name with ``.flat`` assignment
(the reference surgery.transplant), score_fr from loss3/classifier, the upsampling bilinear, saves
it, loads the saved file into a fresh net and runs forward on an odd-sized input. Written to
tests/fixtures/surgery/googlenet-fcn32s/: fcn.prototxt, params.json (shape and sha256 of every
parameter blob of the transplanted net, as Caffe holds it: the caffemodel itself would be 1.7 MB,
mostly the (10, 10, 63, 63) bilinear upsampling) and reference.h5 (the input, every blob of at most
20,000 values and the output, and for each blob the name of the last layer that wrote it).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # BLAS sums in a fixed order: same bits every run
    os.environ.setdefault(_var, "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import numpy as np  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

import nets  # noqa: E402
from oracle import declared_blobs, forward, write_surgery_reference  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures"))
SOURCE = os.path.join(FIXTURES, "public-nets", "googlenet")
OUT = os.path.join(FIXTURES, "surgery", "googlenet-fcn32s")
HEIGHT, WIDTH = 75, 53
CLASSIFIER_ONLY = ("pool5/7x7_s1", "pool5/drop_7x7_s1", "loss3/classifier", "prob")
CROP_OFFSET = 98  # see the module docstring
FIRST_PAD = 100
MAX_BLOB = 20_000
UPSAMPLE_KERNEL = 63


def fcn_prototxt(classifier: caffe_pb2.NetParameter, num_classes: int) -> caffe_pb2.NetParameter:
    """The classifier's deploy net without its head, plus score_fr, upscore and the crop."""
    fcn = caffe_pb2.NetParameter(name="googlenet-fcn32s-surgery")
    for layer in classifier.layer:
        if layer.name in CLASSIFIER_ONLY:
            continue
        copy = fcn.layer.add()
        copy.CopyFrom(layer)
        if layer.type == "Input":
            del copy.input_param.shape[:]
            copy.input_param.shape.add().dim.extend([1, 3, HEIGHT, WIDTH])
        if layer.name == "conv1/7x7_s2":
            del copy.convolution_param.pad[:]
            copy.convolution_param.pad.append(FIRST_PAD)
    last = "inception_5b/output"
    score = fcn.layer.add(name="score_fr", type="Convolution", bottom=[last], top=["score_fr"])
    score.convolution_param.num_output = num_classes
    score.convolution_param.kernel_size.append(1)
    up = fcn.layer.add(name="upscore", type="Deconvolution", bottom=["score_fr"], top=["upscore"])
    up.param.add(lr_mult=0)
    up.convolution_param.num_output = num_classes
    up.convolution_param.bias_term = False
    up.convolution_param.kernel_size.append(UPSAMPLE_KERNEL)
    up.convolution_param.stride.append(32)
    crop = fcn.layer.add(name="score", type="Crop", bottom=["upscore", "data"], top=["score"])
    crop.crop_param.axis = 2
    crop.crop_param.offset.append(CROP_OFFSET)
    return fcn


def main() -> None:
    caffe.set_mode_cpu()
    classifier_path = os.path.join(SOURCE, "net.prototxt")
    classifier = caffe.Net(classifier_path, caffe.TEST, weights=os.path.join(SOURCE, "net.caffemodel"))
    with open(classifier_path) as f:
        classifier_proto = text_format.Parse(f.read(), caffe_pb2.NetParameter())
    num_classes = classifier.params["loss3/classifier"][0].data.shape[0]

    os.makedirs(OUT, exist_ok=True)
    prototxt = os.path.join(OUT, "fcn.prototxt")
    with open(prototxt, "w") as f:
        f.write(text_format.MessageToString(fcn_prototxt(classifier_proto, num_classes)))
    fcn = caffe.Net(prototxt, caffe.TEST)

    for name, blobs in fcn.params.items():  # the reference transplant: by name, .flat assignment
        source = "loss3/classifier" if name == "score_fr" else name
        if source in classifier.params:
            for mine, theirs in zip(blobs, classifier.params[source]):
                mine.data.flat = theirs.data.flat
    fcn.params["upscore"][0].data[...] = nets.bilinear_diagonal(
        [fcn.params["upscore"][0].data.shape], np.random.RandomState(0))[0]
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "fcn.caffemodel")
        fcn.save(saved)
        reloaded = caffe.Net(prototxt, caffe.TEST, weights=saved)
    params = {name: [{"shape": list(b.data.shape),
                      "sha256": hashlib.sha256(np.ascontiguousarray(b.data, np.float32).tobytes()).hexdigest()}
                     for b in blobs] for name, blobs in reloaded.params.items()}
    with open(os.path.join(OUT, "params.json"), "w") as f:
        json.dump(params, f, indent=1, sort_keys=True)
        f.write("\n")
    rng = np.random.RandomState(20154)
    inputs = {"data": rng.standard_normal((1, 3, HEIGHT, WIDTH)).astype(np.float32)}
    blobs = forward(reloaded, inputs, declared_blobs(prototxt))
    assert np.abs(blobs["score"]).max() > 0 and all(np.isfinite(b).all() for b in blobs.values())
    # The 100-pixel padding makes the early blobs big: keep those of at most MAX_BLOB values (every
    # inception output among them) and the output, to stay small.
    blobs = {name: b for name, b in blobs.items() if b.size <= MAX_BLOB or name == "score"}
    write_surgery_reference(os.path.join(OUT, "reference.h5"), fcn_prototxt(classifier_proto, num_classes),
                            inputs, blobs, "tools/caffe/make_googlenet_surgery_fixture.py",
                            libver=("earliest", "v110"), track_order=False)
    print(f"{OUT}: {len(blobs)} blobs, {num_classes} classes, score {blobs['score'].shape}")


if __name__ == "__main__":
    main()

"""fcn_ref.surgery against Caffe's own transplant: the same classifier moved into an FCN-32s by
real Caffe (``.flat`` assignment, as the reference surgery does) and run forward there
(tests/fixtures/surgery/vgg16-fcn32s, made by tools/caffe/make_surgery_fixture.py)."""
from __future__ import annotations

import h5py
import numpy as np
import torch

from conftest import FIXTURES, rel_error
from fcn_ref.caffe_names import caffe_layer_names
from fcn_ref.surgery import fcn_from_classifier

CASE = FIXTURES / "surgery" / "vgg16-fcn32s"


def test_transplant_from_legacy_vgg16_equals_caffes_surgery_and_forward():
    with h5py.File(CASE / "reference.h5", "r", locking=False) as f:
        data = f["inputs/data"][()]
        reference = {name: (d[()], d.attrs["written_by"]) for name, d in f["blobs"].items()}
    model = fcn_from_classifier(FIXTURES / "vgg16-classifier" / "v1.caffemodel", "fcn32s", num_classes=21).eval()
    modules = {caffe: model.get_submodule(path) for path, caffe in caffe_layer_names(model).items()}
    captured: dict[str, np.ndarray] = {}
    for blob, (_, writer) in reference.items():
        if writer in modules and blob != "data":
            modules[writer].register_forward_hook(
                lambda _m, _i, out, blob=blob: captured.__setitem__(blob, out.detach().numpy().copy()))
    with torch.inference_mode():
        score = model(torch.from_numpy(data)).numpy()
    captured["score"] = score
    compared = sorted(set(captured) & set(reference))
    assert {"pool5", "fc6", "fc7", "score"} <= set(compared), compared
    for blob in compared:
        assert rel_error(captured[blob], reference[blob][0]) <= 1e-5, blob
    assert not np.any(score) and not np.any(reference["score"][0])  # score_fr starts at zero
    assert np.abs(reference["fc7"][0]).max() > 0  # fc6/fc7 carry the classifier's weights

"""FCN-GoogLeNet against Caffe's own surgery: BVLC GoogLeNet (the reduced public-net classifier)
moved into an FCN-32s by real Caffe (``.flat`` transplant by name, average pooling discarded,
loss3/classifier as the 1x1 score_fr) and run forward there
(tests/fixtures/surgery/googlenet-fcn32s, made by tools/caffe/make_googlenet_surgery_fixture.py)."""
from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
import torch

import convert
import fcn_ref
from conftest import FIXTURES, rel_error
from convert.checkpoint import FORMAT, checkpoint_from_payload, sealed
from convert.runtime import CaffeModule
from fcn_ref.caffe_names import caffe_layer_names, caffe_state_dict
from fcn_ref.models import FCNGoogLeNet
from fcn_ref.recognize import recognize
from fcn_ref.surgery import fcn_from_classifier

CASE = FIXTURES / "surgery" / "googlenet-fcn32s"
CLASSIFIER = FIXTURES / "public-nets" / "googlenet" / "net.caffemodel"


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, dict[str, tuple[np.ndarray, str]]]:
    blobs: dict[str, tuple[np.ndarray, str]] = {}

    def keep(name: str, item) -> None:  # GoogLeNet's blob names nest: "inception_3a/1x1"
        if isinstance(item, h5py.Dataset):
            blobs[name] = (item[()], item.attrs["written_by"])

    with h5py.File(CASE / "reference.h5", "r", locking=False) as f:
        f["blobs"].visititems(keep)
        return f["inputs/data"][()], blobs


@pytest.fixture(scope="module")
def model() -> FCNGoogLeNet:
    return fcn_from_classifier(CLASSIFIER, "fcn-googlenet", num_classes=None).eval()


def _caffe_net(model: FCNGoogLeNet):
    """Caffe's FCN prototxt carrying our transplanted weights: a converted file's payload, read back
    (and checked layer by layer) as ``convert.load`` reads one."""
    payload = sealed({"format": FORMAT, "net": (CASE / "fcn.prototxt").read_text(), "name": "googlenet-fcn32s",
               "architecture": None, "source": {}, "state_dict": caffe_state_dict(model)})
    return checkpoint_from_payload(payload, CASE / "fcn.prototxt").net


def test_transplant_is_caffes_bit_for_bit(model):
    params = json.loads((CASE / "params.json").read_text())
    state = caffe_state_dict(model)
    ours = {}
    for key, tensor in state.items():
        layer, _ = key.rsplit(".", 1)
        ours.setdefault(layer, []).append(
            {"shape": list(tensor.shape), "sha256": hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()})
    assert ours == params


def test_readable_model_matches_caffes_forward(model, reference):
    data, blobs = reference
    names = caffe_layer_names(model)
    modules = {names[path]: module for path, module in model.named_modules() if path in names}
    captured: dict[str, np.ndarray] = {}
    for blob, (_, writer) in blobs.items():
        if writer in modules and blob != "data":
            modules[writer].register_forward_hook(
                lambda _m, _i, out, blob=blob: captured.__setitem__(blob, out.detach().numpy().copy()))
    with torch.inference_mode():
        captured["score"] = model(torch.from_numpy(data)).numpy()
    assert {"inception_3a/output", "inception_5b/output", "score_fr", "score"} <= set(captured)
    assert len(captured) >= 75
    for blob, ours in captured.items():
        assert rel_error(ours, blobs[blob][0]) <= 1e-5, blob
    assert np.array_equal(captured["score"].argmax(1), blobs["score"][0].argmax(1))
    assert np.abs(blobs["score"][0]).max() > 0  # the classifier scores: not a zero layer


def test_generic_runtime_matches_caffes_forward_and_is_recognized(model, reference):
    data, blobs = reference
    net = _caffe_net(model)
    with torch.no_grad():
        ours = CaffeModule(net).eval()(torch.from_numpy(data), all_blobs=True)
    compared = sorted(set(ours) & set(blobs))
    assert len(compared) >= 75
    for blob in compared:
        assert rel_error(ours[blob].numpy(), blobs[blob][0]) <= 1e-5, blob
    guess = recognize(net)
    assert guess["name"] == "fcn-googlenet" and FCNGoogLeNet(**guess["kwargs"]).config == model.config
    assert model.crop_offsets() == {"score": 98}  # Caffe's prototxt says offset 98


def test_saved_model_loads_back_through_fcn_ref_and_the_generic_runtime(model, reference, tmp_path):
    data, blobs = reference
    fcn_ref.save(model, tmp_path / "fcn-googlenet.pth")
    again = fcn_ref.load(tmp_path / "fcn-googlenet.pth")
    generic = convert.load(tmp_path / "fcn-googlenet.pth")
    assert type(again) is FCNGoogLeNet and again.config == model.config
    with torch.no_grad():
        for score in (again(torch.from_numpy(data)), generic(torch.from_numpy(data))["score"]):
            assert rel_error(score.numpy(), blobs["score"][0]) <= 1e-5


def test_papers_head_starts_at_zero(model):
    fresh = fcn_from_classifier(CLASSIFIER, "fcn-googlenet", num_classes=21).eval()
    assert fresh.config.num_classes == 21 and not fresh.score_fr.weight.any()
    theirs = caffe_state_dict(model)
    for key, tensor in caffe_state_dict(fresh).items():
        if not key.startswith(("score_fr", "upscore")):
            assert torch.equal(tensor, theirs[key]), key
    with torch.no_grad():
        assert not fresh(torch.zeros(1, 3, 40, 40)).any()

"""fcn_ref.save writes the converted-file format: convert.load runs it, fcn_ref.load rebuilds it.

The references are real Caffe's outputs (the fixtures' reference.h5) for the weights saved, and
convert.coord_map's walk over the written Caffe net for the crop offsets.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convert
import fcn_ref
from convert.checkpoint import read_checkpoint
from convert.coord_map import computed_crop_offsets
from fcn_ref.caffe_names import caffe_state_dict
from fcn_ref.models import ARCHITECTURES
from fcn_ref.recognize import recognize
from conftest import FIXTURES
from test_zoo_parity import ZOO, _check_outputs


# One case per family and naming: heavy, at-once scales, AlexNet, SIFT Flow, NYUD both, CVPR.
CASES = ("voc-fcn16s", "voc-fcn8s-atonce", "voc-fcn-alexnet", "siftflow-fcn8s", "nyud-fcn32s-color-d",
         "nyud-fcn32s-color-hha", "cvpr-fcn8s")


@pytest.mark.parametrize("case", CASES)
def test_saved_zoo_model_runs_like_caffe_in_both_loaders(case, tmp_path):
    model = ARCHITECTURES[ZOO[case]].from_caffemodel(FIXTURES / case / "net.caffemodel")
    fcn_ref.save(model, tmp_path / "model.pth")
    again, generic = fcn_ref.load(tmp_path / "model.pth"), convert.load(tmp_path / "model.pth")
    assert type(again) is type(model) and again.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    _check_outputs(again, case)
    _check_outputs(lambda *x: generic(*x), case)  # a dict of the net's output blobs
    net = read_checkpoint(tmp_path / "model.pth").net
    assert fcn_ref.build(recognize(net)).config == model.config  # the written net is the zoo net
    assert computed_crop_offsets(net) == {k: [v, v] for k, v in model.crop_offsets().items()}


def test_saved_settings_come_back(tmp_path):
    model = fcn_ref.FCN16s(num_classes=3, widths=[2, 2, 2, 2, 2], fc_widths=[2, 2], learn_upsampling=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    fcn_ref.save(model, tmp_path / "snap.pth", source={"file": "trained here"})
    again = fcn_ref.load(tmp_path / "snap.pth")
    assert again.config == model.config and again.meta["source"] == {"file": "trained here"}
    ours, theirs = caffe_state_dict(again), caffe_state_dict(model)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert all(p.requires_grad == q.requires_grad for p, q in zip(again.parameters(), model.parameters()))


def test_save_refuses_to_overwrite(tmp_path):
    model = fcn_ref.FCN32s(num_classes=2, widths=[1, 1, 1, 1, 1], fc_widths=[1, 1])
    fcn_ref.save(model, tmp_path / "a.pth")
    with pytest.raises(FileExistsError):
        fcn_ref.save(model, tmp_path / "a.pth")
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["a.pth"])

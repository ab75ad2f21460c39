"""The FCN-32s recipe on the real data: 500 iterations from VGG16, the loss falls and seg11valid
mean IU rises above chance (the best label-blind predictor: every pixel the most frequent class,
measured on seg11valid's own labels; FCN-32s starts there, its scores being zero).

Skips unless SBD_ROOT (SBD's ``dataset`` folder: img/, cls/, train.txt), VOC_ROOT
(``VOCdevkit/VOC2012``) and VGG16_CAFFEMODEL (``VGG_ILSVRC_16_layers.caffemodel``) are set.
Hours on CPU; use FCN_REF_DEVICE=cuda where there is a GPU.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fcn_ref.train.recipes import run_recipe
from voc.datasets import VOCSegmentation
from voc.metrics import fast_hist, scores

SBD_ROOT, VOC_ROOT, VGG16 = (os.environ.get(k) for k in ("SBD_ROOT", "VOC_ROOT", "VGG16_CAFFEMODEL"))

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (SBD_ROOT and VOC_ROOT and VGG16),
                       reason="set SBD_ROOT (SBD dataset folder), VOC_ROOT (VOCdevkit/VOC2012) and "
                              "VGG16_CAFFEMODEL (VGG_ILSVRC_16_layers.caffemodel) to run the FCN-32s recipe"),
]


def constant_prediction_mean_iu(voc_root: str, split: str = "seg11valid") -> float:
    """Mean IU of predicting the split's most frequent class everywhere (about 0.035 on seg11valid)."""
    dataset = VOCSegmentation(voc_root, split)
    labels = [dataset.load_label(i) for i in dataset.ids]
    n = dataset.num_classes
    counts = sum(np.bincount(label[label < n].ravel(), minlength=n) for label in labels)
    majority = int(np.argmax(counts))
    hist = sum(fast_hist(label, np.full_like(label, majority), n) for label in labels)
    return float(scores(hist).mean_iu)


def test_fcn32s_recipe_learns_on_sbd(tmp_path):
    run_recipe("voc-fcn32s", vgg16=VGG16, sbd_root=SBD_ROOT, voc_root=VOC_ROOT, out=tmp_path, iters=500,
               test_interval=500, device=os.environ.get("FCN_REF_DEVICE"), progress=False)
    log = [json.loads(line) for line in (tmp_path / "fcn32s_log.jsonl").read_text().splitlines()]
    losses = np.array([e["loss"] for e in log if "loss" in e])
    assert len(losses) == 500 and np.isfinite(losses).all()
    assert losses[-50:].mean() < losses[:50].mean()
    final = [e for e in log if "scores" in e][-1]
    assert final["iteration"] == 500
    assert final["scores"]["mean_iu"] > constant_prediction_mean_iu(VOC_ROOT), final

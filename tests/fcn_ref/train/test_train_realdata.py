"""The FCN-32s recipe on the real data: 500 iterations from VGG16, the loss falls and seg11valid
mean IU rises above chance.

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

SBD_ROOT, VOC_ROOT, VGG16 = (os.environ.get(k) for k in ("SBD_ROOT", "VOC_ROOT", "VGG16_CAFFEMODEL"))
CHANCE_MEAN_IU = 1 / 21 * 0.75  # all background: IU of background about 0.75, others 0

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (SBD_ROOT and VOC_ROOT and VGG16),
                       reason="set SBD_ROOT (SBD dataset folder), VOC_ROOT (VOCdevkit/VOC2012) and "
                              "VGG16_CAFFEMODEL (VGG_ILSVRC_16_layers.caffemodel) to run the FCN-32s recipe"),
]


def test_fcn32s_recipe_learns_on_sbd(tmp_path):
    run_recipe("voc-fcn32s", vgg16=VGG16, sbd_root=SBD_ROOT, voc_root=VOC_ROOT, out=tmp_path, iters=500,
               test_interval=500, device=os.environ.get("FCN_REF_DEVICE"), progress=False)
    log = [json.loads(line) for line in (tmp_path / "fcn32s_log.jsonl").read_text().splitlines()]
    losses = np.array([e["loss"] for e in log if "loss" in e])
    assert len(losses) == 500 and np.isfinite(losses).all()
    assert losses[-50:].mean() < losses[:50].mean()
    scores = [e["scores"] for e in log if "scores" in e][-1]
    assert scores["mean_iu"] > CHANCE_MEAN_IU

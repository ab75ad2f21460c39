"""``python -m fcn_ref.train recipe``: staged FCN-32s -> FCN-16s on synthetic SBD/VOC folders with a
reduced-width net (no VGG16 here), scored at test points with the four metrics, snapshots that load."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fcn_ref
from fcn_ref.surgery import stage
from fcn_ref.train.recipes import STAGES, first_model, solver_param
from fcn_ref.train.zoo import WithLoss, param_specs
from voc.synthetic import make_sbd_folder, make_voc_folder


def test_reference_hyperparameters():
    heavy = STAGES["voc-fcn8s"]
    assert [(s.arch, s.base_lr, s.momentum, s.iter_size) for s in heavy] == [
        ("fcn32s", 1e-10, 0.99, 1), ("fcn16s", 1e-12, 0.99, 1), ("fcn8s", 1e-14, 0.99, 1)]
    p = solver_param(heavy[0], 100000, 4000)
    assert (p.lr_policy, p.max_iter, p.test_interval) == ("fixed", 100000, 4000)
    assert (p.base_lr, p.weight_decay, p.momentum) == tuple(float(np.float32(v)) for v in (1e-10, 0.0005, 0.99))
    cvpr = STAGES["voc-cvpr-fcn8s"][0]
    assert (cvpr.base_lr, cvpr.momentum, cvpr.iter_size, cvpr.normalization) == (1e-4, 0.9, 20, "VALID")


def test_staged_recipe_from_the_command_line(tmp_path):
    make_sbd_folder(tmp_path / "sbd", {"train": ["s1", "s2", "s3"]}, size=(36, 28), seed=1)
    make_voc_folder(tmp_path / "voc", num_images=2, split="val", sizes=((36, 28),), seed=2)
    run = subprocess.run([sys.executable, "-m", "fcn_ref.train", "recipe", "voc-fcn16s", "--sbd-root",
                          str(tmp_path / "sbd"), "--voc-root", str(tmp_path / "voc"), "--test-split", "val",
                          "--widths", "4,4,4,4,4,8,8", "--iters", "4", "--test-interval", "2", "--base-lr", "1e-6",
                          "--out", str(tmp_path / "out"), "--no-progress"],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    for arch, cls in (("fcn32s", fcn_ref.FCN32s), ("fcn16s", fcn_ref.FCN16s)):
        log = [json.loads(line) for line in (out / f"{arch}_log.jsonl").read_text().splitlines()]
        assert len([e for e in log if "loss" in e]) == 4
        scored = [e for e in log if "scores" in e]
        assert [e["iteration"] for e in scored] == [2, 4]
        assert set(scored[-1]["scores"]) == {"pixel_acc", "mean_acc", "mean_iu", "fw_iu"}
        assert all(0 <= v <= 1 for v in scored[-1]["scores"].values())
        model = fcn_ref.load(out / f"{arch}_iter_4.pth")
        assert type(model) is cls
    first, second = fcn_ref.load(out / "fcn32s_iter_4.pth"), fcn_ref.load(out / "fcn16s_iter_2.pth")
    # FCN-16s starts from FCN-32s's final weights (2 small steps later they are still close; a fresh
    # initialization would be far off).
    theirs, ours = first.state_dict(), second.state_dict()
    shared = [k for k in theirs if k in ours and theirs[k].shape == ours[k].shape and "score" not in k
              and theirs[k].abs().max() > 0]  # the trunk (the scores start at zero and grow)
    assert len(shared) >= 10
    for k in shared:
        assert float((theirs[k] - ours[k]).abs().max()) <= 0.05 * float(theirs[k].abs().max()), k


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_recipe_stages_and_has_a_loss(name):
    """Each stage builds (small widths) from the one before, as the recipe stages it, and its
    loss is the kind the recipe says (the heavy nets' sum over pixels; the CVPR-era mean)."""
    model = None
    for s in STAGES[name]:
        model = first_model(s.arch, None, (4, 4, 4, 4, 4, 8, 8)) if model is None else stage(model, s.arch)
        assert model.arch_name == s.arch
        net = WithLoss(model, normalization=s.normalization)
        label = torch.zeros(1, 1, 40, 40)
        loss = float(net(torch.randn(1, 3, 40, 40), label)["loss"].detach())
        # scores start at zero (the new score layers): every class has probability 1/21; Caffe adds
        # the 1600 terms one by one in float32 (1.5e-5 below 1600 * log(21))
        per_pixel = -np.log(np.float32(1) / np.float32(21))
        total = np.float32(0)
        for _ in range(40 * 40):
            total = np.float32(total + per_pixel)
        expected = total / np.float32(40 * 40) if s.normalization == "VALID" else total
        assert loss == pytest.approx(float(expected), rel=1e-6)
        assert set(param_specs(model, "model.")) == {f"model.{k}" for k, _ in model.named_parameters()}

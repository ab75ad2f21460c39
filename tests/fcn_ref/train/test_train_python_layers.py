"""The reference repo's Python data layers on synthetic VOC/SBD folders, and loss sampling.

Expected values are computed here the way the reference layers do (PIL + numpy, Python's global
``random`` seeded as the reference seeds it, scipy's loadmat for SBD), not by fcn_ref."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from convert.errors import CaffeFormatError
from fcn_ref.train.cli import main
from fcn_ref.train.data import source_for_layer
from fcn_ref.train.loss_sampling import LossSampling
from train_helpers import inside, python_layer
from voc.synthetic import make_sbd_folder, make_voc_folder

MEAN = (104.00699, 116.66877, 122.67892)


def reference_image(path) -> np.ndarray:
    in_ = np.array(Image.open(path), dtype=np.float32)[:, :, ::-1]
    in_ -= np.array(MEAN)
    return in_.transpose((2, 0, 1))


def reference_order(n: int, seed: int, count: int) -> list[int]:
    random.seed(seed)  # the reference layer's setup, then one draw after each forward
    order = [random.randint(0, n - 1)]
    for _ in range(count - 1):
        order.append(random.randint(0, n - 1))
    return order


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOC"
    ids = make_voc_folder(root, num_images=5, split="train", sizes=((20, 14), (18, 22)), seed=4)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(f"{i}\n" for i in ids[:3]))
    return root, ids


def test_voc_layer_randomized_train_split_reads_the_reference_order(voc):
    root, ids = voc
    source = source_for_layer(python_layer("voc_layers", "VOCSegDataLayer",
                                           {"voc_dir": str(root), "split": "train", "mean": MEAN, "seed": 1337}))
    order = reference_order(len(ids), 1337, 8)
    assert len(set(order)) > 2
    for index in order:
        batch = source.next_batch()
        image_id = ids[index]
        assert np.array_equal(batch["data"][0].numpy(), reference_image(root / "JPEGImages" / f"{image_id}.jpg"))
        label = np.array(Image.open(root / "SegmentationClass" / f"{image_id}.png"), dtype=np.uint8)
        assert np.array_equal(batch["label"][0, 0].numpy(), label.astype(np.float32))
        assert batch["data"].shape[0] == 1 and batch["label"].shape == (1, 1, *label.shape)


def test_voc_layer_other_splits_run_in_order_and_wrap(voc):
    root, ids = voc
    source = source_for_layer(python_layer("voc_layers", "VOCSegDataLayer",
                                           {"voc_dir": str(root), "split": "val", "mean": MEAN, "seed": 1337}))
    seen = [source.next_batch()["data"] for _ in range(4)]
    expected = [reference_image(root / "JPEGImages" / f"{ids[i]}.jpg") for i in (0, 1, 2, 0)]
    assert all(np.array_equal(a[0].numpy(), b) for a, b in zip(seen, expected))


def test_state_continues_the_same_stream(voc):
    root, _ = voc
    layer = python_layer("voc_layers", "VOCSegDataLayer", {"voc_dir": str(root), "split": "train", "mean": MEAN,
                                                          "seed": 5})
    straight, resumed = source_for_layer(layer), source_for_layer(layer)
    for _ in range(3):
        straight.next_batch()
    state = straight.state_dict()
    resumed.load_state_dict(state)
    for _ in range(4):
        assert torch.equal(straight.next_batch()["data"], resumed.next_batch()["data"])


def test_sbdd_layer_reads_cls_mats_as_the_reference(tmp_path):
    labels = make_sbd_folder(tmp_path / "sbdd", {"train": ["a", "b", "c"]}, size=(17, 13), seed=2)
    source = source_for_layer(python_layer("voc_layers", "SBDDSegDataLayer",
                                           {"sbdd_dir": str(tmp_path / "sbdd"), "split": "train", "mean": MEAN,
                                            "seed": 1337}))
    for index in reference_order(3, 1337, 5):
        image_id = "abc"[index]
        batch = source.next_batch()
        mat = scipy.io.loadmat(str(tmp_path / "sbdd" / "cls" / f"{image_id}.mat"))
        label = mat["GTcls"][0]["Segmentation"][0].astype(np.uint8)
        assert np.array_equal(label, labels[image_id])
        assert np.array_equal(batch["label"][0, 0].numpy(), label.astype(np.float32))
        assert np.array_equal(batch["data"][0].numpy(), reference_image(tmp_path / "sbdd" / "img" / f"{image_id}.jpg"))


@pytest.mark.parametrize("module, cls, params, message", [
    ("voc_layers", "NoSuchLayer", {}, "voc_layers.NoSuchLayer has no data source"),
    ("voc_layers", "VOCSegDataLayer", {"split": "train"}, "param_str lacks 'voc_dir'"),
])
def test_bad_python_layers_are_one_line_errors(module, cls, params, message):
    with pytest.raises(CaffeFormatError, match=message):
        source_for_layer(python_layer(module, cls, params))


TRAIN = """
layer { name: "data" type: "Python" top: "data" top: "label"
        python_param { module: "voc_layers" layer: "VOCSegDataLayer"
                       param_str: "{'voc_dir': 'VOC', 'split': 'train', 'mean': (104.00699, 116.66877, 122.67892), 'seed': 1337}" } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 21 kernel_size: 1 weight_filler { type: "gaussian" std: 0.001 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""
SOLVER = 'train_net: "train.prototxt"\nbase_lr: 1e-9\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 3\n' \
         'snapshot_prefix: "snap"\nrandom_seed: 1\n'


def test_a_reference_style_train_net_trains_with_and_without_loss_sampling(voc):
    root, _ = voc
    (root.parent / "train.prototxt").write_text(TRAIN)
    (root.parent / "solver.prototxt").write_text(SOLVER)
    losses = {}
    for keep in (1.0, 0.25):
        with inside(root.parent):
            assert main(["solver.prototxt", "--no-progress", "--loss-sampling", str(keep),
                         "--log", f"log{keep}.jsonl"]) == 0
        losses[keep] = [e["loss"] for e in map(json.loads, (root.parent / f"log{keep}.jsonl").read_text().splitlines())
                        if "loss" in e]
    assert len(losses[1.0]) == 3 and all(np.isfinite(losses[1.0]))
    # An unnormalized loss over about a quarter of the cells.
    ratios = np.array(losses[0.25]) / np.array(losses[1.0])
    assert np.all((ratios > 0.1) & (ratios < 0.45)), ratios


def _stub(label: torch.Tensor):
    class Stub:
        tops = ("data", "label")

        def next_batch(self):
            return {"data": torch.zeros(1), "label": label.clone()}

        def peek_shapes(self):
            return {}

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    return Stub()


def test_loss_sampling_drops_cells_with_probability_one_minus_keep():
    label = torch.randint(0, 21, (1, 1, 200, 300)).float()
    sampled = LossSampling(_stub(label), 0.3, seed=0).next_batch()["label"]
    dropped = sampled == 255
    assert abs(dropped.float().mean().item() - 0.7) < 0.01
    assert torch.equal(sampled[~dropped], label[~dropped])
    again = LossSampling(_stub(label), 0.3, seed=0).next_batch()["label"]
    assert torch.equal(again, sampled)
    assert torch.equal(LossSampling(_stub(label), 1.0, seed=0).next_batch()["label"], label)


def test_loss_sampling_cells_are_blocks():
    label = torch.zeros(1, 1, 70, 45)
    dropped = (LossSampling(_stub(label), 0.5, cell=32, seed=3).next_batch()["label"] == 255)[0, 0].numpy()
    blocks = [dropped[r:r + 32, c:c + 32] for r in range(0, 70, 32) for c in range(0, 45, 32)]
    assert all(b.all() or not b.any() for b in blocks)
    assert 0 < sum(b.all() for b in blocks) < len(blocks)

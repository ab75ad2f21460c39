"""The reference repo's SIFT Flow, NYUDv2 and PASCAL-Context data layers on synthetic folders in their
file layouts (written by voc.synthetic), and a 2-iteration train run through each.

Expected arrays are computed here step by step as the reference layers' ``load_*`` methods do
(PIL, numpy, scipy.io straight from the files; their means typed from the reference files), and the
image order with Python's global ``random`` seeded as their ``setup`` seeds it; never by fcn_ref."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import convert
from convert.errors import CaffeFormatError
from fcn_ref.train.cli import main
from fcn_ref.train.data import ShardedSource, source_for_layer
from train_helpers import inside, python_layer
from voc.other_datasets import SIFTFlowSegmentation
from voc.synthetic import make_context_folder, make_nyud_folder, make_siftflow_folder

SUB = "spatial_envelope_256x256_static_8outdoorcategories"
SIFTFLOW_MEAN = np.array((114.578, 115.294, 108.353), dtype=np.float32)  # siftflow_layers.py
NYUD_MEAN_BGR = np.array((116.190, 97.203, 92.318), dtype=np.float32)  # nyud_layers.py
NYUD_MEAN_HHA = np.array((132.431, 94.076, 118.477), dtype=np.float32)
NYUD_MEAN_LOGD = np.array((7.844,), dtype=np.float32)
CONTEXT_MEAN = np.array((104.007, 116.669, 122.679), dtype=np.float32)  # pascalcontext_layers.py


def reference_indices(n: int, seed: int, count: int, randomize: bool) -> list[int]:
    """The reference's ``idx`` at each forward: seeded draws, or list order with wrap-around."""
    if not randomize:
        return [k % n for k in range(count)]
    random.seed(seed)  # setup: seed, then the first pick; forward: one more pick each time
    return [random.randint(0, n - 1) for _ in range(count)]


def reference_image(path, mean: np.ndarray) -> np.ndarray:
    in_ = np.array(Image.open(path), dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= mean
    return in_.transpose((2, 0, 1))


def reference_siftflow(root, idx: str) -> dict[str, np.ndarray]:
    out = {"data": reference_image(root / "Images" / SUB / f"{idx}.jpg", SIFTFLOW_MEAN)}
    for top, kind in (("sem", "SemanticLabels"), ("geo", "GeoLabels")):
        label = scipy.io.loadmat(str(root / kind / SUB / f"{idx}.mat"))["S"]
        if top == "geo":
            label[label == -1] = 0
        label = label.astype(np.uint8)
        label -= 1
        out[top] = label[np.newaxis, ...]
    return out


def reference_nyud(root, idx: str) -> dict[str, np.ndarray]:
    label = scipy.io.loadmat(str(root / "segmentation" / f"img_{idx}.mat"))["segmentation"].astype(np.uint8)
    label -= 1
    d = np.array(Image.open(root / "data" / "depth" / f"img_{idx}.png"), dtype=np.float32)
    d = np.log(d)
    d -= NYUD_MEAN_LOGD
    hha = np.array(Image.open(root / "data" / "hha" / f"img_{idx}.png"), dtype=np.float32)
    hha -= NYUD_MEAN_HHA
    return {"color": reference_image(root / "data" / "images" / f"img_{idx}.png", NYUD_MEAN_BGR),
            "depth": d[np.newaxis, ...], "hha": hha.transpose((2, 0, 1)), "label": label[np.newaxis, ...]}


def _names(path) -> list[str]:
    """``n: name`` lines -> names without spaces (the reference's genfromtxt + replace)."""
    return [line.split(":")[1].replace(" ", "") for line in path.read_text().splitlines() if line.strip()]


def reference_context(voc_dir, context_dir, idx: str) -> dict[str, np.ndarray]:
    labels_400, labels_59 = _names(context_dir / "labels.txt"), _names(context_dir / "59_labels.txt")
    for main_label, task_label in zip(("table", "bedclothes", "cloth"), ("diningtable", "bedcloth", "clothes")):
        labels_59[labels_59.index(task_label)] = main_label
    label_400 = scipy.io.loadmat(str(context_dir / "trainval" / f"{idx}.mat"))["LabelMap"]
    label = np.zeros_like(label_400, dtype=np.uint8)
    for i, name in enumerate(labels_59):
        label[label_400 == labels_400.index(name) + 1] = i + 1
    return {"data": reference_image(voc_dir / "VOC2010" / "JPEGImages" / f"{idx}.jpg", CONTEXT_MEAN),
            "label": label[np.newaxis, ...]}


def assert_batch(batch: dict[str, torch.Tensor], expected: dict[str, np.ndarray], tops: dict[str, str]) -> None:
    """``tops`` maps our top name -> the reference's array name (tops are matched by position)."""
    assert list(batch) == list(tops)
    for ours, theirs in tops.items():
        want = expected[theirs]
        assert batch[ours].dtype == torch.float32 and tuple(batch[ours].shape) == (1, *want.shape), ours
        assert np.array_equal(batch[ours][0].numpy(), want.astype(np.float32)), ours


SIFTFLOW_IDS = ["coast_a1", "forest_b2", "street_c3", "tallbuilding_d4", "highway_e5"]


@pytest.fixture
def siftflow(tmp_path):
    root = tmp_path / "sift-flow"
    make_siftflow_folder(root, {"trainval": SIFTFLOW_IDS, "test": SIFTFLOW_IDS[:3]}, seed=5)
    return root


@pytest.mark.parametrize("split, params, randomize", [
    ("trainval", {"seed": 1337}, True),
    ("trainval", {"seed": 1337, "randomize": False}, False),
    ("test", {"seed": 1337}, False),  # a split without "train" is read in order, randomize or not
])
def test_siftflow_layer_yields_the_reference_tops(siftflow, split, params, randomize):
    tops = {"data": "data", "sem": "sem", "geo": "geo"}
    source = source_for_layer(python_layer("siftflow_layers", "SIFTFlowSegDataLayer",
                                           {"siftflow_dir": str(siftflow), "split": split, **params}, tuple(tops)))
    ids = (siftflow / f"{split}.txt").read_text().splitlines()
    order = reference_indices(len(ids), 1337, 9, randomize)
    assert len(set(order)) >= 3
    for index in order:
        assert_batch(source.next_batch(), reference_siftflow(siftflow, ids[index]), tops)


def test_siftflow_labels_cover_void_and_both_label_kinds(siftflow):
    """The synthetic files hold what the reference's label shift acts on (else the test proves little)."""
    sem = scipy.io.loadmat(str(siftflow / "SemanticLabels" / SUB / "coast_a1.mat"))["S"]
    geo = scipy.io.loadmat(str(siftflow / "GeoLabels" / SUB / "coast_a1.mat"))["S"]
    assert sem.dtype == geo.dtype == np.float64 and (sem == 0).any() and sem.max() > 1
    assert {-1, 0, 1, 2, 3} <= set(np.unique(geo).astype(int))
    batch = source_for_layer(python_layer("siftflow_layers", "SIFTFlowSegDataLayer",
                                          {"siftflow_dir": str(siftflow), "split": "test"},
                                          ("data", "sem", "geo"))).next_batch()
    assert set(np.unique(batch["geo"].numpy())) == {0, 1, 2, 255}
    sem = batch["sem"].numpy()
    assert (sem == 255).any() and len(np.unique(sem[sem < 255])) >= 2


NYUD_IDS = ["5001", "5003", "5007", "5010", "5019", "5024"]


@pytest.fixture
def nyud(tmp_path):
    root = tmp_path / "nyud"
    make_nyud_folder(root, {"trainval": NYUD_IDS, "test": NYUD_IDS[4:]}, seed=6)
    return root


@pytest.mark.parametrize("param_tops", [
    ["color", "depth", "label"],  # nyud-fcn32s-color-d
    ["color", "hha", "label"],  # nyud-fcn32s-color-hha
    ["label", "hha", "depth", "color"],  # any order: top i is tops[i]
])
def test_nyud_layer_yields_the_listed_tops_in_order(nyud, param_tops):
    names = [f"blob{i}" for i in range(len(param_tops))]  # the layer's top names do not matter
    source = source_for_layer(python_layer("nyud_layers", "NYUDSegDataLayer",
                                           {"nyud_dir": str(nyud), "split": "trainval", "tops": param_tops,
                                            "seed": 1337}, tuple(names)))
    for index in reference_indices(len(NYUD_IDS), 1337, 8, True):
        assert_batch(source.next_batch(), reference_nyud(nyud, NYUD_IDS[index]), dict(zip(names, param_tops)))


def test_nyud_test_split_runs_in_order(nyud):
    source = source_for_layer(python_layer("nyud_layers", "NYUDSegDataLayer",
                                           {"nyud_dir": str(nyud), "split": "test", "tops": ["color", "label"]},
                                           ("color", "label")))
    for index in reference_indices(2, 0, 3, False):
        assert_batch(source.next_batch(), reference_nyud(nyud, NYUD_IDS[4 + index]), {"color": "color",
                                                                                     "label": "label"})


CONTEXT_IDS = ["2008_000002", "2008_000003", "2008_000007", "2008_000009", "2008_000016"]


@pytest.fixture
def context(tmp_path):
    voc_dir, context_dir = tmp_path / "pascal", tmp_path / "pascal-context"
    make_context_folder(voc_dir, context_dir, {"train": CONTEXT_IDS, "val": CONTEXT_IDS[:2]}, seed=7)
    return voc_dir, context_dir


@pytest.mark.parametrize("split, randomize", [("train", True), ("val", False)])
def test_context_layer_reads_voc2010_and_maps_labels_to_the_59_task(context, split, randomize):
    voc_dir, context_dir = context
    # A "mean" in param_str is ignored, as by the reference (it subtracts its own).
    source = source_for_layer(python_layer("pascalcontext_layers", "PASCALContextSegDataLayer",
                                           {"voc_dir": str(voc_dir), "context_dir": str(context_dir),
                                            "split": split, "seed": 1337, "mean": (1.0, 2.0, 3.0)}))
    ids = (voc_dir / "VOC2010" / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
    seen: set[int] = set()
    for index in reference_indices(len(ids), 1337, 8, randomize):
        expected = reference_context(voc_dir, context_dir, ids[index])
        seen |= set(np.unique(expected["label"]).tolist())
        assert_batch(source.next_batch(), expected, {"data": "data", "label": "label"})
    if split == "train":  # other (0), plain task classes and renamed ones ("diningtable" is task class 5)
        assert {0, 5} <= seen and len(seen) >= 4, seen


def test_context_values_outside_the_task_are_other_as_in_the_reference(context):
    voc_dir, context_dir = context
    full = np.array([[0, 2, 9, 11], [300, 4, 8, 65535]], dtype=np.uint16)  # 11+ : not in labels.txt
    scipy.io.savemat(str(context_dir / "trainval" / f"{CONTEXT_IDS[0]}.mat"), {"LabelMap": full})
    Image.new("RGB", (4, 2)).save(voc_dir / "VOC2010" / "JPEGImages" / f"{CONTEXT_IDS[0]}.jpg")
    source = source_for_layer(python_layer("pascalcontext_layers", "PASCALContextSegDataLayer",
                                           {"voc_dir": str(voc_dir), "context_dir": str(context_dir),
                                            "split": "val"}))
    expected = reference_context(voc_dir, context_dir, CONTEXT_IDS[0])
    assert expected["label"][0].tolist() == [[0, 1, 5, 0], [0, 2, 6, 0]]
    assert_batch(source.next_batch(), expected, {"data": "data", "label": "label"})


@pytest.mark.parametrize("module, cls, params, tops, message", [
    ("siftflow_layers", "SIFTFlowSegDataLayer", {"split": "test"}, ("data", "sem", "geo"),
     "param_str lacks 'siftflow_dir'"),
    ("siftflow_layers", "SIFTFlowSegDataLayer", {"split": "test", "siftflow_dir": "{siftflow}"}, ("data", "sem"),
     "has 2 tops; the layer writes 3"),
    ("nyud_layers", "NYUDSegDataLayer", {"split": "test", "nyud_dir": "{nyud}", "tops": ["color", "rgb"]},
     ("a", "b"), "unknown NYUD top 'rgb'"),
    ("nyud_layers", "NYUDSegDataLayer", {"split": "test", "nyud_dir": "{nyud}", "tops": ["color", "label"]},
     ("a", "b", "c"), "has 3 tops; the layer writes 2"),
    ("pascalcontext_layers", "PASCALContextSegDataLayer", {"split": "val", "voc_dir": "{voc}"}, ("data", "label"),
     "param_str lacks 'context_dir'"),
    ("pascalcontext_layers", "PASCALContextSegDataLayer",
     {"split": "val", "voc_dir": "{voc}/VOC2010", "context_dir": "{context}"}, ("data", "label"),
     "VOC2010/VOC2010/ImageSets/Main/val.txt"),
])
def test_bad_layers_are_one_line_errors(siftflow, nyud, context, module, cls, params, tops, message):
    folders = {"siftflow": siftflow, "nyud": nyud, "voc": context[0], "context": context[1]}
    params = {k: v.format(**folders) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(CaffeFormatError, match=message.replace(".", r"\.")) as error:
        source_for_layer(python_layer(module, cls, params, tops))
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- 2 iterations through the CLI

def _conv(name: str, bottom: str, outputs: int) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {outputs} kernel_size: 3 pad: 1 '
            f'weight_filler {{ type: "gaussian" std: 0.01 }} }} }}\n')


def _loss(name: str, score: str, label: str) -> str:
    return (f'layer {{ name: "{name}" type: "SoftmaxWithLoss" bottom: "{score}" bottom: "{label}" top: "{name}" '
            f'loss_param {{ ignore_label: 255 normalize: false }} }}\n')


def _python(tops: tuple[str, ...], module: str, cls: str, params: str) -> str:
    top_lines = " ".join(f'top: "{t}"' for t in tops)
    return (f'layer {{ name: "data" type: "Python" {top_lines} python_param {{ module: "{module}" '
            f'layer: "{cls}" param_str: "{params}" }} }}\n')


TRAIN_NETS = {  # the reference nets' data layers (param_str as net.py writes it), a tiny body each
    "siftflow": _python(("data", "sem", "geo"), "siftflow_layers", "SIFTFlowSegDataLayer",
                        "{'siftflow_dir': 'sift-flow', 'seed': 1337, 'split': 'trainval'}")
    + _conv("score_sem", "data", 33) + _conv("score_geo", "data", 3)
    + _loss("loss_sem", "score_sem", "sem") + _loss("loss_geo", "score_geo", "geo"),
    "nyud": _python(("color", "depth", "label"), "nyud_layers", "NYUDSegDataLayer",
                    "{'tops': ['color', 'depth', 'label'], 'seed': 1337, 'nyud_dir': 'nyud', 'split': 'trainval'}")
    + 'layer { name: "data" type: "Concat" bottom: "color" bottom: "depth" top: "data" }\n'
    + _conv("score", "data", 40) + _loss("loss", "score", "label"),
    "context": _python(("data", "label"), "pascalcontext_layers", "PASCALContextSegDataLayer",
                       "{'context_dir': 'pascal-context', 'seed': 1337, 'split': 'train', 'voc_dir': 'pascal'}")
    + _conv("score", "data", 60) + _loss("loss", "score", "label"),
}
SOLVER = ('train_net: "train.prototxt"\nbase_lr: 1e-6\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 2\n'
          'snapshot_prefix: "snap"\nrandom_seed: 1\n')


@pytest.mark.parametrize("dataset", sorted(TRAIN_NETS))
def test_a_train_net_with_the_layer_trains_two_iterations(tmp_path, dataset):
    """Through the CLI; afterwards the layer stands where the reference's would: at its 3rd pick."""
    if dataset == "siftflow":
        make_siftflow_folder(tmp_path / "sift-flow", {"trainval": SIFTFLOW_IDS}, seed=1)
    elif dataset == "nyud":
        make_nyud_folder(tmp_path / "nyud", {"trainval": NYUD_IDS}, seed=1)
    else:
        make_context_folder(tmp_path / "pascal", tmp_path / "pascal-context", {"train": CONTEXT_IDS}, seed=1)
    count = len(SIFTFLOW_IDS if dataset == "siftflow" else NYUD_IDS if dataset == "nyud" else CONTEXT_IDS)
    (tmp_path / "train.prototxt").write_text(TRAIN_NETS[dataset])
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    with inside(tmp_path):
        assert main(["solver.prototxt", "--no-progress"]) == 0
    losses = [e["loss"] for e in map(json.loads, (tmp_path / "snap_log.jsonl").read_text().splitlines())
              if "loss" in e]
    assert len(losses) == 2 and all(np.isfinite(losses)) and min(losses) > 0
    state = torch.load(tmp_path / "snap_iter_2.solverstate", weights_only=True)
    assert state["data"]["sources"][0]["index"] == reference_indices(count, 1337, 3, True)[2]
    net = convert.load(tmp_path / "snap_iter_2.pth")
    assert any(k.startswith("score") for k in net.state_dict())


def test_ranks_share_the_reference_order_and_read_only_their_own_images(siftflow, monkeypatch):
    """Under DDP rank r of w takes picks r, r + w, ... of the reference's order, and passes the others
    without reading their files."""
    layer = python_layer("siftflow_layers", "SIFTFlowSegDataLayer",
                         {"siftflow_dir": str(siftflow), "split": "trainval", "seed": 7}, ("data", "sem", "geo"))
    order = reference_indices(len(SIFTFLOW_IDS), 7, 12, True)
    reads: list[str] = []
    original = SIFTFlowSegmentation.load_image
    monkeypatch.setattr(SIFTFlowSegmentation, "load_image", lambda self, i: reads.append(i) or original(self, i))
    tops = {"data": "data", "sem": "sem", "geo": "geo"}
    for rank in (0, 1, 2):
        reads.clear()
        source = ShardedSource(source_for_layer(layer), rank, 3)
        for index in order[rank::3]:
            assert_batch(source.next_batch(), reference_siftflow(siftflow, SIFTFLOW_IDS[index]), tops)
        assert reads == [SIFTFLOW_IDS[i] for i in order[rank::3]]


def test_a_rank_resumes_its_shard_from_a_saved_solver_state(nyud, tmp_path):
    """Rank 1 of 2 over a randomized layer: its state through torch.save and a weights-only load
    (as ``--resume`` reads it), into a freshly built source, continues the rank's own picks."""
    layer = python_layer("nyud_layers", "NYUDSegDataLayer", {"nyud_dir": str(nyud), "split": "trainval",
                                                             "tops": ["color", "label"], "seed": 11})
    straight = ShardedSource(source_for_layer(layer), 1, 2)
    straight.peek_shapes()
    for _ in range(3):
        straight.next_batch()
    torch.save({"data": straight.state_dict()}, tmp_path / "state")
    resumed = ShardedSource(source_for_layer(layer), 1, 2)
    resumed.peek_shapes()  # as build_net does before --resume
    resumed.load_state_dict(torch.load(tmp_path / "state", weights_only=True)["data"])
    picks = reference_indices(len(NYUD_IDS), 11, 12, True)[1::2][3:]
    for index in picks:
        batch = resumed.next_batch()
        assert torch.equal(batch["data"], straight.next_batch()["data"])
        assert_batch(batch, reference_nyud(nyud, NYUD_IDS[index]), {"data": "color", "label": "label"})

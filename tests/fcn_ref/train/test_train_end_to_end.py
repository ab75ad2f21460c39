"""End to end against real Caffe: FCN-32s -> 16s -> 8s staged on the synthetic VOC-format set.

The oracle is tests/fixtures/train/staged-synthetic (tools/make_staged_fixture.py: a pretrained
trunk standing in for VGG16's ImageNet weights, then three real ``caffe.SGDSolver`` runs of
150/100/100 iterations with the heavy recipe: unnormalized loss, momentum 0.99, fixed lr falling
from stage to stage; 128x128 images, reduced widths; Caffe's val predictions and scores after each
stage). Here the same solver files run through ``python -m fcn_ref.train SOLVER --weights W`` (in
process, one thread), as a user would: FCN-32s from the fixture's initial weights, each later
stage from OUR previous stage's final snapshot copied by layer name, as Caffe's ``copy_from`` did
for the fixture, with the fixed upsampling set to surgery.interp's diagonal bilinear kernels and
the new skip score left zero (Caffe's default filler). Our snapshots predict the val images at
their native size through ``fcn_ref.evaluate`` and are scored with ``voc.metrics``.

Issue 11's criteria (final mean IU within 0.5 points of Caffe's, >= 99% of the val pixels equal)
are asserted on every stage of our staged run (default tier: the whole run takes about 15 s on one
thread). Measured: FCN-32s / 16s / 8s mean IU 0.2664 / 0.5034 / 0.5633 against Caffe's 0.2663 /
0.5032 / 0.5629 (0.0005 / 0.020 / 0.036 points), 99.998% / 99.82% / 99.57% of the pixels equal.
The criteria are fair only because this run is not chaotic: Caffe itself, rerun with one initial
blob one ulp higher, ends 0.0004 / 0.016 / 0.00001 points and 99.997% / 99.97% / 99.91% of the
pixels equal (staged.json ``caffe_self_sensitivity``; oracle test below); we differ from Caffe in
every operation's rounding, not one blob's, so we drift further, but not chaotically. The previous
fixture, trained from a He-initialized trunk at 64x64, was chaotic (the same nudge moved Caffe's
own final mean IU 5.9 points and 37% of its pixels), so no float32 trainer could meet the criteria
on it.
Every stage also follows Caffe's losses from Caffe's own init for its first iterations: the float32
rounding of two implementations is all that separates them there.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import convert
from conftest import FIXTURES, ROOT
from fcn_ref.evaluate import evaluate
from fcn_ref.train.caffe_net import read_layer_blobs
from fcn_ref.train.cli import main as train_main
from train_helpers import inside
from voc.datasets import VOCSegmentation
from voc.metrics import fast_hist, scores

CASE = FIXTURES / "train" / "staged-synthetic"
STAGES = ("fcn32s", "fcn16s", "fcn8s")
PARENT = {"fcn16s": "fcn32s", "fcn8s": "fcn16s"}
NEW_SKIP = {"fcn16s": "score_pool4", "fcn8s": "score_pool3"}
FIXED_UPSAMPLING = {"fcn16s": ("upscore2", "upscore16"), "fcn8s": ("upscore2", "upscore_pool4", "upscore8")}
REPLACED_UPSAMPLING = {"fcn16s": "upscore", "fcn8s": "upscore16"}  # the coarser net's final one
# Stage -> (iterations, rtol): how long each stage follows Caffe's losses from Caffe's own init
# in the default tier, at the step-equality tests' 1e-5 (measured: FCN-32s bit for bit, FCN-16s
# 2.5e-7, FCN-8s 4.2e-7 over these 10 iterations; the loss is Caffe's float32 one-pixel-at-a-time
# sum, convert.training_layers).
EARLY = {"fcn32s": (10, 1e-5), "fcn16s": (10, 1e-5), "fcn8s": (10, 1e-5)}
NUDGED_LAYER = "conv3_1"  # tools/caffe/staged_sensitivity.py's default
# The issue's end-to-end criteria.
MEAN_IU_POINTS, PIXEL_AGREEMENT = 0.005, 0.99


@dataclass
class StageRun:
    """One of our stages: per-iteration losses, val predictions by id, confusion matrix, mean IU."""

    losses: np.ndarray
    predictions: dict[str, np.ndarray]
    hist: np.ndarray
    mean_iu: float


def upsample_filt(size: int) -> np.ndarray:
    """The reference repo's surgery.upsample_filt, written out here (not the code under test)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def interp(shape: tuple[int, ...]) -> np.ndarray:
    """surgery.interp: the bilinear kernel on the (class, class) diagonal, zero elsewhere."""
    channels, outputs, height, width = shape
    assert channels == outputs and height == width, shape
    weight = np.zeros(shape, np.float32)
    weight[range(channels), range(outputs)] = upsample_filt(height)
    return weight


def write_caffe_hdf5(path: Path, blobs: dict[str, list[np.ndarray]]) -> None:
    """Caffe's HDF5 weights layout (``Net::ToHDF5``): ``data/<layer>/<i>``."""
    with h5py.File(path, "w") as f:
        for layer, arrays in blobs.items():
            for i, array in enumerate(arrays):
                f.create_dataset(f"data/{layer}/{i}", data=np.asarray(array, np.float32))


def staged_init(previous_snapshot: Path, stage: str, out: Path) -> Path:
    """What the reference's solve.py does between stages: our previous stage's weights by layer
    name, then the fixed upsampling set by surgery.interp; the new skip score is absent (zero).
    The fixed kernels must be Caffe's very numbers (the fixture's init holds them)."""
    blobs = read_layer_blobs(previous_snapshot)
    caffes = read_layer_blobs(CASE / stage / "init.caffemodel")
    for name in FIXED_UPSAMPLING[stage]:
        blobs[name] = [interp(caffes[name][0].shape)]
        np.testing.assert_array_equal(blobs[name][0], caffes[name][0], err_msg=name)
    assert NEW_SKIP[stage] not in blobs and not any(np.any(b) for b in caffes[NEW_SKIP[stage]])
    assert set(blobs) - {REPLACED_UPSAMPLING[stage]} == set(caffes) - {NEW_SKIP[stage]}
    write_caffe_hdf5(out, blobs)
    return out


def rebuild_train_data(folder: Path) -> Path:
    """tools/make_staged_fixture.py --data-only, checked against the sha256 Caffe's run recorded."""
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_staged_fixture.py"), "--data-only", str(folder)],
                   check=True, capture_output=True)
    expected = json.loads((CASE / "staged.json").read_text())["train_data"]["sha256"]
    with h5py.File(folder / "train.h5", "r") as f:
        for key, digest in expected.items():
            assert hashlib.sha256(f[key][...].tobytes()).hexdigest() == digest, (
                f"rebuilt train.h5 '{key}' differs from the data Caffe trained on")
    return folder / "train.h5"


def stage_folder(stage: str, out: Path, train_h5: Path, max_iter: int | None = None) -> Path:
    """The fixture's solver and net files, unchanged but for writing the final snapshot (Caffe's
    side saved it with ``net.save``) and, for short runs, ``max_iter``; train.h5 beside them."""
    out.mkdir(parents=True)
    for name in ("train.prototxt", "train.txt"):
        shutil.copy(CASE / stage / name, out / name)
    solver = (CASE / stage / "solver.prototxt").read_text()
    assert "snapshot_after_train: false" in solver
    solver = solver.replace("snapshot_after_train: false", "snapshot_after_train: true")
    if max_iter is not None:
        solver = solver.replace(f"max_iter: {iterations(stage)}", f"max_iter: {max_iter}")
    (out / "solver.prototxt").write_text(solver)
    (out / "train.h5").symlink_to(train_h5)
    return out


def iterations(stage: str) -> int:
    return json.loads((CASE / stage / "metrics.json").read_text())["iterations"]


def train(folder: Path, weights: Path) -> np.ndarray:
    """``python -m fcn_ref.train solver.prototxt --weights W`` in ``folder``; the logged losses."""
    with inside(folder):
        assert train_main(["solver.prototxt", "--weights", str(weights), "--no-progress"]) == 0
    log = [json.loads(line) for line in (folder / "solver_log.jsonl").read_text().splitlines()]
    return np.array([entry["loss"] for entry in log if "loss" in entry])


def predict_and_score(snapshot: Path, out: Path) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """Our snapshot over the fixture's val split at native sizes, through the evaluator."""
    num_classes = json.loads((CASE / "staged.json").read_text())["num_classes"]
    dataset = VOCSegmentation(CASE / "val", "val")
    result = evaluate(convert.load(snapshot, exact=True), dataset, num_classes, save_dir=out)
    predictions = {i: np.array(Image.open(out / f"{i}.png")) for i in dataset.ids}
    return predictions, result.hist, float(result.scores.mean_iu)


def caffe_predictions(stage: str) -> dict[str, np.ndarray]:
    with h5py.File(CASE / stage / "predictions.h5", "r") as f:
        return {str(i): f[str(i)][...] for i in f.attrs["ids"]}


def caffe_metrics(stage: str) -> dict:
    return json.loads((CASE / stage / "metrics.json").read_text())


def agreement(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> float:
    assert ours.keys() == theirs.keys()
    same = sum(int((ours[i] == theirs[i]).sum()) for i in theirs)
    return same / sum(theirs[i].size for i in theirs)


@pytest.fixture(scope="module")
def train_h5(tmp_path_factory) -> Path:
    return rebuild_train_data(tmp_path_factory.mktemp("staged-data"))


@pytest.fixture(scope="module")
def staged(tmp_path_factory, train_h5) -> dict[str, StageRun]:
    """Our staged run: FCN-32s from the fixture's init, then each stage from our previous one."""
    root = tmp_path_factory.mktemp("staged-run")
    runs: dict[str, StageRun] = {}
    for stage in STAGES:
        folder = stage_folder(stage, root / stage, train_h5)
        if stage in PARENT:
            previous = root / PARENT[stage] / f"solver_iter_{iterations(PARENT[stage])}.pth"
            weights = staged_init(previous, stage, folder / "staged_init.caffemodel.h5")
        else:
            weights = CASE / stage / "init.caffemodel"
        losses = train(folder, weights)
        snapshot = folder / f"solver_iter_{iterations(stage)}.pth"
        runs[stage] = StageRun(losses, *predict_and_score(snapshot, folder / "val-predictions"))
    return runs


def relative(ours: np.ndarray, caffes: np.ndarray) -> np.ndarray:
    return np.abs(ours - caffes) / np.abs(caffes)


def labels() -> dict[str, np.ndarray]:
    dataset = VOCSegmentation(CASE / "val", "val")
    return {i: dataset.load_label(i) for i in dataset.ids}


def test_val_images_decode_as_caffe_saw_them():
    """Guards the pixel comparison: a different JPEG decoder changes the inputs, not the trainer."""
    expected = json.loads((CASE / "staged.json").read_text())["val"]["input_rgb_sha256"]
    dataset = VOCSegmentation(CASE / "val", "val")
    assert dataset.ids == sorted(expected)
    for image_id in dataset.ids:
        rgb = np.array(dataset.load_image(image_id).convert("RGB"), dtype=np.uint8)
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == expected[image_id], image_id


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_follows_caffes_losses_from_caffes_init(tmp_path, train_h5, stage):
    """From the weights Caffe started a stage with, the same losses until rounding has grown. (The
    staged run below starts later stages from our own, drifted, previous stage.)"""
    count, rtol = EARLY[stage]
    folder = stage_folder(stage, tmp_path / stage, train_h5, max_iter=count)
    losses = train(folder, CASE / stage / "init.caffemodel")
    caffes = np.load(CASE / stage / "losses.npy")[:count]
    assert losses.shape == caffes.shape
    assert relative(losses, caffes).max() <= rtol, relative(losses, caffes)


def test_staged_run_follows_caffe_and_learns_as_caffes_does(staged):
    """The whole staged run: FCN-32s's first iterations are Caffe's; each stage lowers the loss as
    Caffe's does, scores the same pixels, and the mean IU rises stage by stage well above any
    label-blind predictor."""
    count, rtol = EARLY["fcn32s"]
    caffes = np.load(CASE / "fcn32s" / "losses.npy")
    assert relative(staged["fcn32s"].losses[:count], caffes[:count]).max() <= rtol
    for stage in STAGES:
        ours, caffes = staged[stage].losses, np.load(CASE / stage / "losses.npy")
        assert ours.shape == caffes.shape and np.isfinite(ours).all(), stage
        assert ours[-20:].mean() < ours[:20].mean(), stage
        assert caffes[-20:].mean() < caffes[:20].mean(), stage
        assert staged[stage].hist.sum() == np.array(caffe_metrics(stage)["hist"]).sum(), stage
    chance = caffe_metrics("fcn8s")["chance_mean_iu"]
    assert staged["fcn8s"].mean_iu > chance + 0.2, (staged["fcn8s"].mean_iu, chance)
    ious = [staged[stage].mean_iu for stage in STAGES]
    assert ious == sorted(ious), ious


@pytest.mark.parametrize("stage", STAGES)
def test_issue_criteria_mean_iu_and_pixels_equal_caffes(staged, stage):
    """Issue 11's end-to-end criteria, on every stage of the staged run (FCN-8s is the final one):
    mean IU within 0.5 points of Caffe's and >= 99% of the val pixels predicted as Caffe did."""
    ours, caffes = staged[stage], caffe_metrics(stage)
    assert abs(ours.mean_iu - caffes["mean_iu"]) <= MEAN_IU_POINTS, (ours.mean_iu, caffes["mean_iu"])
    assert agreement(ours.predictions, caffe_predictions(stage)) >= PIXEL_AGREEMENT


@pytest.mark.oracle
def test_caffe_meets_the_criteria_against_itself(tmp_path, train_h5, live_caffe):
    """Why the criteria above are fair: real Caffe, rerun with one blob of FCN-32s's initial
    weights one ulp higher, drifts (its losses leave the fixture's) yet ends every stage within
    the criteria of the fixture, and at the numbers staged.json recorded."""
    out = tmp_path / "nudged"
    live_caffe(ROOT / "tools" / "caffe" / "staged_sensitivity.py", "--fixture", CASE, "--work", train_h5.parent,
               "--out", out, "--nudge", NUDGED_LAYER)
    num_classes = json.loads((CASE / "staged.json").read_text())["num_classes"]
    recorded = json.loads((CASE / "staged.json").read_text())["caffe_self_sensitivity"]["stages"]
    truth = labels()
    for stage in STAGES:
        losses = relative(np.load(out / stage / "losses.npy"), np.load(CASE / stage / "losses.npy"))
        assert losses.max() > 0, stage  # the nudge took effect
        with h5py.File(out / stage / "predictions.h5", "r") as f:
            nudged = {str(i): f[str(i)][...] for i in f.attrs["ids"]}
        hist = sum(fast_hist(truth[i], nudged[i], num_classes) for i in truth)
        gap = abs(scores(hist).mean_iu - caffe_metrics(stage)["mean_iu"])
        same = agreement(nudged, caffe_predictions(stage))
        assert gap <= MEAN_IU_POINTS and same >= PIXEL_AGREEMENT, (stage, gap, same)
        assert same == pytest.approx(recorded[stage]["pixels_equal"], abs=1e-9), stage

"""End to end against real Caffe: FCN-32s -> 16s -> 8s staged on the synthetic VOC-format set.

The oracle is tests/fixtures/train/staged-synthetic (tools/make_staged_fixture.py: three real
``caffe.SGDSolver`` runs of 500/250/250 iterations, fixed lr 1e-7, momentum 0.99, unnormalized
loss, reduced widths; Caffe's val predictions and scores after each stage). Here the same solver
files run through ``python -m fcn_ref.train SOLVER --weights W`` (in process, one thread), as a
user would: FCN-32s from the fixture's initial weights, each later stage from OUR previous stage's
final snapshot copied by layer name, as Caffe's ``copy_from`` did for the fixture, with the fixed
upsampling set to surgery.interp's diagonal bilinear kernels and the new skip score left zero
(Caffe's default filler). Our snapshots predict the val images at their native size through
``fcn_ref.evaluate`` and are scored with ``voc.metrics``.

What holds, and what does not (measured on this fixture):
- Every stage follows Caffe's losses while float32 rounding is still small (default tier, 20
  iterations or fewer a stage from Caffe's own init): FCN-16s and FCN-8s within 1e-5, the
  step-equality tolerance; FCN-32s within 1e-4 for 15 iterations, because its first losses
  differ by 2e-5 already: its scores start at zero, each labelled pixel adds float32(ln 5), and
  Caffe adds them one by one in float32 (5719.835 for 3554 pixels; the exact sum is 5719.942).
- Past that the runs part: this training is chaotic. From iteration ~20 our difference from
  Caffe grows tenfold every few iterations (1e-3 at 23, 10% by 100, 30% at 500), and Caffe
  does the same against itself: with one blob of its initial weights one ulp higher, its own
  final mean IU moves by 5.9 points and 37% of its final pixels change (oracle test below; a
  plain Caffe rerun reproduces the fixture bit for bit). So the issue's end-to-end criteria
  (final mean IU within 0.5 points, >= 99% of pixels equal) are not met by the staged run (slow
  tier: ours 0.248 against Caffe's 0.274, 76% of pixels equal), and should not be expected on
  this fixture from any float32 code that does not repeat Caffe's every rounding. They are
  kept, unchanged, as a strict xfail.
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
# (see the module docstring for why these and not more).
EARLY = {"fcn32s": (15, 1e-4), "fcn16s": (20, 1e-5), "fcn8s": (20, 1e-5)}
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


@pytest.mark.slow
def test_staged_run_follows_caffe_then_learns_as_caffes_does(staged):
    """The whole staged run: FCN-32s's first iterations are Caffe's; each stage lowers the loss as
    Caffe's does, and the result segments well above any label-blind predictor (not Caffe's
    numbers: see the module docstring)."""
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
    assert staged["fcn8s"].mean_iu > chance + 0.05, (staged["fcn8s"].mean_iu, chance)
    assert staged["fcn8s"].mean_iu > staged["fcn32s"].mean_iu


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="chaotic training: Caffe misses these criteria against itself after a "
                                       "one-ulp nudge (test_caffe_misses_the_criteria_against_itself)")
def test_issue_criteria_final_mean_iu_and_pixels_equal_caffes(staged):
    """Issue 11's end-to-end criteria, unchanged: the final (FCN-8s) mean IU within 0.5 points of
    Caffe's and >= 99% of the val pixels predicted as Caffe predicted them."""
    ours, caffes = staged["fcn8s"], caffe_metrics("fcn8s")
    assert abs(ours.mean_iu - caffes["mean_iu"]) <= MEAN_IU_POINTS, (ours.mean_iu, caffes["mean_iu"])
    assert agreement(ours.predictions, caffe_predictions("fcn8s")) >= PIXEL_AGREEMENT


@pytest.mark.oracle
def test_caffe_misses_the_criteria_against_itself(tmp_path, train_h5, live_caffe):
    """Why the criteria above fail: real Caffe, rerun with one blob of FCN-32s's initial weights
    one ulp higher, starts on the fixture's very losses and ends elsewhere: its final mean IU is
    more than 0.5 points from the fixture's and fewer than 99% of its pixels agree."""
    out = tmp_path / "nudged"
    live_caffe(ROOT / "tools" / "caffe" / "staged_sensitivity.py", "--fixture", CASE, "--work", train_h5.parent,
               "--out", out, "--nudge", NUDGED_LAYER)
    count, _ = EARLY["fcn32s"]
    early = relative(np.load(out / "fcn32s" / "losses.npy")[:count], np.load(CASE / "fcn32s" / "losses.npy")[:count])
    assert early.max() <= 1e-6, early  # the nudge itself is invisible at first
    num_classes = json.loads((CASE / "staged.json").read_text())["num_classes"]
    with h5py.File(out / "fcn8s" / "predictions.h5", "r") as f:
        nudged = {str(i): f[str(i)][...] for i in f.attrs["ids"]}
    truth = labels()
    hist = sum(fast_hist(truth[i], nudged[i], num_classes) for i in truth)
    assert abs(scores(hist).mean_iu - caffe_metrics("fcn8s")["mean_iu"]) > MEAN_IU_POINTS
    assert agreement(nudged, caffe_predictions("fcn8s")) < PIXEL_AGREEMENT

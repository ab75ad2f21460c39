"""Regenerate tests/fixtures/train/staged-synthetic/: FCN-32s -> 16s -> 8s trained in real Caffe.

    python tools/make_staged_fixture.py [--out DIR] [--work DIR]
    python tools/make_staged_fixture.py --data-only DIR     # only the inputs, for a trainer to reuse

This half runs in the project python (PIL): it draws the synthetic VOC-format sets with
``voc.synthetic`` and preprocesses them with tools/make_trained_fixture.py's own code (PIL RGB ->
float32 -> BGR -> minus the VOC mean -> CHW, not the package under test). The val set is stored in
the fixture (VOC layout); the training set (TRAIN_IMAGES of TRAIN_SIZE, seed 1) is not, because it
is about 20 MB as float32: staged.json records the sha256 of its arrays so a trainer can check
that it rebuilt the same inputs. Then tools/caffe/train_staged.py trains the three stages in
Caffe, predicts and scores, and tools/caffe/staged_sensitivity.py reruns them with one initial
blob one ulp higher: how far Caffe's own predictions and mean IU move is recorded in staged.json
(``caffe_self_sensitivity``), the floor for any other float32 trainer.

The set is drawn for decisive learning (few classes, big objects, images large enough for a
stride-32 output to have a few cells): a barely-learned net has near-tie pixels everywhere and
any rounding difference flips them.
``--data-only DIR`` writes DIR/train.h5 and, from the stored val set of ``--out``, DIR/val_inputs.h5
and DIR/val_labels.h5 (what tools/caffe/staged_sensitivity.py reads).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_trained_fixture as trained  # noqa: E402  (the same data and preprocessing)
from voc.synthetic import make_voc_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAFFE_SCRIPT = ROOT / "tools" / "caffe" / "train_staged.py"
SENSITIVITY_SCRIPT = ROOT / "tools" / "caffe" / "staged_sensitivity.py"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "train" / "staged-synthetic"
STAGES = ("fcn32s", "fcn16s", "fcn8s")
NUDGED_LAYER = "conv3_1"
# The draw (voc.synthetic.make_voc_folder): background + 3 classes, 2 rectangles of 1/4 to 1/2 of
# the side per image, noise 8.
CLASSES_DRAWN = 4
OBJECTS = 2
NOISE = 8.0
TRAIN_SIZE = (128, 128)  # (width, height): one size, as HDF5Data needs
TRAIN_IMAGES = 100
TRAIN_SEED = 1
# Val sizes (width, height): none a multiple of 32, so every crop offset and ceil pool matters.
VAL_SIZES = ((131, 139), (150, 121), (117, 163), (160, 143))
VAL_IMAGES = 8
VAL_SEED = 3


def write_train(work: Path) -> dict:
    """train/ in VOC layout and train.h5 (data float32 N,3,H,W; label float32 N,1,H,W); returns
    how they were made and the sha256 of each array."""
    make_voc_folder(work / "train", TRAIN_IMAGES, "train", (TRAIN_SIZE,), CLASSES_DRAWN, seed=TRAIN_SEED,
                    ids=[f"train_{i:04d}" for i in range(TRAIN_IMAGES)], objects=OBJECTS, noise=NOISE)
    trained.write_train_h5(work / "train", work / "train.h5")
    with h5py.File(work / "train.h5", "r") as f:
        digests = {k: hashlib.sha256(f[k][...].tobytes()).hexdigest() for k in ("data", "label")}
    return {"make_voc_folder": {"num_images": TRAIN_IMAGES, "split": "train", "sizes": [list(TRAIN_SIZE)],
                                "num_classes": CLASSES_DRAWN, "seed": TRAIN_SEED, "objects": OBJECTS,
                                "noise": NOISE, "ids": f"train_0000 .. train_{TRAIN_IMAGES - 1:04d}"},
            "preprocessing": "tools/make_trained_fixture.py preprocess: PIL RGB -> float32 -> BGR -> minus "
                             f"{trained.MEAN_BGR} -> CHW; label float32 (N,1,H,W)",
            "order": "HDF5Data batch 1, rows in split order, wrap-around, no shuffle",
            "sha256": digests}


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {str(i): f[str(i)][...] for i in f.attrs["ids"]}


def mean_iu(labels: dict[str, np.ndarray], predictions: dict[str, np.ndarray], n: int) -> float:
    """score.py's mean IU from one confusion matrix (void dropped), written out here."""
    hist = np.zeros((n, n), np.int64)
    for i, gt in labels.items():
        keep = gt < n
        hist += np.bincount(n * gt[keep].astype(np.int64) + predictions[i][keep], minlength=n * n).reshape(n, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist))
    return float(np.nanmean(iu))


def self_sensitivity(fixture: Path, nudged: Path, labels_path: Path) -> dict:
    """Caffe against itself, per stage: the nudged rerun's mean IU gap (points), share of val
    pixels predicted alike, and largest relative loss difference."""
    with h5py.File(labels_path, "r") as f:
        labels = {k: f[k][...] for k in f}
    report = {"nudge": f"{NUDGED_LAYER} weights of fcn32s/init.caffemodel one ulp up (np.nextafter), "
                       "tools/caffe/staged_sensitivity.py", "stages": {}}
    for stage in STAGES:
        ours, theirs = read_predictions(fixture / stage / "predictions.h5"), read_predictions(nudged / stage / "predictions.h5")
        same = sum(int((ours[i] == theirs[i]).sum()) for i in ours) / sum(ours[i].size for i in ours)
        a, b = np.load(fixture / stage / "losses.npy"), np.load(nudged / stage / "losses.npy")
        report["stages"][stage] = {
            "mean_iu_gap_points": 100 * abs(mean_iu(labels, ours, CLASSES_DRAWN) - mean_iu(labels, theirs, CLASSES_DRAWN)),
            "pixels_equal": same, "max_rel_loss_difference": float((np.abs(a - b) / np.abs(a)).max())}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, help="keep the training data here (default: a temp dir)")
    parser.add_argument("--data-only", type=Path, metavar="DIR",
                        help="only write DIR/train.h5, DIR/val_inputs.h5 and DIR/val_labels.h5, and exit")
    args = parser.parse_args(argv)
    if args.data_only:
        args.data_only.mkdir(parents=True, exist_ok=True)
        write_train(args.data_only)
        trained.write_val_h5(args.out / "val", args.data_only / "val_inputs.h5", args.data_only / "val_labels.h5")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        train = write_train(work)
        val = out / "val"
        make_voc_folder(val, VAL_IMAGES, "val", VAL_SIZES, CLASSES_DRAWN, seed=VAL_SEED,
                        ids=[f"val_{i:04d}" for i in range(VAL_IMAGES)], objects=OBJECTS, noise=NOISE)
        digests = trained.write_val_h5(val, work / "val_inputs.h5", work / "val_labels.h5")
        subprocess.run([str(trained.CAFFE_PYTHON), str(CAFFE_SCRIPT), "--work", str(work.resolve()),
                        "--out", str(out.resolve())], check=True)
        nudged = work / "nudged"
        subprocess.run([str(trained.CAFFE_PYTHON), str(SENSITIVITY_SCRIPT), "--fixture", str(out.resolve()),
                        "--work", str(work.resolve()), "--out", str(nudged.resolve()), "--nudge", NUDGED_LAYER],
                       check=True)
        sensitivity = self_sensitivity(out, nudged, work / "val_labels.h5")

    summary_path = out / "staged.json"
    summary = json.loads(summary_path.read_text())
    summary["train_data"] = train
    summary["val"] = {"folder": "val", "images": VAL_IMAGES, "seed": VAL_SEED, "objects": OBJECTS, "noise": NOISE,
                      "sizes": [list(s) for s in VAL_SIZES], "input_rgb_sha256": digests}
    summary["caffe_self_sensitivity"] = sensitivity
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

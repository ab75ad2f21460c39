"""Regenerate tests/fixtures/trained/fcn8s-synthetic/: an FCN-8s trained and scored by real Caffe.

    python tools/make_trained_fixture.py [--out DIR] [--iters N] [--lr LR] [--momentum M] [--work DIR]

This half runs in the project python (it has PIL; Caffe's interpreter does not): it draws a
synthetic VOC-format data set with ``voc.synthetic`` (rectangles of 4 classes, coloured by class,
on a noisy background, with void outlines), decodes the files again and preprocesses them as the
reference does (PIL RGB -> float32 -> BGR -> minus the VOC mean -> CHW), and writes HDF5 for
Caffe. Then tools/caffe/train_synthetic.py trains, predicts and scores under real Caffe. The
preprocessing is written out here on purpose instead of calling the package, so that the
reference never depends on the code it checks.
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
from PIL import Image

from voc.synthetic import make_voc_folder

ROOT = Path(__file__).resolve().parent.parent
CAFFE_PYTHON = ROOT / "tools" / "caffe" / "python3"
CAFFE_SCRIPT = ROOT / "tools" / "caffe" / "train_synthetic.py"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "trained" / "fcn8s-synthetic"

MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)  # infer.py
CLASSES_DRAWN = 5  # background + labels 1..4 (aeroplane, bicycle, bird, boat) of VOC's 21
TRAIN_SIZE = (64, 64)  # (width, height): one size, as HDF5Data needs
TRAIN_IMAGES = 300
# Val sizes (width, height): none a multiple of 32, so every crop offset and ceil pool matters.
VAL_SIZES = ((67, 75), (90, 61), (77, 99), (100, 83), (61, 70), (85, 94), (73, 66), (95, 78))
VAL_IMAGES = 24


def read_rgb(path: Path) -> np.ndarray:
    """The JPEG as (H, W, 3) uint8 RGB, decoded by PIL as infer.py's Image.open does."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


def read_label(path: Path) -> np.ndarray:
    """A palette PNG's indices (H, W) uint8, as voc_layers.py reads SegmentationClass."""
    with Image.open(path) as image:
        assert image.mode == "P", (path, image.mode)
        return np.array(image, dtype=np.uint8)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """infer.py: float32, RGB -> BGR, ``-=`` the float64 mean (numpy rounds once), HWC -> CHW."""
    in_ = np.array(rgb, dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= np.array(MEAN_BGR)
    return np.ascontiguousarray(in_.transpose((2, 0, 1)))


def split_ids(root: Path, split: str) -> list[str]:
    text = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_train_h5(folder: Path, path: Path) -> None:
    ids = split_ids(folder, "train")
    data = np.stack([preprocess(read_rgb(folder / "JPEGImages" / f"{i}.jpg")) for i in ids])
    label = np.stack([read_label(folder / "SegmentationClass" / f"{i}.png") for i in ids])
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["label"] = label[:, None].astype(np.float32)


def write_val_h5(folder: Path, inputs_path: Path, labels_path: Path) -> dict[str, str]:
    """Per-id inputs and labels for Caffe; returns the sha256 of each decoded RGB image, so the
    test can tell a different JPEG decoder apart from a different model."""
    ids = split_ids(folder, "val")
    digests = {}
    with h5py.File(inputs_path, "w") as inputs, h5py.File(labels_path, "w") as labels:
        inputs.attrs["ids"] = np.array(ids, dtype=h5py.string_dtype())
        for image_id in ids:
            rgb = read_rgb(folder / "JPEGImages" / f"{image_id}.jpg")
            digests[image_id] = hashlib.sha256(rgb.tobytes()).hexdigest()
            inputs[image_id] = preprocess(rgb)
            labels[image_id] = read_label(folder / "SegmentationClass" / f"{image_id}.png")
    return digests


README = """\
# fcn8s-synthetic: an FCN-8s trained by real Caffe, for the converter + evaluator check

Made by `{command}` (training takes about {seconds} s on 2 CPU cores; rerunning overwrites this folder).

- Data: `voc.synthetic.make_voc_folder` with 5 classes (background + VOC labels 1-4): rectangles
  painted in their VOC palette colour plus noise, 2-pixel void (255) outlines. Training: {train}
  images of 64x64 (seed 1, not stored). Val (stored here, VOC layout): {val} images of sizes
  {sizes} (width x height, none a multiple of 32; seed 2).
- Inputs for Caffe were preprocessed in the project python by `tools/make_trained_fixture.py`'s
  own code (PIL RGB -> float32 -> BGR -> minus (104.00698793, 116.66876762, 122.67891434) -> CHW),
  not by the package under test.
- Net: R voc-fcn8s/net.py at reduced width (conv stages {widths}, fc6 7x7 and fc7 1x1 with
  {fc} channels), 21 outputs, pad 100, ceil pools, crops 5/9/31, deconvs bilinear on the diagonal
  and frozen. Train net: HDF5Data, dropout, SoftmaxWithLoss ignore 255 normalize false.
  `deploy.prototxt`: Input, no dropout, no loss, output `score`.
- Solver (reference form): fixed lr {lr}, momentum {momentum}, weight decay 5e-4, batch 1,
  {iters} iterations from scratch (He-initialised trunk, zero score layers); final loss
  (sum over pixels, mean of the last 20 iterations) {loss:.1f}.
- Caffe ({caffe}) then predicted every val image at its native size with `deploy.prototxt`
  and `net.caffemodel`; `caffe_predictions.h5` holds its argmax per id (uint8), and
  `caffe_metrics.json` the dataset-wide confusion matrix (`hist`, rows ground truth, void dropped)
  and the metrics from it, computed by numpy code in tools/caffe/train_synthetic.py.

Caffe: mean IU {mean_iu:.4f}, pixel acc {pixel_acc:.4f}, against {chance:.4f} for the best
label-blind predictor (`chance_mean_iu`). `input_rgb_sha256` records the decoded val images.

tests/fcn_ref/test_trained_model.py converts `net.caffemodel` with `python -m convert`, runs
`python -m fcn_ref.evaluate` on this folder and requires Caffe's mean IU (to 1e-6), confusion matrix
and every predicted pixel.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, help="keep the training data here (default: a temp dir)")
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-7)
    parser.add_argument("--momentum", type=float, default=0.99)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        make_voc_folder(work / "train", TRAIN_IMAGES, "train", (TRAIN_SIZE,), CLASSES_DRAWN, seed=1,
                        ids=[f"train_{i:04d}" for i in range(TRAIN_IMAGES)])
        write_train_h5(work / "train", work / "train.h5")
        make_voc_folder(out, VAL_IMAGES, "val", VAL_SIZES, CLASSES_DRAWN, seed=2,
                        ids=[f"val_{i:04d}" for i in range(VAL_IMAGES)])
        digests = write_val_h5(out, work / "val_inputs.h5", work / "val_labels.h5")
        subprocess.run([str(CAFFE_PYTHON), str(CAFFE_SCRIPT), "--work", str(work.resolve()),
                        "--out", str(out.resolve()), "--iters", str(args.iters),
                        "--lr", repr(args.lr), "--momentum", repr(args.momentum)], check=True)

    metrics_path = out / "caffe_metrics.json"
    report = json.loads(metrics_path.read_text())
    report["input_rgb_sha256"] = digests
    metrics_path.write_text(json.dumps(report, indent=1))
    command = "python tools/make_trained_fixture.py" + "".join(
        f" --{k} {v}" for k, v in (("iters", args.iters), ("lr", args.lr), ("momentum", args.momentum)))
    (out / "README.md").write_text(README.format(
        command=command, seconds=round(report["train_seconds"]), train=TRAIN_IMAGES,
        val=VAL_IMAGES, sizes=", ".join(f"{w}x{h}" for w, h in VAL_SIZES), lr=args.lr,
        momentum=args.momentum, iters=report["iterations"], loss=report["final_loss"],
        caffe=report["caffe"], widths="/".join(map(str, report["net"]["widths"])),
        fc=report["net"]["fc"], mean_iu=report["mean_iu"], pixel_acc=report["pixel_acc"],
        chance=report["chance_mean_iu"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A model trained by real Caffe keeps its score through ``python -m convert`` + ``fcn_ref.evaluate``.

The fixture (tests/fixtures/trained/fcn8s-synthetic, made by tools/make_trained_fixture.py) is a
reduced-width FCN-8s that Caffe trained on a synthetic VOC-format set, with Caffe's own label map
for every val image and the confusion matrix and metrics Caffe's side computed from them. Random
weights (the parity fixtures) cannot show that a converted model *segments* like the original; a
trained one can: every pixel's argmax, and so the mean IU, must come out the same.

Caffe's smallest top-2 score gap on this split is recorded (about 1e-4, scores up to ~50), while
float32 reordering moves scores by ~1.5e-5, so an exact match is a fair demand, not luck.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, ROOT

CASE = FIXTURES / "trained" / "fcn8s-synthetic"
MEAN_IU_TOL = 1e-6


@pytest.fixture(scope="module")
def caffe_metrics() -> dict:
    return json.loads((CASE / "caffe_metrics.json").read_text())


@pytest.fixture(scope="module")
def caffe_predictions(caffe_metrics) -> dict[str, np.ndarray]:
    with h5py.File(CASE / "caffe_predictions.h5", "r") as f:
        return {image_id: f[image_id][...] for image_id in caffe_metrics["ids"]}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """net.caffemodel + deploy.prototxt through the real CLI, once for the module."""
    out = tmp_path_factory.mktemp("trained") / "fcn8s-synthetic.pth"
    done = subprocess.run([sys.executable, "-m", "convert", str(CASE / "net.caffemodel"),
                           "--prototxt", str(CASE / "deploy.prototxt"), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    return out


def read_label(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image, dtype=np.uint8)


def test_caffe_beats_chance_clearly(caffe_metrics):
    """The reference is a trained model, not noise: far above any label-blind predictor."""
    chance = caffe_metrics["chance_mean_iu"]
    assert caffe_metrics["mean_iu"] > chance + 0.3, (caffe_metrics["mean_iu"], chance)
    assert caffe_metrics["mean_iu"] > 3 * chance


def test_fixture_is_self_consistent(caffe_metrics, caffe_predictions):
    """Caffe's stored predictions and the stored ground truth give the stored confusion matrix."""
    n = len(caffe_metrics["hist"])
    hist = np.zeros((n, n), np.int64)
    for image_id, prediction in caffe_predictions.items():
        gt = read_label(CASE / "SegmentationClass" / f"{image_id}.png")
        assert gt.shape == prediction.shape, image_id
        keep = gt < n
        hist += np.bincount(n * gt[keep].astype(np.int64) + prediction[keep], minlength=n * n).reshape(n, n)
    np.testing.assert_array_equal(hist, np.array(caffe_metrics["hist"]))


def test_val_images_decode_as_caffe_saw_them(caffe_metrics):
    """Guards the exact comparison: a different JPEG decoder would change the inputs, not the port."""
    for image_id, digest in caffe_metrics["input_rgb_sha256"].items():
        with Image.open(CASE / "JPEGImages" / f"{image_id}.jpg") as image:
            rgb = np.array(image.convert("RGB"), dtype=np.uint8)
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == digest, (
            f"{image_id}: this PIL/libjpeg decodes the JPEG differently from the one that made the "
            "fixture; rerun tools/make_trained_fixture.py")


def _runtime_loader(path: str):
    import convert

    return convert.load(path)


def _cli_loader(path: str):
    from fcn_ref.evaluate import load_weights

    return load_weights(path)


@pytest.mark.parametrize("load_model", [_runtime_loader, _cli_loader], ids=["convert.load", "cli-default"])
def test_converted_model_reproduces_caffe(tmp_path, converted, caffe_metrics, caffe_predictions,
                                          load_model):
    """``python -m fcn_ref.evaluate`` on the converted file: Caffe's pixels, matrix and mean IU."""
    from fcn_ref.evaluate import main as evaluate_main

    report_path, save_dir = tmp_path / "eval.json", tmp_path / "pred"
    status = evaluate_main(["--weights", str(converted), "--voc-root", str(CASE), "--split", "val",
                            "--json", str(report_path), "--save-dir", str(save_dir),
                            "--published", "none", "--device", "cpu"], load_model=load_model)
    assert status == 0
    report = json.loads(report_path.read_text())
    assert report["num_images"] == caffe_metrics["num_images"]
    mismatched = {}
    for image_id, expected in caffe_predictions.items():
        ours = read_label(save_dir / f"{image_id}.png")
        assert ours.shape == expected.shape, image_id
        if (ours != expected).any():
            mismatched[image_id] = int((ours != expected).sum())
    assert not mismatched, f"pixels differing from Caffe's prediction: {mismatched}"
    np.testing.assert_array_equal(np.array(report["confusion"]), np.array(caffe_metrics["hist"]))
    for name in ("mean_iu", "pixel_acc", "mean_acc", "fw_iu"):
        assert abs(report[name] - caffe_metrics[name]) <= MEAN_IU_TOL, (name, report[name], caffe_metrics[name])

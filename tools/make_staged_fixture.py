"""Regenerate tests/fixtures/train/staged-synthetic/: FCN-32s -> 16s -> 8s trained in real Caffe.

    python tools/make_staged_fixture.py [--out DIR] [--work DIR]
    python tools/make_staged_fixture.py --data-only DIR     # only the inputs, for a trainer to reuse

This half runs in the project python (PIL): it draws the synthetic VOC-format sets with
``voc.synthetic`` and preprocesses them with tools/make_trained_fixture.py's own code (PIL RGB ->
float32 -> BGR -> minus the VOC mean -> CHW, not the package under test). The val set is stored in
the fixture (VOC layout); the training set (300 images of 64x64, seed 1, the same draw as
trained/fcn8s-synthetic) is not, because it is about 20 MB as float32: staged.json records the
sha256 of its arrays so a trainer can check that it rebuilt the same inputs. Then
tools/caffe/train_staged.py trains the three stages in Caffe, predicts and scores.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_trained_fixture as trained  # noqa: E402  (the same data and preprocessing)
from voc.synthetic import make_voc_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAFFE_SCRIPT = ROOT / "tools" / "caffe" / "train_staged.py"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "train" / "staged-synthetic"
VAL_IMAGES = 12
VAL_SEED = 3


def write_train(work: Path) -> dict:
    """train/ in VOC layout and train.h5 (data float32 N,3,64,64; label float32 N,1,64,64); returns
    how they were made and the sha256 of each array."""
    make_voc_folder(work / "train", trained.TRAIN_IMAGES, "train", (trained.TRAIN_SIZE,), trained.CLASSES_DRAWN,
                    seed=1, ids=[f"train_{i:04d}" for i in range(trained.TRAIN_IMAGES)])
    trained.write_train_h5(work / "train", work / "train.h5")
    with h5py.File(work / "train.h5", "r") as f:
        digests = {k: hashlib.sha256(f[k][...].tobytes()).hexdigest() for k in ("data", "label")}
    return {"make_voc_folder": {"num_images": trained.TRAIN_IMAGES, "split": "train",
                                "sizes": [list(trained.TRAIN_SIZE)], "num_classes": trained.CLASSES_DRAWN,
                                "seed": 1, "ids": "train_0000 .. train_0299"},
            "preprocessing": "tools/make_trained_fixture.py preprocess: PIL RGB -> float32 -> BGR -> minus "
                             f"{trained.MEAN_BGR} -> CHW; label float32 (N,1,H,W)",
            "order": "HDF5Data batch 1, rows in split order, wrap-around, no shuffle",
            "sha256": digests}


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
        make_voc_folder(val, VAL_IMAGES, "val", trained.VAL_SIZES, trained.CLASSES_DRAWN, seed=VAL_SEED,
                        ids=[f"val_{i:04d}" for i in range(VAL_IMAGES)])
        digests = trained.write_val_h5(val, work / "val_inputs.h5", work / "val_labels.h5")
        subprocess.run([str(trained.CAFFE_PYTHON), str(CAFFE_SCRIPT), "--work", str(work.resolve()),
                        "--out", str(out.resolve())], check=True)

    summary_path = out / "staged.json"
    summary = json.loads(summary_path.read_text())
    summary["train_data"] = train
    summary["val"] = {"folder": "val", "images": VAL_IMAGES, "seed": VAL_SEED,
                      "sizes": [list(s) for s in trained.VAL_SIZES], "input_rgb_sha256": digests}
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

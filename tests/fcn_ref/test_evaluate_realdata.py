"""The published-numbers check: convert each original caffemodel present, score it on seg11valid,
and require mean IU within 0.1 (percentage points) of every seg11valid number published for it.

Needs the real files, so it skips unless FCN_WEIGHTS_DIR (a folder holding the original
``.caffemodel`` files under their original names) and VOC_ROOT (``VOCdevkit/VOC2012`` or
``VOC2011``) are set. Use a GPU: on CPU each model takes about an hour.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from voc.datasets import VOCSegmentation, seg11valid_ids
from fcn_ref.evaluate import evaluate, load_weights
from fcn_ref.zoo import PUBLISHED, lookup

WEIGHTS_DIR = os.environ.get("FCN_WEIGHTS_DIR")
VOC_ROOT = os.environ.get("VOC_ROOT")
TOLERANCE = 0.1  # percentage points of mean IU

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (WEIGHTS_DIR and VOC_ROOT),
                       reason="set FCN_WEIGHTS_DIR (folder with the original .caffemodel files) and "
                              "VOC_ROOT (VOCdevkit/VOC2012) to check the published numbers"),
]

CHECKED = sorted({row.file for row in PUBLISHED if row.file and row.image_set == "seg11valid"})


def convert(caffemodel: Path, out: Path) -> None:
    """``python -m convert``, with a deploy prototxt if one lies beside the weights (the CVPR nets'
    gists shipped one; the caffemodels carry their own structure, so it is optional)."""
    command = [sys.executable, "-m", "convert", str(caffemodel), "-o", str(out)]
    stem = caffemodel.name.removesuffix(".caffemodel")
    for candidate in (f"{stem}.prototxt", f"{stem}-deploy.prototxt"):
        if (caffemodel.parent / candidate).is_file():
            command += ["--prototxt", str(caffemodel.parent / candidate)]
            break
    subprocess.run(command, check=True)


@pytest.mark.parametrize("caffemodel", CHECKED)
def test_seg11valid_mean_iu_matches_published(caffemodel: str, tmp_path: Path) -> None:
    path = Path(WEIGHTS_DIR or "") / caffemodel
    if not path.is_file():
        pytest.skip(f"{caffemodel} is not in FCN_WEIGHTS_DIR")
    converted = tmp_path / path.name.replace(".caffemodel", ".pth")
    convert(path, converted)
    dataset = VOCSegmentation(VOC_ROOT or "", seg11valid_ids())  # the packaged list, whatever VOC_ROOT holds
    result = evaluate(load_weights(converted), dataset, 21,
                      device="cuda" if torch.cuda.is_available() else "cpu", progress=True)
    ours = 100 * result.scores.mean_iu
    print(f"{caffemodel}: mean IU {ours:.2f} on seg11valid "
          f"(pixel {100 * result.scores.pixel_acc:.2f}, mean acc {100 * result.scores.mean_acc:.2f}, "
          f"f.w. IU {100 * result.scores.fw_iu:.2f})")
    assert result.num_images == 736
    for row in lookup(caffemodel, "seg11valid"):
        assert abs(ours - row.mean_iu) <= TOLERANCE, f"{ours:.2f} vs {row.mean_iu} ({row.source})"

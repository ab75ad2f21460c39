"""Caffe-style input preparation and forward + argmax, just enough for scoring any FCN-like model.

Kept here rather than imported from ``fcn_ref`` so that ``voc`` scores any callable (a converted
``CaffeModule``, a readable zoo model, a test's toy module) without knowing its internals. The
input transform is the reference's (``infer.py``): RGB -> BGR, minus the dataset mean, CHW, no
resizing and no scaling. The mean is subtracted in float64 and then rounded to float32, as numpy
does for the reference's ``in_ -= mean``, so inputs match it bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from fcn_ref.predict import score_blob  # noqa: F401 (part of this module's API)
from fcn_ref.transforms import preprocess
from voc.datasets import VOC_MEAN_BGR

Model = Callable[[torch.Tensor], Any]


def caffe_input(image: Image.Image, mean_bgr: Sequence[float] = VOC_MEAN_BGR) -> torch.Tensor:
    """An RGB PIL image as the (3, H, W) float32 BGR, mean-subtracted tensor Caffe nets expect.

    The one implementation is ``fcn_ref.transforms.preprocess``; the mean is applied in float64 as
    infer.py does.
    """
    return preprocess(image, np.asarray(mean_bgr, dtype=np.float64))[0]


def predict_batch(model: Model, batch: torch.Tensor, output: str | None = None,
                  num_classes: int | None = None) -> torch.Tensor:
    """Label maps (N, H, W) int64 for an input batch (N, 3, H, W): forward, then argmax over classes.

    The scores must have the input's spatial size (FCNs crop back to it) and, if given,
    ``num_classes`` channels; anything else is refused rather than resized or truncated.
    """
    with torch.inference_mode():
        scores = score_blob(model(batch), output)
    if scores.ndim != 4 or scores.shape[0] != batch.shape[0] or scores.shape[2:] != batch.shape[2:]:
        raise ValueError(f"scores of shape {tuple(scores.shape)} for input {tuple(batch.shape)}; "
                         "expected (N, classes, H, W) at the input's size")
    if num_classes is not None and scores.shape[1] != num_classes:
        raise ValueError(f"model scores {scores.shape[1]} classes, the dataset has {num_classes}")
    return scores.argmax(dim=1)

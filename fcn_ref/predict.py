"""Pictures in, label maps out: the argmax over classes of the model's score blob.

``predict`` takes one picture; ``caffe_input`` and ``predict_batch`` serve the evaluator, which
scores any callable (a converted ``CaffeModule``, a zoo model, a test's toy module).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from fcn_ref.transforms import VOC_MEAN, preprocess

Model = Callable[[torch.Tensor], Any]


class ScoresError(ValueError):
    """No class scores to take from the model's output, or scores that do not fit the input or the
    dataset's classes: a model/dataset mismatch the CLIs report in one line."""


def score_blob(output: Any, name: str | None = None) -> torch.Tensor:
    """The class-score tensor of a model output: the tensor itself, or from a dict of named blobs
    ``name``, else ``'score'``, else its only entry (a Caffe net may expose several tops)."""
    if isinstance(output, torch.Tensor):
        if name not in (None, "score"):
            raise ScoresError(f"the model has one output, 'score'; there is no output blob '{name}'")
        return output
    if isinstance(output, Mapping):
        if name is not None:
            if name not in output:
                raise ScoresError(f"no output blob '{name}' (the model's outputs: {', '.join(output)})")
            return output[name]
        if "score" in output:
            return output["score"]
        if len(output) == 1:
            return next(iter(output.values()))
        raise ScoresError(f"model returned blobs {sorted(output)}; say which one holds the scores")
    if isinstance(output, (tuple, list)) and len(output) == 1:
        return score_blob(output[0], name)
    raise TypeError(f"cannot take class scores from a {type(output).__name__}")


def predict(model: nn.Module, image: Image.Image | np.ndarray | torch.Tensor, mean: np.ndarray = VOC_MEAN,
            output: str | None = None) -> np.ndarray:
    """(H, W) uint8 class indices for one picture (or an already preprocessed (1, C, H, W) tensor)."""
    x = image if isinstance(image, torch.Tensor) else preprocess(image, mean)
    with torch.no_grad():
        score = score_blob(model(x), output)  # a tensor, or 'score' / the only blob of a dict
    if score.shape[1] > 256:
        raise ScoresError(f"{score.shape[1]} classes do not fit a uint8 label map")
    return score[0].argmax(0).to(torch.uint8).numpy()


def caffe_input(image: Image.Image, mean_bgr: Sequence[float] = VOC_MEAN) -> torch.Tensor:
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
        raise ScoresError(f"scores of shape {tuple(scores.shape)} for input {tuple(batch.shape)}; "
                         "expected (N, classes, H, W) at the input's size")
    if num_classes is not None and scores.shape[1] != num_classes:
        raise ScoresError(f"model scores {scores.shape[1]} classes, the dataset has {num_classes}")
    return scores.argmax(dim=1)
